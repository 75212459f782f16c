"""Reading a .deb: its control paragraph, checked strictly, and its hashes.

Everything here runs before anything is written, so a bad file leaves the archive
untouched. The checks exist because control data flows into Packages indexes: a
blank line or a reserved field in it would let one package forge another's stanza.

A .deb is opened once: up to 1 MiB it is read whole, with one call, and hashed from
the bytes its control data came from; a larger one is read in place and hashed from
the same handle. `inspect_debs` reads many small ones a batch at a time, one step over
the whole batch after the other (indexing 10,000 small .debs is ~55 µs of CPU each,
a third of it in liblzma).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from debops_ci.debian.container import (
    control_of,
    layout_of,
    read_control_file,
    read_layout,
)
from debops_ci.debian.fieldorder import canonical_order
from debops_ci.debian.limits import MAX_FIELD_BYTES, MAX_PARAGRAPH_BYTES
from debops_ci.debian.rules import (
    ARCH_RE,
    PACKAGE_NAME_RE,
    VERSION_RE,
    check_architecture,
    check_package_name,
    check_version,
    deb_filename,
    is_valid_version,
    pool_path,
    pool_prefix,
    strip_epoch,
)
from debops_ci.errors import PackageError

__all__ = [
    # The Debian rules live in debops_ci.debian.rules; re-exported for older callers.
    "ARCH_RE",
    "FIELD_NAME_RE",
    "PACKAGE_NAME_RE",
    "REQUIRED_FIELDS",
    "RESERVED_FIELDS",
    "SINGLE_LINE_FIELDS",
    "VERSION_RE",
    "DebControl",
    "DebPackage",
    "check_architecture",
    "check_control",
    "check_package_name",
    "check_version",
    "hash_file",
    "inspect_deb",
    "inspect_debs",
    "is_valid_version",
    "parse_control",
    "pool_prefix",
    "read_control",
    "read_deb_control",
    "strip_epoch",
]

FIELD_NAME_RE = re.compile(r"^[!-9;-~][!-9;-~]*$")
_FIELD = r"[!-9;-~]+:[^\n]*(?:\n[ \t][^\n]*)*"  # a name line and its continuation lines
_BODY_RE = re.compile(rf"{_FIELD}(?:\n{_FIELD})*")
_FIELD_RE = re.compile(r"([!-9;-~]+):([^\n]*)((?:\n[ \t][^\n]*)*)")
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")
_SOURCE_RE = re.compile(r"^(\S+)(?:\s+\((\S+)\))?$")
_WHOLE_FILE = 1 << 20  # bytes: a .deb up to this size is read in one call, hashed from memory
_HASH_CHUNK = 1 << 20
_ARCHIVE_FIELDS = ("Filename", "Size", "MD5sum", "SHA256")  # what `stanza` adds, in order
_CACHED_ORDERS = 1024
_ORDERS: dict[tuple[str, ...], tuple[int, ...]] = {}
_BATCH = 32  # small .debs read step by step together (at most 32 MiB held)

# Fields the archive computes; a .deb that carries them is trying to forge them.
RESERVED_FIELDS = frozenset(
    f.lower() for f in ("Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512", "Description-md5")
)
REQUIRED_FIELDS = ("Package", "Version", "Architecture")
# Fields whose value must be a single line.
SINGLE_LINE_FIELDS = frozenset(
    f.lower() for f in ("Package", "Version", "Architecture", "Source", "Section", "Priority")
)


@dataclass(frozen=True)
class DebPackage:
    """One inspected .deb, ready to be indexed."""

    path: Path
    package: str
    version: str
    architecture: str
    source: str
    fields: tuple[tuple[str, str], ...]  # control fields in their original order
    size: int
    md5: str
    sha256: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.package, self.version, self.architecture)

    @property
    def canonical_name(self) -> str:
        return deb_filename(self.package, self.version, self.architecture)

    def pool_path(self, component: str) -> str:
        return pool_path(component, self.source, self.package, self.version, self.architecture)

    def stanza(self, filename: str) -> str:
        """The Packages stanza, in apt-ftparchive's canonical field order (Package first)."""
        fields = [
            *self.fields,
            ("Filename", filename),
            ("Size", str(self.size)),
            ("MD5sum", self.md5),
            ("SHA256", self.sha256),
        ]
        return "\n".join([": ".join(fields[i]) for i in _stanza_order(self.fields)])


