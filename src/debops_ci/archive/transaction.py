"""The commit engine: every change to a suite goes through `transact`.

A *change* is a function from the suite's current state to its new content (the
entries of each component), or None when it has nothing to do. `transact` runs it
under the suite lock and commits the result:

1. take the lock (a lease; see `lock.py`); a state read before the lock is used as is
   when the lock was free (a root that moved meanwhile fails the commit's
   compare-and-swap, and the change is rebased), else re-read; refuse a rolled-back root;
2. run the change, fold in the intents of waiting publishers (`intents.py`); write the
   new indexes under `by-hash/` (create-only: their names are their hashes), sign
   `InRelease` and `Release.gpg` (both before the first write), then commit
   `InRelease` with compare-and-swap on the tag read, noting on it what the next
   publisher would otherwise ask the store (`rootnote.py`);
3. if another writer committed meanwhile, re-read and run the change again on top of
   its work (rebase); a lost answer to our own successful write is recognised;
4. before the change is committed, repair: copies for non-InRelease / non-by-hash
   clients left torn by a publisher that died after its commit are rewritten (the
   suite page, written after every copy, says which root's copies are complete, so
   this costs no request when none are torn);
5. after the commit, every copy at once (`copies.py`), then the pages.

Publish, remove, promote, prune, phase, resign and repair are each one change. A crash
at any point leaves the previous InRelease and everything it names intact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from debops_ci.archive import layout
from debops_ci.archive.copies import (
    discard_all,
    finish_all,
    plain_copies,
    repair_plan,
    stage_copies,
    torn_copies,
    write_copies,
)
from debops_ci.archive.indexes import PackageEntry
from debops_ci.archive.intents import Intent, IntentWaiter, fold_intents, pending_intents
from debops_ci.archive.lock import SuiteLock
from debops_ci.archive.release import (
    ReleaseMeta,
    next_date,
    parse_date,
    render_release,
    rolled_back,
)
from debops_ci.archive.session import Archive
from debops_ci.archive.settings import SuiteSettings
from debops_ci.archive.state import SuiteState
from debops_ci.archive.suite import compose_suite
from debops_ci.archive.webpage import PageMemory, publish_pages, read_page_memory
from debops_ci.errors import ArchiveIntegrityError, DebopsError
from debops_ci.storage import NotFound, PreconditionFailed

__all__ = [
    "MAX_COMMIT_ATTEMPTS",
    "Change",
    "Components",
    "Outcome",
    "RootMoved",
    "check_not_rolled_back",
    "needs_attention",
    "transact",
    "validity_near_end",
]

MAX_COMMIT_ATTEMPTS = 20
# A holder commits again while intents keep arriving, but not forever: after this many
# commits it lets the lock go, and the next waiter takes it over.
MAX_GROUP_ROUNDS = 10

Components = dict[str, list[PackageEntry]]
Change = Callable[[SuiteState], Components | None]


class RootMoved(DebopsError):
    """Another writer committed InRelease after we read it: rebase and try again."""


@dataclass(frozen=True)
class Outcome:
    """What `transact` did."""

    committed: bool  # a new InRelease was written
    attempts: int  # rounds of read-change-commit (more than 1: we rebased)
    repaired: tuple[str, ...] = ()  # torn copies rewritten before the change
    refreshed: bool = False  # committed only to push Valid-Until forward
    date: datetime | None = None  # the Date of the suite's root afterwards
    commits: int = 0  # InRelease writes (a holder serving waiters commits more than once)
    by_other: bool = False  # our intent was committed by the publisher holding the lock


def check_not_rolled_back(state: SuiteState, settings: SuiteSettings) -> None:
    """--not-older-than: never build on a root older than the last one this publisher saw."""
    problem = rolled_back(state.date, settings.not_older_than)
    if problem:
        raise ArchiveIntegrityError(
            f"dists/{state.suite}/InRelease: {problem}; refusing to publish on top of it"
        )


def _validity(state: SuiteState, settings: SuiteSettings) -> timedelta | None:
    """How long a new root stays valid: --valid-days, else the period the suite had."""
    if settings.valid_days:
        return timedelta(days=settings.valid_days)
    if state.release is None:
        return None
    until, date = parse_date(state.release.get("Valid-Until")), state.date
    if until is None or date is None or until <= date:
        return None
    return until - date


def validity_near_end(state: SuiteState, settings: SuiteSettings, now: datetime) -> bool:
    """Less than half of the suite's validity period is left (or it has expired)."""
    if state.release is None:
        return False
    until = parse_date(state.release.get("Valid-Until"))
    period = _validity(state, settings)
    if until is None or period is None:
        return False
    return until - now < period / 2


def needs_attention(archive: Archive, state: SuiteState, settings: SuiteSettings) -> bool:
    """Whether a command with nothing to change must still take the lock: torn copies to
    repair, or a Valid-Until to push forward."""
    if not state.exists:
        return False
    if validity_near_end(state, settings, archive.now()):
        return True
    return bool(torn_copies(archive.store, state, archive.verifier()))


