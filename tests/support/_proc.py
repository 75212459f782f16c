"""Small process helpers shared by the harness modules.

Why: every tool the harness drives (gpg, dpkg-deb, apt) must run with a clean,
predictable environment (C locale, no proxies) and fail with its full output.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

_PROXY_VARS = (
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
)


class CommandError(RuntimeError):
    """A harness subprocess failed; the message carries its command line and output."""

    def __init__(self, cmd: Sequence[str], returncode: int, output: str) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.output = output
        super().__init__(f"command failed (exit {returncode}): {' '.join(cmd)}\n{output}")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment in the C locale and without proxy settings.

    Proxies are dropped so that tools only ever talk to 127.0.0.1 directly.
    """
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["LC_ALL"] = "C.UTF-8"
    env["LANG"] = "C.UTF-8"
    env.pop("LANGUAGE", None)
    if extra:
        env.update(extra)
    return env


def run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 120,
    merge_output: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command, capturing stdout and stderr (bytes; merged into stdout if asked).

    Raises CommandError with both streams when `check` and the exit code is non-zero.
    """
    proc = subprocess.run(
        list(cmd),
        env=clean_env(env),
        cwd=cwd,
        input=input,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        output = proc.stdout.decode(errors="replace")
        if proc.stderr:
            output += proc.stderr.decode(errors="replace")
        raise CommandError(cmd, proc.returncode, output)
    return proc


def die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGKILL the child when the test process dies.

    Why: a crashed or killed pytest must not leave servers running on the machine.
    Linux ties this to the *thread* that forked: start servers from a thread that
    outlives them (pytest's main thread does).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
