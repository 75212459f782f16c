"""The control archive's own tar decoder agrees with `tarfile` (issue 11, goal 5).

`container.control_of` decodes control.tar's headers by hand (checksum, every number
field, names and types as tarfile builds them) and decompresses in one call when the
archive is small; anything it does not decode itself goes to `tarfile`, the reader it
replaced. Each case here is a control archive, made with `tarfile` or edited byte by
byte, read both ways: the decoder must accept exactly what the tarfile path accepts,
with the same bytes, except where it is stricter on purpose (a bad checksum or number
after the first header, which tarfile takes for the end of the archive and then reports
"no control file"; the CRC of a gzip stream, which tarfile's reads never reach): both
refuse those.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import struct
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.debs import SOURCE_DATE_EPOCH, ar_archive, data_member, make_raw_deb

from debops_ci.debian import container
from debops_ci.debian.container import ArMember
from debops_ci.debian.limits import MAX_CONTROL_TAR_BYTES, MAX_PARAGRAPH_BYTES
from debops_ci.debian.package import inspect_deb, read_deb_control
from debops_ci.errors import PackageError

CONTROL = b"Package: hello\nVersion: 1.0\nArchitecture: all\n"


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mtime, info.mode = size, kind, SOURCE_DATE_EPOCH, 0o644
    return info


def _tar(
    members: list[tuple[str, bytes]],
    fmt: int = tarfile.GNU_FORMAT,
    kinds: dict[str, bytes] | None = None,
) -> bytes:
    """A tar of `members` (name, content); `kinds` gives a member another type."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, content in members:
            kind = (kinds or {}).get(name, tarfile.REGTYPE)
            if kind == tarfile.SYMTYPE:
                info = _info(name, 0, kind)
                info.linkname = "elsewhere"
                tar.addfile(info)
            elif kind in (tarfile.DIRTYPE, tarfile.LNKTYPE):
                tar.addfile(_info(name, 0, kind))
            else:
                tar.addfile(_info(name, len(content), kind), io.BytesIO(content))
    return buf.getvalue()


def _standard() -> bytes:
    return _tar(
        [("./", b""), ("./control", CONTROL), ("./md5sums", b"x  y\n")],
        kinds={"./": tarfile.DIRTYPE},
    )


def _rechecksum(header: bytearray) -> bytearray:
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return header


def _edit_header(
    tar: bytes, index: int, edit: Callable[[bytearray], None], fix: bool = True
) -> bytes:
    """Edit the `index`-th 512-byte block (a header) and, unless `fix` is off, re-checksum it."""
    block = bytearray(tar[index * 512 : (index + 1) * 512])
    edit(block)
    if fix:
        _rechecksum(block)
    return tar[: index * 512] + bytes(block) + tar[(index + 1) * 512 :]


def _set(offset: int, value: bytes) -> Callable[[bytearray], None]:
    def edit(block: bytearray) -> None:
        block[offset : offset + len(value)] = value

    return edit


def _signed_checksum(block: bytearray) -> None:
    """A header summed with signed bytes, as Sun and NeXT tars did (a high byte in uname)."""
    block[265:270] = b"r\xe9\xe9t\0"
    block[148:156] = b" " * 8
    signed = sum(b - 256 if b > 127 else b for b in block)
    block[148:156] = b"%06o\0 " % signed


def _read_both(member_name: str, payload: bytes) -> tuple[bytes | str, bytes | str]:
    """(ours, tarfile's): the control bytes, or the refusal's message."""
    member = ArMember(member_name, 0, len(payload))

    def read_at(size: int, offset: int) -> bytes:
        return payload[offset : offset + size]

    outcomes: list[bytes | str] = []
    for reader in (container.control_of, container._control_by_tarfile):
        try:
            outcomes.append(reader(read_at, member, "t.deb"))
        except PackageError as exc:
            assert exc.exit_code == 8
            outcomes.append(str(exc))
    return outcomes[0], outcomes[1]


def _pax_path_tar() -> bytes:
    # A pax header renaming the next member to ./control.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = _info("./something-else", len(CONTROL))
        info.pax_headers = {"path": "./control"}
        tar.addfile(info, io.BytesIO(CONTROL))
    return buf.getvalue()