def _after_previous_second(archive: Archive, state: SuiteState) -> datetime:
    """Now, but never in the same second as the previous root's Date.

    HTTP dates (Last-Modified, If-Modified-Since) have one-second granularity: a root
    replaced within the second an apt client fetched the old one is answered "304 Not
    Modified" and that client misses the commit. So a commit waits for the next second
    (at most one; group commit keeps the cost to one wait per batch). A clock lagging
    by more than that reuses the previous Date instead (`next_date`).
    """
    now = archive.now()
    if state.date is not None:
        wait = (state.date + timedelta(seconds=1) - now).total_seconds()
        if 0 < wait <= 1.0:
            archive.clock.sleep(wait)
            now = archive.now()
    return now


def _commit(
    archive: Archive,
    state: SuiteState,
    settings: SuiteSettings,
    components: Components,
    *,
    legacy_nolock: bool,
) -> tuple[datetime, str]:
    """Write one new version of the suite; return its Date and tag. Raises RootMoved."""
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
    now = _after_previous_second(archive, state)
    origin = settings.origin or (previous.get("Origin") if previous else "") or "private"
    label = settings.label or (previous.get("Label") if previous else "") or origin
    validity = _validity(state, settings)
    date = next_date(now, state.date)
    meta = ReleaseMeta(
        origin=origin,
        label=label,
        suite=suite,
        codename=suite,
        date=date,
        architectures=composed.architectures,
        components=composed.components,
        valid_until=date + validity if validity else None,
        description=settings.description
        or ((previous.get("Description") or None) if previous else None),
    )
    release = render_release(meta, composed.files)
    stored = [f for f in composed.files if f.stored]

    def put_by_hash(path: str, data: bytes) -> None:
        # Named by its own hash: already there means already right.
        with contextlib.suppress(PreconditionFailed):
            store.put(layout.in_suite(suite, path), data, create_only=True)

    # Both signatures before the first write (the copies then go out together, with no
    # GnuPG run between Release and Release.gpg for a reader to fall into), made at once.
    with ThreadPoolExecutor(max_workers=8) as pool:
        signed = pool.submit(signer.clearsign, release)
        release_gpg = signer.detach_sign(release)
        inrelease = signed.result()
        list(pool.map(lambda f: put_by_hash(f.by_hash_path, f.data), stored))

    # The copies are staged before the commit too (local: written and fsynced under a
    # temp name), so the window after it is only their renames.
    staged = stage_copies(store, suite, release, release_gpg, plain_copies(suite, stored))
    root_key = layout.inrelease_key(suite)
    note = archive.root_note(
        plain_index=state.writes_plain_index, legacy_nolock=legacy_nolock
    ).to_metadata()
    try:
        try:
            if state.inrelease is None:
                etag = store.put(root_key, inrelease, create_only=True, metadata=note)
            else:
                etag = store.put(root_key, inrelease, if_match=state.inrelease.etag, metadata=note)
        # AWS answers If-Match on a deleted key with 404, SeaweedFS with 412: both mean moved.
        except (PreconditionFailed, NotFound):
            # A retried request may have landed before its answer was lost: is it ours?
            try:
                landed = store.get(root_key)
            except NotFound:
                raise RootMoved(f"{root_key} vanished while we worked") from None
            if landed.data != inrelease:
                raise RootMoved(f"{root_key} changed while we worked") from None
            etag = landed.etag
    except BaseException:
        discard_all(staged)
        raise
    finish_all(staged)
    return date, etag


def _repair(archive: Archive, state: SuiteState) -> tuple[str, ...]:
    """Rewrite the copies of a committed root that a dead publisher left torn."""
    torn = torn_copies(archive.store, state, archive.verifier())
    if not torn:
        return ()
    signer = archive.require_signer()
    archive.log(f"repairing dists/{state.suite}: {', '.join(torn)} did not match InRelease")
    write_copies(
        archive.store,
        state.suite,
        state.content,
        signer.detach_sign(state.content),
        repair_plan(state),
    )
    return tuple(torn)


def _root_unmoved(archive: Archive, state: SuiteState) -> bool:
    info = archive.store.head(layout.inrelease_key(state.suite))
    current = info.etag if info is not None else None
    return current == (state.inrelease.etag if state.inrelease else None)


def _reread(archive: Archive, suite: str, known: SuiteState | None) -> SuiteState:
    """The suite now; a state read before the lock is reused if its root has not moved."""
    if known is not None and _root_unmoved(archive, known):
        return known
    return archive.read(suite)