def _stanza_order(fields: tuple[tuple[str, str], ...]) -> tuple[int, ...]:
    """Where each field of a stanza goes (`canonical_order`), by the names alone: .debs
    share a few layouts, so each is sorted once."""
    names = tuple(name for name, _ in fields)
    order = _ORDERS.get(names)
    if order is None:
        numbered = [(name, str(i)) for i, name in enumerate([*names, *_ARCHIVE_FIELDS])]
        order = tuple(int(i) for _, i in canonical_order(numbered))
        if len(_ORDERS) < _CACHED_ORDERS:
            _ORDERS[names] = order
    return order


def hash_file(path: Path) -> tuple[int, str, str]:
    """Size, MD5 and SHA-256 in one pass over the file."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return size, md5.hexdigest(), sha256.hexdigest()


def parse_control(raw: bytes, what: str) -> tuple[tuple[str, str], ...]:
    """Parse one control paragraph strictly; refuse anything that could inject a stanza."""
    return _parse(raw, what)[0]


def _parse(raw: bytes, what: str) -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
    """The fields in order, and their values by lower-case name."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PackageError(f"{what}: control file is not valid UTF-8") from None
    if "\r" in text or "\x00" in text:
        raise PackageError(f"{what}: control file contains carriage returns or NUL bytes")
    if len(raw) > MAX_PARAGRAPH_BYTES:
        raise PackageError(
            f"{what}: control data is {len(raw)} bytes; the limit is {MAX_PARAGRAPH_BYTES} "
            "bytes (apt cannot parse longer stanzas)"
        )
    body = text.strip("\n")
    if not body:
        raise PackageError(f"{what}: control file is empty")
    if _BLANK_LINE_RE.search(body):
        raise PackageError(
            f"{what}: control file holds more than one paragraph (a blank line inside it)"
        )
    # Well-formed lines (the usual case) are split by one regular expression; anything
    # else goes line by line, to name the first bad line.
    if _BODY_RE.fullmatch(body):
        split: list[tuple[str, str, str]] = _FIELD_RE.findall(body)
    else:
        split = _split_lines(body, what)
    fields: list[tuple[str, str]] = []
    values: dict[str, str] = {}
    spanning: list[str] = []
    for name, first, continuation in split:
        lower = name.lower()
        if lower in values:
            raise PackageError(f"{what}: control field {name} appears twice")
        if continuation:
            lines = continuation.split("\n")[1:]
            if not all(line.strip() for line in lines):
                raise PackageError(f"{what}: control file holds a blank continuation line")
            value = "\n".join([first.strip(" \t"), *(line.rstrip(" \t") for line in lines)])
            value = value.strip(" \t")
            spanning.append(lower)
        else:
            value = first.strip(" \t")
        values[lower] = value
        fields.append((name, value))
    # A field is at most the whole file plus a space: short files skip the size check.
    sized = len(raw) + 1 > MAX_FIELD_BYTES
    if (
        sized
        or not RESERVED_FIELDS.isdisjoint(values)
        or not SINGLE_LINE_FIELDS.isdisjoint(spanning)
    ):
        _check_fields(fields, spanning, what)
    return tuple(fields), values


