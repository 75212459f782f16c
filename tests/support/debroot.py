"""Fresh minimal Debian roots (debootstrap minbase) to install packages into, cached.

Why: "installs on a fresh Debian 12 and 13" is only shown by installing into one.
`debootstrap --variant=minbase SUITE DIR http://deb.debian.org/debian` takes a minute or
more per suite, so the pristine root is kept as a tarball in a cache directory
(`DEBOPS_TEST_ROOTS_CACHE`, default /var/cache/debops-ci-test-roots) and every test
unpacks a fresh copy in seconds. Without the cache (or when it is not writable) the
root is made by debootstrap, and cached when possible.

`mounted(root)` bind-mounts /proc, /sys, /dev and /dev/pts into the root and always
unmounts them; `remove_root` refuses to delete a tree that still has a mount in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
DEFAULT_CACHE = Path("/var/cache/debops-ci-test-roots")
_BINDS = ("proc", "sys", "dev", "dev/pts")
_CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class RootResult:
    """A command run inside a root: its exit status, output and wall time."""

    returncode: int
    output: str
    seconds: float


def cache_dir() -> Path:
    return Path(os.environ.get("DEBOPS_TEST_ROOTS_CACHE", str(DEFAULT_CACHE)))


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK)


def root_tarball(suite: str, work: Path, *, timeout: float = 1800) -> Path:
    """The pristine minbase root of `suite` as a .tar.zst: cached, else debootstrapped."""
    cache = cache_dir()
    cached = cache / f"{suite}-minbase.tar.zst"
    if cached.is_file():
        return cached
    build = work / f"debootstrap-{suite}"
    if build.exists():
        shutil.rmtree(build)
    proc = subprocess.run(
        ["debootstrap", "--variant=minbase", suite, str(build), MIRROR],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"debootstrap {suite} failed:\n{proc.stdout[-3000:]}{proc.stderr}")
    # The .debs debootstrap downloaded are not part of a fresh machine.
    for deb in (build / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    target_dir = cache if _writable(cache) else work
    target = target_dir / f"{suite}-minbase.tar.zst"
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    subprocess.run(["tar", "--zstd", "-cf", str(partial), "-C", str(build), "."], check=True)
    partial.rename(target)  # atomic: a concurrent run never sees half a tarball
    shutil.rmtree(build)
    return target


def unpack_root(tarball: Path, dest: Path) -> Path:
    """A fresh root at `dest` from `tarball` (numeric owners, permissions kept)."""
    dest.mkdir(parents=True)
    subprocess.run(
        ["tar", "--zstd", "--numeric-owner", "-xpf", str(tarball), "-C", str(dest)], check=True
    )
    return dest


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


@contextmanager
def mounted(root: Path, extra: Mapping[str, Path] | None = None) -> Iterator[Path]:
    """Bind-mount /proc, /sys, /dev, /dev/pts (and `extra`: path in root -> host dir)."""
    done: list[Path] = []
    binds: list[tuple[Path, Path]] = [(Path("/") / b, root / b) for b in _BINDS]
    binds += [(host, root / inside.lstrip("/")) for inside, host in (extra or {}).items()]
    try:
        for host, point in binds:
            point.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "--bind", str(host), str(point)], check=True)
            done.append(point)
        yield root
    finally:
        for point in reversed(done):
            if subprocess.run(["umount", str(point)], check=False).returncode != 0:
                # Busy (a process the test started is still exiting): detach it.
                subprocess.run(["umount", "--lazy", str(point)], check=False)


def remove_root(root: Path) -> None:
    """Delete an unpacked root, never while something is still mounted inside it."""
    left = _mounts_under(root)
    if left:
        raise RuntimeError(f"refusing to delete {root}: still mounted: {', '.join(left)}")
    shutil.rmtree(root, ignore_errors=True)


def run_in_root(
    root: Path,
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> RootResult:
    """`cmd` inside `root` (chroot) with a small clean environment; output merged."""
    base = {
        "PATH": _CHROOT_PATH,
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    base.update(env or {})
    start = time.monotonic()
    proc = subprocess.run(
        ["chroot", str(root), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in base.items()), *cmd],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return RootResult(proc.returncode, proc.stdout, time.monotonic() - start)
