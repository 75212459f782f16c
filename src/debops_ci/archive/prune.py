"""Pruning pull-request builds from a suite by retention policy: one change.

A pull-request build is a version `<V>~pr<N>-<B>` or `<V>~pr<N>.<B>` (what
`ci/versioning.py` makes). The policy picks among them:

- `pr`: only builds of that pull request (alone: every build of it);
- `keep_last` K: all but the newest K builds (Debian order) per package per PR;
- `older_than` D: builds published more than D ago;
- `packages`: `PKG` limits the policy to those packages (alone: every PR build of
  them); `PKG=VER` removes exactly that version, a mainline one too.

Given several criteria, a build goes only when it meets all of them
(`--keep-last 3 --older-than 30d`: beyond the newest three *and* older than 30 days).
Mainline versions (no `~pr`) are never pruned unless named with `PKG=VER`.

When a build was published is the `last_modified` of its pool file (one HEAD per
candidate, only with `older_than`): that is when its bytes reached this archive. A
pool file that is missing counts as old. Pool files stay: `gc` reclaims them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from debops_ci.archive.indexes import PackageEntry
from debops_ci.archive.remove import PackageSpec
from debops_ci.archive.session import Archive
from debops_ci.archive.settings import SuiteSettings
from debops_ci.archive.state import SuiteState
from debops_ci.archive.transaction import Components, transact
from debops_ci.debian.version import version_sort_key
from debops_ci.errors import UsageError

__all__ = ["PrBuild", "PrunePolicy", "PruneResult", "parse_pr_build", "prune", "select_pruned"]

_PR_BUILD = re.compile(r"~pr(?P<pr>[0-9]+)[-.](?P<build>[0-9]+)$")


@dataclass(frozen=True)
class PrBuild:
    pr: int
    build: int


def parse_pr_build(version: str) -> PrBuild | None:
    """The PR and build number of a CI version, None for a mainline version."""
    found = _PR_BUILD.search(version)
    if found is None:
        return None
    return PrBuild(int(found["pr"]), int(found["build"]))


@dataclass(frozen=True)
class PrunePolicy:
    """What to prune; see the module's docstring. Every field defaults to 'not given'."""

    keep_last: int | None = None
    older_than: timedelta | None = None
    pr: int | None = None
    packages: tuple[PackageSpec, ...] = ()

    def check(self) -> None:
        if self.keep_last is not None and self.keep_last < 0:
            raise UsageError(f"--keep-last must be 0 or more, not {self.keep_last}")
        if self.older_than is not None and self.older_than <= timedelta(0):
            raise UsageError("--older-than must be a positive duration, e.g. 30d")
        if self.pr is not None and self.pr <= 0:
            raise UsageError(f"--pr must be a positive pull request number, not {self.pr}")
        for spec in self.packages:
            spec.check("prune")
        if not (self.has_criteria or self.packages):
            raise UsageError(
                "say what to prune: --keep-last K, --older-than DURATION, --pr N or PKG[=VER]"
            )

    @property
    def has_criteria(self) -> bool:
        return self.keep_last is not None or self.older_than is not None or self.pr is not None

    @property
    def named(self) -> tuple[PackageSpec, ...]:
        return tuple(s for s in self.packages if s.version is not None)

    @property
    def scope(self) -> frozenset[str]:
        return frozenset(s.name for s in self.packages if s.version is None)


@dataclass(frozen=True)
class Pruned:
    component: str
    entry: PackageEntry
    reason: str


@dataclass
class PruneResult:
    suite: str
    dry_run: bool
    pruned: list[Pruned] = field(default_factory=list)
    kept: int = 0  # entries of the suite left in it
    attempts: int = 0


def _published_at(archive: Archive, entry: PackageEntry, cache: dict[str, float | None]) -> float:
    if entry.filename not in cache:
        info = archive.store.head(entry.filename)
        cache[entry.filename] = None if info is None else info.last_modified
    found = cache[entry.filename]
    return 0.0 if found is None else found


def select_pruned(
    archive: Archive,
    state: SuiteState,
    policy: PrunePolicy,
    now: datetime,
    ages: dict[str, float | None] | None = None,
) -> list[Pruned]:
    """The entries of `state` the policy removes, with why."""
    ages = {} if ages is None else ages
    pruned: dict[tuple[str, tuple[str, str, str]], Pruned] = {}
    for comp, entry in state.all_entries():
        for spec in policy.named:
            if spec.matches(entry):
                pruned[(comp, entry.key)] = Pruned(comp, entry, f"named {spec}")
    selecting = policy.has_criteria or bool(policy.scope)
    if not selecting:
        return list(pruned.values())

    # Candidates: PR builds in scope, grouped per package per PR for --keep-last.
    groups: dict[tuple[str, int], list[tuple[str, PackageEntry]]] = defaultdict(list)
    for comp, entry in state.all_entries():
        build = parse_pr_build(entry.version)
        if build is None or (policy.scope and entry.package not in policy.scope):
            continue
        if policy.pr is not None and build.pr != policy.pr:
            continue
        groups[(entry.package, build.pr)].append((comp, entry))

    cutoff = None if policy.older_than is None else (now - policy.older_than).timestamp()
    for (_package, pr), members in groups.items():
        versions = sorted({e.version for _c, e in members}, key=version_sort_key, reverse=True)
        newest = set(versions[: policy.keep_last]) if policy.keep_last is not None else set()
        for comp, entry in members:
            reasons = []
            if policy.keep_last is not None:
                if entry.version in newest:
                    continue
                reasons.append(f"beyond the newest {policy.keep_last} of PR {pr}")
            if cutoff is not None:
                if _published_at(archive, entry, ages) >= cutoff:
                    continue
                reasons.append(f"published over {_human(policy.older_than)} ago")
            if not reasons:
                reasons.append(f"a build of PR {pr}" if policy.pr is not None else "a PR build")
            pruned.setdefault((comp, entry.key), Pruned(comp, entry, "; ".join(reasons)))
    return sorted(
        pruned.values(),
        key=lambda p: (p.entry.package, version_sort_key(p.entry.version), p.entry.architecture),
    )


def _human(delta: timedelta | None) -> str:
    if delta is None:
        return ""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def prune(
    archive: Archive,
    settings: SuiteSettings,
    policy: PrunePolicy,
    *,
    dry_run: bool = False,
) -> PruneResult:
    """Remove the builds `policy` selects from `settings.suite` (a dry run writes nothing)."""
    settings.check()
    policy.check()
    if not dry_run:
        archive.require_signer()
    result = PruneResult(settings.suite, dry_run)
    state = archive.read(settings.suite)
    if not state.exists:
        raise UsageError(
            f"suite {settings.suite!r} does not exist in {archive.store.describe()}: check --distro"
        )
    ages: dict[str, float | None] = {}
    if dry_run:
        result.pruned = select_pruned(archive, state, policy, archive.now(), ages)
        result.kept = len(state.all_entries()) - len(result.pruned)
        return result

    def change(current: SuiteState) -> Components | None:
        result.pruned = select_pruned(archive, current, policy, archive.now(), ages)
        result.kept = len(current.all_entries()) - len(result.pruned)
        if not result.pruned:
            return None
        gone = {(p.component, p.entry.key) for p in result.pruned}
        return {
            comp: [e for e in entries if (comp, e.key) not in gone]
            for comp, entries in current.components.items()
        }

    outcome = transact(archive, settings, change, known=state)
    result.attempts = outcome.attempts
    return result