def _check_fields(fields: list[tuple[str, str]], spanning: list[str], what: str) -> None:
    """The per-field rules, in field order: reserved names, single lines, sizes."""
    for name, value in fields:
        lower = name.lower()
        if lower in RESERVED_FIELDS:
            raise PackageError(
                f"{what}: control field {name} is reserved for the archive; rebuild without it"
            )
        if lower in spanning and lower in SINGLE_LINE_FIELDS:
            raise PackageError(f"{what}: control field {name} spans several lines")
        size = len(name.encode()) + 2 + len(value.encode())
        if size > MAX_FIELD_BYTES:
            raise PackageError(
                f"{what}: control field {name} is {size} bytes; the limit is {MAX_FIELD_BYTES} "
                "bytes per field (apt cannot parse longer stanzas)"
            )


def _split_lines(body: str, what: str) -> list[tuple[str, str, str]]:
    """`(name, first line's value, "\\n"-led continuation lines)` per field, line by line.

    The checks of the loop in `_parse` that depend on line order are made here, in
    line order, so that the first bad line is the one named.
    """
    collected: list[list[str]] = []
    seen: set[str] = set()
    for line in body.split("\n"):
        if line[:1] in (" ", "\t"):
            if not collected:
                raise PackageError(f"{what}: control file starts with a continuation line")
            if not line.strip():
                raise PackageError(f"{what}: control file holds a blank continuation line")
            collected[-1].append(line)
            continue
        name, sep, value = line.partition(":")
        if not sep or not FIELD_NAME_RE.match(name):
            raise PackageError(f"{what}: malformed control line {line[:60]!r}")
        if name.lower() in seen:
            raise PackageError(f"{what}: control field {name} appears twice")
        seen.add(name.lower())
        collected.append([name, value])
    return [
        (name, first, "".join("\n" + line for line in rest)) for name, first, *rest in collected
    ]


def read_control(path: Path, fh: BinaryIO, file_size: int) -> bytes:
    """The raw control file of an open .deb, its members checked as dpkg checks them."""
    layout = read_layout(fh, file_size, path.name)
    return read_control_file(fh, layout.control, path.name)


@dataclass(frozen=True)
class DebControl:
    """What a .deb says about itself: its checked control fields and the names in them."""

    package: str
    version: str
    architecture: str
    source: str
    fields: tuple[tuple[str, str], ...]  # control fields in the .deb's order


def check_control(raw: bytes, what: str) -> DebControl:
    """Parse and check a raw control file: the fields, the names and versions in them."""
    fields, values = _parse(raw, what)
    for required in REQUIRED_FIELDS:
        if not values.get(required.lower()):
            raise PackageError(f"{what}: control lacks the {required} field")
    package = values["package"]
    version = values["version"]
    architecture = values["architecture"]
    check_package_name(package, what)
    check_version(version, what)
    check_architecture(architecture, what)
    source = package
    if "source" in values:
        source_field = values["source"]
        match = _SOURCE_RE.match(source_field)
        if not match:
            raise PackageError(f"{what}: malformed Source field {source_field!r}")
        source = match.group(1)
        check_package_name(source, f"{what} (Source)")
        if match.group(2):
            check_version(match.group(2), f"{what} (Source version)")
    return DebControl(package, version, architecture, source, fields)


