"""Phased updates: set or drop `Phased-Update-Percentage` on one version, one commit.

apt (1.9+, `APT::Get::Phase-Updates`) installs an upgrade whose stanza says N % only on
machines whose hash of `/etc/machine-id` (with the package and version) falls in the
first N %; the others keep the installed version and report it as deferred. Only the
stanza text changes: the pool file and every other field stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from debops_ci.archive.indexes import PHASED_FIELD, PackageEntry, field_value, with_field
from debops_ci.archive.remove import PackageSpec
from debops_ci.archive.session import Archive
from debops_ci.archive.settings import SuiteSettings, check_phased_percentage
from debops_ci.archive.state import SuiteState
from debops_ci.archive.transaction import Components, transact
from debops_ci.debian.version import version_sort_key
from debops_ci.errors import UsageError

__all__ = ["PhaseResult", "phase"]


@dataclass
class PhaseResult:
    """The entries whose field changed, and those that already said so."""

    suite: str
    percentage: int | None
    changed: list[tuple[str, PackageEntry]] = field(default_factory=list)
    unchanged: list[tuple[str, PackageEntry]] = field(default_factory=list)
    attempts: int = 0


def phase(
    archive: Archive,
    settings: SuiteSettings,
    spec: PackageSpec,
    percentage: int | None,
) -> PhaseResult:
    """Set the phased percentage of `spec` (every architecture); None removes the field."""
    settings.check()
    spec.check("phase")
    if spec.version is None:
        raise UsageError(f"name the version to phase: phase {spec.name}=VERSION PERCENT")
    check_phased_percentage(percentage)
    archive.require_signer()
    wanted = None if percentage is None else str(percentage)
    result = PhaseResult(settings.suite, percentage)

    def change(state: SuiteState) -> Components | None:
        result.changed, result.unchanged = [], []
        matching = [(c, e) for c, e in state.all_entries() if spec.matches(e)]
        if not matching:
            versions = sorted(
                {e.version for _c, e in state.all_entries() if e.package == spec.name},
                key=version_sort_key,
                reverse=True,
            )
            has = f"it has {', '.join(versions)}" if versions else "no such package"
            raise UsageError(f"{spec} is not in suite {state.suite}: {has}")
        for comp, entry in matching:
            if field_value(entry, PHASED_FIELD) == wanted:
                result.unchanged.append((comp, entry))
            else:
                result.changed.append((comp, entry))
        if not result.changed:
            return None
        to_change = {(c, e.key) for c, e in result.changed}
        return {
            comp: [
                with_field(e, PHASED_FIELD, wanted) if (comp, e.key) in to_change else e
                for e in entries
            ]
            for comp, entries in state.components.items()
        }

    state = archive.read(settings.suite)
    if not state.exists:
        raise UsageError(
            f"suite {settings.suite!r} does not exist in {archive.store.describe()}: check --distro"
        )
    outcome = transact(archive, settings, change, known=state)
    result.attempts = outcome.attempts
    return result
