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

Everything reads through a `ReadAt` (`read_at(size, offset) -> bytes`): `os.pread` on
an open file, or slices of a file already read whole, so that a small .deb is read
with one system call and hashed from the same bytes. The tar headers of the control
archive are decoded here, with every check `tarfile` makes on the headers it reads
(checksum, every number field, names and types as `tarfile` builds them); a header
this decoder does not handle (GNU long names, pax, sparse, base-256 numbers) hands the
whole member to `tarfile`, as before.
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
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

from debops_ci.debian.limits import MAX_CONTROL_TAR_BYTES, MAX_PARAGRAPH_BYTES
from debops_ci.errors import PackageError

__all__ = [
    "ArMember",
    "DebLayout",
    "ReadAt",
    "control_of",
    "layout_of",
    "read_control_file",
    "read_layout",
]

ReadAt = Callable[[int, int], bytes]
"""`read_at(size, offset)`: up to `size` bytes from `offset` (fewer only at the end)."""

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_CONTROL = "control.tar"
_DATA = "data.tar"
_CONTROL_COMPRESSIONS = ("", ".gz", ".xz", ".zst")
_DATA_COMPRESSIONS = ("", ".gz", ".xz", ".zst", ".bz2", ".lzma")
_CHUNK = 64 * 1024
_DIGITS = re.compile(r"[0-9]*")

_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_CONTROL_NAMES = ("./control", "control")
# tarfile's type sets (REGULAR_TYPES, SUPPORTED_TYPES); types it hands to special
# processing (GNU long names, sparse files, pax headers) are left to tarfile itself.
_REGULAR = frozenset((b"0", b"\0", b"7"))
_NO_DATA = frozenset((b"1", b"2", b"3", b"4", b"5", b"6"))
_TARFILE_ONLY = frozenset((b"L", b"K", b"S", b"x", b"g", b"X"))
# The number fields tarfile decodes from every header (size and chksum apart).
_NUMBER_FIELDS = (
    slice(100, 108),  # mode
    slice(108, 116),  # uid
    slice(116, 124),  # gid
    slice(136, 148),  # mtime
    slice(329, 337),  # devmajor
    slice(337, 345),  # devminor
)

# Decoded number fields, and sets of the other number fields known to decode: tar
# headers repeat them (modes, owners, dates), so each distinct value is decoded once.
_CACHED = 4096
_NUMBERS: dict[bytes, int] = {}
_GOOD_NUMBERS: set[bytes] = set()


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
    plain = field.strip(b" ")
    if plain.isdigit():  # the usual case: digits, padded with spaces
        return int(plain)
    digits = field.decode("latin-1").lstrip(" ").split(" ", 1)[0]
    if not _DIGITS.fullmatch(digits):
        raise _refuse(what, f"ar member {name} has a malformed size field {field!r}")
    return int(digits or "0")


def _format_version(content: bytes, what: str) -> tuple[int, int]:
    """dpkg's `deb_version_parse`: `<major>.<minor>` then a newline or NUL."""
    if content == b"2.0\n":  # what every dpkg-deb writes
        return (2, 0)
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


def layout_of(read_at: ReadAt, file_size: int, what: str) -> DebLayout:
    """Walk the ar members as dpkg does; raise PackageError where dpkg would refuse."""
    if read_at(len(_AR_MAGIC), 0) != _AR_MAGIC:
        raise PackageError(f"{what}: not a Debian package (.deb files are ar archives)")
    if file_size % 2:
        raise _refuse(what, "the archive has an odd size (truncated or corrupt)")
    version: tuple[int, int] | None = None
    control: ArMember | None = None
    offset = len(_AR_MAGIC)
    while header := read_at(_AR_HEADER, offset):
        if len(header) < _AR_HEADER or header[58:60] != b"`\n":
            raise PackageError(f"{what}: truncated or corrupt .deb (bad ar member header)")
        name = header[:16].decode("latin-1").rstrip(" ")
        name = name.removesuffix("/")
        size = _member_size(header[48:58], name, what)
        start = offset + _AR_HEADER
        if start + size > file_size:
            raise PackageError(f"{what}: truncated .deb ({name} is cut short)")
        offset = start + size + (size & 1)
        if version is None:
            if name != "debian-binary":
                raise _refuse(what, f"the first member is {name!r}, not debian-binary")
            version = _format_version(read_at(size, start), what)
        elif name.startswith("_"):
            continue  # dpkg: "noncritical" members, skipped
        elif name.startswith(_CONTROL):
            if name[len(_CONTROL) :] not in _CONTROL_COMPRESSIONS:
                raise _refuse(what, f"member {name} uses an unknown compression")
            if control is not None:
                raise _refuse(what, "it has two control members")
            if size == 0:
                raise _refuse(what, f"member {name} is empty")
            control = ArMember(name, start, size)
        elif control is None:
            raise _refuse(what, f"member {name} before control.tar")
        elif name.startswith(_DATA):
            if name[len(_DATA) :] not in _DATA_COMPRESSIONS:
                raise _refuse(what, f"member {name} uses an unknown compression")
            if size == 0:
                raise _refuse(what, f"member {name} is empty")
            return DebLayout(version, control, ArMember(name, start, size))
        else:
            raise _refuse(what, f"member {name} before data.tar")
    if version is None:
        raise PackageError(f"{what}: not a Debian binary package (no debian-binary member)")
    if control is None:
        raise PackageError(f"{what}: .deb has no control archive")
    raise PackageError(f"{what}: .deb has no data archive")


