"""Pool files: uploaded create-only and in parallel, before the lock (they are immutable).

A pool file already there with the same bytes is ours to reuse (an earlier attempt,
or the same file published to another suite); other bytes are a refusal. The uploads
themselves are `storage.bulk.put_new_files` (the S3 bulk path, many threads).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from debops_ci.archive.session import Archive
from debops_ci.archive.state import SuiteState
from debops_ci.debian.package import DebPackage
from debops_ci.errors import ArchiveIntegrityError, ConflictError, DebopsError
from debops_ci.storage.bulk import NewFile, Outcome, put_new_files, stored_sha256

__all__ = ["check_present_files", "upload_pool_file", "upload_pool_files"]


def check_present_files(archive: Archive, state: SuiteState, present: Sequence[DebPackage]) -> None:
    """A re-upload calls a package published: only if the stored file is still its bytes."""
    entries = {entry.key: entry for _comp, entry in state.all_entries()}

    def check(pkg: DebPackage) -> None:
        filename = entries[pkg.key].filename
        if stored_sha256(archive.store, filename) != pkg.sha256:
            raise ArchiveIntegrityError(
                f"{filename}: missing or not the bytes dists/{state.suite}/InRelease lists "
                "(replaced or corrupt): run `debops-ci verify`"
            )

    if present:
        with ThreadPoolExecutor(max_workers=min(len(present), 16)) as pool:
            list(pool.map(check, present))


def _holders_of(archive: Archive, filename: str) -> list[str]:
    """Which suites reference a pool file (only on the error path: it reads every suite)."""
    holders: list[str] = []
    for suite in archive.suites():
        try:
            state = archive.read(suite)
        except DebopsError:
            continue
        for component, entry in state.all_entries():
            if entry.filename == filename:
                holders.append(f"{entry.package} {entry.version} in {suite}/{component}")
    return holders


def upload_pool_file(archive: Archive, pkg: DebPackage, component: str) -> bool:
    """Upload one pool file; True if it was created now, False if it was already there."""
    return not upload_pool_files(archive, [pkg], component)


def upload_pool_files(
    archive: Archive, packages: Sequence[DebPackage], component: str
) -> set[tuple[str, str, str]]:
    """Upload every package's pool file; return the keys of those that were already there.

    A file created now cannot be collected before the commit (`gc` spares files younger
    than its grace); one found already there may be old and unreferenced, so the commit
    checks it again under the lock. A file already there with other bytes is refused
    (ConflictError naming it and the suites that hold it), after every upload finished.
    """
    if not packages:
        return set()
    files = [NewFile(pkg.pool_path(component), pkg.path, pkg.sha256) for pkg in packages]
    outcomes = put_new_files(archive.store, files)
    for item, outcome in zip(files, outcomes, strict=True):
        if outcome is Outcome.OTHER:
            raise _conflict(archive, item.key)
    return {
        pkg.key for pkg, outcome in zip(packages, outcomes, strict=True) if outcome is Outcome.SAME
    }


def _conflict(archive: Archive, key: str) -> ConflictError:
    holders = _holders_of(archive, key) or [
        "no suite now (removed earlier, or left by an interrupted publish)"
    ]
    return ConflictError(
        f"{key} already exists with different bytes, held by {'; '.join(holders)}: "
        "refusing to overwrite; bump the version in debian/changelog"
    )
