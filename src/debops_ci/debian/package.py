"""Reading a .deb: its control paragraph, checked strictly, and its hashes.

Everything here runs before anything is written, so a bad file leaves the archive
untouched. The checks exist because control data flows into Packages indexes: a
blank line or a reserved field in it would let one package forge another's stanza.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from debops_ci.debian.container import read_control_file, read_layout
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
    "check_package_name",
    "check_version",
    "hash_file",
    "inspect_deb",
    "is_valid_version",
    "parse_control",
    "pool_prefix",
    "read_control",
    "read_deb_control",
    "strip_epoch",
]

FIELD_NAME_RE = re.compile(r"^[!-9;-~][!-9;-~]*$")

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
        archive_fields = [
            ("Filename", filename),
            ("Size", str(self.size)),
            ("MD5sum", self.md5),
            ("SHA256", self.sha256),
        ]
        return "\n".join(f"{n}: {v}" for n, v in canonical_order([*self.fields, *archive_fields]))


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
    if re.search(r"\n[ \t]*\n", body):
        raise PackageError(
            f"{what}: control file holds more than one paragraph (a blank line inside it)"
        )
    # One pass that checks every line and collects the fields (python-debian's Deb822
    # would re-parse what this loop has already split: 35 % of indexing time).
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
        collected.append([name, value.strip(" \t")])
    fields: list[tuple[str, str]] = []
    for name, first, *continuation in collected:
        lower = name.lower()
        if lower in RESERVED_FIELDS:
            raise PackageError(
                f"{what}: control field {name} is reserved for the archive; rebuild without it"
            )
        if continuation and lower in SINGLE_LINE_FIELDS:
            raise PackageError(f"{what}: control field {name} spans several lines")
        value = "\n".join([first, *(line.rstrip(" \t") for line in continuation)])
        value = value.strip(" \t")
        size = len(name.encode()) + 2 + len(value.encode())
        if size > MAX_FIELD_BYTES:
            raise PackageError(
                f"{what}: control field {name} is {size} bytes; the limit is {MAX_FIELD_BYTES} "
                "bytes per field (apt cannot parse longer stanzas)"
            )
        fields.append((name, value))
    return tuple(fields)


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


def read_deb_control(path: Path) -> DebControl:
    """Read and check the control data of a .deb (no hashing); raise PackageError."""
    what = path.name
    try:
        with open(path, "rb") as fh:
            file_size = os.fstat(fh.fileno()).st_size
            raw = read_control(path, fh, file_size)
    except FileNotFoundError:
        raise PackageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PackageError(f"{path}: is a directory, not a .deb") from None
    except OSError as exc:
        raise PackageError(f"{path}: cannot read ({exc.strerror})") from None
    fields = parse_control(raw, what)
    values = {name.lower(): value for name, value in fields}
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
        match = re.match(r"^(\S+)(?:\s+\((\S+)\))?$", source_field)
        if not match:
            raise PackageError(f"{what}: malformed Source field {source_field!r}")
        source = match.group(1)
        check_package_name(source, f"{what} (Source)")
        if match.group(2):
            check_version(match.group(2), f"{what} (Source version)")
    return DebControl(package, version, architecture, source, fields)


def inspect_deb(path: Path) -> DebPackage:
    """Read and check a .deb and hash it; raise PackageError naming the file and the problem."""
    control = read_deb_control(path)
    size, md5, sha256 = hash_file(path)
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
