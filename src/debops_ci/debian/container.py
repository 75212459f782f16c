"""The .deb container: dpkg's ar member rules, and the control file read in bounded memory.

The member rules are dpkg's own (`src/deb/extract.c`, `lib/dpkg/ar.c`, as of dpkg
1.23.6), so that nothing dpkg refuses gets published:

1. `!<arch>\\n`, and an even file size;
2. `debian-binary` first, holding a format version `2.<minor>` ended by a newline;
3. then, skipping members whose name starts with `_` wherever they are,
   `control.tar` (uncompressed, `.gz`, `.xz` or `.zst`) before any other member,
   exactly once, not empty;
4. then `data.tar` (uncompressed, `.gz`, `.xz`, `.zst`, `.bz2` or `.lzma`), not empty;
   dpkg reads nothing after it, and neither do we.

The control archive is decompressed as a stream, through a cap
(:data:`~debops_ci.debian.limits.MAX_CONTROL_TAR_BYTES`), and `./control` itself is
refused from its tar header when it is over the paragraph limit: a small .deb holding a
1 GiB member costs neither the memory nor the time to inflate it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import lzma
import re
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

from debops_ci.debian.limits import MAX_CONTROL_TAR_BYTES, MAX_PARAGRAPH_BYTES
from debops_ci.errors import PackageError

__all__ = ["ArMember", "DebLayout", "read_control_file", "read_layout"]

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_CONTROL = "control.tar"
_DATA = "data.tar"
_CONTROL_COMPRESSIONS = ("", ".gz", ".xz", ".zst")
_DATA_COMPRESSIONS = ("", ".gz", ".xz", ".zst", ".bz2", ".lzma")
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ArMember:
    """One member of the ar archive: its name and where its bytes are."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class DebLayout:
    """The members dpkg reads from a .deb."""

    format_version: tuple[int, int]
    control: ArMember
    data: ArMember


def _refuse(what: str, problem: str) -> PackageError:
    return PackageError(f"{what}: {problem}; dpkg refuses such a .deb, rebuild it with dpkg-deb")


def _member_size(field: bytes, name: str, what: str) -> int:
    """dpkg's reading of the size field: leading spaces, then digits up to a space."""
    digits = field.decode("latin-1").lstrip(" ").split(" ", 1)[0]
    if not re.fullmatch(r"[0-9]*", digits):
        raise _refuse(what, f"ar member {name} has a malformed size field {field!r}")
    return int(digits or "0")


def _format_version(content: bytes, what: str) -> tuple[int, int]:
    """dpkg's `deb_version_parse`: `<major>.<minor>` then a newline or NUL."""
    text = content.split(b"\0", 1)[0]
    if b"\n" not in text:
        raise _refuse(what, "debian-binary has no newline")
    line = text.split(b"\n", 1)[0].decode("latin-1")
    major, dot, minor = line.partition(".")
    if not (dot and major.isdigit() and minor.isdigit() and major.isascii() and minor.isascii()):
        raise _refuse(what, f"debian-binary holds a malformed format version {line[:20]!r}")
    version = (int(major), int(minor))
    if version[0] != 2:
        raise _refuse(what, f"format version {line} is not 2.x")
    return version


def _members(fh: BinaryIO, file_size: int, what: str) -> Iterator[ArMember]:
    offset = len(_AR_MAGIC)
    while True:
        fh.seek(offset)
        header = fh.read(_AR_HEADER)
        if not header:
            return
        if len(header) < _AR_HEADER or header[58:60] != b"`\n":
            raise PackageError(f"{what}: truncated or corrupt .deb (bad ar member header)")
        name = header[:16].decode("latin-1").rstrip(" ")
        name = name.removesuffix("/")
        size = _member_size(header[48:58], name, what)
        start = offset + _AR_HEADER
        if start + size > file_size:
            raise PackageError(f"{what}: truncated .deb ({name} is cut short)")
        yield ArMember(name, start, size)
        offset = start + size + (size & 1)


