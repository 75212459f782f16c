"""Unit tests of the pure core: stanzas, indexes, Release files, suite composition."""

from __future__ import annotations

import gzip
import hashlib
import lzma
from datetime import UTC, datetime

import pytest

from debops_ci.archive.indexes import (
    IndexFile,
    PackageEntry,
    build_packages_files,
    compress_gzip,
    entries_for_arch,
    parse_packages,
    parse_stanza,
    render_packages,
)
from debops_ci.archive.release import (
    ReleaseMeta,
    format_date,
    next_date,
    parse_date,
    parse_release,
    render_release,
)
from debops_ci.archive.suite import compose_suite, suite_architectures
from debops_ci.debian.package import (
    check_package_name,
    is_valid_version,
    parse_control,
    pool_prefix,
)
from debops_ci.debian.version import compare_versions
from debops_ci.errors import ArchiveIntegrityError, PackageError
from debops_ci.signing import unverified_clearsigned_content


def entry(name: str, version: str, arch: str) -> PackageEntry:
    text = (
        f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n"
        f"Filename: pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb\nSize: 10\n"
        f"SHA256: {'0' * 64}\nDescription: test\n multi-line"
    )
    return parse_stanza(text, "test")


def test_stanza_fields_are_parsed_and_text_kept() -> None:
    e = entry("foo", "1.0-1", "amd64")
    assert e.key == ("foo", "1.0-1", "amd64")
    assert e.size == 10
    assert e.text.endswith(" multi-line")


def test_stanza_without_filename_is_corrupt() -> None:
    with pytest.raises(ArchiveIntegrityError, match="lacks filename"):
        parse_stanza("Package: a\nVersion: 1\nArchitecture: all\nSize: 1", "idx")


def test_packages_round_trip_sorted_by_debian_version() -> None:
    entries = [entry("foo", "1.0", "amd64"), entry("foo", "1.0~pr5-3", "amd64")]
    raw = render_packages(entries)
    parsed = parse_packages(raw, "idx")
    # 1.0~pr5-3 sorts before 1.0 in Debian order, after it as a string.
    assert [e.version for e in parsed] == ["1.0~pr5-3", "1.0"]
    assert raw.endswith(b"multi-line\n")
    assert b"\n\n\n" not in raw


def test_arch_all_entries_visible_to_every_arch() -> None:
    entries = [entry("a", "1", "amd64"), entry("b", "1", "arm64"), entry("c", "1", "all")]
    assert [e.package for e in entries_for_arch(entries, "amd64")] == ["a", "c"]
    assert [e.package for e in entries_for_arch(entries, "arm64")] == ["b", "c"]


def test_compression_is_deterministic_and_decompresses() -> None:
    raw = render_packages([entry("foo", "1", "amd64")])
    assert compress_gzip(raw) == compress_gzip(raw)
    files = build_packages_files("main/binary-amd64", [entry("foo", "1", "amd64")])
    assert [(f.path, f.stored) for f in files] == [
        ("main/binary-amd64/Packages", False),  # listed for apt, not stored
        ("main/binary-amd64/Packages.gz", True),
        ("main/binary-amd64/Packages.xz", True),
    ]
    assert files[0].data == raw
    assert gzip.decompress(files[1].data) == raw
    assert lzma.decompress(files[2].data) == raw
    assert files[0].by_hash_path == f"main/binary-amd64/by-hash/SHA256/{files[0].sha256}"


def test_release_lists_hashes_and_parses_back() -> None:
    files = [IndexFile.of("main/binary-amd64/Packages.gz", b"abc")]
    meta = ReleaseMeta(
        origin="private",
        label="private",
        suite="unstable",
        codename="unstable",
        date=datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC),
        architectures=["amd64"],
        components=["main"],
        valid_until=datetime(2027, 1, 1, tzinfo=UTC),
    )
    content = render_release(meta, files)
    text = content.decode()
    assert "Date: Sat, 28 Nov 2026 01:02:03 UTC\n" in text
    assert "Acquire-By-Hash: yes\n" in text
    assert f" {hashlib.sha256(b'abc').hexdigest()} 3 main/binary-amd64/Packages.gz" in text
    assert "MD5Sum:\n" in text
    parsed = parse_release(content, "Release")
    assert parsed.by_hash
    assert parsed.architectures == ["amd64"]
    assert parsed.files["main/binary-amd64/Packages.gz"].size == 3
    assert parsed.date == meta.date


def test_release_without_suite_is_refused() -> None:
    with pytest.raises(ArchiveIntegrityError):
        parse_release(b"Origin: x\n", "Release")


