"""Removing packages from a suite: one change committed by the engine.

Pool files stay: another suite may share them, and a client holding the previous
InRelease may still fetch them. Reclaiming unreferenced files is `gc`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from debops_ci.archive.indexes import PackageEntry
from debops_ci.archive.session import Archive
from debops_ci.archive.settings import SuiteSettings
from debops_ci.archive.state import SuiteState
from debops_ci.archive.transaction import Components, transact
from debops_ci.debian.package import check_architecture, check_package_name, check_version
from debops_ci.errors import DebopsError, UsageError

__all__ = ["NothingToRemove", "PackageSpec", "RemoveResult", "remove"]


class NothingToRemove(DebopsError):
    exit_code = 1


@dataclass(frozen=True)
class PackageSpec:
    """A package name, optionally one version of it (`PKG` or `PKG=VERSION` on the CLI)."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str, what: str = "package") -> PackageSpec:
        name, _, version = text.partition("=")
        spec = cls(name, version or None)
        spec.check(what)
        return spec

    def check(self, what: str = "package") -> None:
        check_package_name(self.name, what)
        if self.version is not None:
            check_version(self.version, what)

    def matches(self, entry: PackageEntry) -> bool:
        return entry.package == self.name and self.version in (None, entry.version)

    def __str__(self) -> str:
        return f"{self.name}={self.version}" if self.version else self.name


@dataclass
class RemoveResult:
    removed: list[tuple[str, PackageEntry]] = field(default_factory=list)


def remove(
    archive: Archive,
    settings: SuiteSettings,
    specs: Sequence[PackageSpec],
    arch: str | None = None,
) -> RemoveResult:
    """Drop every entry matching one of `specs` (and `arch`, if given) from the suite."""
    settings.check()
    if not specs:
        raise UsageError("name at least one package: remove PKG[=VERSION]...")
    for spec in specs:
        spec.check("remove")
    if arch is not None:
        check_architecture(arch, "--arch")
    archive.require_signer()
    result = RemoveResult()

    def matches(entry: PackageEntry) -> bool:
        if arch is not None and entry.architecture != arch:
            return False
        return any(spec.matches(entry) for spec in specs)

    def change(state: SuiteState) -> Components | None:
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
        what = ", ".join(str(s) for s in specs) + (f" ({arch})" if arch else "")
        raise NothingToRemove(f"{what}: not in suite {settings.suite}; nothing removed")
    return result