def _file_reader(fh: BinaryIO) -> ReadAt:
    def read_at(size: int, offset: int) -> bytes:
        fh.seek(offset)
        return fh.read(size)

    return read_at


def read_layout(fh: BinaryIO, file_size: int, what: str) -> DebLayout:
    """:func:`layout_of` on an open file."""
    return layout_of(_file_reader(fh), file_size, what)


# -- the control archive: decompressed as a stream, through the cap ---------------------


class _Corrupt(Exception):
    """A decoding failure: reported as a corrupt control archive."""


class _NotOurs(Exception):
    """A tar header this decoder leaves to tarfile."""


def _raw_chunks(read_at: ReadAt, member: ArMember) -> Iterator[bytes]:
    """The member's bytes, a chunk at a time (all at once when it is small)."""
    position, end = member.offset, member.offset + member.size
    while position < end:
        chunk = read_at(min(_CHUNK, end - position), position)
        if not chunk:
            return
        position += len(chunk)
        yield chunk


def _xz_chunks(raw: Iterator[bytes]) -> Iterator[bytes]:
    """What `lzma.LZMAFile` yields: concatenated streams; trailing garbage ignored."""
    decompressor = lzma.LZMADecompressor()
    pending = next(raw, b"")
    while True:
        if decompressor.eof:
            pending = decompressor.unused_data or next(raw, b"")
            if not pending:
                return
            decompressor = lzma.LZMADecompressor()
            try:
                out = decompressor.decompress(pending, _CHUNK)
            except lzma.LZMAError:
                return  # not a stream: LZMAFile ignores trailing data
        else:
            if decompressor.needs_input and not pending:
                pending = next(raw, b"")
                if not pending:
                    raise _Corrupt("the xz stream ends early")
            out = decompressor.decompress(pending, _CHUNK)
        pending = b""
        if out:
            yield out


def _gz_chunks(raw: Iterator[bytes]) -> Iterator[bytes]:
    """What `gzip.GzipFile` yields: CRC and length checked, members concatenated."""
    decompressor = zlib.decompressobj(wbits=31)
    pending = next(raw, b"")
    if not pending:
        raise _Corrupt("the gzip stream is empty")
    while True:
        if decompressor.eof:
            pending = decompressor.unused_data.lstrip(b"\0")  # zero padding is allowed
            while not pending:
                more = next(raw, b"")
                if not more:
                    return
                pending = more.lstrip(b"\0")
            decompressor = zlib.decompressobj(wbits=31)
        elif not pending:
            pending = decompressor.unconsumed_tail or next(raw, b"")
            if not pending:
                raise _Corrupt("the gzip stream ends early")
        out = decompressor.decompress(pending, _CHUNK)
        pending = decompressor.unconsumed_tail
        if out:
            yield out


def _pipe_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


