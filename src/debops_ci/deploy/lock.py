"""One deploy at a time per host: an flock held by a remote process for the whole run.

The holder is a shell on the host that takes `flock` on /var/lib/deployer/lock, writes
who it is to `lock.owner`, prints LOCKED and then reads its stdin until EOF. Its stdin
is a pipe from this process, through ssh: when the deployer ends, however it ends
(return, exception, SIGKILL), the pipe closes, the holder exits and the kernel drops
the lock. A dead deployer therefore blocks nobody, and nothing needs breaking by hand.
A waiter reads `lock.owner` to say who it is waiting for.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from debops_ci.deploy.errors import DeployFailedError, DeployLockedError, HostUnreachableError
from debops_ci.deploy.hosts import STATE_DIR
from debops_ci.deploy.ssh import RemoteSession, Transport

__all__ = ["HostLocks", "LockWaiting", "acquire_locks", "lock_script"]

_HELD_EXIT = 75


@dataclass(frozen=True)
class LockWaiting:
    """Progress event: another deployer holds `host`; we wait up to `timeout` s."""

    host: str
    holder: str
    timeout: float


def lock_script(owner: str, timeout: float) -> str:
    d = shlex.quote(STATE_DIR)
    wait = "-n" if timeout <= 0 else f"-w {timeout:g}"
    return f"""set -u
mkdir -p {d}; exec 9>>{d}/lock
if ! flock -n 9; then
  echo "WAIT $(cat {d}/lock.owner 2>/dev/null)"
  if ! flock {wait} 9; then echo "HELD $(cat {d}/lock.owner 2>/dev/null)"; exit {_HELD_EXIT}; fi
fi
printf '%s\\n' {shlex.quote(owner)} > {d}/lock.owner
echo LOCKED
cat >/dev/null
: > {d}/lock.owner
"""


class HostLocks:
    """Locks held on a set of hosts; `release()` (or leaving the `with`) frees them."""

    def __init__(self) -> None:
        self._sessions: list[RemoteSession] = []

    def add(self, session: RemoteSession) -> None:
        self._sessions.append(session)

    def release(self) -> None:
        while self._sessions:
            self._sessions.pop().close()

    def __enter__(self) -> HostLocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_locks(
    transport: Transport,
    hosts: Sequence[str],
    owner: str,
    timeout: float,
    report: Callable[[object], None],
) -> HostLocks:
    """Lock every host, in sorted order (two deployers never deadlock), or none."""
    locks = HostLocks()
    try:
        for host in sorted(set(hosts)):
            session = transport.open(host, lock_script(owner, timeout))
            other: list[str] = []
            while True:
                line = session.stdout.readline()
                if line.startswith("LOCKED"):
                    locks.add(session)
                    break
                if line.startswith("WAIT "):
                    if timeout > 0:
                        report(LockWaiting(host, line[5:].strip() or "another deployer", timeout))
                    continue
                if line and not line.startswith("HELD "):
                    other.append(line.strip())  # e.g. sudo's complaint
                    continue
                session.close()
                if line.startswith("HELD "):
                    holder = line[5:].strip() or "another deployer"
                    raise DeployLockedError(
                        f"{host}: another deploy holds the lock ({holder}); "
                        f"gave up after {timeout:g} s, nothing changed; retry later"
                    )
                if other:
                    raise DeployFailedError(f"{host}: cannot take the deploy lock: {other[-1]}")
                raise HostUnreachableError(host, "the connection closed while taking the lock")
    except BaseException:
        locks.release()
        raise
    return locks
