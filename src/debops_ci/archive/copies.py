"""The copies of a suite's root for clients that do not read what InRelease names by hash.

`Release` + `Release.gpg` serve clients that do not read InRelease; the plain index
paths (`main/binary-amd64/Packages.xz`) serve clients with by-hash off and mirroring
tools (aptly mirror, reprepro update, debmirror). They are written after the commit,
all at once, from signatures made before the first write, so the window in which
they disagree with InRelease is as short as the store allows. A publisher killed in
that window leaves them torn: `torn_copies` finds that and `write_copies` repairs it,
which every writing command does first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from debops_ci.archive import layout
from debops_ci.archive.release import ListedFile
from debops_ci.archive.state import SuiteState
from debops_ci.signing import Verifier
from debops_ci.storage import NotFound, Store
from debops_ci.storage.base import Staged

__all__ = [
    "PlainCopy",
    "discard_all",
    "finish_all",
    "plain_copies",
    "release_copy_problem",
    "repair_plan",
    "stage_copies",
    "torn_copies",
    "write_copies",
]


@dataclass(frozen=True)
class PlainCopy:
    """A plain index path and the by-hash object whose bytes it must hold."""

    source: str  # dists/<suite>/<dir>/by-hash/SHA256/<hex>
    target: str  # dists/<suite>/<dir>/Packages.xz
    size: int
    sha256: str
    md5: str


class _Listed(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def md5(self) -> str: ...


def plain_copies(suite: str, files: Iterable[_Listed]) -> list[PlainCopy]:
    """The plain copy of each listed index file (a by-hash suite's layout)."""
    copies = []
    for listed in sorted(files, key=lambda f: f.path):
        directory = listed.path.rsplit("/", 1)[0]
        copies.append(
            PlainCopy(
                layout.in_suite(suite, f"{directory}/by-hash/SHA256/{listed.sha256}"),
                layout.in_suite(suite, listed.path),
                listed.size,
                listed.sha256,
                listed.md5,
            )
        )
    return copies


def _stored(state: SuiteState) -> list[ListedFile]:
    """Listed index files that are stored (the uncompressed one only on adopted suites)."""
    assert state.release is not None
    return [
        listed
        for path, listed in state.release.files.items()
        if not path.endswith("/Packages") or state.writes_plain_index
    ]


def _copy_matches(store: Store, copy: PlainCopy) -> bool:
    info = store.head(copy.target)
    if info is None or info.size != copy.size:
        return False
    # S3 tags a single-part object (and a server-side copy of one) with its MD5.
    if copy.md5 and info.etag.strip('"') == copy.md5:
        return True
    try:
        return hashlib.sha256(store.get(copy.target).data).hexdigest() == copy.sha256
    except NotFound:
        return False


def release_copy_problem(
    store: Store, suite: str, content: bytes, verifier: Verifier | None
) -> tuple[str, str] | None:
    """Which of `Release`, `Release.gpg` disagrees with the signed root's `content`,
    and how: (its key, "missing" | "stale" | "unsigned"); None when both agree.
    `verifier=None` checks only that a signature is there."""
    release_key, gpg_key = layout.release_key(suite), layout.release_gpg_key(suite)
    try:
        release = store.get(release_key).data
    except NotFound:
        return release_key, "missing"
    if release != content:
        return release_key, "stale"
    try:
        signature = store.get(gpg_key).data
    except NotFound:
        return gpg_key, "missing"
    if not signature or (verifier is not None and not verifier.verify_detached(content, signature)):
        return gpg_key, "unsigned"
    return None


def torn_copies(store: Store, state: SuiteState, verifier: Verifier | None) -> list[str]:
    """The copies that do not agree with the suite's signed root (empty: all good)."""
    if state.release is None or not state.content:
        return []
    suite = state.suite
    torn: list[str] = []
    problem = release_copy_problem(store, suite, state.content, verifier)
    if problem is not None and problem[0] == layout.release_key(suite):
        # Release.gpg then signs the stale text (or is missing): both go.
        torn += [layout.release_key(suite), layout.release_gpg_key(suite)]
    elif problem is not None:
        torn.append(layout.release_gpg_key(suite))
    if state.release.by_hash:
        copies = plain_copies(suite, _stored(state))
        with ThreadPoolExecutor(max_workers=8) as pool:
            matches = list(pool.map(lambda c: _copy_matches(store, c), copies))
        torn += [c.target for c, ok in zip(copies, matches, strict=True) if not ok]
    return torn


def stage_copies(
    store: Store,
    suite: str,
    release: bytes,
    release_gpg: bytes,
    copies: Sequence[PlainCopy],
) -> list[Staged]:
    """Prepare every copy (before the commit): what is left is the fastest step."""
    jobs: list[tuple[str, bytes | None, str | None]] = [
        (layout.release_key(suite), release, None),
        (layout.release_gpg_key(suite), release_gpg, None),
        *((c.target, None, c.source) for c in copies),
    ]
    staged: list[Staged] = []
    try:
        for key, data, source in jobs:
            staged.append(store.stage(key, data, copy_of=source))
    except BaseException:
        discard_all(staged)
        raise
    return staged


def finish_all(staged: Sequence[Staged]) -> None:
    """Make every staged copy visible at once (in parallel)."""
    if staged:
        with ThreadPoolExecutor(max_workers=min(16, len(staged))) as pool:
            list(pool.map(lambda s: s.finish(), staged))


def discard_all(staged: Sequence[Staged]) -> None:
    for item in staged:
        item.discard()


def write_copies(
    store: Store,
    suite: str,
    release: bytes,
    release_gpg: bytes,
    copies: Sequence[PlainCopy],
) -> None:
    """Every copy now: the plain indexes as server-side copies, Release, Release.gpg."""
    finish_all(stage_copies(store, suite, release, release_gpg, copies))


def repair_plan(state: SuiteState) -> list[PlainCopy]:
    """Every plain copy of the suite (what a repair rewrites)."""
    if state.release is None or not state.release.by_hash:
        return []
    return plain_copies(state.suite, _stored(state))
