"""The .deb container follows dpkg's ar member rules exactly (issue 8, §1.3).

Each case is a hand-made .deb; the test asks real dpkg-deb (`--info` for the control
part, `--fsys-tarfile` for the data part, what `dpkg -i` reads) and our reader, and both
must give the expected answer. The rules come from dpkg's `src/deb/extract.c`:
`debian-binary` first with format 2.x; then members whose name starts with `_` are
skipped anywhere; `control.tar[.gz|.xz|.zst]` before any other member; then
`data.tar[.gz|.xz|.zst|.bz2|.lzma]`; nothing is read after the data member.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support._proc import run
from support.debs import ar_archive, control_member, data_member, dpkg_accepts, write_members

from debops_ci.debian.package import inspect_deb
from debops_ci.errors import PackageError

pytestmark = pytest.mark.e2e

BINARY = ("debian-binary", b"2.0\n")
# Two rules of dpkg's own tree (src/deb/extract.c, lib/dpkg/ar.c) newer than Debian 13's
# dpkg: we follow them already, since the next dpkg refuses such files.
_NEW_RULES = "1.23.6"


def _dpkg_has(release: str) -> bool:
    installed = run(["dpkg-query", "-W", "-f", "${Version}", "dpkg"]).stdout.decode()
    return (
        run(["dpkg", "--compare-versions", installed, "ge", release], check=False).returncode == 0
    )


def _check_dpkg(deb: Path, accepted: bool, phrase: str, since: str) -> None:
    dpkg_ok, dpkg_says = dpkg_accepts(deb)
    if since and not _dpkg_has(since):
        assert dpkg_ok, f"this dpkg predates {since} and should still accept the file"
        return
    assert dpkg_ok is accepted, dpkg_says
    assert phrase in dpkg_says


@dataclass(frozen=True)
class Case:
    members: Callable[[], list[tuple[str, bytes]]]
    accepted: bool
    ours: str = ""  # a phrase of our refusal
    dpkg: str = ""  # a phrase of dpkg's refusal
    since: str = ""  # the dpkg release that made the rule (older ones accept the file)


def _members(*parts: tuple[str, bytes]) -> Callable[[], list[tuple[str, bytes]]]:
    return lambda: list(parts)


CASES = {
    "valid": Case(lambda: [BINARY, control_member(), data_member()], True),
    "xz members": Case(
        lambda: [
            BINARY,
            control_member("Package: hello\nVersion: 1.0\nArchitecture: all\n", "xz"),
            data_member(compression="xz"),
        ],
        True,
    ),
    "zstd members": Case(
        lambda: [BINARY, control_member(compression="zst"), data_member(compression="zst")], True
    ),
    "uncompressed members": Case(
        lambda: [BINARY, control_member(compression="none"), data_member(compression="none")], True
    ),
    "bzip2 data": Case(lambda: [BINARY, control_member(), data_member(compression="bz2")], True),
    "format 2.1": Case(
        lambda: [("debian-binary", b"2.1\n"), control_member(), data_member()], True
    ),
    "underscore member before control": Case(
        lambda: [BINARY, ("_extra", b"x\n"), control_member(), data_member()], True
    ),
    "underscore member before data": Case(
        lambda: [BINARY, control_member(), ("_gpgbuilder", b"sig\n"), data_member()], True
    ),
    "unknown member after data": Case(
        lambda: [BINARY, control_member(), data_member(), ("zzz", b"ignored\n")], True
    ),
    "GNU-style names": Case(
        lambda: [
            ("debian-binary/", b"2.0\n"),
            (control_member()[0] + "/", control_member()[1]),
            (data_member()[0] + "/", data_member()[1]),
        ],
        True,
    ),
    "data before control": Case(
        lambda: [BINARY, data_member(), control_member()],
        False,
        "data.tar.gz before control.tar",
        "premature member 'data.tar.gz' before 'control.tar'",
    ),
    "debian-binary not first": Case(
        lambda: [control_member(), BINARY, data_member()],
        False,
        "debian-binary",
        "not a Debian binary archive",
    ),
    "underscore member first": Case(
        lambda: [("_extra", b"x\n"), BINARY, control_member(), data_member()],
        False,
        "debian-binary",
        "not a Debian binary archive",
    ),
    "unknown member before control": Case(
        lambda: [BINARY, ("extra", b"x\n"), control_member(), data_member()],
        False,
        "extra before control.tar",
        "premature member 'extra' before 'control.tar'",
    ),
    "unknown member before data": Case(
        lambda: [BINARY, control_member(), ("extra", b"x\n"), data_member()],
        False,
        "extra before data.tar",
        "premature member 'extra' before 'data.tar'",
    ),
    "two control members": Case(
        lambda: [BINARY, control_member(), control_member(compression="xz"), data_member()],
        False,
        "two control members",
        "two control members",
    ),
    "format 3.0": Case(
        lambda: [("debian-binary", b"3.0\n"), control_member(), data_member()],
        False,
        "format version 3.0",
        "format version 3.0",
    ),
    "format without minor": Case(
        lambda: [("debian-binary", b"2.\n"), control_member(), data_member()],
        False,
        "format version",
        "empty minor component",
    ),
    "format without newline": Case(
        lambda: [("debian-binary", b"2.0"), control_member(), data_member()],
        False,
        "no newline",
        "no newlines in header",
    ),
    "bzip2 control": Case(
        lambda: [BINARY, ("control.tar.bz2", b"BZh9"), data_member()],
        False,
        "compression",
        "unknown compression for member 'control.tar.bz2'",
    ),
    "unknown data compression": Case(
        lambda: [BINARY, control_member(), ("data.tar.lz4", b"x\n")],
        False,
        "compression",
        "unknown compression for member 'data.tar.lz4'",
    ),
    "empty data member": Case(
        lambda: [BINARY, control_member(), ("data.tar.gz", b"")],
        False,
        "empty",
        "zero sized tar member data.tar.gz",
        since=_NEW_RULES,
    ),
    "no data member": Case(lambda: [BINARY, control_member()], False, "no data", ""),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_reader_agrees_with_dpkg(case: Case, tmp_path: Path) -> None:
    deb = write_members(tmp_path / "hello_1.0_all.deb", case.members())
    _check_dpkg(deb, case.accepted, case.dpkg, case.since)
    if case.accepted:
        assert inspect_deb(deb).package == "hello"
    else:
        with pytest.raises(PackageError, match=r"hello_1\.0_all\.deb") as refused:
            inspect_deb(deb)
        assert case.ours in str(refused.value)
        assert refused.value.exit_code == 8


def test_odd_sized_archive_is_refused_like_dpkg(tmp_path: Path) -> None:
    deb = tmp_path / "hello_1.0_all.deb"
    deb.write_bytes(ar_archive([BINARY, control_member(), data_member()]) + b"\n")
    _check_dpkg(deb, False, "non-even byte size", _NEW_RULES)
    with pytest.raises(PackageError, match="odd size"):
        inspect_deb(deb)


def test_bad_member_size_characters_are_refused_like_dpkg(tmp_path: Path) -> None:
    good = ar_archive([BINARY, control_member(), data_member()])
    # The size field of the first member header, at 8 + 48: "4" becomes "4x".
    broken = good[: 8 + 48] + b"4x" + good[8 + 50 :]
    deb = tmp_path / "hello_1.0_all.deb"
    deb.write_bytes(broken)
    _check_dpkg(deb, False, "invalid character", "")
    with pytest.raises(PackageError, match="size"):
        inspect_deb(deb)
