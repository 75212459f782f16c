"""`verify`: check an archive the way a suspicious apt client would, and then some.

Errors make the archive unusable or untrustworthy (bad signature, an index or a .deb
that does not match its hash, a rolled-back root). Warnings are repairable leftovers
(stale plain copies after an interrupted publish, unreferenced files).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from debops_ci.archive import layout
from debops_ci.archive.indexes import PackageEntry, decompress, parse_packages
from debops_ci.archive.release import (
    ListedFile,
    ParsedRelease,
    parse_date,
    parse_release,
    rolled_back,
)
from debops_ci.archive.session import Archive
from debops_ci.archive.state import index_key
from debops_ci.errors import DebopsError
from debops_ci.storage import NotFound, Store


@dataclass
class VerifyReport:
    suites: list[str] = field(default_factory=list)
    packages: int = 0
    files_checked: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _matches(data: bytes, listed: ListedFile) -> bool:
    if len(data) != listed.size or hashlib.sha256(data).hexdigest() != listed.sha256:
        return False
    return not listed.md5 or hashlib.md5(data, usedforsecurity=False).hexdigest() == listed.md5


def _check_indexes(
    archive: Archive, suite: str, release: ParsedRelease, report: VerifyReport
) -> list[PackageEntry]:
    store = archive.store
    entries: dict[tuple[str, str, str], PackageEntry] = {}
    for path, listed in sorted(release.files.items()):
        key = index_key(suite, release, listed)
        try:
            data = store.get(key).data
        except NotFound:
            sibling = _compressed_sibling(store, suite, release, path)
            if sibling is None:
                report.errors.append(f"{key}: listed in InRelease but missing")
                continue
            # Like Debian, an uncompressed index may be listed but not stored: its
            # listed hash must then match the decompressed sibling.
            data = sibling
            if not _matches(data, listed):
                report.errors.append(
                    f"dists/{suite}/{path}: the compressed indexes do not decompress to the "
                    "listed hash (tampered?)"
                )
            continue
        report.files_checked += 1
        if not _matches(data, listed):
            report.errors.append(f"{key}: does not match its hash in InRelease (tampered?)")
            continue
        if release.by_hash:
            plain = layout.in_suite(suite, path)
            try:
                if store.get(plain).data != data:
                    report.warnings.append(
                        f"{plain}: stale plain copy (clients use by-hash; the next publish "
                        "rewrites it)"
                    )
            except NotFound:
                report.warnings.append(f"{plain}: plain copy missing")
        if "/binary-" in path and path.rsplit("/", 1)[1].startswith("Packages"):
            try:
                for entry in parse_packages(decompress(path, data), key):
                    entries.setdefault(entry.key, entry)
            except DebopsError as exc:
                report.errors.append(str(exc))
    return list(entries.values())


def _compressed_sibling(
    store: Store, suite: str, release: ParsedRelease, path: str
) -> bytes | None:
    """The decompressed bytes of a listed .xz/.gz twin of `path`, if one is stored."""
    for ext in (".xz", ".gz"):
        listed = release.files.get(path + ext)
        if listed is None:
            continue
        try:
            data = store.get(index_key(suite, release, listed)).data
        except NotFound:
            continue
        if _matches(data, listed):
            return decompress(path + ext, data)
    return None


def _check_pool_file(archive: Archive, entry: PackageEntry) -> str | None:
    try:
        data = archive.store.get(entry.filename).data
    except NotFound:
        return f"{entry.filename}: missing ({entry.package} {entry.version} {entry.architecture})"
    if len(data) != entry.size:
        return f"{entry.filename}: size {len(data)} but the index says {entry.size} (replaced?)"
    if entry.sha256 and hashlib.sha256(data).hexdigest() != entry.sha256:
        return f"{entry.filename}: SHA256 does not match the index (replaced or corrupt)"
    return None


def verify_suite(
    archive: Archive,
    suite: str,
    report: VerifyReport,
    *,
    not_older_than: datetime | None,
    check_files: bool,
) -> set[str]:
    """Check one suite; return the file names it references."""
    store = archive.store
    verifier = archive.verifier()
    where = f"dists/{suite}/InRelease"
    try:
        signed = store.get(layout.inrelease_key(suite)).data
    except NotFound:
        report.errors.append(f"{where}: missing")
        return set()
    if verifier is None:
        report.errors.append(f"{where}: --force given, signature not checked")
        return set()
    try:
        content = verifier.verify_clearsigned(signed, where).content
        release = parse_release(content, where)
    except DebopsError as exc:
        report.errors.append(str(exc))
        return set()
    report.suites.append(suite)
    date = release.date
    problem = rolled_back(date, not_older_than)
    if problem:
        report.errors.append(f"{where}: {problem}")
    valid_until = release.get("Valid-Until")
    if valid_until:
        expiry = parse_date(valid_until)
        if expiry is not None and expiry < datetime.now(UTC):
            report.errors.append(f"{where}: expired (Valid-Until {valid_until})")
    try:
        plain_release = store.get(layout.release_key(suite)).data
        if plain_release != content:
            report.warnings.append(f"dists/{suite}/Release: differs from InRelease (stale copy)")
        else:
            gpg_sig = store.get(layout.release_gpg_key(suite)).data
            if not verifier.verify_detached(plain_release, gpg_sig):
                report.warnings.append(f"dists/{suite}/Release.gpg: does not verify Release")
    except NotFound:
        report.warnings.append(f"dists/{suite}/Release or Release.gpg: missing")
    entries = _check_indexes(archive, suite, release, report)
    report.packages += len(entries)
    if check_files:
        with ThreadPoolExecutor(max_workers=8) as pool:
            for problem in pool.map(lambda e: _check_pool_file(archive, e), entries):
                if problem:
                    report.errors.append(problem)
        report.files_checked += len(entries)
    return {e.filename for e in entries}


def _never_committed(store: Store, suite: str) -> bool:
    """A suite directory (a lock, by-hash files) whose root was never written."""
    return (
        store.head(layout.inrelease_key(suite)) is None
        and store.head(layout.release_key(suite)) is None
    )


def verify(
    archive: Archive,
    suites: list[str] | None = None,
    *,
    not_older_than: datetime | None = None,
    check_files: bool = True,
) -> VerifyReport:
    report = VerifyReport()
    every_suite = archive.suites()
    chosen = suites or every_suite
    referenced: set[str] = set()
    for suite in chosen:
        if not suites and _never_committed(archive.store, suite):
            # A first publish into this suite holds its lock or died before its commit:
            # apt sees no suite yet, and rerunning that publish creates it.
            report.warnings.append(
                f"dists/{suite}/: no InRelease yet (its first publish is running or was "
                "interrupted)"
            )
            continue
        referenced |= verify_suite(
            archive, suite, report, not_older_than=not_older_than, check_files=check_files
        )
    if not suites:
        # Unreferenced files only make sense when every suite was read.
        for prefix in ("pool/", "dists/"):
            for info in archive.store.list_objects(prefix):
                if info.key.endswith(".deb") and info.key not in referenced:
                    report.warnings.append(f"{info.key}: not referenced by any suite")
    return report
