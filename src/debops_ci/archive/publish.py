"""Publishing .deb files: one change committed by the engine (`transaction.py`).

1. Inspect every .deb locally; any bad file stops here, before a single write.
2. Read the suite (signature, then every index by hash) and plan the merge without the
   lock: refuse conflicts early, stop if there is nothing to do.
3. Upload the new pool files, create-only and in parallel, still without the lock:
   pool files are immutable, so uploading them early is safe and keeps the lock short.
4. Hand the merge to `transact`, which commits it under the lock and rebases it on
   any commit made meanwhile.

A crash at any point leaves the previous InRelease and everything it names intact;
rerunning the same publish finishes the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from debops_ci.archive.indexes import PHASED_FIELD, PackageEntry, parse_stanza, with_field
from debops_ci.archive.inspect import inspect_all
from debops_ci.archive.intents import Intent
from debops_ci.archive.pool import check_present_files, upload_pool_files
from debops_ci.archive.session import Archive
from debops_ci.archive.settings import SuiteSettings, check_phased_percentage
from debops_ci.archive.state import SuiteState
from debops_ci.archive.transaction import (
    Components,
    check_not_rolled_back,
    needs_attention,
    transact,
)
from debops_ci.debian.package import DebPackage
from debops_ci.errors import ConflictError

__all__ = [
    "MergePlan",
    "PublishResult",
    "entry_for",
    "plan_merge",
    "publish",
]


@dataclass
class PublishResult:
    suite: str
    component: str
    added: list[DebPackage] = field(default_factory=list)
    already_present: list[DebPackage] = field(default_factory=list)
    attempts: int = 0
    repaired: tuple[str, ...] = ()  # torn copies rewritten first
    commits: int = 0  # InRelease writes this publish made (0: none, or by_other)
    by_other: bool = False  # committed by the lock holder's group commit


# -- step 2: plan -----------------------------------------------------------------


class Candidate(Protocol):
    """What a merge needs of a package to add: a local .deb, or an index entry (promote)."""

    @property
    def key(self) -> tuple[str, str, str]: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...


C = TypeVar("C", bound=Candidate)


@dataclass
class MergePlan(Generic[C]):
    new: list[C]
    present: list[C]


def plan_merge(state: SuiteState, packages: Sequence[C]) -> MergePlan[C]:
    """Same package, version and architecture: same bytes is a no-op, other bytes a refusal."""
    existing = {entry.key: (comp, entry) for comp, entry in state.all_entries()}
    plan: MergePlan[C] = MergePlan([], [])
    for pkg in packages:
        found = existing.get(pkg.key)
        if found is None:
            plan.new.append(pkg)
            continue
        component, entry = found
        if entry.sha256 == pkg.sha256 and entry.size == pkg.size:
            plan.present.append(pkg)
            continue
        name, version, arch = pkg.key
        raise ConflictError(
            f"{name} {version} ({arch}) is already published in "
            f"{state.suite}/{component} with different bytes (sha256 {entry.sha256[:12]}…, "
            f"yours {pkg.sha256[:12]}…): refusing to overwrite; bump the version in "
            "debian/changelog"
        )
    return plan


def entry_for(
    pkg: DebPackage, component: str, *, phased_percentage: int | None = None
) -> PackageEntry:
    filename = pkg.pool_path(component)
    entry = parse_stanza(pkg.stanza(filename), filename)
    if phased_percentage is not None:
        entry = with_field(entry, PHASED_FIELD, str(phased_percentage))
    return entry


# -- the whole publish ---------------------------------------------------------------


def publish(
    archive: Archive,
    settings: SuiteSettings,
    paths: Sequence[Path],
    *,
    phased_percentage: int | None = None,
) -> PublishResult:
    """Publish .deb files into `settings.suite` in one commit (see the module's steps)."""
    settings.check()
    check_phased_percentage(phased_percentage)
    archive.require_signer()
    packages = inspect_all(paths)
    result = PublishResult(settings.suite, settings.component)

    state = archive.read(settings.suite)
    check_not_rolled_back(state, settings)
    first = plan_merge(state, packages)
    check_present_files(archive, state, first.present)
    if not first.new:
        result.already_present = first.present
        if needs_attention(archive, state, settings):
            outcome = transact(
                archive, settings, lambda _state: None, known=state, check_copies=True
            )
            result.attempts, result.repaired = outcome.attempts, outcome.repaired
        else:
            # A rerun after a crash past the commit: clear the dead publisher's lock so
            # publishers on other hosts do not wait out its lease.
            archive.lock(settings.suite).clear_if_dead()
        return result
    archive.ensure_writable()
    found_there = upload_pool_files(archive, first.new, settings.component)
    created = {pkg.key for pkg in first.new} - found_there

    def merge(state: SuiteState) -> Components | None:
        plan = plan_merge(state, packages)
        result.added, result.already_present = plan.new, plan.present
        if not plan.new:
            return None
        # Under the lock, a pool file that was already there may since have been
        # collected by `gc` (an identical re-publish of a long-removed build): check,
        # re-upload. Files created by this publish are younger than gc's grace.
        missing = [
            pkg
            for pkg in plan.new
            if pkg.key not in created
            and archive.store.head(pkg.pool_path(settings.component)) is None
        ]
        upload_pool_files(archive, missing, settings.component)
        components = {comp: list(entries) for comp, entries in state.components.items()}
        bucket = components.setdefault(settings.component, [])
        bucket.extend(
            entry_for(pkg, settings.component, phased_percentage=phased_percentage)
            for pkg in plan.new
        )
        return components

    intent = Intent.new(
        settings.component,
        [
            entry_for(pkg, settings.component, phased_percentage=phased_percentage)
            for pkg in first.new
        ],
    )
    outcome = transact(archive, settings, merge, known=state, intent=intent)
    if outcome.by_other:
        # A signed InRelease lists every one of our packages with our bytes.
        result.added, result.already_present = list(first.new), first.present
    result.attempts, result.repaired = outcome.attempts, outcome.repaired
    result.commits, result.by_other = outcome.commits, outcome.by_other
    return result
