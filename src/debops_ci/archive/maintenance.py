"""Keeping a suite healthy when nobody uploads: `repair` and `resign`.

Both are the engine's no-op change: `transact` repairs torn copies before any change
and re-signs a root whose Valid-Until is near, so these commands only decide which
suites to look at, and take a suite's lock only when it needs something.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from debops_ci.archive.copies import torn_copies
from debops_ci.archive.release import parse_date
from debops_ci.archive.session import Archive
from debops_ci.archive.settings import SuiteSettings
from debops_ci.archive.state import SuiteState
from debops_ci.archive.transaction import Change, Components, transact, validity_near_end
from debops_ci.errors import UsageError

__all__ = ["SuiteCare", "repair", "resign"]


@dataclass(frozen=True)
class SuiteCare:
    """What was done to one suite."""

    suite: str
    repaired: tuple[str, ...] = ()  # copies rewritten
    resigned: bool = False  # a new root with a later Valid-Until


def _suites(archive: Archive, suites: Sequence[str] | None) -> list[str]:
    archive.require_existing()
    names = list(suites) if suites else archive.suites()
    if not names:
        raise UsageError(f"no suites in {archive.store.describe()}: nothing to do")
    return names


def repair(
    archive: Archive, settings: SuiteSettings, suites: Sequence[str] | None = None
) -> list[SuiteCare]:
    """Rewrite the copies (Release, Release.gpg, plain indexes) that disagree with
    InRelease, in the given suites (None: every suite)."""
    archive.require_signer()
    done = []
    for suite in _suites(archive, suites):
        state = archive.read(suite)
        if not state.exists:
            raise UsageError(f"suite {suite!r} does not exist in {archive.store.describe()}")
        if not torn_copies(archive.store, state, archive.verifier()):
            done.append(SuiteCare(suite))
            continue
        per_suite = dataclasses.replace(settings, suite=suite)
        outcome = transact(archive, per_suite, lambda _state: None, known=state, check_copies=True)
        done.append(SuiteCare(suite, outcome.repaired, outcome.refreshed))
    return done


def _expires_within(state: SuiteState, now: datetime, within: timedelta) -> bool:
    until = parse_date(state.release.get("Valid-Until")) if state.release else None
    return until is not None and until - now < within


def _same_content(archive: Archive, settings: SuiteSettings, forced: bool) -> Change:
    def change(current: SuiteState) -> Components | None:
        # Due by --within only: commit the same entries with a new Date and Valid-Until
        # (when half the period is gone, the engine re-signs a no-op change by itself).
        if forced and not validity_near_end(current, settings, archive.now()):
            return {c: list(e) for c, e in current.components.items()}
        return None

    return change


def resign(
    archive: Archive,
    settings: SuiteSettings,
    suites: Sequence[str] | None = None,
    *,
    within: timedelta | None = None,
) -> list[SuiteCare]:
    """Re-sign the suites whose Valid-Until is less than half its period away, or less
    than `within` away when given (a scheduled job keeps them from expiring); repair
    torn copies on the way."""
    archive.require_signer()
    done = []
    for suite in _suites(archive, suites):
        per_suite = dataclasses.replace(settings, suite=suite)
        state = archive.read(suite)
        if not state.exists:
            raise UsageError(f"suite {suite!r} does not exist in {archive.store.describe()}")
        now = archive.now()
        due = validity_near_end(state, per_suite, now)
        forced = within is not None and _expires_within(state, now, within)
        if not due and not forced and not torn_copies(archive.store, state, archive.verifier()):
            done.append(SuiteCare(suite))
            continue

        outcome = transact(
            archive, per_suite, _same_content(archive, per_suite, forced), known=state
        )
        done.append(SuiteCare(suite, outcome.repaired, outcome.refreshed or forced))
    return done
