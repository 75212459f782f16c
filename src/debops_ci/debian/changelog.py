"""Reading and extending `debian/changelog` files.

Parsing and formatting go through python-debian (`debian.changelog`). A new
entry is *prepended* to the original bytes of the file: the rest of the file is
never re-serialised, so it stays byte-identical whatever its formatting quirks.
"""

from __future__ import annotations

import email.utils
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from debian.changelog import ChangeBlock, Changelog, ChangelogParseError
from debian.debian_support import Version

from debops_ci.debian.rules import PACKAGE_NAME_RE
from debops_ci.errors import BuildError

__all__ = [
    "ChangelogEntry",
    "format_entry",
    "maintainer_from_env",
    "parse_date",
    "prepend_entry",
    "read_top_entry",
    "rfc2822_date",
]

# dpkg's own rules for a source package name (one home: rules.py) and a distribution.
_SOURCE_NAME = PACKAGE_NAME_RE
_DISTRIBUTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_MAINTAINER = re.compile(r"^(?P<name>[^<>]*?)\s*<(?P<email>[^<>\s]+@[^<>\s]+)>$")


@dataclass(frozen=True)
class ChangelogEntry:
    """The top entry of a `debian/changelog`."""

    source: str
    version: str
    distributions: str
    urgency: str
    maintainer: str
    date: str

    @property
    def timestamp(self) -> datetime:
        """The entry's date as an aware datetime."""
        return parse_date(self.date)

    @property
    def epoch(self) -> int:
        """The entry's date in seconds since the epoch: the `SOURCE_DATE_EPOCH` of a build."""
        return int(self.timestamp.timestamp())


def rfc2822_date(when: datetime) -> str:
    """Format `when` the way `debian/changelog` wants it (RFC 2822, numeric zone).

    A naive datetime is taken to be UTC.
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return email.utils.format_datetime(when.replace(microsecond=0))


def parse_date(text: str) -> datetime:
    """Parse an RFC 2822 changelog date; raise ValueError when it is not one."""
    try:
        parsed = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not an RFC 2822 date: {text!r}") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"RFC 2822 date without a time zone: {text!r}")
    return parsed


def read_top_entry(path: Path) -> ChangelogEntry:
    """Parse the top entry of the changelog at `path`.

    Raises BuildError naming the file when it is missing or malformed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_top_entry(data, path)


def parse_top_entry(data: bytes, path: Path | str = "debian/changelog") -> ChangelogEntry:
    """Parse the top entry of changelog bytes (`path` is only used in messages)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BuildError(f"{path}: not valid UTF-8 (byte {exc.start}): fix the file") from exc
    try:
        changelog = Changelog(text, max_blocks=1, strict=True)
    except ChangelogParseError as exc:
        raise BuildError(f"{path}: malformed changelog ({exc}): fix its top entry") from exc
    blocks = list(changelog)
    if not blocks:
        raise BuildError(f"{path}: the changelog has no entry: add one")
    block = blocks[0]
    source = str(block.package or "")
    try:
        version = str(block.version) if block.version is not None else ""
        Version(version)
    except ValueError as exc:
        raise BuildError(f"{path}: invalid version in the top entry ({exc}): fix it") from exc
    author = str(block.author or "")
    date = str(block.date or "")
    if not _SOURCE_NAME.match(source):
        raise BuildError(f"{path}: invalid source package name {source!r}: fix the top entry")
    try:
        parse_date(date)
    except ValueError as exc:
        raise BuildError(f"{path}: the top entry has a bad date {date!r}: use RFC 2822") from exc
    return ChangelogEntry(
        source=source,
        version=version,
        distributions=str(block.distributions or ""),
        urgency=str(block.urgency or ""),
        maintainer=author,
        date=date,
    )


def maintainer_from_env(env: Mapping[str, str], fallback: str) -> str:
    """The maintainer of a new entry, as `dch` would pick it.

    `DEBFULLNAME` and `DEBEMAIL` together; or `DEBEMAIL` alone when it has the
    `Name <email>` form; otherwise `fallback` (the previous entry's maintainer).
    """
    full_name = env.get("DEBFULLNAME", "").strip()
    email_addr = env.get("DEBEMAIL", "").strip()
    match = _MAINTAINER.match(email_addr)
    if match:
        name = full_name or match.group("name").strip()
        if name:
            return f"{name} <{match.group('email')}>"
    elif full_name and email_addr and "@" in email_addr:
        return f"{full_name} <{email_addr}>"
    return fallback


def format_entry(
    source: str,
    version: str,
    distribution: str,
    changes: Sequence[str],
    maintainer: str,
    when: datetime,
    urgency: str = "medium",
) -> str:
    """Return the text of one changelog entry, ending with a blank line.

    `changes` are the bullet texts, without the leading `"  * "`.
    """
    if not _SOURCE_NAME.match(source):
        raise BuildError(f"invalid source package name {source!r}")
    if not _DISTRIBUTION.match(distribution):
        raise BuildError(f"invalid distribution {distribution!r} for a changelog entry")
    try:
        Version(version)
    except ValueError as exc:
        raise BuildError(f"invalid Debian version {version!r}") from exc
    if not _MAINTAINER.match(maintainer):
        raise BuildError(f"invalid maintainer {maintainer!r}: expected 'Name <email>'")
    lines = ["", *(f"  * {change}" for change in changes), ""]
    block = ChangeBlock(
        package=source,
        version=version,
        distributions=distribution,
        urgency=urgency,
        changes=lines,
        author=maintainer,
        date=rfc2822_date(when),
    )
    text = str(block)
    if not text.endswith("\n"):
        text += "\n"
    return text + "\n"


def prepend_entry(path: Path, entry: str, *, dry_run: bool = False) -> bytes:
    """Put `entry` on top of the changelog at `path`; return the new file's bytes.

    The original bytes follow the new entry unchanged. With `dry_run` nothing is
    written. The result is parsed again so that a bad entry never reaches the disk.
    """
    original = path.read_bytes()
    new = entry.encode("utf-8") + original
    parse_top_entry(new, path)
    if not dry_run:
        tmp = path.with_name(path.name + ".debops-ci.tmp")
        tmp.write_bytes(new)
        shutil.copymode(path, tmp)
        tmp.replace(path)
    return new