@dataclass(frozen=True)
class Case:
    tar: Callable[[], bytes]
    accepted: bool
    ours: str = ""  # a phrase of our refusal
    agrees: bool = True  # the tarfile path gives the same answer


LONG = "./" + "d" * 120 + "/file"
CASES = {
    "dpkg-deb's layout": Case(_standard, True),
    "no ./ prefix": Case(lambda: _tar([("control", CONTROL)]), True),
    "ustar format": Case(lambda: _tar([("./control", CONTROL)], tarfile.USTAR_FORMAT), True),
    "members before control": Case(
        lambda: _tar(
            [("./md5sums", b"a" * 1000), ("./postinst", b"#!/bin/sh\n"), ("./control", CONTROL)]
        ),
        True,
    ),
    "GNU long name first (left to tarfile)": Case(
        lambda: _tar([(LONG, b"x"), ("./control", CONTROL)]), True
    ),
    "pax header first (left to tarfile)": Case(
        lambda: _tar([(LONG, b"x"), ("./control", CONTROL)], tarfile.PAX_FORMAT), True
    ),
    "pax path naming ./control": Case(_pax_path_tar, True),
    "ustar prefix makes ./control": Case(
        lambda: _edit_header(
            _tar([("control", CONTROL)], tarfile.USTAR_FORMAT), 0, _set(345, b".\0")
        ),
        True,
    ),
    "contiguous-file type": Case(
        lambda: _tar([("./control", CONTROL)], kinds={"./control": b"7"}), True
    ),
    "unknown type skipped like a file": Case(
        lambda: _tar([("./weird", b"z" * 700), ("./control", CONTROL)], kinds={"./weird": b"Z"}),
        True,
    ),
    "signed-byte checksum": Case(
        lambda: _edit_header(_standard(), 2, _signed_checksum, fix=False), True
    ),
    "base-256 size (left to tarfile)": Case(
        lambda: _edit_header(
            _tar([("./control", CONTROL)]),
            0,
            _set(124, b"\x80" + bytes(10) + bytes([len(CONTROL)])),
        ),
        True,
    ),
    "control is a directory": Case(
        lambda: _tar([("./control", b"")], kinds={"./control": tarfile.DIRTYPE}),
        False,
        "not a regular file",
    ),
    "control is a V7 directory": Case(
        lambda: _edit_header(_tar([("./control/", b"")]), 0, _set(156, b"\0")),
        False,
        "not a regular file",
    ),
    "control is a symlink": Case(
        lambda: _tar([("./control", b"")], kinds={"./control": tarfile.SYMTYPE}),
        False,
        "not a regular file",
    ),
    "control over the paragraph limit": Case(
        lambda: _edit_header(
            _tar([("./control", CONTROL)]), 0, _set(124, b"%011o\0" % (MAX_PARAGRAPH_BYTES + 1))
        ),
        False,
        "limit is 524288",
    ),
    "no control": Case(lambda: _tar([("./md5sums", b"x")]), False, "no control file"),
    "empty archive": Case(lambda: bytes(10240), False, "no control file"),
    "empty file": Case(lambda: b"", False, "corrupt"),
    "bad checksum first": Case(
        lambda: _edit_header(_standard(), 0, _set(0, b"X"), fix=False), False, "corrupt"
    ),
    "bad checksum on control": Case(
        lambda: _edit_header(_standard(), 1, _set(100, b"0000777"), fix=False),
        False,
        "corrupt",
        agrees=False,
    ),
    "bad number first": Case(
        lambda: _edit_header(_standard(), 0, _set(136, b"9")), False, "corrupt"
    ),
    "bad number on control": Case(
        lambda: _edit_header(_standard(), 1, _set(108, b"x")), False, "corrupt", agrees=False
    ),
    "control cut short": Case(lambda: _tar([("./control", CONTROL)])[: 512 + 20], False, "corrupt"),
    "header cut short": Case(
        lambda: _tar([("./md5sums", b"x"), ("./control", CONTROL)])[: 1024 + 100], False
    ),
    "member data cut short": Case(
        lambda: _tar([("./md5sums", b"x" * 5000), ("./control", CONTROL)])[:2048], False
    ),
}


