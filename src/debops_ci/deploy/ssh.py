"""The transport: the system `ssh` client, one multiplexed connection per host.

Why the system client: it reads the user's ~/.ssh/config (aliases, ProxyJump, User,
IdentityFile), agent and known_hosts exactly as their own `ssh` does, so whatever
works in their terminal works here. A ControlMaster per host (socket in a private
0700 directory, removed at the end) makes every command after the first cost one
round trip instead of a handshake. `BatchMode=yes` means ssh never prompts: an
unknown host key or a missing key is an error, not a hang.

Every remote script runs as root: directly when the login is root, else through
`sudo -n` (which fails instead of asking for a password).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from debops_ci.deploy.errors import HostUnreachableError

__all__ = ["RemoteResult", "RemoteSession", "SshSettings", "SshTransport", "Transport", "as_root"]

_SSH_ERROR = 255  # ssh's own failures: connect, auth, host key


@dataclass(frozen=True)
class SshSettings:
    """How to reach hosts: an ssh config file (else the user's) and timeouts."""

    config_file: Path | None = None
    connect_timeout: float = 10.0
    command_timeout: float = 120.0
    ssh_binary: str = "ssh"


@dataclass(frozen=True)
class RemoteResult:
    """What a remote script did: its exit code and output."""

    host: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def reason(self) -> str:
        """The last meaningful line of output: what a one-line error should quote."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1]
        return f"exit code {self.returncode}"


class RemoteSession(Protocol):
    """A long-running remote script (the deploy lock's holder)."""

    stdout: IO[str]

    def close(self) -> None: ...


class Transport(Protocol):
    """Run scripts on hosts. SshTransport is the real one."""

    def run(
        self, host: str, script: str, *, timeout: float | None = None, input: str | None = None
    ) -> RemoteResult: ...

    def open(self, host: str, script: str) -> RemoteSession: ...

    def close(self) -> None: ...


def as_root(script: str) -> str:
    """A remote command line that runs `script` with sh as root (sudo -n when needed)."""
    inner = shlex.quote(script)
    return f'if [ "$(id -u)" -eq 0 ]; then exec sh -c {inner}; else exec sudo -n sh -c {inner}; fi'


class _SshSession:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._proc = proc
        assert proc.stdout is not None
        self.stdout: IO[str] = proc.stdout

    def close(self) -> None:
        # Closing stdin is the release: the remote holder reads until EOF, then exits.
        if self._proc.stdin:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


_DIR_PREFIX = "deployer-ssh-"


def _remove_stale_socket_dirs() -> None:
    """Remove socket directories of our own deployers that died without cleaning up."""
    base = Path(tempfile.gettempdir())
    for path in base.glob(f"{_DIR_PREFIX}*-*"):
        pid_text = path.name[len(_DIR_PREFIX) :].split("-", 1)[0]
        try:
            if path.stat().st_uid != os.getuid() or not pid_text.isdigit():
                continue
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)  # its deployer is gone
        except OSError:
            continue


class SshTransport:
    """Transport over the system ssh client with per-host ControlMaster connections."""

    def __init__(self, settings: SshSettings | None = None) -> None:
        self.settings = settings or SshSettings()
        _remove_stale_socket_dirs()
        self._dir = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-"))
        os.chmod(self._dir, 0o700)
        self._masters: dict[str, bool] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _options(self) -> list[str]:
        s = self.settings
        opts = [s.ssh_binary]
        if s.config_file is not None:
            opts += ["-F", str(s.config_file)]
        return [
            *opts,
            "-T",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(1, round(s.connect_timeout))}",
            "-o",
            "ServerAliveInterval=10",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            f"ControlPath={self._dir}/%C",
        ]

    def _host_lock(self, host: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(host, threading.Lock())

    def _ensure_master(self, host: str) -> None:
        """Open the host's shared connection once; raise if the host cannot be reached."""
        with self._host_lock(host):
            if self._masters.get(host):
                return
            # -f backgrounds after authentication; its output goes to a file, never to
            # a pipe we wait on (a persisting master would hold the pipe open).
            with tempfile.TemporaryFile(dir=self._dir) as err:
                cmd = [
                    *self._options(),
                    "-o",
                    "ControlMaster=yes",
                    "-o",
                    "ControlPersist=120",
                    "-f",
                    "-N",
                    host,
                ]
                try:
                    proc = subprocess.run(
                        cmd,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                        timeout=self.settings.connect_timeout + 10,
                        check=False,
                    )
                except subprocess.TimeoutExpired:
                    raise HostUnreachableError(
                        host, f"no answer within {self.settings.connect_timeout:g} s"
                    ) from None
                if proc.returncode != 0:
                    err.seek(0)
                    text = err.read().decode(errors="replace").strip().splitlines()
                    reason = text[-1] if text else f"ssh exit code {proc.returncode}"
                    raise HostUnreachableError(host, reason)
            self._masters[host] = True

    def _command(self, host: str, script: str) -> list[str]:
        return [*self._options(), "-o", "ControlMaster=no", host, "--", as_root(script)]

    def run(
        self, host: str, script: str, *, timeout: float | None = None, input: str | None = None
    ) -> RemoteResult:
        """Run `script` on `host` as root; HostUnreachableError on connect failure or timeout."""
        self._ensure_master(host)
        limit = timeout if timeout is not None else self.settings.command_timeout
        try:
            proc = subprocess.run(
                self._command(host, script),
                input=input or "",
                capture_output=True,
                text=True,
                timeout=limit,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HostUnreachableError(host, f"command did not finish within {limit:g} s") from None
        if proc.returncode == _SSH_ERROR and not proc.stdout:
            lines = proc.stderr.strip().splitlines()
            raise HostUnreachableError(host, lines[-1] if lines else "ssh failed")
        return RemoteResult(host, proc.returncode, proc.stdout, proc.stderr)

    def open(self, host: str, script: str) -> RemoteSession:
        """Start a remote script that lives until `close()` (or until we die).

        Its stdout and stderr come merged on `stdout`.
        """
        self._ensure_master(host)
        proc = subprocess.Popen(
            self._command(host, script),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # an error (e.g. from sudo) is the reason to show
            text=True,
        )
        return _SshSession(proc)

    def close(self) -> None:
        """Stop every shared connection and remove the socket directory."""
        for host in list(self._masters):
            subprocess.run(
                [*self._options(), "-O", "exit", host],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        self._masters.clear()
        shutil.rmtree(self._dir, ignore_errors=True)
