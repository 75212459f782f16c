"""What a suite holds, as data: the library side of `debops-ci list`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from debops_ci.archive.indexes import PHASED_FIELD, field_value, sort_entries
from debops_ci.archive.session import Archive
from debops_ci.errors import UsageError

__all__ = ["ListedPackage", "list_packages"]


@dataclass(frozen=True)
class ListedPackage:
    suite: str
    component: str
    package: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    phased_percentage: int | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def list_packages(
    archive: Archive,
    suites: Sequence[str] | None = None,
    *,
    package: str | None = None,
) -> list[ListedPackage]:
    """Every entry of the given suites (None: every suite), optionally of one package.

    A named suite that does not exist is an error; an empty archive lists nothing.
    """
    archive.require_existing()
    chosen = list(suites) if suites is not None else archive.suites()
    rows: list[ListedPackage] = []
    for suite in chosen:
        state = archive.read(suite)
        if not state.exists and suites is not None:
            raise UsageError(f"suite {suite!r} does not exist in {archive.store.describe()}")
        for component, entries in state.components.items():
            for entry in sort_entries(entries):
                if package and entry.package != package:
                    continue
                phased = field_value(entry, PHASED_FIELD)
                rows.append(
                    ListedPackage(
                        suite=suite,
                        component=component,
                        package=entry.package,
                        version=entry.version,
                        architecture=entry.architecture,
                        filename=entry.filename,
                        size=entry.size,
                        sha256=entry.sha256,
                        phased_percentage=int(phased) if phased and phased.isdigit() else None,
                    )
                )
    return rows