@pytest.mark.parametrize("compression", ["none", "gz", "xz"])
@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_the_decoder_agrees_with_tarfile(case: Case, compression: str) -> None:
    tar = case.tar()
    name, payload = {
        "none": ("control.tar", tar),
        "gz": ("control.tar.gz", gzip.compress(tar, mtime=0)),
        "xz": ("control.tar.xz", lzma.compress(tar)),
    }[compression]
    ours, reference = _read_both(name, payload)
    if case.accepted:
        assert ours == CONTROL, ours
    else:
        assert isinstance(ours, str) and case.ours in ours, ours
    if case.agrees:
        assert isinstance(ours, bytes) == isinstance(reference, bytes), (ours, reference)
        if isinstance(ours, bytes):
            assert ours == reference
    else:
        assert isinstance(reference, str), "tarfile refuses it too"


STREAMS = {
    "gzip, two members": (
        "control.tar.gz",
        lambda t: gzip.compress(t[:700], mtime=0) + gzip.compress(t[700:], mtime=0),
        True,
    ),
    "gzip, zero padding after": (
        "control.tar.gz",
        lambda t: gzip.compress(t, mtime=0) + bytes(100),
        True,
    ),
    "gzip, garbage after": (
        "control.tar.gz",
        lambda t: gzip.compress(t, mtime=0) + b"garbage",
        True,
    ),
    "gzip, truncated": ("control.tar.gz", lambda t: gzip.compress(t, mtime=0)[:60], False),
    "gzip, not gzip": ("control.tar.gz", lambda t: b"BZh91AY&SY" + t, False),
    "xz, two streams": (
        "control.tar.xz",
        lambda t: lzma.compress(t[:700]) + lzma.compress(t[700:]),
        True,
    ),
    "xz, garbage after": ("control.tar.xz", lambda t: lzma.compress(t) + b"garbage!", True),
    "xz, legacy lzma format": (
        "control.tar.xz",
        lambda t: lzma.compress(t, format=lzma.FORMAT_ALONE),
        True,
    ),
    "xz, truncated": ("control.tar.xz", lambda t: lzma.compress(t)[:50], False),
    "xz, corrupt": (
        "control.tar.xz",
        lambda t: lzma.compress(t)[:40] + b"\xff" * 8 + lzma.compress(t)[48:],
        False,
    ),
}


@pytest.mark.parametrize("stream", STREAMS.values(), ids=list(STREAMS))
def test_streams_are_read_like_gzipfile_and_lzmafile(
    stream: tuple[str, Callable[[bytes], bytes], bool],
) -> None:
    name, make, accepted = stream
    tar = _tar([("./control", CONTROL), ("./md5sums", b"x" * 3000)])
    ours, reference = _read_both(name, make(tar))
    assert (ours == CONTROL) is accepted, ours
    # "garbage after a gzip member": GzipFile would refuse it if it read that far; neither does.
    assert ours == reference or not accepted, (ours, reference)


def test_a_bad_gzip_crc_is_refused() -> None:
    # The one-call path reaches the end of the stream and checks its CRC (tarfile's
    # record-sized reads stopped before it).
    packed = bytearray(gzip.compress(_standard(), mtime=0))
    packed[-8] ^= 0xFF
    ours, _ = _read_both("control.tar.gz", bytes(packed))
    assert isinstance(ours, str) and "corrupt" in ours


@pytest.mark.parametrize("compression", ["none", "gz", "xz"])
def test_a_large_control_archive_goes_through_the_stream(compression: str) -> None:
    # Over 64 KiB: not decompressed in one call but streamed, a chunk at a time.
    big = os.urandom(300_000)
    tar = _tar([("./md5sums", big), ("./control", CONTROL), ("./postrm", big)])
    payload = {"none": tar, "gz": gzip.compress(tar, mtime=0), "xz": lzma.compress(tar)}[
        compression
    ]
    assert len(payload) > 64 * 1024
    name = {"none": "control.tar", "gz": "control.tar.gz", "xz": "control.tar.xz"}[compression]
    assert _read_both(name, payload) == (CONTROL, CONTROL)


def test_a_member_past_the_cap_is_refused_from_its_header() -> None:
    # An md5sums that claims to be over the cap: refused before anything is inflated.
    tar = _edit_header(_standard(), 0, _set(124, b"%011o\0" % MAX_CONTROL_TAR_BYTES))
    tar = _edit_header(tar, 0, _set(156, b"0"))
    ours, _ = _read_both("control.tar", tar)
    assert isinstance(ours, str) and "limit" in ours and "bomb" in ours