class _Capped:
    """Decompressed bytes, never read past `cap`: the bound on a decompression bomb."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        what: str,
        cap: int = MAX_CONTROL_TAR_BYTES,
        start: bytes = b"",
    ) -> None:
        self._chunks = chunks
        self._what = what
        self._cap = cap
        self._buffer = start
        self._at = 0  # into _buffer
        self.position = 0  # in the decompressed stream

    def _bomb(self) -> PackageError:
        return PackageError(
            f"{self._what}: control archive decompresses to more than {self._cap} bytes "
            f"before ./control (the limit is {self._cap} bytes); is it a decompression bomb?"
        )

    def read(self, size: int) -> bytes:
        """`size` bytes, or fewer at the end of the stream."""
        if self.position + size > self._cap:
            raise self._bomb()
        while len(self._buffer) - self._at < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer = self._buffer[self._at :] + chunk
            self._at = 0
        out = self._buffer[self._at : self._at + size]
        self._at += len(out)
        self.position += len(out)
        return out

    def skip(self, size: int) -> bool:
        """Skip `size` bytes; False when the stream ends first."""
        if self.position + size > self._cap:
            raise self._bomb()
        while True:
            left = len(self._buffer) - self._at
            if left >= size:
                self._at += size
                self.position += size
                return True
            size -= left
            self.position += left
            self._buffer, self._at = next(self._chunks, b""), 0
            if not self._buffer:
                return False


def _number(field: bytes) -> int:
    """tarfile's `nti` for octal fields; base-256 numbers are left to tarfile."""
    value = _NUMBERS.get(field)
    if value is not None:
        return value
    if field[0] in (0o200, 0o377):
        raise _NotOurs
    text = field.split(b"\0", 1)[0]
    try:
        value = int(text.decode("ascii").strip() or "0", 8)
    except ValueError:  # UnicodeDecodeError included
        raise _Corrupt("a tar header holds an invalid number") from None
    if len(_NUMBERS) < _CACHED:
        _NUMBERS[field] = value
    return value


def _check_numbers(header: bytes) -> None:
    """Every other number field decodes, as tarfile requires (most headers look alike)."""
    key = header[100:124] + header[136:148] + header[329:345]
    if key in _GOOD_NUMBERS:
        return
    for field in _NUMBER_FIELDS:
        _number(header[field])
    if len(_GOOD_NUMBERS) < _CACHED:
        _GOOD_NUMBERS.add(key)


def _header_checksum_ok(header: bytes, stored: int) -> bool:
    """tarfile's `calc_chksums`: the field counts as spaces, unsigned or signed bytes.

    The byte sums come from Adler-32, whose low half is 1 + the sum of the bytes modulo
    65521: exact for 256 bytes (at most 65280), and done in C.
    """
    unsigned = (
        (zlib.adler32(header[:256]) & 0xFFFF)
        + (zlib.adler32(header[256:]) & 0xFFFF)
        - (zlib.adler32(header[148:156]) & 0xFFFF)
        + 255  # 256 (the field as spaces) - 1 (the second of the two Adler starts)
    )
    if stored == unsigned:
        return True
    high = sum(1 for byte in header[:148] + header[156:] if byte > 127)
    return stored == unsigned - 256 * high


