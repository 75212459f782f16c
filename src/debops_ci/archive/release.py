"""Release files: build them from index files, read them back. Pure, no I/O."""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from debian.deb822 import Release

from debops_ci.archive.indexes import IndexFile
from debops_ci.errors import ArchiveIntegrityError


@dataclass(frozen=True)
class ReleaseMeta:
    origin: str
    label: str
    suite: str
    codename: str
    date: datetime
    architectures: Sequence[str]
    components: Sequence[str]
    valid_until: datetime | None = None
    description: str | None = None


@dataclass(frozen=True)
class ListedFile:
    path: str
    size: int
    sha256: str
    md5: str = ""


@dataclass
class ParsedRelease:
    fields: dict[str, str]
    files: dict[str, ListedFile] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name.lower(), default)

    @property
    def by_hash(self) -> bool:
        return self.get("Acquire-By-Hash").lower() == "yes"

    @property
    def architectures(self) -> list[str]:
        return self.get("Architectures").split()

    @property
    def components(self) -> list[str]:
        return self.get("Components").split()

    @property
    def date(self) -> datetime | None:
        return parse_date(self.get("Date"))


def format_date(moment: datetime) -> str:
    """RFC 2822 in UTC, the form apt expects: `Sat, 28 Nov 2026 01:20:39 UTC`."""
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S UTC")


def parse_date(text: str) -> datetime | None:
    if not text:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(text.replace("UTC", "+0000"))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def render_release(meta: ReleaseMeta, files: Sequence[IndexFile]) -> bytes:
    lines = [
        f"Origin: {meta.origin}",
        f"Label: {meta.label}",
        f"Suite: {meta.suite}",
        f"Codename: {meta.codename}",
        f"Date: {format_date(meta.date)}",
    ]
    if meta.valid_until is not None:
        lines.append(f"Valid-Until: {format_date(meta.valid_until)}")
    lines += [
        f"Architectures: {' '.join(meta.architectures)}",
        f"Components: {' '.join(meta.components)}",
    ]
    if meta.description:
        lines.append(f"Description: {meta.description}")
    lines.append("Acquire-By-Hash: yes")
    ordered = sorted(files, key=lambda f: f.path)
    width = max((len(str(f.size)) for f in ordered), default=1)
    lines.append("MD5Sum:")
    lines += [f" {f.md5} {f.size:>{width}} {f.path}" for f in ordered]
    lines.append("SHA256:")
    lines += [f" {f.sha256} {f.size:>{width}} {f.path}" for f in ordered]
    return ("\n".join(lines) + "\n").encode("utf-8")


def parse_release(content: bytes, where: str) -> ParsedRelease:
    try:
        paragraph = Release(content.decode("utf-8"))
    except UnicodeDecodeError:
        raise ArchiveIntegrityError(f"{where}: Release is not valid UTF-8") from None
    fields = {k.lower(): str(v) for k, v in paragraph.items() if isinstance(v, str)}
    parsed = ParsedRelease(fields)
    md5s = {item["name"]: item.get("md5sum", "") for item in paragraph.get("MD5Sum", [])}
    for item in paragraph.get("SHA256", []):
        try:
            size = int(item["size"])
        except (KeyError, ValueError):
            raise ArchiveIntegrityError(f"{where}: malformed SHA256 line in Release") from None
        name = item["name"]
        parsed.files[name] = ListedFile(name, size, item["sha256"], md5s.get(name, ""))
    if not parsed.get("Suite") and not parsed.get("Codename"):
        raise ArchiveIntegrityError(f"{where}: Release names neither Suite nor Codename")
    return parsed


def next_date(now: datetime, previous: datetime | None) -> datetime:
    """Never before the previous Release's Date, even if this runner's clock lags.

    Not strictly after: apt refuses a Release dated more than 10 s ahead, and bumping by a
    second per commit would push a burst of publishes into the future. Rollback checks
    only need the Date never to go backwards.
    """
    now = now.replace(microsecond=0)
    if previous is not None and now < previous:
        return previous
    return now


def rolled_back(date: datetime | None, floor: datetime | None) -> str | None:
    """Why a root dated `date` fails a --not-older-than `floor`, or None if it passes."""
    if floor is None or (date is not None and date >= floor):
        return None
    shown = format_date(date) if date else "none (no InRelease)"
    return f"Date {shown} is older than {format_date(floor)}: rolled back"
