"""Garbage collection: delete pool files and by-hash indexes that nothing can still need.

What is a candidate: every `pool/**` object, every legacy
`dists/<suite>/<component>/binary-<arch>/*.deb`, every
`dists/<suite>/**/by-hash/SHA256/<hex>`. Nothing else (roots, copies, locks, keys,
pages) is ever touched.

What is kept:

- a by-hash object named by its suite's current `InRelease`;
- a by-hash object younger than `grace`, or of a suite whose root was replaced less
  than `grace` ago: a client that read the previous `InRelease` may still fetch what
  it names (the root's `last_modified` is when every older root was superseded);
- a pool file named by any suite's current indexes, or by any index kept above (a
  client holding that index may still download its packages);
- a pool file younger than `grace`: publishers upload pool files *before* they take
  the lock, so a file uploaded by a publish still in flight is not referenced yet.

Hence `grace` must be longer than the lock lease (refused otherwise) and should be
longer than a publisher's upload-to-commit time (its lock timeout, 15 min by default)
and a reader's window between `apt-get update` and its downloads: 2 h by default.

Safety against a publisher re-publishing a file gc is deleting (identical bytes of a
build removed long ago: its old pool file is reused, not uploaded again): gc holds
the lock of every suite while it reads the references and deletes, so such a
publisher commits either before gc reads (the file is referenced, kept) or after gc
has deleted (and must then find its file missing under its own lock).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from debops_ci.archive import layout
from debops_ci.archive.indexes import decompress, parse_packages
from debops_ci.archive.lock import DEFAULT_LEASE_SECONDS
from debops_ci.archive.session import Archive
from debops_ci.errors import ArchiveIntegrityError, DebopsError, UsageError
from debops_ci.storage import NotFound, ObjectInfo

__all__ = ["DEFAULT_GRACE", "Collected", "GcResult", "gc"]

DEFAULT_GRACE = timedelta(hours=2)

_BY_HASH = re.compile(r"^dists/(?P<suite>[^/]+)/(?P<dir>.+)/by-hash/SHA256/[0-9a-f]{64}$")
_LEGACY_DEB = re.compile(r"^dists/[^/]+/[^/]+/binary-[^/]+/[^/]+\.deb$")
_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZ_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Collected:
    """An object gc deleted (or, in a dry run, would delete)."""

    key: str
    size: int
    kind: str  # "pool" or "by-hash"
    age_seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "size": self.size,
            "kind": self.kind,
            "age_seconds": round(self.age_seconds),
        }


@dataclass
class GcResult:
    dry_run: bool
    suites: list[str] = field(default_factory=list)
    deleted: list[Collected] = field(default_factory=list)
    kept_referenced: int = 0  # candidates a suite (or a kept index) still names
    kept_young: int = 0  # unreferenced, but younger than the grace

    @property
    def bytes_freed(self) -> int:
        return sum(c.size for c in self.deleted)

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "suites": self.suites,
            "deleted": [c.to_json() for c in self.deleted],
            "bytes": self.bytes_freed,
            "kept_referenced": self.kept_referenced,
            "kept_young": self.kept_young,
        }


def _index_filenames(info: ObjectInfo, data: bytes) -> set[str]:
    """The pool files a by-hash object names, if it is a Packages index (else none)."""
    if "/binary-" not in info.key:
        return set()
    name = "x.xz" if data.startswith(_XZ_MAGIC) else "x.gz" if data.startswith(_GZ_MAGIC) else "x"
    try:
        return {e.filename for e in parse_packages(decompress(name, data), info.key)}
    except ArchiveIntegrityError:
        return set()  # not an index we can read (Contents, Translation…): names no file


def _read_references(
    archive: Archive, suites: Iterable[str]
) -> tuple[set[str], set[str], dict[str, float]]:
    """(pool files, by-hash keys) every suite's current root names, and when each root
    was written. A suite that does not read cleanly stops gc: its references are unknown."""
    pool: set[str] = set()
    by_hash: set[str] = set()
    root_written: dict[str, float] = {}
    for suite in suites:
        try:
            state = archive.read(suite)
        except DebopsError as exc:
            raise ArchiveIntegrityError(
                f"gc needs every suite's references and cannot read dists/{suite} ({exc}); "
                "fix it first (`debops-ci verify`, `debops-ci repair`)"
            ) from None
        if state.release is None:
            continue
        info = archive.store.head(layout.inrelease_key(suite))
        if info is not None:
            root_written[suite] = info.last_modified
        pool.update(e.filename for _c, e in state.all_entries())
        for listed in state.release.files.values():
            directory = listed.path.rsplit("/", 1)[0]
            by_hash.add(layout.in_suite(suite, f"{directory}/by-hash/SHA256/{listed.sha256}"))
    return pool, by_hash, root_written


def gc(archive: Archive, *, grace: timedelta = DEFAULT_GRACE, dry_run: bool = False) -> GcResult:
    """Delete what no suite needs any more and is older than `grace` (see the module)."""
    lease = max(DEFAULT_LEASE_SECONDS, archive.lease_seconds)
    if grace.total_seconds() <= lease:
        raise UsageError(
            f"--grace {int(grace.total_seconds())}s is too short: it must be longer than "
            f"the lock lease ({int(lease)}s) so files of a publish in flight are never "
            "collected; use e.g. --grace 2h"
        )
    archive.require_existing()
    result = GcResult(dry_run)
    with contextlib.ExitStack() as locks:
        suites = sorted(archive.suites())
        if not dry_run:
            archive.ensure_writable()
            for suite in suites:
                locks.enter_context(archive.lock(suite).held())
        result.suites = suites
        now = archive.now().timestamp()
        limit = grace.total_seconds()
        objects = [*archive.store.list_objects("pool/"), *archive.store.list_objects("dists/")]
        pool_refs, hash_refs, root_written = _read_references(archive, suites)

        doomed: list[Collected] = []
        kept_indexes: list[ObjectInfo] = []
        for info in objects:
            match = _BY_HASH.match(info.key)
            if match is None:
                continue
            if info.key in hash_refs:
                result.kept_referenced += 1
                continue
            superseded = root_written.get(match["suite"], 0.0)
            if now - info.last_modified < limit or now - superseded < limit:
                result.kept_young += 1
                kept_indexes.append(info)
                continue
            doomed.append(Collected(info.key, info.size, "by-hash", now - info.last_modified))

        def names(info: ObjectInfo) -> set[str]:
            try:
                return _index_filenames(info, archive.store.get(info.key).data)
            except NotFound:
                return set()

        with ThreadPoolExecutor(max_workers=8) as pool:
            for found in pool.map(names, kept_indexes):
                pool_refs |= found

        for info in objects:
            if not (info.key.startswith("pool/") or _LEGACY_DEB.match(info.key)):
                continue
            if info.key in pool_refs:
                result.kept_referenced += 1
            elif now - info.last_modified < limit:
                result.kept_young += 1
            else:
                doomed.append(Collected(info.key, info.size, "pool", now - info.last_modified))

        result.deleted = sorted(doomed, key=lambda c: c.key)
        if not dry_run and doomed:
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(lambda c: archive.store.delete(c.key), doomed))
    return result
