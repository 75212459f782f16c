"""Reading many .deb files at once, on every core, before anything is written."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from debops_ci.debian.package import DebPackage, inspect_deb
from debops_ci.errors import ConflictError, PackageError

__all__ = ["PROCESS_POOL_FROM", "inspect_all"]

PROCESS_POOL_FROM = 64  # .deb files; below this a process pool costs more than it saves


def inspect_all(paths: Sequence[Path]) -> list[DebPackage]:
    if not paths:
        raise PackageError("no .deb files given")
    cores = os.cpu_count() or 1
    if len(paths) >= PROCESS_POOL_FROM and cores > 1:
        # Reading control data is Python-bound (the GIL serialises threads on it):
        # many files go to one process per core.
        with ProcessPoolExecutor(max_workers=cores) as processes:
            chunk = max(1, len(paths) // (cores * 8))
            packages = list(processes.map(inspect_deb, paths, chunksize=chunk))
    else:
        # Few files, maybe large: hashing releases the GIL, so threads use every core.
        with ThreadPoolExecutor(max_workers=min(len(paths), cores, 8)) as pool:
            packages = list(pool.map(inspect_deb, paths))
    by_key: dict[tuple[str, str, str], DebPackage] = {}
    for pkg in packages:
        twin = by_key.get(pkg.key)
        if twin is not None and twin.sha256 != pkg.sha256:
            raise ConflictError(
                f"{twin.path.name} and {pkg.path.name} are both {' '.join(pkg.key)} with "
                "different bytes; publish one of them"
            )
        by_key.setdefault(pkg.key, pkg)
    return list(by_key.values())
