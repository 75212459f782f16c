"""One home for Debian rules and one .deb reader (issue 7, §5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.debs import control_member, data_member, make_deb, write_members

from debops_ci.ci import pipeline
from debops_ci.debian import package, rules
from debops_ci.errors import PackageError


def test_old_names_still_import_from_package() -> None:
    for name in (
        "PACKAGE_NAME_RE",
        "VERSION_RE",
        "ARCH_RE",
        "check_version",
        "check_package_name",
        "check_architecture",
        "is_valid_version",
        "strip_epoch",
        "pool_prefix",
    ):
        assert getattr(package, name) is getattr(rules, name)


def test_pool_layout_and_file_names() -> None:
    assert rules.strip_epoch("2:1.0-1") == "1.0-1"
    assert rules.deb_filename("hello", "2:1.0-1", "amd64") == "hello_1.0-1_amd64.deb"
    assert rules.pool_path("main", "libfoo", "libfoo1", "1:2.0", "arm64") == (
        "pool/main/libf/libfoo/libfoo1_2.0_arm64.deb"
    )


@pytest.mark.e2e
def test_pipeline_reads_debs_with_the_same_reader(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "hello", "1:1.0-1", "all")
    info = pipeline._inspect(deb)
    assert (info.package, info.version, info.architecture) == ("hello", "1:1.0-1", "all")
    # A .deb dpkg refuses (data before control) stops the pipeline as it stops a publish.
    bad = write_members(
        tmp_path / "bad_1.0_all.deb",
        [("debian-binary", b"2.0\n"), data_member(), control_member()],
    )
    with pytest.raises(PackageError, match=r"before control\.tar"):
        pipeline._inspect(bad)
