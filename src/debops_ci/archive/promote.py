"""Promoting tested builds: the exact bytes of a suite's packages into another suite.

No rebuild: the target gets the source's stanza text and pool file (same SHA-256),
at the same `Filename`. Within one store the pool is shared, so the file is already
there and no byte travels; from another archive (a pull-request archive into the
release archive) it is streamed and written create-only. A target that already has
the package/version/architecture with other bytes is refused (exit 3).

Steps, like `publish`: resolve what to promote from the source suite, plan the merge
against the target without the lock (refuse conflicts early, stop when nothing is
new), put the pool files in place, then one commit through `transact`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from debops_ci.archive.indexes import PHASED_FIELD, PackageEntry, with_field
from debops_ci.archive.publish import plan_merge
from debops_ci.archive.remove import PackageSpec
from debops_ci.archive.session import Archive
from debops_ci.archive.settings import SuiteSettings, check_phased_percentage
from debops_ci.archive.state import SuiteState
from debops_ci.archive.transaction import Components, check_not_rolled_back, transact
from debops_ci.debian.version import version_sort_key
from debops_ci.errors import ArchiveIntegrityError, ConflictError, UsageError
from debops_ci.storage import NotFound, PreconditionFailed

__all__ = ["PromoteResult", "promote", "select_entries"]


@dataclass
class PromoteResult:
    """What `promote` did; `streamed` counts pool files copied between stores."""

    from_suite: str
    to_suite: str
    component: str
    promoted: list[PackageEntry] = field(default_factory=list)
    already_present: list[PackageEntry] = field(default_factory=list)
    streamed: int = 0  # pool files written into another store (bytes travelled)
    shared: int = 0  # pool files already in place (same store): nothing travelled
    attempts: int = 0


def _versions_text(entries: Sequence[PackageEntry]) -> str:
    versions = sorted({e.version for e in entries}, key=version_sort_key, reverse=True)
    return ", ".join(versions)


def select_entries(state: SuiteState, specs: Sequence[PackageSpec]) -> list[PackageEntry]:
    """The entries (every architecture) of each spec's version, newest when none is named.

    A package or version the suite lacks is a UsageError naming what it has.
    """
    chosen: dict[tuple[str, str, str], PackageEntry] = {}
    for spec in specs:
        same_name = [e for _c, e in state.all_entries() if e.package == spec.name]
        if not same_name:
            raise UsageError(f"{spec.name} is not in suite {state.suite}: nothing to promote")
        version = spec.version
        if version is None:
            version = max((e.version for e in same_name), key=version_sort_key)
        picked = [e for e in same_name if e.version == version]
        if not picked:
            raise UsageError(
                f"{spec.name} {version} is not in suite {state.suite}; it has "
                f"{_versions_text(same_name)}"
            )
        for entry in picked:
            chosen.setdefault(entry.key, entry)
    return list(chosen.values())


def _same_store(source: Archive, target: Archive) -> bool:
    return source.store is target.store or source.store.describe() == target.store.describe()


def _stored_sha256(archive: Archive, key: str) -> str | None:
    info = archive.store.head(key)
    if info is None:
        return None
    if info.metadata.get("sha256"):
        return info.metadata["sha256"]
    try:
        return hashlib.sha256(archive.store.get(key).data).hexdigest()
    except NotFound:
        return None


def _place_pool_file(source: Archive, target: Archive, entry: PackageEntry) -> bool:
    """Put `entry`'s file at its Filename in the target; True when bytes travelled."""
    if _same_store(source, target):
        # One pool: the file the source suite names is the file the target will name.
        if _stored_sha256(target, entry.filename) != entry.sha256:
            raise ArchiveIntegrityError(
                f"{entry.filename}: missing or not the bytes the source suite lists; "
                "run `debops-ci verify`"
            )
        return False
    existing = _stored_sha256(target, entry.filename)
    if existing == entry.sha256:
        return False  # a rerun, or the same file published there before
    if existing is not None:
        raise ConflictError(
            f"{entry.filename} already exists in {target.store.describe()} with other bytes: "
            "refusing to overwrite; promote another version"
        )
    try:
        data = source.store.get(entry.filename).data
    except NotFound:
        raise ArchiveIntegrityError(
            f"{entry.filename} is listed in the source suite but missing from "
            f"{source.store.describe()}; run `debops-ci verify`"
        ) from None
    if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
        raise ArchiveIntegrityError(
            f"{entry.filename} in {source.store.describe()} is not the bytes its index "
            "lists (corrupt or replaced); run `debops-ci verify`"
        )
    try:
        target.store.put(entry.filename, data, create_only=True, metadata={"sha256": entry.sha256})
    except PreconditionFailed:
        # Another writer put it there meanwhile: fine only if it is the same bytes.
        if _stored_sha256(target, entry.filename) != entry.sha256:
            raise ConflictError(
                f"{entry.filename} appeared in {target.store.describe()} with other bytes: "
                "refusing to overwrite"
            ) from None
        return False
    return True


def promote(
    source: Archive,
    target: Archive,
    from_suite: str,
    to: SuiteSettings,
    specs: Sequence[PackageSpec],
    *,
    phased_percentage: int | None = None,
) -> PromoteResult:
    """Copy the entries `specs` name from `from_suite` of `source` into `to.suite` of
    `target` (`to.component`), exact bytes, in one commit."""
    to.check()
    check_phased_percentage(phased_percentage)
    if not specs:
        raise UsageError("name at least one package: promote PKG[=VERSION]... --from S --to S")
    for spec in specs:
        spec.check("promote")
    if _same_store(source, target) and from_suite == to.suite:
        raise UsageError(f"--from and --to are both {from_suite}: name another target suite")
    target.require_signer()
    result = PromoteResult(from_suite, to.suite, to.component)

    origin = source.read(from_suite)
    if not origin.exists:
        raise UsageError(
            f"suite {from_suite!r} does not exist in {source.store.describe()}: check --from"
        )
    entries = select_entries(origin, specs)
    if phased_percentage is not None:
        entries = [with_field(e, PHASED_FIELD, str(phased_percentage)) for e in entries]

    state = target.read(to.suite)
    check_not_rolled_back(state, to)
    first = plan_merge(state, entries)
    result.already_present = first.present
    if not first.new:
        return result
    target.ensure_writable()
    placed: set[tuple[str, str, str]] = set()

    def place(todo: Sequence[PackageEntry]) -> None:
        for entry in todo:
            if entry.key in placed:
                continue
            if _place_pool_file(source, target, entry):
                result.streamed += 1
            else:
                result.shared += 1
            placed.add(entry.key)

    place(first.new)  # before the lock, like publish: pool files are immutable

    def change(current: SuiteState) -> Components | None:
        plan = plan_merge(current, entries)
        result.promoted, result.already_present = plan.new, plan.present
        if not plan.new:
            return None
        place(plan.new)
        components = {comp: list(items) for comp, items in current.components.items()}
        components.setdefault(to.component, []).extend(plan.new)
        return components

    outcome = transact(target, to, change, known=state)
    result.attempts = outcome.attempts
    return result