def _read_whole(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    while len(data) < size and (more := os.read(fd, size - len(data))):
        data += more
    return data


def _hash_fd(fd: int) -> tuple[int, str, str]:
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    size = 0
    while chunk := os.read(fd, _HASH_CHUNK):
        md5.update(chunk)
        sha256.update(chunk)
        size += len(chunk)
    return size, md5.hexdigest(), sha256.hexdigest()


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PackageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PackageError(f"{path}: is a directory, not a .deb") from None
    except OSError as exc:
        raise PackageError(f"{path}: cannot read ({exc.strerror})") from None


def _unreadable(path: Path, exc: OSError) -> PackageError:
    if isinstance(exc, IsADirectoryError):
        return PackageError(f"{path}: is a directory, not a .deb")
    return PackageError(f"{path}: cannot read ({exc.strerror})")


def _read_small(path: Path) -> bytes | None:
    """The whole file when it is small (read with one call), else None."""
    fd = _open(path)
    try:
        size = os.fstat(fd).st_size
        return _read_whole(fd, size) if size <= _WHOLE_FILE else None
    except OSError as exc:
        raise _unreadable(path, exc) from None
    finally:
        os.close(fd)


def _control_in(data: bytes, what: str) -> bytes:
    """The raw control file of a .deb held in memory."""

    def read_at(n: int, offset: int) -> bytes:
        return data[offset : offset + n]

    return control_of(read_at, layout_of(read_at, len(data), what).control, what)


def _read_deb(path: Path, hashing: bool) -> tuple[DebControl, int, str, str]:
    """Open the .deb once: check its members and control file, hash the same bytes."""
    what = path.name
    fd = _open(path)
    try:
        size = os.fstat(fd).st_size
        md5 = sha256 = ""
        if size <= _WHOLE_FILE:
            data = _read_whole(fd, size)
            size = len(data)
            raw = _control_in(data, what)
            if hashing:
                md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
                sha256 = hashlib.sha256(data).hexdigest()
        else:

            def read_at(n: int, offset: int) -> bytes:
                return os.pread(fd, n, offset)

            raw = control_of(read_at, layout_of(read_at, size, what).control, what)
            if hashing:
                size, md5, sha256 = _hash_fd(fd)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    finally:
        os.close(fd)
    return check_control(raw, what), size, md5, sha256


def inspect_debs(paths: Sequence[Path]) -> list[DebPackage]:
    """`inspect_deb` on every path, in order; the first bad file (in order) raises.

    Small files go in batches, one step at a time over the batch (read every file,
    then every control archive, then every control file, then every hash): the same
    work as file by file, with the caches warm for each step (~15 % less CPU).
    """
    packages: list[DebPackage] = []
    for start in range(0, len(paths), _BATCH):
        packages += _inspect_batch(paths[start : start + _BATCH])
    return packages


def _inspect_batch(paths: Sequence[Path]) -> list[DebPackage]:
    failed: dict[int, PackageError] = {}
    datas: dict[int, bytes] = {}
    large: list[int] = []
    for i, path in enumerate(paths):
        try:
            data = _read_small(path)
        except PackageError as exc:
            failed[i] = exc
            continue
        if data is None:
            large.append(i)
        else:
            datas[i] = data
    raws: dict[int, bytes] = {}
    for i, data in datas.items():
        try:
            raws[i] = _control_in(data, paths[i].name)
        except PackageError as exc:
            failed[i] = exc
    checked: dict[int, DebControl] = {}
    for i, raw in raws.items():
        try:
            checked[i] = check_control(raw, paths[i].name)
        except PackageError as exc:
            failed[i] = exc
    controls: dict[int, tuple[DebControl, int, str, str]] = {}
    for i, control in checked.items():
        data = datas[i]
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        controls[i] = (control, len(data), md5, hashlib.sha256(data).hexdigest())
    for i in large:
        try:
            controls[i] = _read_deb(paths[i], hashing=True)
        except PackageError as exc:
            failed[i] = exc
    if failed:
        raise failed[min(failed)]
    return [_package(path, *controls[i]) for i, path in enumerate(paths)]


def _package(path: Path, control: DebControl, size: int, md5: str, sha256: str) -> DebPackage:
    return DebPackage(
        path,
        control.package,
        control.version,
        control.architecture,
        control.source,
        control.fields,
        size,
        md5,
        sha256,
    )


def read_deb_control(path: Path) -> DebControl:
    """Read and check the control data of a .deb (no hashing); raise PackageError."""
    return _read_deb(path, hashing=False)[0]


def inspect_deb(path: Path) -> DebPackage:
    """Read and check a .deb and hash it; raise PackageError naming the file and the problem."""
    return _package(path, *_read_deb(path, hashing=True))
