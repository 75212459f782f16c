"""Pool files: uploaded create-only and in parallel, before the lock (they are immutable).

A pool file already there with the same bytes is ours to reuse (an earlier attempt,
or the same file published to another suite); other bytes are a refusal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from debops_ci.archive.session import Archive
from debops_ci.archive.state import SuiteState
from debops_ci.debian.package import DebPackage
from debops_ci.errors import ArchiveIntegrityError, ConflictError, DebopsError
from debops_ci.storage import NotFound, PreconditionFailed

__all__ = ["check_present_files", "upload_pool_file", "upload_pool_files"]


def check_present_files(archive: Archive, state: SuiteState, present: Sequence[DebPackage]) -> None:
    """A re-upload calls a package published: only if the stored file is still its bytes."""
    entries = {entry.key: entry for _comp, entry in state.all_entries()}

    def check(pkg: DebPackage) -> None:
        filename = entries[pkg.key].filename
        if _stored_sha256(archive, filename) != pkg.sha256:
            raise ArchiveIntegrityError(
                f"{filename}: missing or not the bytes dists/{state.suite}/InRelease lists "
                "(replaced or corrupt): run `debops-ci verify`"
            )

    if present:
        with ThreadPoolExecutor(max_workers=min(len(present), 16)) as pool:
            list(pool.map(check, present))


def _stored_sha256(archive: Archive, key: str) -> str:
    info = archive.store.head(key)
    if info is not None and info.metadata.get("sha256"):
        return info.metadata["sha256"]
    try:
        return hashlib.sha256(archive.store.get(key).data).hexdigest()
    except NotFound:
        return ""


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
    key = pkg.pool_path(component)
    try:
        archive.store.put_file(key, pkg.path, create_only=True, metadata={"sha256": pkg.sha256})
        return True
    except PreconditionFailed:
        pass
    # Already there: an earlier attempt of ours, or the same file from another suite.
    if _stored_sha256(archive, key) == pkg.sha256:
        return False
    holders = _holders_of(archive, key) or [
        "no suite now (removed earlier, or left by an interrupted publish)"
    ]
    raise ConflictError(
        f"{key} already exists with different bytes, held by {'; '.join(holders)}: "
        "refusing to overwrite; bump the version in debian/changelog"
    )


def upload_pool_files(
    archive: Archive, packages: Sequence[DebPackage], component: str
) -> set[tuple[str, str, str]]:
    """Upload every package's pool file; return the keys of those that were already there.

    A file created now cannot be collected before the commit (`gc` spares files younger
    than its grace); one found already there may be old and unreferenced, so the commit
    checks it again under the lock.
    """
    if not packages:
        return set()
    with ThreadPoolExecutor(max_workers=min(len(packages), 16)) as pool:
        created = list(pool.map(lambda pkg: upload_pool_file(archive, pkg, component), packages))
    return {pkg.key for pkg, new in zip(packages, created, strict=True) if not new}