def read_layout(fh: BinaryIO, file_size: int, what: str) -> DebLayout:
    """Walk the ar members as dpkg does; raise PackageError where dpkg would refuse."""
    fh.seek(0)
    if fh.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise PackageError(f"{what}: not a Debian package (.deb files are ar archives)")
    if file_size % 2:
        raise _refuse(what, "the archive has an odd size (truncated or corrupt)")
    version: tuple[int, int] | None = None
    control: ArMember | None = None
    for member in _members(fh, file_size, what):
        name = member.name
        if version is None:
            if name != "debian-binary":
                raise _refuse(what, f"the first member is {name!r}, not debian-binary")
            fh.seek(member.offset)
            version = _format_version(fh.read(member.size), what)
        elif name.startswith("_"):
            continue  # dpkg: "noncritical" members, skipped
        elif name.startswith(_CONTROL):
            if name[len(_CONTROL) :] not in _CONTROL_COMPRESSIONS:
                raise _refuse(what, f"member {name} uses an unknown compression")
            if control is not None:
                raise _refuse(what, "it has two control members")
            if member.size == 0:
                raise _refuse(what, f"member {name} is empty")
            control = member
        elif control is None:
            raise _refuse(what, f"member {name} before control.tar")
        elif name.startswith(_DATA):
            if name[len(_DATA) :] not in _DATA_COMPRESSIONS:
                raise _refuse(what, f"member {name} uses an unknown compression")
            if member.size == 0:
                raise _refuse(what, f"member {name} is empty")
            return DebLayout(version, control, member)
        else:
            raise _refuse(what, f"member {name} before data.tar")
    if version is None:
        raise PackageError(f"{what}: not a Debian binary package (no debian-binary member)")
    if control is None:
        raise PackageError(f"{what}: .deb has no control archive")
    raise PackageError(f"{what}: .deb has no data archive")


class _Region(io.RawIOBase):
    """`size` bytes of `fh` from `offset`, read in place (never loaded whole)."""

    def __init__(self, fh: BinaryIO, offset: int, size: int) -> None:
        self._fh = fh
        self._position = offset
        self._end = offset + size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._end - self._position)
        if want <= 0:
            return 0
        self._fh.seek(self._position)
        data = self._fh.read(want)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


class _Capped(io.RawIOBase):
    """Decompressed bytes, refused past `cap`: the bound on a decompression bomb."""

    def __init__(self, inner: IO[bytes], cap: int, what: str) -> None:
        self._inner = inner
        self._left = cap
        self._cap = cap
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise PackageError(
                f"{self._what}: control archive decompresses to more than {self._cap} bytes "
                f"(the limit is {self._cap} bytes); is it a decompression bomb?"
            )
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


@contextlib.contextmanager
def _zstd_stream(region: _Region) -> Iterator[IO[bytes]]:
    """zstd through the `zstd` tool (no zstd in Python's standard library before 3.14)."""
    try:
        proc = subprocess.Popen(
            ["zstd", "-d", "-c", "-q"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        raise PackageError(
            "this .deb's control archive is zstd-compressed: install zstd (apt-get install zstd)"
        ) from None
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin

    def feed() -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := region.read(_CHUNK):
                stdin.write(chunk)
        with contextlib.suppress(OSError):
            stdin.close()

    feeder = threading.Thread(target=feed, name="debops-zstd-feed", daemon=True)
    feeder.start()
    try:
        yield proc.stdout
    finally:
        proc.kill()  # done reading: whatever is left is not needed
        proc.stdout.close()
        feeder.join()
        proc.wait()


@contextlib.contextmanager
def _decompressed(region: _Region, name: str) -> Iterator[IO[bytes]]:
    raw = cast(IO[bytes], region)
    if name.endswith(".gz"):
        with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            yield cast(IO[bytes], gz)
    elif name.endswith(".xz"):
        with lzma.LZMAFile(raw, mode="rb") as xz:
            yield cast(IO[bytes], xz)
    elif name.endswith(".zst"):
        with _zstd_stream(region) as zst:
            yield zst
    else:
        yield raw


def read_control_file(fh: BinaryIO, member: ArMember, what: str) -> bytes:
    """The `./control` file of the control archive `member`, within the limits."""
    region = _Region(fh, member.offset, member.size)
    try:
        with (
            _decompressed(region, member.name) as stream,
            tarfile.open(fileobj=_Capped(stream, MAX_CONTROL_TAR_BYTES, what), mode="r|") as tar,
        ):
            for info in tar:
                if info.name not in ("./control", "control"):
                    continue
                if not info.isfile():
                    raise PackageError(f"{what}: the control file is not a regular file")
                if info.size > MAX_PARAGRAPH_BYTES:
                    raise PackageError(
                        f"{what}: control data is {info.size} bytes; the limit is "
                        f"{MAX_PARAGRAPH_BYTES} bytes (apt cannot parse longer stanzas)"
                    )
                extracted = tar.extractfile(info)
                if extracted is not None:
                    return extracted.read()
    except PackageError:
        raise
    except (OSError, EOFError, lzma.LZMAError, tarfile.TarError):
        raise PackageError(f"{what}: corrupt control archive in .deb") from None
    raise PackageError(f"{what}: .deb has no control file")
