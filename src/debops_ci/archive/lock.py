"""The suite lock: a lease in `dists/<suite>/.debrepos3.lock`, taken with a create-only write.

The lock only keeps publishers from wasting work on each other; correctness comes from
the conditional write of InRelease. The lease is renewed while the holder works, so a
dead holder blocks others for one lease at most; a holder on this same machine whose
process is gone is taken over at once. The original tool's `.debrepos3.nolock` twin,
where it exists, is kept absent while we hold the lock and restored after, so old and
new writers exclude each other (where it does not, the original tool cannot lock).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from debops_ci.archive import layout
from debops_ci.clock import SYSTEM_CLOCK, Clock
from debops_ci.errors import LockTimeoutError
from debops_ci.storage import NotFound, PreconditionFailed, Store

DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_TIMEOUT_SECONDS = 900.0


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class LockHolder:
    """What a lock file says about who holds it."""

    owner: str
    host: str
    boot_id: str
    pid: int
    run: str
    acquired: float
    expires: float
    token: str
    etag: str

    @property
    def description(self) -> str:
        since = datetime.fromtimestamp(self.acquired, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        who = f"{self.owner} on {self.host} (pid {self.pid})" if self.pid else self.owner
        run = f", CI run {self.run}" if self.run else ""
        return f"{who}{run} since {since}"

    def is_provably_gone(self) -> bool:
        """Same machine (same boot), and its process no longer exists."""
        if not self.pid or not self.boot_id:
            return False
        if self.host != socket.gethostname() or self.boot_id != _boot_id():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def parse_holder(data: bytes, etag: str, last_modified: float, lease: float) -> LockHolder:
    """Our JSON body, or the original tool's empty lock (its age then stands for the lease)."""
    try:
        body = json.loads(data.decode("utf-8"))
        if not isinstance(body, dict):
            raise ValueError
        return LockHolder(
            owner=str(body.get("owner", "unknown")),
            host=str(body.get("host", "")),
            boot_id=str(body.get("boot_id", "")),
            pid=int(body.get("pid", 0)),
            run=str(body.get("run", "")),
            acquired=float(body.get("acquired", last_modified)),
            expires=float(body.get("expires", last_modified + lease)),
            token=str(body.get("token", "")),
            etag=etag,
        )
    except (ValueError, UnicodeDecodeError, TypeError):
        return LockHolder(
            owner="the original debops-ci tool",
            host="",
            boot_id="",
            pid=0,
            run="",
            acquired=last_modified,
            expires=last_modified + lease,
            token="",
            etag=etag,
        )


