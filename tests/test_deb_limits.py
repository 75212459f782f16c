"""Control data beyond what apt can parse is refused (issue 8, §1.2).

apt reads a Packages index stanza by stanza into a buffer that starts at 64 KiB and
doubles up to 1 MiB (apt-pkg/tagfile.cc, `pkgTagFile::Resize`); a longer stanza makes
it fail with "Unable to parse package file" and every package of that index vanishes.
dpkg itself has no limit. Our limits sit well below apt's and well above what Debian
ships (the longest field in Debian 12's amd64 Packages is 75,649 bytes, the Provides
of librust-winapi-dev; its longest stanza 76,338 bytes).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.debs import make_deb

from debops_ci.debian.limits import MAX_FIELD_BYTES, MAX_PARAGRAPH_BYTES
from debops_ci.debian.package import inspect_deb, parse_control
from debops_ci.errors import PackageError

HEAD = "Package: big\nVersion: 1.0\nArchitecture: all\n"
APT_MAX_STANZA = 1024 * 1024  # apt's buffer stops doubling past 1 MiB + 1 byte


def test_limits_leave_room_below_apt_and_above_debian() -> None:
    assert 75_649 * 3 < MAX_FIELD_BYTES <= MAX_PARAGRAPH_BYTES <= APT_MAX_STANZA // 2


def test_a_field_over_the_limit_is_refused_naming_it() -> None:
    text = HEAD + "Provides: " + "x" * MAX_FIELD_BYTES + "\n"
    with pytest.raises(PackageError, match=r"field Provides .* limit is 262144 bytes") as info:
        parse_control(text.encode(), "big.deb")
    assert info.value.exit_code == 8


def test_a_multi_line_field_over_the_limit_is_refused() -> None:
    line = " " + "y" * 999 + "\n"
    text = HEAD + "Description: short\n" + line * (MAX_FIELD_BYTES // 1000 + 1)
    with pytest.raises(PackageError, match="field Description"):
        parse_control(text.encode(), "big.deb")


def test_a_paragraph_over_the_limit_is_refused() -> None:
    fields = "".join(
        f"X-Field-{i}: {'z' * 60_000}\n" for i in range(MAX_PARAGRAPH_BYTES // 60_000 + 1)
    )
    text = HEAD + fields
    assert all(len(line) < MAX_FIELD_BYTES for line in text.splitlines())
    with pytest.raises(PackageError, match=r"control data .* limit is 524288 bytes"):
        parse_control(text.encode(), "big.deb")


def test_a_field_at_the_limit_is_accepted() -> None:
    value = "w" * (MAX_FIELD_BYTES - len("Provides: "))
    fields = parse_control((HEAD + f"Provides: {value}\n").encode(), "big.deb")
    assert dict(fields)["Provides"] == value


@pytest.mark.e2e
def test_a_real_deb_with_a_2_mb_field_is_refused(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "big", "1.0", "all", extra_fields={"Provides": "p" * 2_000_000})
    # Refused from the tar header, before the control file is even read.
    with pytest.raises(PackageError, match=r"big_1.0_all.deb: control data .* limit is 524288"):
        inspect_deb(deb)
