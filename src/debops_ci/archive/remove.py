"""Removing packages from a suite: the same locked, conditional commit as a publish.

Pool files stay: another suite may share them, and a client holding the previous
InRelease may still fetch them. Reclaiming unreferenced files is `prune`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from debops_ci.archive.indexes import PackageEntry
from debops_ci.archive.publish import transact
from debops_ci.archive.session import Archive, SuiteSettings
from debops_ci.archive.state import SuiteState
from debops_ci.debian.package import check_architecture, check_package_name, check_version
from debops_ci.errors import DebopsError, UsageError


class NothingToRemove(DebopsError):
    exit_code = 1


@dataclass
class RemoveResult:
    removed: list[tuple[str, PackageEntry]] = field(default_factory=list)


def parse_spec(spec: str) -> tuple[str, str | None]:
    name, _, version = spec.partition("=")
    check_package_name(name, "remove")
    if version:
        check_version(version, "remove")
    return name, version or None


def remove(
    archive: Archive,
    settings: SuiteSettings,
    specs: list[str],
    arch: str | None = None,
) -> RemoveResult:
    settings.check()
    if not specs:
        raise UsageError("name at least one package: remove PKG[=VERSION]...")
    wanted = [parse_spec(spec) for spec in specs]
    if arch is not None:
        check_architecture(arch, "--arch")
    archive.require_signer()
    result = RemoveResult()

    def matches(entry: PackageEntry) -> bool:
        if arch is not None and entry.architecture != arch:
            return False
        return any(
            entry.package == name and (version is None or entry.version == version)
            for name, version in wanted
        )

    def change(state: SuiteState) -> dict[str, list[PackageEntry]] | None:
        result.removed = [(c, e) for c, e in state.all_entries() if matches(e)]
        if not result.removed:
            return None
        return {
            comp: [e for e in entries if not matches(e)]
            for comp, entries in state.components.items()
        }

    if not archive.read(settings.suite).exists:
        raise NothingToRemove(
            f"suite {settings.suite!r} does not exist in {archive.store.describe()}"
        )
    transact(archive, settings, change)
    if not result.removed:
        what = ", ".join(specs) + (f" ({arch})" if arch else "")
        raise NothingToRemove(f"{what}: not in suite {settings.suite}; nothing removed")
    return result