def _control_in_tar(stream: _Capped, what: str) -> bytes | None:
    """`./control` from a plain tar stream, None when the archive has none."""
    while True:
        at_start = stream.position == 0
        header = stream.read(_BLOCK)
        if len(header) < _BLOCK:
            if at_start:
                raise _Corrupt("empty or truncated tar")
            return None  # tarfile, too, ends the archive at a short header
        if header == _ZERO_BLOCK:
            return None
        kind = header[156:157]
        if kind in _TARFILE_ONLY:
            raise _NotOurs
        if not _header_checksum_ok(header, _number(header[148:156])):
            raise _Corrupt("a tar header has a bad checksum")
        size = _number(header[124:136])
        if size < 0:
            raise _Corrupt("a tar header holds a negative size")
        _check_numbers(header)
        name = header[0:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if kind == b"\0" and name.endswith("/"):
            kind = b"5"  # V7 tar: a directory is a regular file named with a slash
        if kind == b"5":
            name = name.rstrip("/")
        prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if prefix:
            name = prefix + "/" + name
        if name in _CONTROL_NAMES:
            if kind not in _REGULAR:
                raise PackageError(f"{what}: the control file is not a regular file")
            if size > MAX_PARAGRAPH_BYTES:
                raise PackageError(
                    f"{what}: control data is {size} bytes; the limit is "
                    f"{MAX_PARAGRAPH_BYTES} bytes (apt cannot parse longer stanzas)"
                )
            data = stream.read(size)
            if len(data) < size:
                raise _Corrupt("the control file is cut short")
            return data
        # tarfile skips the data of these types only
        skipped = kind in _NO_DATA or size == 0 or stream.skip(-(-size // _BLOCK) * _BLOCK)
        if not skipped:
            raise _Corrupt("a tar member is cut short")


@contextlib.contextmanager
def _zstd_stream(chunks: Iterator[bytes]) -> Iterator[IO[bytes]]:
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
            for chunk in chunks:
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
def _decompressed(read_at: ReadAt, member: ArMember) -> Iterator[Iterator[bytes]]:
    raw = _raw_chunks(read_at, member)
    if member.name.endswith(".gz"):
        yield _gz_chunks(raw)
    elif member.name.endswith(".xz"):
        yield _xz_chunks(raw)
    elif member.name.endswith(".zst"):
        with _zstd_stream(raw) as zst:
            yield _pipe_chunks(zst)
    else:
        yield raw


def _in_one_go(read_at: ReadAt, member: ArMember) -> bytes | None:
    """The whole control archive when it is small and one stream (the usual case), else
    None: the stream path then decides, from the start."""
    if member.size > _CHUNK:
        return None
    raw = read_at(member.size, member.offset)
    if member.name == _CONTROL:
        return raw
    decompressor: lzma.LZMADecompressor | zlib._Decompress
    if member.name.endswith(".xz"):
        decompressor = lzma.LZMADecompressor()
    elif member.name.endswith(".gz"):
        decompressor = zlib.decompressobj(wbits=31)
    else:
        return None
    out = decompressor.decompress(raw, _CHUNK)
    return out if decompressor.eof and not decompressor.unused_data else None


def control_of(read_at: ReadAt, member: ArMember, what: str) -> bytes:
    """The `./control` file of the control archive `member`, within the limits."""
    try:
        whole = _in_one_go(read_at, member)
        if whole is not None:
            found = _control_in_tar(_Capped(iter(()), what, start=whole), what)
        else:
            with _decompressed(read_at, member) as chunks:
                found = _control_in_tar(_Capped(chunks, what), what)
    except _NotOurs:
        return _control_by_tarfile(read_at, member, what)
    except PackageError:
        raise
    except (_Corrupt, OSError, EOFError, lzma.LZMAError, zlib.error):
        raise PackageError(f"{what}: corrupt control archive in .deb") from None
    if found is None:
        raise PackageError(f"{what}: .deb has no control file")
    return found


def read_control_file(fh: BinaryIO, member: ArMember, what: str) -> bytes:
    """:func:`control_of` on an open file."""
    return control_of(_file_reader(fh), member, what)


# -- tarfile, for the headers decoded above only in part ----------------------------------


class _Region(io.RawIOBase):
    """The member's bytes as a file, read in place (never loaded whole)."""

    def __init__(self, read_at: ReadAt, member: ArMember) -> None:
        self._read_at = read_at
        self._position = member.offset
        self._end = member.offset + member.size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._end - self._position)
        if want <= 0:
            return 0
        data = self._read_at(want, self._position)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


class _CappedFile(io.RawIOBase):
    """A stream refused past `cap` bytes (the tarfile path's bound on a bomb)."""

    def __init__(self, inner: IO[bytes], what: str, cap: int = MAX_CONTROL_TAR_BYTES) -> None:
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
def _decompressed_file(read_at: ReadAt, member: ArMember) -> Iterator[IO[bytes]]:
    raw = cast(IO[bytes], _Region(read_at, member))
    if member.name.endswith(".gz"):
        with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            yield cast(IO[bytes], gz)
    elif member.name.endswith(".xz"):
        with lzma.LZMAFile(raw, mode="rb") as xz:
            yield cast(IO[bytes], xz)
    elif member.name.endswith(".zst"):
        with _zstd_stream(_raw_chunks(read_at, member)) as zst:
            yield zst
    else:
        yield raw


def _control_by_tarfile(read_at: ReadAt, member: ArMember, what: str) -> bytes:
    try:
        with (
            _decompressed_file(read_at, member) as stream,
            tarfile.open(fileobj=_CappedFile(stream, what), mode="r|") as tar,
        ):
            for info in tar:
                if info.name not in _CONTROL_NAMES:
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