def test_dates_are_monotonic_even_with_a_lagging_clock() -> None:
    previous = datetime(2030, 1, 1, tzinfo=UTC)
    assert next_date(datetime(2029, 1, 1, tzinfo=UTC), previous) == previous
    now = datetime(2031, 1, 1, 0, 0, 0, 500, tzinfo=UTC)
    assert next_date(now, previous) == now.replace(microsecond=0)
    assert parse_date(format_date(previous)) == previous


def test_suite_architectures_keep_all_packages_visible() -> None:
    only_all = {"main": [entry("c", "1", "all")]}
    assert suite_architectures(only_all, [], "amd64") == ["amd64"]
    assert suite_architectures(only_all, ["arm64", "amd64"], "amd64") == ["amd64", "arm64"]
    mixed = {"main": [entry("a", "1", "arm64")]}
    assert suite_architectures(mixed, ["amd64"], "amd64") == ["arm64"]


def test_compose_creates_no_empty_architecture_indexes() -> None:
    components = {"main": [entry("a", "1", "amd64")], "extra": [entry("b", "1", "arm64")]}
    composed = compose_suite(
        components,
        previous_architectures=[],
        previous_components=[],
        default_arch="amd64",
        plain_index=False,
    )
    assert composed.architectures == ["amd64", "arm64"]  # no `all` package: no binary-all
    assert composed.components == ["extra", "main"]
    dirs = sorted({f.path.rsplit("/", 1)[0] for f in composed.files})
    assert dirs == ["extra/binary-arm64", "main/binary-amd64"]


def test_compose_emptied_suite_keeps_its_shape() -> None:
    composed = compose_suite(
        {"main": []},
        previous_architectures=["arm64"],
        previous_components=["main"],
        default_arch="amd64",
        plain_index=True,
    )
    assert composed.components == ["main"]
    assert composed.files[0].path == "main/binary-arm64/Packages"


def test_compose_gives_all_packages_their_own_index_too() -> None:
    components = {"main": [entry("a", "1", "amd64"), entry("c", "1", "all")]}
    composed = compose_suite(
        components,
        previous_architectures=[],
        previous_components=[],
        default_arch="amd64",
        plain_index=False,
    )
    assert composed.architectures == ["all", "amd64"]
    by_dir = {f.path: f for f in composed.files if f.path.endswith("/Packages")}
    assert b"Package: c" in by_dir["main/binary-amd64/Packages"].data
    assert b"Package: a" not in by_dir["main/binary-all/Packages"].data
    assert b"Package: c" in by_dir["main/binary-all/Packages"].data


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("1.0", True),
        ("1:2.3-4", True),
        ("1.0.79~pr751-14", True),
        ("1.0+git20200101", True),
        ("abc", False),
        ("1.0-", False),
        ("1.0 beta", False),
        ("", False),
        ("1.0/../x", False),
    ],
)
def test_version_validation(version: str, ok: bool) -> None:
    assert is_valid_version(version) is ok


def test_version_ordering_uses_debian_rules() -> None:
    assert compare_versions("1.0~pr5-3", "1.0") < 0
    assert compare_versions("1.0.80~pr752-51", "1.0.79") > 0


@pytest.mark.parametrize("name", ["../etc", "Foo", "a", "a/b", "foo bar", "-foo"])
def test_bad_package_names_are_refused(name: str) -> None:
    with pytest.raises(PackageError):
        check_package_name(name, "test")


def test_pool_prefix_follows_debian() -> None:
    assert pool_prefix("libfoo") == "libf"
    assert pool_prefix("hello") == "h"


@pytest.mark.parametrize(
    ("control", "message"),
    [
        (b"Package: a\n\nPackage: b\n", "more than one paragraph"),
        (b"Package: a\nFilename: evil.deb\n", "reserved"),
        (b"Package: a\nSHA256: 00\n", "reserved"),
        (b"Package: a\nnot a field\n", "malformed"),
        (b"Package: a\r\nVersion: 1\r\n", "carriage returns"),
        (b"Package: a\nPackage: b\n", "twice"),
        (b"\xff\xfe", "UTF-8"),
        (b"\n\n", "empty"),
        (b"Package: a\nDescription: x\n \n", "blank continuation"),
        (b" Package: a\n", "starts with a continuation"),
    ],
)
def test_unsafe_control_is_refused(control: bytes, message: str) -> None:
    with pytest.raises(PackageError, match=message):
        parse_control(control, "x.deb")


def test_multi_line_description_is_kept() -> None:
    fields = parse_control(b"Package: a\nDescription: short\n long\n .\n more\n", "x.deb")
    assert dict(fields)["Description"] == "short\n long\n .\n more"


def test_unverified_clearsigned_content_undoes_dash_escaping() -> None:
    signed = (
        b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nSuite: x\n- -dash\n"
        b"-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n"
    )
    assert unverified_clearsigned_content(signed, "t") == b"Suite: x\n-dash\n"