class SuiteLock:
    def __init__(
        self,
        store: Store,
        suite: str,
        *,
        run: str = "",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        log: Callable[[str], None] = lambda _msg: None,
        clock: Clock = SYSTEM_CLOCK,
        legacy_nolock: bool | None = None,
    ) -> None:
        """`run` says which CI run holds the lock (a URL), for whoever waits on it.
        `legacy_nolock`: whether the original tool's `.nolock` exists, if known (the
        root's note); None asks the store."""
        self.store = store
        self.suite = suite
        self.key = layout.lock_key(suite)
        self.lease = lease_seconds
        self.timeout = timeout_seconds
        self.log = log
        self.token = uuid.uuid4().hex
        self.run = run
        self.clock = clock
        self._etag: str | None = None
        self._acquired = 0.0
        self._written_at = 0.0  # when our lock body was last written (clock.time)
        self.legacy_nolock = legacy_nolock
        self.hid_nolock = False  # we removed `.nolock` and restore it on release
        self.waited = False  # the lock was held when we first asked
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._guard = threading.Lock()

    # -- the body we write ------------------------------------------------------

    def _body(self) -> bytes:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        body = {
            "tool": "debops-ci",
            "owner": f"{user}@{socket.gethostname()}",
            "host": socket.gethostname(),
            "boot_id": _boot_id(),
            "pid": os.getpid(),
            "run": self.run,
            "acquired": self._acquired,
            "expires": self.clock.time() + self.lease,
            "token": self.token,
        }
        return json.dumps(body, sort_keys=True).encode() + b"\n"

    def read_holder(self) -> LockHolder | None:
        try:
            blob = self.store.get(self.key)
        except NotFound:
            return None
        if blob.last_modified is None:  # a store that does not say it with the bytes
            info = self.store.head(self.key)
            modified = info.last_modified if info is not None else self.clock.time()
        else:
            modified = blob.last_modified
        return parse_holder(blob.data, blob.etag, modified, self.lease)

    # -- acquire / renew / release ---------------------------------------------

    def acquire(self, *, give_up: Callable[[], bool] | None = None) -> bool:
        """Take the lock, waiting for a live holder; True once held.

        `give_up` is asked after each look at a live holder: True stops waiting and
        returns False (group commit: the holder committed our work for us).
        """
        deadline = self.clock.monotonic() + self.timeout
        delay = 0.1
        last_said = ""
        holder: LockHolder | None = None
        looked = 0.0
        while True:
            self._acquired = self._written_at = self.clock.time()
            try:
                self._etag = self.store.put(self.key, self._body(), create_only=True)
                break
            except PreconditionFailed:
                pass
            # Who holds it: not on every try (a waiter's loop is two requests, not four);
            # again when its lease may be over (a new holder since makes the takeover's
            # If-Match fail, and we look again), and every few seconds (a lost answer
            # to our own create shows as a lock with our token).
            now = self.clock.monotonic()
            if holder is None or holder.expires < self.clock.time() or now - looked > 2.0:
                holder, looked = self.read_holder(), now
            if holder is None:
                continue  # released between our two requests: try again at once
            self.waited = True
            if not holder.token:
                # The original tool holds it (it took `.nolock` to lock): its marker
                # belongs here once nobody holds the lock.
                self.legacy_nolock = True
            if holder.token == self.token:
                # Our own create succeeded but its answer was lost; the retry saw it.
                self._etag = holder.etag
                break
            expired = holder.expires < self.clock.time()
            if holder.is_provably_gone() or expired:
                reason = "its process is gone" if not expired else "its lease expired"
                try:
                    self._etag = self.store.put(self.key, self._body(), if_match=holder.etag)
                    self.log(f"took over the lock of {holder.description}: {reason}")
                    break
                except (PreconditionFailed, NotFound):
                    holder = None
                    continue  # someone else took it over (or released it) first
            if self.clock.monotonic() > deadline:
                raise LockTimeoutError(
                    f"dists/{self.suite} is locked by {holder.description}; gave up after "
                    f"{self.timeout:.0f} s. If that job is gone, run "
                    f"`debops-ci unlock --distro {self.suite}`"
                )
            said = f"waiting for the lock on dists/{self.suite}, held by {holder.description}"
            if said != last_said:
                self.log(said)
                last_said = said
            if give_up is not None and give_up():
                return False
            self.clock.sleep(delay * (0.5 + random.random()))
            # A short cap: a long backoff leaves the lock idle while others wait.
            delay = min(delay * 1.6, 0.15 if give_up is not None else 0.8)
        # Hide the original tool's "unlocked" marker while we hold the lock.
        if self.legacy_nolock is None:
            self.legacy_nolock = self.store.head(layout.nolock_key(self.suite)) is not None
        if self.legacy_nolock:
            self.store.delete(layout.nolock_key(self.suite))
            self.hid_nolock = True
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True)
        self._renewer.start()
        return True

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease / 3):
            if not self.renew():
                return

    def renew(self) -> bool:
        """Extend the lease once; False when the lock is no longer ours (stop renewing)."""
        with self._guard:
            if self._etag is None:
                return False
            try:
                written_at = self.clock.time()
                self._etag = self.store.put(self.key, self._body(), if_match=self._etag)
                self._written_at = written_at
            except (PreconditionFailed, NotFound):
                self._etag = None
                self.log(
                    f"lost the lock on dists/{self.suite} (taken over by another "
                    "publisher); the final conditional commit still protects the archive"
                )
                return False
            except Exception:  # a transient failure: the next renewal retries
                return True
            return True

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
        with self._guard:
            if self._etag is None:
                return
            self._etag = None
        # Nobody takes over a lease before it expires: within the first half of ours
        # the lock is surely still ours; later, look first.
        if self.clock.time() - self._written_at < self.lease / 2:
            mine = True
        else:
            try:
                mine = self.token in self.store.get(self.key).data.decode("utf-8", "replace")
            except NotFound:
                mine = False
        if mine:
            self.store.delete(self.key)
        if self.hid_nolock and self.store.head(self.key) is None:
            # Restore the original tool's "unlocked" marker only when nobody holds the lock.
            self.store.put(layout.nolock_key(self.suite), b"")
            self.hid_nolock = False

    def clear_if_dead(self) -> None:
        """Release a lock whose holder is provably gone (one HEAD when there is none)."""
        if self.store.head(self.key) is None:
            return
        holder = self.read_holder()
        if holder is None or not holder.is_provably_gone():
            return
        try:
            self._etag = self.store.put(self.key, self._body(), if_match=holder.etag)
        except (PreconditionFailed, NotFound):
            return  # someone else took it over: theirs to release
        self.log(f"cleared the lock of {holder.description}: its process is gone")
        self.release()

    @contextlib.contextmanager
    def held(self) -> Iterator[SuiteLock]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()


def break_lock(store: Store, suite: str, lease: float = DEFAULT_LEASE_SECONDS) -> LockHolder | None:
    """`debops-ci unlock`: remove whoever holds the lock; return who that was."""
    lock = SuiteLock(store, suite, lease_seconds=lease)
    holder = lock.read_holder()
    if holder is None:
        return None
    store.delete(layout.lock_key(suite))
    if not holder.token:
        # The original tool's lock: give it back its "unlocked" marker (ours never
        # creates one where there was none).
        store.put(layout.nolock_key(suite), b"")
    return holder
