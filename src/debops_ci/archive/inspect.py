"""Reading many .deb files at once, on every core, before anything is written."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from debops_ci.debian.package import DebPackage, inspect_deb, inspect_debs
from debops_ci.errors import ConflictError, PackageError

__all__ = ["PROCESS_POOL_FROM", "inspect_all"]

PROCESS_POOL_FROM = 64  # .deb files; below this a process pool costs more than it saves
_CHUNKS_PER_WORKER = 16  # chunks per process: a slowed process leaves its last ones to others

# What a worker sends back for one .deb: DebPackage without its path (the parent has it).
_Fields = tuple[str, str, str, str, tuple[tuple[str, str], ...], int, str, str]

_worker_paths: Sequence[Path] = ()


def _remember(paths: Sequence[Path]) -> None:
    global _worker_paths  # the worker's copy of the job, set once when it starts
    _worker_paths = paths


def _inspect_range(start: int, stop: int) -> list[_Fields]:
    """Inspect paths[start:stop] in a worker; only small tuples cross the pipe back."""
    return [
        (p.package, p.version, p.architecture, p.source, p.fields, p.size, p.md5, p.sha256)
        for p in inspect_debs(_worker_paths[start:stop])
    ]


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _in_processes(paths: Sequence[Path], workers: int) -> list[DebPackage]:
    """`workers` processes at work: this one and `workers - 1` forked children.

    The chunks are queued for the children in order; this process takes them from the
    other end for as long as they are still queued, so a child slowed by other load
    leaves more of the work here, and this process's share is never pickled.
    """
    # fork: the children start with this process's modules and the list of paths, so
    # nothing is imported again and only (start, stop) pairs are sent to them.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    chunks = min(len(paths), workers * _CHUNKS_PER_WORKER)
    bounds = [len(paths) * i // chunks for i in range(chunks + 1)]  # chunks ≤ paths: none empty
    ranges = list(itertools.pairwise(bounds))
    with ProcessPoolExecutor(
        max_workers=workers - 1, mp_context=context, initializer=_remember, initargs=(paths,)
    ) as children:
        try:
            futures = [children.submit(_inspect_range, start, stop) for start, stop in ranges]
            here: dict[int, list[DebPackage] | PackageError] = {}
            for i in reversed(range(len(ranges))):
                if not futures[i].cancel():
                    break  # a child has it: every earlier chunk is theirs too
                start, stop = ranges[i]
                try:
                    here[i] = inspect_debs(paths[start:stop])
                except PackageError as exc:
                    here[i] = exc  # raised in order below: an earlier file may be bad too
            packages: list[DebPackage] = []
            for i, (start, _) in enumerate(ranges):
                done = here.get(i)
                if isinstance(done, PackageError):
                    raise done
                if done is None:
                    fields = futures[i].result()
                    done = [
                        DebPackage(path, *f) for path, f in zip(paths[start:], fields, strict=False)
                    ]
                packages += done
            return packages
        except BaseException:
            children.shutdown(cancel_futures=True)  # the first bad file decides: stop
            raise


def inspect_all(paths: Sequence[Path]) -> list[DebPackage]:
    """Inspect every .deb (see `inspect_deb`); the first bad file, in order, is reported.

    Returns one package per (name, version, architecture); two files with the same
    key and different bytes are a ConflictError.
    """
    if not paths:
        raise PackageError("no .deb files given")
    paths = list(paths)
    cores = _usable_cores()
    if len(paths) >= PROCESS_POOL_FROM and cores > 1:
        # Reading control data is Python-bound (the GIL serialises threads on it):
        # many files go to one process per core.
        packages = _in_processes(paths, cores)
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
