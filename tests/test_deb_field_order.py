"""Packages stanzas in the canonical field order (issue 8, §1.7).

Our stanza is compared, on the same .debs, with the stanzas of `apt-ftparchive
packages` (same order exactly: we follow apt's `TFRewritePackageOrder`) and of
`dpkg-scanpackages` (its order differs from apt's; what both share: Package first,
the archive's fields together, fields neither knows after the known ones, in the
.deb's order).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support._proc import run
from support.debs import make_deb

from debops_ci.debian.package import inspect_deb

pytestmark = pytest.mark.e2e

# A control file in a scrambled order, with fields neither tool knows.
SCRAMBLED = """Description: scrambled
 a package whose fields come in no canonical order
X-Zeta: last in the .deb
Depends: libc6
Maintainer: Someone <someone@example.invalid>
Installed-Size: 12
Homepage: https://example.invalid/
Version: 1.0-1
X-Alpha: first unknown in the .deb
Priority: optional
Section: misc
Architecture: amd64
Multi-Arch: foreign
Source: scrambled-src
Package: scrambled
"""
ARCHIVE_FIELDS = ["Filename", "Size", "MD5sum", "SHA256"]


def _names(stanza: str) -> list[str]:
    return [line.split(":", 1)[0] for line in stanza.splitlines() if line[:1] not in (" ", "\t")]


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pool = tmp_path_factory.mktemp("pool")
    make_deb(pool, "scrambled", "1.0-1", "amd64", raw_control=SCRAMBLED)
    make_deb(pool, "plain", "2.0", "all", depends="libc6", extra_fields={"X-Custom": "yes"})
    return pool


def _ours(debs: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(debs.glob("*.deb")):
        pkg = inspect_deb(path)
        found[pkg.package] = _names(pkg.stanza(path.name))
    return found


def _theirs(command: list[str], cwd: Path) -> dict[str, list[str]]:
    text = run(command, cwd=cwd).stdout.decode()
    stanzas = [s for s in text.split("\n\n") if s.strip()]
    return {s.split("\n", 1)[0].removeprefix("Package: "): _names(s) for s in stanzas}


def test_same_order_as_apt_ftparchive(debs: Path) -> None:
    theirs = _theirs(["apt-ftparchive", "packages", "."], debs)
    for package, names in _ours(debs).items():
        common = [n for n in theirs[package] if n in names]
        assert names == common, package
        assert set(names) - set(theirs[package]) == set(), package


def test_dpkg_scanpackages_agrees_on_what_it_shares(debs: Path) -> None:
    theirs = _theirs(["dpkg-scanpackages", "--multiversion", "."], debs)
    for package, names in _ours(debs).items():
        dpkg = theirs[package]
        assert names[0] == dpkg[0] == "Package"
        assert set(names) == set(dpkg) - {"SHA1", "Description-md5"}, package
        # The archive's fields, in the same order and together in both.
        ours_at = [names.index(f) for f in ARCHIVE_FIELDS]
        assert ours_at == list(range(ours_at[0], ours_at[0] + 4))
        assert [f for f in dpkg if f in ARCHIVE_FIELDS] == ARCHIVE_FIELDS
        # Fields neither knows go last in both (dpkg sorts them; apt and we keep the
        # .deb's order).
        unknown = [n for n in names if n.startswith("X-")]
        assert unknown and names[-len(unknown) :] == unknown
        assert set(dpkg[-len(unknown) :]) == set(unknown)


def test_order_is_canonical_whatever_the_deb_order() -> None:
    from debops_ci.debian.fieldorder import canonical_order

    fields = (("Description", "d"), ("X-B", "b"), ("Version", "1"), ("Package", "p"), ("X-A", "a"))
    assert [n for n, _ in canonical_order(fields)] == [
        "Package",
        "Version",
        "Description",
        "X-B",
        "X-A",
    ]