def transact(
    archive: Archive,
    settings: SuiteSettings,
    change: Change,
    *,
    known: SuiteState | None = None,
    intent: Intent | None = None,
    check_copies: bool = False,
) -> Outcome:
    """Run `change` under the suite lock until its result is committed.

    `known` is a state read before the lock, reused when the root is still the same.
    A change that returns None commits nothing, unless the suite's Valid-Until is near
    (then the same content is re-signed with a new Date). Pending intents of waiting
    publishers are folded into every commit, and the holder commits again while more
    arrive. With `intent`, finding the lock held leaves that intent for the holder
    instead of queueing (group commit): the Outcome then says `by_other`.
    `check_copies` checks every copy before the change, whatever the suite page says.
    """
    archive.ensure_writable()
    store = archive.store
    suite = settings.suite
    lock = archive.lock(suite)
    waiter = IntentWaiter(store, suite, intent, archive.read) if intent is not None else None
    try:
        if not lock.acquire(give_up=waiter.poll if waiter is not None else None):
            return Outcome(True, 0, by_other=True)
    except BaseException:
        # Timed out, refused, or told to stop (SIGTERM): take our intent back so the
        # holder does not publish what we report as not published. (A holder that
        # already read it may still commit it: then it is published, never the reverse.)
        if waiter is not None:
            with contextlib.suppress(Exception):
                waiter.withdraw()
        raise
    try:
        trusted = known is not None and not lock.waited
        if waiter is not None and waiter.written:
            # The holder may have committed our intent just before it let the lock go.
            state = archive.read(suite)
            if waiter.listed(state):
                waiter.withdraw()
                return Outcome(True, 0, date=state.date, by_other=True)
            known, trusted = state, True
        return _run_locked(
            archive,
            settings,
            change,
            known,
            waiter,
            lock,
            trusted=trusted,
            check_copies=check_copies,
        )
    finally:
        lock.release()


def _run_locked(
    archive: Archive,
    settings: SuiteSettings,
    change: Change,
    known: SuiteState | None,
    waiter: IntentWaiter | None,
    lock: SuiteLock,
    *,
    trusted: bool,
    check_copies: bool = False,
) -> Outcome:
    store = archive.store
    suite = settings.suite
    repaired: tuple[str, ...] = ()
    repair_done = False
    pages: PageMemory | None = None
    commits = 0
    refreshed = False
    date: datetime | None = None
    for attempt in range(1, MAX_COMMIT_ATTEMPTS + 1):
        # Read before a lock that was free: a commit's compare-and-swap catches a root
        # that moved since, so only a command with nothing to commit asks first.
        unchecked = trusted and known is not None
        state = known if unchecked and known is not None else _reread(archive, suite, known)
        known = None
        check_not_rolled_back(state, settings)
        components = change(state) if commits == 0 else None
        # Wait out the previous root's second *before* folding: the intents that arrive
        # meanwhile join this commit instead of waiting for the next one.
        if components is not None or commits > 0:
            _after_previous_second(archive, state)
        components, folded = fold_intents(store, suite, state, components, archive.clock.time())
        if (
            components is None
            and commits == 0
            and validity_near_end(state, settings, archive.now())
        ):
            components = {c: list(e) for c, e in state.components.items()}
            refreshed = True
        if components is None and commits == 0 and unchecked:
            if not _root_unmoved(archive, state):
                trusted = False  # moved since our read: run the change on the new state
                continue
            unchecked = False
        trusted = False
        if pages is None:
            pages = read_page_memory(store, suite)
        if state.exists and not repair_done:
            # First, copies a dead publisher left torn. The suite page, written after
            # every copy, names the root it followed: when that is the root now, none
            # can be (`check_copies` looks anyway: `repair`, a no-op re-upload).
            tag = state.inrelease.etag if state.inrelease is not None else ""
            if check_copies or not pages.copies_done_for(tag):
                # Only against the root as it is now: copies "repaired" to a root that
                # moved would be torn by us.
                if unchecked and not _root_unmoved(archive, state):
                    continue
                repaired = _repair(archive, state)
            repair_done = True
        if components is None:
            return Outcome(commits > 0, attempt, repaired, refreshed, date or state.date, commits)
        try:
            date, root_tag = _commit(
                archive, state, settings, components, legacy_nolock=lock.hid_nolock
            )
        except RootMoved as moved:
            archive.log(f"{moved}; rebasing on the new state (attempt {attempt})")
            continue
        commits += 1
        archive.committed()
        folded.delete_after_commit(store, suite)
        if folded.folded:
            archive.log(f"committed the packages of {len(folded.folded)} waiting publisher(s) too")
        if waiter is not None:
            waiter.withdraw()
        # The browsable pages: from the state just committed, without reading the
        # rest of the archive.
        publish_pages(archive, state, components, date, memory=pages, root_tag=root_tag)
        pages = None  # the page changed: a further round reads it again
        # More intents may have arrived while we committed, if anyone is waiting at all.
        contended = lock.waited or bool(folded.seen)
        if commits >= MAX_GROUP_ROUNDS or not contended or not pending_intents(store, suite):
            return Outcome(True, attempt, repaired, refreshed, date, commits)
    raise DebopsError(
        f"dists/{suite}/InRelease kept changing under us "
        f"({MAX_COMMIT_ATTEMPTS} attempts): another writer is not taking the lock"
    )
