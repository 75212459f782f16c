"""Group commit: publishers that find the lock held leave their entries for the holder.

Dozens of CI jobs finishing at once would otherwise queue for one commit each. A
publisher that finds a live holder writes an *intent* —
`dists/<suite>/.intents/<token>.json`, its new index entries; its pool files are
already uploaded — and waits. The holder folds every pending intent into its next
commit and, before it lets the lock go, commits again while intents keep arriving. A
waiter returns success only once a committed, signed InRelease lists its packages with
its bytes, or takes the lock itself when the holder is gone.

Crash safety: an intent is deleted only after a commit that lists its entries, so a
holder killed at any point leaves the intents for the next holder (folding an intent
twice is a no-op: same bytes). A waiter killed after writing its intent still gets its
packages published — never reported published when they are not. An intent that
conflicts with the suite (same name, version and architecture, other bytes) is
rejected with a note the waiter reads, raising the same ConflictError a publish would.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from debops_ci.archive import layout
from debops_ci.archive.indexes import PackageEntry, parse_stanza
from debops_ci.archive.state import SuiteState
from debops_ci.errors import ConflictError, DebopsError
from debops_ci.storage import NotFound, PreconditionFailed, Store

__all__ = [
    "Folded",
    "Intent",
    "IntentWaiter",
    "fold_intents",
    "intents_prefix",
    "pending_intents",
]

ReadSuite = Callable[[str], SuiteState]

_SUFFIX = ".json"
_REJECTED = ".rejected"
# Rejection notes nobody came back for (their waiter died) are swept after this long.
_STALE_REJECTION_SECONDS = 3600.0


def intents_prefix(suite: str) -> str:
    return f"dists/{suite}/.intents/"


@dataclass(frozen=True)
class Intent:
    """One waiting publisher's new entries for one component."""

    token: str
    component: str
    entries: tuple[PackageEntry, ...]
    owner: str = ""

    @property
    def keys(self) -> set[tuple[str, str, str]]:
        return {e.key for e in self.entries}

    def key_in(self, suite: str) -> str:
        return f"{intents_prefix(suite)}{self.token}{_SUFFIX}"

    def to_json(self) -> bytes:
        body = {
            "tool": "debops-ci",
            "token": self.token,
            "owner": self.owner,
            "component": self.component,
            "entries": [e.text for e in self.entries],
        }
        return json.dumps(body, sort_keys=True).encode() + b"\n"

    @classmethod
    def new(cls, component: str, entries: Sequence[PackageEntry]) -> Intent:
        owner = f"pid {os.getpid()} on {socket.gethostname()}"
        return cls(uuid.uuid4().hex, component, tuple(entries), owner)

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Intent:
        body = json.loads(data.decode("utf-8"))
        if not isinstance(body, dict) or not isinstance(body.get("entries"), list):
            raise ValueError("not an intent")
        entries = tuple(parse_stanza(str(text), where) for text in body["entries"])
        for entry in entries:
            # Only pool files: an intent must not point an index at anything else.
            if not entry.filename.startswith("pool/") or ".." in entry.filename.split("/"):
                raise ValueError(f"intent entry with Filename {entry.filename!r}")
        layout.check_component_name(str(body.get("component", "")))
        return cls(str(body["token"]), str(body["component"]), entries, str(body.get("owner")))


def pending_intents(store: Store, suite: str) -> list[str]:
    """The keys of the intents waiting in a suite (one LIST)."""
    return [
        info.key for info in store.list_objects(intents_prefix(suite)) if info.key.endswith(_SUFFIX)
    ]


@dataclass
class Folded:
    """What folding the pending intents into a change did."""

    folded: list[Intent] = field(default_factory=list)  # their entries are in the commit
    rejected: list[tuple[Intent, str]] = field(default_factory=list)
    seen: int = 0  # intents listed (someone is waiting on the lock)

    def delete_after_commit(self, store: Store, suite: str) -> None:
        keys = [intent.key_in(suite) for intent in self.folded]
        if keys:
            with ThreadPoolExecutor(max_workers=min(8, len(keys))) as pool:
                list(pool.map(store.delete, keys))


def _read(store: Store, key: str) -> Intent | None:
    try:
        return Intent.from_json(store.get(key).data, key)
    except NotFound:
        return None  # its holder just committed and deleted it
    except (ValueError, KeyError, UnicodeDecodeError, DebopsError):
        store.delete(key)  # malformed: never folded, never blocks anyone
        return None


def _pool_file_ok(store: Store, entry: PackageEntry) -> bool:
    info = store.head(entry.filename)
    return info is not None and info.size == entry.size


