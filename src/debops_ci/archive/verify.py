"""`verify`: check an archive the way a suspicious apt client would, and then some.

Errors make the archive unusable or untrustworthy for some client (bad signature, an
index or a .deb that does not match its hash, a rolled-back or expired root, a torn or
stale copy that clients without by-hash or InRelease would read). Warnings are
harmless leftovers (unreferenced files, a first publish still running); `gc` and a
rerun clear them.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from debops_ci.archive import layout
from debops_ci.archive.copies import release_copy_problem
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

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem: what kind, where, and what to know about it."""

    severity: str  # ERROR or WARNING
    kind: str  # e.g. "missing", "hash-mismatch", "signature", "torn-copy", "unreferenced"
    path: str  # the archive key it is about
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class VerifyReport:
    suites: list[str] = field(default_factory=list)
    packages: int = 0
    files_checked: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, kind: str, path: str, message: str) -> None:
        self.findings.append(Finding(ERROR, kind, path, _strip(path, message)))

    def warning(self, kind: str, path: str, message: str) -> None:
        self.findings.append(Finding(WARNING, kind, path, _strip(path, message)))


def _strip(path: str, message: str) -> str:
    """Messages of errors raised elsewhere often start with the path already."""
    prefix = f"{path}: "
    return message[len(prefix) :] if path and message.startswith(prefix) else message


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
                report.error("missing", key, "listed in InRelease but missing")
                continue
            # Like Debian, an uncompressed index may be listed but not stored: its
            # listed hash must then match the decompressed sibling.
            data = sibling
            if not _matches(data, listed):
                report.error(
                    "hash-mismatch",
                    f"dists/{suite}/{path}",
                    "the compressed indexes do not decompress to the listed hash (tampered?)",
                )
            continue
        report.files_checked += 1
        if not _matches(data, listed):
            report.error("hash-mismatch", key, "does not match its hash in InRelease (tampered?)")
            continue
        if release.by_hash:
            plain = layout.in_suite(suite, path)
            try:
                if store.get(plain).data != data:
                    report.error(
                        "torn-copy",
                        plain,
                        "stale plain copy: clients with by-hash off and mirrors read it; "
                        "run `debops-ci repair`",
                    )
            except NotFound:
                report.error("torn-copy", plain, "plain copy missing; run `debops-ci repair`")
        if "/binary-" in path and path.rsplit("/", 1)[1].startswith("Packages"):
            try:
                for entry in parse_packages(decompress(path, data), key):
                    entries.setdefault(entry.key, entry)
            except DebopsError as exc:
                report.error("index", key, str(exc))
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


def _check_pool_file(archive: Archive, entry: PackageEntry) -> tuple[str, str] | None:
    """(kind, message) of what is wrong with a pool file, or None."""
    try:
        data = archive.store.get(entry.filename).data
    except NotFound:
        return "missing", f"missing ({entry.package} {entry.version} {entry.architecture})"
    if len(data) != entry.size:
        return "hash-mismatch", f"size {len(data)} but the index says {entry.size} (replaced?)"
    if entry.sha256 and hashlib.sha256(data).hexdigest() != entry.sha256:
        return "hash-mismatch", "SHA256 does not match the index (replaced or corrupt)"
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
        report.error("missing", where, "missing")
        return set()
    if verifier is None:
        report.error("signature", where, "--force given, signature not checked")
        return set()
    try:
        content = verifier.verify_clearsigned(signed, where).content
        release = parse_release(content, where)
    except DebopsError as exc:
        report.error("signature", where, str(exc))
        return set()
    report.suites.append(suite)
    date = release.date
    problem = rolled_back(date, not_older_than)
    if problem:
        report.error("rolled-back", where, problem)
    valid_until = release.get("Valid-Until")
    if valid_until:
        expiry = parse_date(valid_until)
        if expiry is not None and expiry < datetime.now(UTC):
            report.error(
                "expired", where, f"expired (Valid-Until {valid_until}); run `debops-ci resign`"
            )
    torn = release_copy_problem(store, suite, content, verifier)
    if torn is not None:
        key, how = torn
        message = {
            "missing": "Release or Release.gpg missing",
            "stale": "differs from InRelease (stale copy)",
            "unsigned": "does not verify Release",
        }[how]
        # A missing one is named as Release, as a stale Release is.
        shown = layout.release_key(suite) if how == "missing" else key
        report.error("torn-copy", shown, f"{message}; run `debops-ci repair`")
    entries = _check_indexes(archive, suite, release, report)
    report.packages += len(entries)
    if check_files:
        with ThreadPoolExecutor(max_workers=8) as pool:
            checks = pool.map(lambda e: _check_pool_file(archive, e), entries)
            for entry, found in zip(entries, checks, strict=True):
                if found:
                    report.error(found[0], entry.filename, found[1])
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
            report.warning(
                "unfinished-suite",
                f"dists/{suite}/",
                "no InRelease yet (its first publish is running or was interrupted)",
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
                    report.warning(
                        "unreferenced", info.key, "not referenced by any suite (`gc` removes it)"
                    )
    return report