def test_header_checksums_match_tarfiles_sums() -> None:
    for seed in range(300):
        block = hashlib.shake_256(str(seed).encode()).digest(512)
        # tarfile's calc_chksums: the checksum field counts as 8 spaces
        unsigned = 256 + sum(struct.unpack_from("148B8x356B", block))
        signed = 256 + sum(struct.unpack_from("148b8x356b", block))
        assert container._header_checksum_ok(block, unsigned)
        assert container._header_checksum_ok(block, signed)
        assert not container._header_checksum_ok(block, unsigned + 1) or signed == unsigned + 1


# -- the whole .deb, opened once ---------------------------------------------------------


def test_a_small_deb_is_hashed_from_the_bytes_it_was_read_from(tmp_path: Path) -> None:
    deb = make_raw_deb(
        tmp_path / "hello_1.0_all.deb", CONTROL.decode(), {"usr/share/doc/hello/x": b"hi\n"}
    )
    pkg = inspect_deb(deb)
    raw = deb.read_bytes()
    assert (pkg.size, pkg.md5, pkg.sha256) == (
        len(raw),
        hashlib.md5(raw).hexdigest(),
        hashlib.sha256(raw).hexdigest(),
    )
    assert pkg.fields == (("Package", "hello"), ("Version", "1.0"), ("Architecture", "all"))


def test_a_large_deb_is_read_in_place_and_hashed_from_the_same_handle(tmp_path: Path) -> None:
    payload = os.urandom(3 << 20)  # over the 1 MiB read whole
    deb = make_raw_deb(
        tmp_path / "hello_1.0_all.deb", CONTROL.decode(), {"usr/share/doc/hello/big": payload}
    )
    assert deb.stat().st_size > 1 << 20
    pkg = inspect_deb(deb)
    raw = deb.read_bytes()
    assert (pkg.size, pkg.sha256) == (len(raw), hashlib.sha256(raw).hexdigest())
    assert pkg.md5 == hashlib.md5(raw).hexdigest()
    assert read_deb_control(deb).package == "hello"


def test_a_deb_with_a_zstd_control_archive_is_read(tmp_path: Path) -> None:
    from support.debs import compress

    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.zst", compress(_standard(), "zst")),
        data_member(),
    ]
    deb = tmp_path / "hello_1.0_all.deb"
    deb.write_bytes(ar_archive(members))
    assert inspect_deb(deb).package == "hello"


@pytest.mark.parametrize(
    ("make", "phrase"),
    [
        (lambda d: d / "missing.deb", "no such file"),
        (lambda d: d, "is a directory"),
    ],
    ids=["missing", "directory"],
)
def test_unreadable_paths_are_named(
    tmp_path: Path, make: Callable[[Path], Path], phrase: str
) -> None:
    with pytest.raises(PackageError, match=phrase) as info:
        inspect_deb(make(tmp_path))
    assert info.value.exit_code == 8


def test_crc_of_the_one_call_gzip_is_zlibs() -> None:
    # zlib's gzip mode (wbits=31) checks the CRC-32 and length that GzipFile checks.
    packed = gzip.compress(CONTROL, mtime=0)
    assert zlib.decompressobj(wbits=31).decompress(packed) == CONTROL


@pytest.mark.parametrize("compression", ["gz", "xz"])
def test_every_corrupt_byte_refused_by_tarfile_is_refused(compression: str) -> None:
    # Each byte of a dpkg-deb-like control.tar.<compression> flipped in turn: whatever
    # the tarfile path (the reader before) refused, the decoder refuses too; the CRC
    # of the whole stream is checked as before (dpkg-deb pads control.tar to 10 KiB,
    # which tarfile's first record read took whole).
    tar = _standard()
    assert len(tar) == 10240
    packed = gzip.compress(tar, mtime=0) if compression == "gz" else lzma.compress(tar)
    name = f"control.tar.{compression}"
    missed = []
    for position in range(len(packed)):
        bad = bytearray(packed)
        bad[position] ^= 0x55
        ours, reference = _read_both(name, bytes(bad))
        if isinstance(reference, str) and isinstance(ours, bytes):
            missed.append(position)
        elif isinstance(ours, bytes):
            assert ours == reference, f"byte {position}: both accept, with other bytes"
    assert missed == []
