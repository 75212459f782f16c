"""The publish transaction, top to bottom.

1. Inspect every .deb locally; any bad file stops here, before a single write.
2. Read the suite (signature, then every index by hash) and plan the merge without the
   lock: refuse conflicts early, stop if there is nothing to do.
3. Upload the new pool files, create-only and in parallel, still without the lock:
   pool files are immutable, so uploading them early is safe and keeps the lock short.
4. Take the suite lock, then loop: re-read the suite, merge, write the new indexes under
   `by-hash/` (create-only), sign, and commit `InRelease` conditionally on the tag read.
   If another writer committed meanwhile, go round again on top of its work.
5. After the commit: the plain index paths, `Release` and `Release.gpg` (copies for
   clients that do not use by-hash or InRelease), then release the lock.

A crash at any point leaves the previous InRelease and everything it names intact;
rerunning the same publish finishes the job.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from debops_ci.archive import layout
from debops_ci.archive.indexes import IndexFile, PackageEntry, parse_stanza
from debops_ci.archive.release import ReleaseMeta, next_date, render_release, rolled_back
from debops_ci.archive.session import Archive, SuiteSettings
from debops_ci.archive.state import SuiteState
from debops_ci.archive.suite import compose_suite
from debops_ci.archive.webpage import publish_landing_files
from debops_ci.debian.package import DebPackage, inspect_deb
from debops_ci.errors import ArchiveIntegrityError, ConflictError, DebopsError, PackageError
from debops_ci.storage import NotFound, PreconditionFailed

MAX_COMMIT_ATTEMPTS = 20
PROCESS_POOL_FROM = 64  # .deb files; below this a process pool costs more than it saves


class RootMoved(DebopsError):
    """Another writer committed InRelease after we read it: rebase and try again."""


@dataclass
class PublishResult:
    suite: str
    component: str
    added: list[DebPackage] = field(default_factory=list)
    already_present: list[DebPackage] = field(default_factory=list)
    attempts: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added)


# -- step 1: inspect --------------------------------------------------------------


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


# -- step 2: plan -----------------------------------------------------------------


@dataclass
class MergePlan:
    new: list[DebPackage]
    present: list[DebPackage]


def plan_merge(state: SuiteState, packages: Sequence[DebPackage]) -> MergePlan:
    """Same package, version and architecture: same bytes is a no-op, other bytes a refusal."""
    existing = {entry.key: (comp, entry) for comp, entry in state.all_entries()}
    plan = MergePlan([], [])
    for pkg in packages:
        found = existing.get(pkg.key)
        if found is None:
            plan.new.append(pkg)
            continue
        component, entry = found
        if entry.sha256 == pkg.sha256 and entry.size == pkg.size:
            plan.present.append(pkg)
            continue
        raise ConflictError(
            f"{pkg.package} {pkg.version} ({pkg.architecture}) is already published in "
            f"{state.suite}/{component} with different bytes (sha256 {entry.sha256[:12]}…, "
            f"yours {pkg.sha256[:12]}…): refusing to overwrite; bump the version in "
            "debian/changelog"
        )
    return plan


def check_not_rolled_back(state: SuiteState, settings: SuiteSettings) -> None:
    """--not-older-than: never build on a root older than the last one this publisher saw."""
    problem = rolled_back(state.date, settings.not_older_than)
    if problem:
        raise ArchiveIntegrityError(
            f"dists/{state.suite}/InRelease: {problem}; refusing to publish on top of it"
        )


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


def entry_for(pkg: DebPackage, component: str) -> PackageEntry:
    filename = pkg.pool_path(component)
    return parse_stanza(pkg.stanza(filename), filename)


# -- step 3: pool files -----------------------------------------------------------


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


def upload_pool_file(archive: Archive, pkg: DebPackage, component: str) -> None:
    key = pkg.pool_path(component)
    try:
        archive.store.put_file(key, pkg.path, create_only=True, metadata={"sha256": pkg.sha256})
        return
    except PreconditionFailed:
        pass
    # Already there: an earlier attempt of ours, or the same file from another suite.
    if _stored_sha256(archive, key) == pkg.sha256:
        return
    holders = _holders_of(archive, key) or [
        "no suite now (removed earlier, or left by an interrupted publish)"
    ]
    raise ConflictError(
        f"{key} already exists with different bytes, held by {'; '.join(holders)}: "
        "refusing to overwrite; bump the version in debian/changelog"
    )


def upload_pool_files(archive: Archive, packages: Sequence[DebPackage], component: str) -> None:
    if not packages:
        return
    with ThreadPoolExecutor(max_workers=min(len(packages), 16)) as pool:
        list(pool.map(lambda pkg: upload_pool_file(archive, pkg, component), packages))


# -- step 4: the locked commit loop ------------------------------------------------


Change = Callable[[SuiteState], dict[str, list[PackageEntry]] | None]


def commit_suite(
    archive: Archive,
    state: SuiteState,
    settings: SuiteSettings,
    components: dict[str, list[PackageEntry]],
) -> None:
    """Write one new version of the suite. Raises RootMoved if InRelease changed meanwhile."""
    signer = archive.require_signer()
    store = archive.store
    suite = settings.suite
    previous = state.release
    composed = compose_suite(
        components,
        previous_architectures=previous.architectures if previous else [],
        previous_components=previous.components if previous else [],
        default_arch=settings.default_arch,
        plain_index=state.writes_plain_index,
    )

    def put_by_hash(index_path: str, data: bytes) -> None:
        # Named by its own hash: already there means already right.
        with contextlib.suppress(PreconditionFailed):
            store.put(layout.in_suite(suite, index_path), data, create_only=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        stored = [f for f in composed.files if f.stored]
        list(pool.map(lambda f: put_by_hash(f.by_hash_path, f.data), stored))

    now = datetime.now(UTC)
    origin = settings.origin or (previous.get("Origin") if previous else "") or "private"
    label = settings.label or (previous.get("Label") if previous else "") or origin
    meta = ReleaseMeta(
        origin=origin,
        label=label,
        suite=suite,
        codename=suite,
        date=next_date(now, state.date),
        architectures=composed.architectures,
        components=composed.components,
        valid_until=now + timedelta(days=settings.valid_days) if settings.valid_days else None,
        description=settings.description
        or ((previous.get("Description") or None) if previous else None),
    )
    release = render_release(meta, composed.files)
    inrelease = signer.clearsign(release)
    root_key = layout.inrelease_key(suite)
    try:
        if state.inrelease is None:
            store.put(root_key, inrelease, create_only=True)
        else:
            store.put(root_key, inrelease, if_match=state.inrelease.etag)
    # AWS answers If-Match on a deleted key with 404, SeaweedFS with 412: both mean moved.
    except (PreconditionFailed, NotFound):
        # A retried request may have landed before its answer was lost: is it ours?
        try:
            if store.get(root_key).data != inrelease:
                raise RootMoved(f"{root_key} changed while we worked") from None
        except NotFound:
            raise RootMoved(f"{root_key} vanished while we worked") from None

    # Step 5: copies for clients that read plain paths or Release + Release.gpg. The
    # index copies are made server-side from the by-hash objects: no bytes re-uploaded.
    def copy_plain(index: IndexFile) -> None:
        store.copy(layout.in_suite(suite, index.by_hash_path), layout.in_suite(suite, index.path))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(copy_plain, stored))
    store.put(layout.release_key(suite), release)
    store.put(layout.release_gpg_key(suite), signer.detach_sign(release))


def _reread(archive: Archive, suite: str, known: SuiteState | None) -> SuiteState:
    """The suite now; a state read before the lock is reused if its root has not moved."""
    if known is not None:
        info = archive.store.head(layout.inrelease_key(suite))
        current = info.etag if info is not None else None
        if current == (known.inrelease.etag if known.inrelease else None):
            return known
    return archive.read(suite)


def transact(
    archive: Archive, settings: SuiteSettings, change: Change, known: SuiteState | None = None
) -> int:
    """Run `change` under the suite lock until its result is committed; return attempts.

    `change` returns the suite's new components, or None when there is nothing to do.
    `known` is a state read before the lock, reused when the root is still the same.
    """
    archive.ensure_writable()
    with archive.lock(settings.suite).held():
        for attempt in range(1, MAX_COMMIT_ATTEMPTS + 1):
            state = _reread(archive, settings.suite, known if attempt == 1 else None)
            check_not_rolled_back(state, settings)
            components = change(state)
            if components is None:
                return attempt
            try:
                commit_suite(archive, state, settings, components)
            except RootMoved as moved:
                archive.log(f"{moved}; rebasing on the new state (attempt {attempt})")
                continue
            signer = archive.require_signer()
            if (
                not state.exists
                or state.signed_by.upper() != signer.fingerprint.upper()
                or archive.store.head(layout.PUBLIC_KEY_ASC) is None  # an adopted archive
                # written last: absent after a crash amid the landing files
                or archive.store.head(layout.INDEX_HTML) is None
            ):
                publish_landing_files(archive)
            return attempt
    raise DebopsError(
        f"dists/{settings.suite}/InRelease kept changing under us "
        f"({MAX_COMMIT_ATTEMPTS} attempts): another writer is not taking the lock"
    )


# -- the whole publish ---------------------------------------------------------------


def publish(archive: Archive, settings: SuiteSettings, paths: Sequence[Path]) -> PublishResult:
    settings.check()
    archive.require_signer()
    packages = inspect_all(paths)
    result = PublishResult(settings.suite, settings.component)

    state = archive.read(settings.suite)
    check_not_rolled_back(state, settings)
    first = plan_merge(state, packages)
    check_present_files(archive, state, first.present)
    if not first.new:
        result.already_present = first.present
        # A rerun after a crash past the commit: clear the dead publisher's lock so
        # publishers on other hosts do not wait out its lease.
        archive.lock(settings.suite).clear_if_dead()
        return result
    archive.ensure_writable()
    upload_pool_files(archive, first.new, settings.component)

    uploaded = {pkg.key for pkg in first.new}

    def merge(state: SuiteState) -> dict[str, list[PackageEntry]] | None:
        plan = plan_merge(state, packages)
        result.added, result.already_present = plan.new, plan.present
        if not plan.new:
            return None
        missing = [pkg for pkg in plan.new if pkg.key not in uploaded]
        upload_pool_files(archive, missing, settings.component)
        components = {comp: list(entries) for comp, entries in state.components.items()}
        bucket = components.setdefault(settings.component, [])
        bucket.extend(entry_for(pkg, settings.component) for pkg in plan.new)
        return components

    result.attempts = transact(archive, settings, merge, state)
    return result
