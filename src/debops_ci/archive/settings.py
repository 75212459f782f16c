"""What a change writes into a suite's Release: frozen typed data, defaults written once.

The command-line resolver (`options.py`) takes its defaults for these settings from
here, so a default lives in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from debops_ci.archive import layout
from debops_ci.errors import UsageError

__all__ = ["SuiteSettings", "check_phased_percentage"]


@dataclass(frozen=True)
class SuiteSettings:
    """What a publish writes into a suite's Release. None: keep what the suite has."""

    suite: str = "unstable"
    component: str = "main"
    origin: str | None = None
    label: str | None = None
    default_arch: str = "amd64"
    valid_days: int | None = None
    description: str | None = None
    # Refuse a suite whose Date is older: the last Date this publisher saw (rollback).
    not_older_than: datetime | None = None

    def check(self) -> None:
        layout.check_suite_name(self.suite)
        layout.check_component_name(self.component)
        for name, value in (
            ("--origin", self.origin),
            ("--label", self.label),
            ("--description", self.description),
        ):
            if value is not None:
                layout.check_single_line(name, value)
                if not value:
                    raise UsageError(f"{name} must not be empty")
        if not layout.COMPONENT_RE.match(self.default_arch):
            raise UsageError(f"invalid --arch {self.default_arch!r}")
        if self.valid_days is not None and self.valid_days <= 0:
            raise UsageError("--valid-days must be a positive number of days")


def check_phased_percentage(value: int | None) -> None:
    if value is not None and not 0 <= value <= 100:
        raise UsageError(f"--phased-percentage must be 0 to 100, not {value}")
