"""A fleet of real hosts on one machine: one OpenSSH `sshd` per host on 127.0.0.1.

Why: the deployer talks to machines over ssh and drives their apt and dpkg, so its
tests need machines. Each "host" here is `sshd -D -f CONF` on its own port, started
inside `unshare --mount --uts --pid --fork` with overlay mounts of /etc, /usr, /var and
/opt (upper dirs under the test's tmp dir) and a private tmpfs on /run: each host has
its own dpkg database, apt state and lists, installed files, hostname and
/etc/machine-id, while the real machine's directories are only ever the read-only
lower layers. Root logs in with a throwaway ed25519 key; host keys are pinned in a
known_hosts file, so ssh runs with StrictHostKeyChecking=yes.

Teardown is reliable by construction: sshd is PID 1 of its own PID namespace, so
killing it makes the kernel kill every session and apt/dpkg it started, and the mount
namespace (with its overlays) disappears with the last process. `unshare --kill-child`
and PR_SET_PDEATHSIG cover a test process that dies without cleaning up.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from ._proc import clean_env, die_with_parent, run

_OVERLAID = ("etc", "usr", "var", "opt")
_AUTHORIZED = "/etc/ssh/deployer-test-authorized_keys"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FleetHost:
    """One running host: `name` is its ssh alias in the fleet's ssh_config."""

    name: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def upper(self) -> Path:
        """Where the host's writes to /etc, /usr, /var, /opt land (for inspection)."""
        return self.workdir / "upper"