def fold_intents(
    store: Store,
    suite: str,
    state: SuiteState,
    components: dict[str, list[PackageEntry]] | None,
    now: float,
) -> tuple[dict[str, list[PackageEntry]] | None, Folded]:
    """Add every pending intent's new entries to `components` (None: the suite as is).

    Returns the components to commit (None when nothing at all is to be done).
    """
    result = Folded()
    listing = list(store.list_objects(intents_prefix(suite)))
    keys = [info.key for info in listing if info.key.endswith(_SUFFIX)]
    result.seen = len(keys)
    for info in listing:  # rejection notes nobody came back for (their waiter died)
        if info.key.endswith(_REJECTED) and now - info.last_modified > _STALE_REJECTION_SECONDS:
            store.delete(info.key)
    if not keys:
        return components, result
    with ThreadPoolExecutor(max_workers=min(8, len(keys))) as pool:
        intents = [i for i in pool.map(lambda k: _read(store, k), keys) if i is not None]
    merged = {c: list(e) for c, e in state.components.items()} if components is None else components
    known = {e.key: e for entries in merged.values() for e in entries}
    added = False
    for intent in intents:
        problem = ""
        fresh: list[PackageEntry] = []
        for entry in intent.entries:
            have = known.get(entry.key)
            if have is None:
                fresh.append(entry)
            elif have.sha256 != entry.sha256 or have.size != entry.size:
                problem = (
                    f"{entry.package} {entry.version} ({entry.architecture}) is already "
                    f"published in {suite} with different bytes (sha256 {have.sha256[:12]}…, "
                    f"yours {entry.sha256[:12]}…): refusing to overwrite; bump the version "
                    "in debian/changelog"
                )
                break
        if not problem and not all(_pool_file_ok(store, e) for e in fresh):
            problem = "its pool files are missing (collected, or never uploaded): publish again"
        if problem:
            result.rejected.append((intent, problem))
            _reject(store, suite, intent, problem)
            continue
        for entry in fresh:
            known[entry.key] = entry
        merged.setdefault(intent.component, []).extend(fresh)
        added = added or bool(fresh)
        result.folded.append(intent)
    if components is None and not added:
        # Only intents already committed (a holder died before deleting them).
        result.delete_after_commit(store, suite)
        result.folded = []
        return None, result
    return merged, result


def _reject(store: Store, suite: str, intent: Intent, reason: str) -> None:
    note = json.dumps({"reason": reason}).encode()
    store.put(f"{intents_prefix(suite)}{intent.token}{_REJECTED}", note)
    store.delete(intent.key_in(suite))


class IntentWaiter:
    """The waiting side: write the intent once, then watch for the commit that has it."""

    def __init__(
        self,
        store: Store,
        suite: str,
        intent: Intent,
        read: ReadSuite,
    ) -> None:
        self.store = store
        self.suite = suite
        self.intent = intent
        self._read = read
        self._written = False
        self._seen_root: str | None = None
        self.committed_by_other = False

    def _root_tag(self) -> str | None:
        info = self.store.head(layout.inrelease_key(self.suite))
        return info.etag if info is not None else None

    @property
    def written(self) -> bool:
        return self._written

    def listed(self, state: SuiteState) -> bool:
        """Whether `state` holds every one of our entries with our bytes."""
        mine = {e.key: e.sha256 for e in self.intent.entries}
        have = {e.key: e.sha256 for _c, e in state.all_entries() if e.key in mine}
        return have == mine

    def poll(self) -> bool:
        """Called while the lock is held by another: True once our entries are committed."""
        if not self._written:
            self._seen_root = self._root_tag()
            try:
                key = self.intent.key_in(self.suite)
                self.store.put(key, self.intent.to_json(), create_only=True)
            except PreconditionFailed:
                pass  # our own retried write
            self._written = True
            return False
        root = self._root_tag()
        if root == self._seen_root:
            return False
        self._seen_root = root
        if self.listed(self._read(self.suite)):
            self.withdraw()
            self.committed_by_other = True
            return True
        self._check_rejected()
        return False

    def _check_rejected(self) -> None:
        note_key = f"{intents_prefix(self.suite)}{self.intent.token}{_REJECTED}"
        try:
            note = self.store.get(note_key).data
        except NotFound:
            return
        self.store.delete(note_key)
        self._written = False
        try:
            reason = str(json.loads(note.decode("utf-8"))["reason"])
        except (ValueError, KeyError, UnicodeDecodeError):
            reason = "refused by the publisher that held the lock"
        raise ConflictError(reason)

    def withdraw(self) -> None:
        """Our entries are committed (or we commit them ourselves): the intent goes."""
        if self._written:
            self.store.delete(self.intent.key_in(self.suite))
