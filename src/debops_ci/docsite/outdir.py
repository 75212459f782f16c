"""The output directory is replaced whole, or not at all.

A build writes into a staging directory beside `outdir`; only when it has passed its
checks is it swapped in, with Linux's `renameat2(RENAME_EXCHANGE)` when available (no
moment without a site), else two renames. A failed build leaves the previous site.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
from pathlib import Path

from debops_ci.docsite.errors import DocsBuildError

__all__ = ["MARKER", "check_replaceable", "discard", "new_staging_dir", "staging_prefix", "swap_in"]

MARKER = ".build-docs"  # written into every site: only such a directory is replaced
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def check_replaceable(outdir: Path) -> None:
    """Refuse to replace a directory that is not a site built by build-docs."""
    if not outdir.exists():
        return
    if not outdir.is_dir():
        raise DocsBuildError(f"outdir {outdir} is a file; remove it or choose another outdir")
    if (outdir / MARKER).is_file():
        return
    if any(outdir.iterdir()):
        raise DocsBuildError(
            f"outdir {outdir} is not empty and was not made by build-docs; "
            "remove it or choose another outdir"
        )


def new_staging_dir(outdir: Path) -> Path:
    outdir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{outdir.name}.build-", dir=outdir.parent))


def staging_prefix(outdir: Path) -> str:
    return f".{outdir.name}.build-"


def discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return int(result) == 0


def swap_in(staging: Path, outdir: Path) -> None:
    """Make `staging` the new `outdir`; the previous site is removed afterwards."""
    os.chmod(staging, 0o755)  # mkdtemp made it 0700; a published site is world-readable
    if not outdir.exists():
        os.rename(staging, outdir)
        return
    if _exchange(staging, outdir):
        discard(staging)  # now holds the previous site
        return
    old = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.old-", dir=outdir.parent))
    os.rmdir(old)
    os.rename(outdir, old)
    try:
        os.rename(staging, outdir)
    except OSError:
        with contextlib.suppress(OSError):
            os.rename(old, outdir)
        raise
    discard(old)