class SshFleet:
    """N hosts named `names`, sharing one client key, ssh_config and known_hosts."""

    def __init__(self, workdir: Path, names: Sequence[str]) -> None:
        self.workdir = workdir
        self.hosts = {n: FleetHost(n, free_port(), workdir / "hosts" / n) for n in names}
        self.client_key = workdir / "client_key"
        self.known_hosts = workdir / "known_hosts"
        self.ssh_config = workdir / "ssh_config"
        self._apt_line: str | None = None
        self._apt_key: str | None = None

    # -- set-up ------------------------------------------------------------------------

    def start(self, apt_url: str, apt_key_armored: str, suite: str = "unstable") -> None:
        """Start every host with apt pointed at `apt_url` (signed by the given key)."""
        self._apt_key = apt_key_armored
        self._apt_line = (
            f"deb [signed-by=/etc/apt/keyrings/deployer-test.asc] {apt_url} {suite} main"
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.client_key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key)])
        self.known_hosts.write_text("")
        config: list[str] = []
        for host in self.hosts.values():
            self._prepare(host)
            config += self.host_config(host.name, host.port)
        self.ssh_config.write_text("\n".join(config) + "\n")
        try:
            for host in self.hosts.values():
                self._spawn(host)
            for host in self.hosts.values():
                self._wait_ready(host)
        except BaseException:
            self.stop()
            raise

    def host_config(
        self, alias: str, port: int, user: str = "root", key_alias: str | None = None
    ) -> list[str]:
        """The ssh_config block for one alias (also for fake, unreachable hosts)."""
        return [
            f"Host {alias}",
            "    HostName 127.0.0.1",
            f"    Port {port}",
            f"    User {user}",
            f"    IdentityFile {self.client_key}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {self.known_hosts}",
            f"    HostKeyAlias {key_alias or alias}",
            "    StrictHostKeyChecking yes",
            "    LogLevel ERROR",
            "",
        ]

    def add_alias(self, alias: str, port: int) -> None:
        """Add an ssh alias that is not a fleet host (e.g. a port nobody listens on)."""
        with self.ssh_config.open("a") as f:
            f.write("\n".join(self.host_config(alias, port)) + "\n")

    def add_user_alias(self, alias: str, host: str, user: str) -> None:
        """Add `alias`: fleet host `host` logged into as `user` (the same test key)."""
        port = self.hosts[host].port
        with self.ssh_config.open("a") as f:
            f.write("\n".join(self.host_config(alias, port, user, key_alias=host)) + "\n")

    def _prepare(self, host: FleetHost) -> None:
        wd = host.workdir
        for d in _OVERLAID:
            (wd / "upper" / d).mkdir(parents=True, exist_ok=True)
            (wd / "work" / d).mkdir(parents=True, exist_ok=True)
        hostkey = wd / "ssh_host_ed25519_key"
        if not hostkey.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)])
        pub = (wd / "ssh_host_ed25519_key.pub").read_text().split()
        with self.known_hosts.open("a") as f:
            f.write(f"{host.name} {pub[0]} {pub[1]}\n")
        authorized = wd / "authorized_keys"
        shutil.copy(self.client_key.with_suffix(".pub"), authorized)
        (wd / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {host.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {hostkey}",
                    # Inside the host's /etc: sshd reads it as the user logging in, who
                    # cannot enter pytest's 0700 tmp dir.
                    f"AuthorizedKeysFile {_AUTHORIZED}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PidFile none",
                    "MaxStartups 100:30:200",
                    "MaxSessions 100",
                    "LogLevel ERROR",
                    "AcceptEnv LANG LC_*",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        assert self._apt_line is not None and self._apt_key is not None
        (wd / "apt-key.asc").write_text(self._apt_key)
        mounts = "\n".join(
            f"mount -t overlay overlay -o lowerdir=/{d},upperdir={wd}/upper/{d},"
            f"workdir={wd}/work/{d} /{d}"
            for d in _OVERLAID
        )
        machine_id = uuid.uuid4().hex
        q = shlex.quote
        (wd / "init.sh").write_text(
            f"""set -eu
{mounts}
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/sshd /run/lock
hostname {q(host.name)}
echo {q(host.name)} > /etc/hostname
echo {machine_id} > /etc/machine-id
# apt sees only the test archive: no network, and a small, fast cache.
rm -rf /etc/apt/sources.list.d/* /etc/apt/sources.list /var/lib/apt/lists/*
mkdir -p /var/lib/apt/lists/partial /etc/apt/keyrings
cp {q(str(wd / "apt-key.asc"))} /etc/apt/keyrings/deployer-test.asc
install -m 0644 {q(str(authorized))} {_AUTHORIZED}
echo {q(self._apt_line)} > /etc/apt/sources.list.d/deployer-test.list
rm -f /var/cache/apt/*.bin
exec /usr/sbin/sshd -D -e -f {q(str(wd / "sshd_config"))}
"""
        )

    def _spawn(self, host: FleetHost) -> None:
        log = (host.workdir / "sshd.log").open("ab")
        host.process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--propagation",
                "private",
                "sh",
                str(host.workdir / "init.sh"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=clean_env(),
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        log.close()

    def _wait_ready(self, host: FleetHost, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert host.process is not None
            if host.process.poll() is not None:
                log = (host.workdir / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"host {host.name} exited at start:\n{log}")
            proc = self.ssh(host.name, "hostname", check=False, timeout=10)
            if proc.returncode == 0 and proc.stdout.decode().strip() == host.name:
                self._start_master(host)
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"host {host.name} not ready: {proc.stderr.decode()}")
            time.sleep(0.05)

    def _control_path(self) -> str:
        return f"ControlPath={self.workdir}/cm-%C"

    def _start_master(self, host: FleetHost) -> None:
        """The test's own shared connection to the host (the tool under test has its own).

        Started with -f and its output discarded: a persisting master must not hold a
        pipe that `run` waits on. It ends when the host's sshd is killed.
        """
        subprocess.run(
            [
                "ssh",
                "-F",
                str(self.ssh_config),
                "-o",
                "BatchMode=yes",
                "-o",
                "ControlMaster=yes",
                "-o",
                "ControlPersist=yes",
                "-o",
                self._control_path(),
                "-f",
                "-N",
                host.name,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=True,
        )

    # -- use ---------------------------------------------------------------------------

    def ssh(
        self, name: str, command: str, *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a shell command on a host as root (the test's own channel, not the tool's)."""
        return run(
            [
                "ssh",
                "-F",
                str(self.ssh_config),
                "-o",
                "BatchMode=yes",
                "-o",
                "ControlMaster=no",
                "-o",
                self._control_path(),
                name,
                command,
            ],
            check=check,
            timeout=timeout,
        )

    def each(self, names: Sequence[str], command: str) -> list[str]:
        """Run `command` on several hosts at once; their outputs, in order."""
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            return list(pool.map(lambda n: self.sh(n, command), names))

    def sh(self, name: str, command: str) -> str:
        return self.ssh(name, command).stdout.decode()

    def installed(self, name: str, package: str) -> str | None:
        """The version of `package` dpkg has installed on the host, or None."""
        out = self.sh(
            name, f"dpkg-query -W -f='${{db:Status-Abbrev}} ${{Version}}' {package} || true"
        )
        parts = out.split()
        return parts[1] if len(parts) == 2 and parts[0] == "ii" else None

    def install(self, name: str, package: str, version: str) -> None:
        """Put the host at `package=version` directly (test set-up, bypassing deployer)."""
        self.install_many({name: version}, package)

    def install_many(self, placement: dict[str, str], package: str) -> None:
        """`install` on several hosts at once: {host: version}."""

        def one(item: tuple[str, str]) -> None:
            self.ssh(
                item[0],
                "export DEBIAN_FRONTEND=noninteractive; apt-get -qq update && "
                f"apt-get -qq -y --allow-downgrades install {package}={item[1]} >/dev/null",
            )

        with ThreadPoolExecutor(max_workers=max(1, len(placement))) as pool:
            list(pool.map(one, placement.items()))

    def reset(self, packages: Sequence[str]) -> None:
        """Back to a fresh host: packages purged, deployer state and badges removed."""
        pkgs = " ".join(shlex.quote(p) for p in packages)
        self.each(
            list(self.hosts),
            f"dpkg --purge --force-all {pkgs} >/dev/null 2>&1; "
            "rm -rf /var/lib/deployer /var/log/deployer /var/www/badges "
            "/etc/deployer-test-*; true",
        )

    def stop(self) -> None:
        """Kill every host (its whole PID namespace) and wait for it."""
        for host in self.hosts.values():
            proc = host.process
            if proc is None:
                continue
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            host.process = None

    def alive(self) -> list[str]:
        return [n for n, h in self.hosts.items() if h.process and h.process.poll() is None]


@contextmanager
def ssh_fleet(
    workdir: Path, names: Sequence[str], apt_url: str, apt_key_armored: str
) -> Iterator[SshFleet]:
    """`with ssh_fleet(dir, ["a", "b"], url, key) as fleet:` — all hosts killed at the end."""
    fleet = SshFleet(workdir, names)
    fleet.start(apt_url, apt_key_armored)
    try:
        yield fleet
    finally:
        fleet.stop()
