"""CI versions and changelog entries (python-debian, byte-identical tails)."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from pathlib import Path

import pytest
from debian.changelog import Changelog
from debian.debian_support import Version
from test_ci_fixtures import MAINTAINER, changelog_text, commit, git, init_repo, write_package

from debops_ci.ci.providers import BuildEvent, EventKind, Provider
from debops_ci.ci.versioning import (
    ci_version,
    sanitize_branch,
    source_date_epoch,
    write_changelog_entry,
)
from debops_ci.debian.changelog import maintainer_from_env, read_top_entry, rfc2822_date
from debops_ci.errors import BuildError, UsageError

SHA = "0123456789abcdef0123456789abcdef01234567"
WHEN = datetime(2024, 3, 5, 10, 30, 0, tzinfo=UTC)


def event(
    kind: EventKind, pr: int | None = None, build: int | None = 14, branch: str = "x"
) -> BuildEvent:
    return BuildEvent(Provider.GITHUB_ACTIONS, kind, pr, build, branch, SHA, None)


PR = event(EventKind.PULL_REQUEST, pr=751)
MAINLINE = event(EventKind.MAINLINE, branch="main")
BRANCH = event(EventKind.BRANCH, branch="Feature/Fancy_Thing")


def test_pull_request_version_of_a_native_version() -> None:
    assert ci_version("1.0.79", PR) == "1.0.79~pr751-14"


def test_pull_request_version_of_a_revisioned_version() -> None:
    assert ci_version("1.0.0-1", PR) == "1.0.0-1~pr751.14"
    assert ci_version("2:1.0.0-1", PR) == "2:1.0.0-1~pr751.14"


@pytest.mark.parametrize("base", ["1.0.79", "1.0.0-1", "3:2.4+dfsg-0.1"])
def test_pull_request_versions_sort_below_the_release_and_by_build(base: str) -> None:
    v14 = Version(ci_version(base, PR))
    v15 = Version(ci_version(base, event(EventKind.PULL_REQUEST, pr=751, build=15)))
    v9_next_pr = Version(ci_version(base, event(EventKind.PULL_REQUEST, pr=752, build=9)))
    assert v14 < Version(base)
    assert v14 < v15 < Version(base)
    assert v14 < v9_next_pr


def test_revisioned_pr_build_sorts_below_the_next_revision() -> None:
    # The reason for the ".build" form: "1.0.0-1~pr751-14" would sort above 1.0.0-2.
    assert Version("1.0.0-1~pr751-14") > Version("1.0.0-2")
    assert Version(ci_version("1.0.0-1", PR)) < Version("1.0.0-1") < Version("1.0.0-2")


def test_mainline_keeps_the_changelog_version() -> None:
    assert ci_version("1.0.79", MAINLINE) == "1.0.79"


def test_branch_builds_nothing_unless_asked() -> None:
    assert ci_version("1.0.79", BRANCH) is None
    assert ci_version("1.0.79", BRANCH, branch_builds=True) == "1.0.79~feature.fancy.thing-14"
    assert ci_version("1.0-1", BRANCH, branch_builds=True) == "1.0-1~feature.fancy.thing.14"


def test_sanitize_branch() -> None:
    assert sanitize_branch("feature/Foo_bar") == "feature.foo.bar"
    assert sanitize_branch("--//--") == "branch"
    assert sanitize_branch("release-1.2+x") == "release.1.2+x"


def test_pull_request_without_build_number() -> None:
    with pytest.raises(UsageError, match="--build"):
        ci_version("1.0", event(EventKind.PULL_REQUEST, pr=3, build=None))


def test_invalid_changelog_version() -> None:
    with pytest.raises(BuildError, match="not a valid Debian version"):
        ci_version("not a version!", PR)


def make_changelog(tmp_path: Path, text: str) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "debian").mkdir(parents=True)
    (pkg / "debian" / "changelog").write_bytes(text.encode("utf-8"))
    return pkg


# A tail with quirks a re-serialisation would "fix": odd spacing, trailing blanks,
# a non-ASCII name, an old entry with a different layout, no final newline.
QUIRKY = (
    "hello (1.0.79) unstable; urgency=low\n"
    "\n"
    "  * Fancy   spacing kept.  \n"
    "    - Sub item,\twith a tab.\n"
    "\n"
    " -- Zoë Example <zoe@example.org>  Tue, 02 Jan 2024 09:00:00 +0100\n"
    "\n"
    "\n"
    "hello (1.0.78) experimental; urgency=high\n"
    "\n"
    "  * Old.\n"
    "\n"
    " -- Someone Else <else@example.org>  Mon, 01 Jan 2024 00:00:00 +0000"
)


def test_entry_is_prepended_and_the_rest_stays_byte_identical(tmp_path: Path) -> None:
    pkg = make_changelog(tmp_path, QUIRKY)
    original = (pkg / "debian" / "changelog").read_bytes()
    entry = write_changelog_entry(pkg, "1.0.79~pr751-14", "pr-builds", PR, {}, when=WHEN)
    data = (pkg / "debian" / "changelog").read_bytes()
    assert data == entry.encode("utf-8") + original
    assert data.endswith(original)
    parsed = Changelog(data.decode("utf-8"), strict=True)
    assert [str(v) for v in parsed.versions] == ["1.0.79~pr751-14", "1.0.79", "1.0.78"]
    top = read_top_entry(pkg / "debian" / "changelog")
    assert top.source == "hello"
    assert top.distributions == "pr-builds"
    assert top.urgency == "medium"
    assert "pull request #751, build 14" in entry
    assert SHA in entry


def test_entry_date_is_rfc2822(tmp_path: Path) -> None:
    pkg = make_changelog(tmp_path, QUIRKY)
    write_changelog_entry(pkg, "1.0.79~pr751-14", "unstable", PR, {}, when=WHEN)
    top = read_top_entry(pkg / "debian" / "changelog")
    assert top.date == "Tue, 05 Mar 2024 10:30:00 +0000"
    assert email.utils.parsedate_to_datetime(top.date) == WHEN
    assert source_date_epoch(pkg) == int(WHEN.timestamp())
    assert rfc2822_date(datetime(2024, 1, 1)) == "Mon, 01 Jan 2024 00:00:00 +0000"


def test_entry_date_never_goes_back(tmp_path: Path) -> None:
    pkg = make_changelog(tmp_path, QUIRKY)
    write_changelog_entry(pkg, "1.0.79~pr751-14", "unstable", PR, {}, when=datetime(2000, 1, 1))
    top = read_top_entry(pkg / "debian" / "changelog")
    assert top.date == "Tue, 02 Jan 2024 08:00:00 +0000"


def test_entry_date_defaults_to_the_commit_date(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    write_package(repo / "pkg", "pkg")
    commit(repo, "add")
    committed = int(git(repo, "log", "-1", "--format=%ct").strip())
    pr = BuildEvent(Provider.LOCAL, EventKind.PULL_REQUEST, 1, 1, None, None, None)
    first = write_changelog_entry(repo / "pkg", "1.0.0-1~pr1.1", "unstable", pr, {}, dry_run=True)
    second = write_changelog_entry(repo / "pkg", "1.0.0-1~pr1.1", "unstable", pr, {}, dry_run=True)
    assert first == second  # the same commit gives the same entry, whenever it runs
    expected = rfc2822_date(datetime.fromtimestamp(committed, UTC))
    assert f">  {expected}\n" in first


def test_maintainer_from_previous_entry(tmp_path: Path) -> None:
    pkg = make_changelog(tmp_path, QUIRKY)
    write_changelog_entry(pkg, "1.0.79~pr751-14", "unstable", PR, {}, when=WHEN)
    assert read_top_entry(pkg / "debian" / "changelog").maintainer == (
        "Zoë Example <zoe@example.org>"
    )


def test_maintainer_from_debfullname_and_debemail(tmp_path: Path) -> None:
    pkg = make_changelog(tmp_path, QUIRKY)
    env = {"DEBFULLNAME": "CI Robot", "DEBEMAIL": "ci@example.org"}
    write_changelog_entry(pkg, "1.0.79~pr751-14", "unstable", PR, env, when=WHEN)
    assert read_top_entry(pkg / "debian" / "changelog").maintainer == "CI Robot <ci@example.org>"


def test_maintainer_rules() -> None:
    prev = "Prev <prev@example.org>"
    assert maintainer_from_env({}, prev) == prev
    assert maintainer_from_env({"DEBEMAIL": "Bot <bot@example.org>"}, prev) == (
        "Bot <bot@example.org>"
    )
    assert maintainer_from_env({"DEBFULLNAME": "X", "DEBEMAIL": "Bot <b@e.org>"}, prev) == (
        "X <b@e.org>"
    )
    # An address without a name, or a name without an address: keep the previous one.
    assert maintainer_from_env({"DEBEMAIL": "bot@example.org"}, prev) == prev
    assert maintainer_from_env({"DEBFULLNAME": "Bot"}, prev) == prev


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    pkg = make_changelog(tmp_path, QUIRKY)
    before = (pkg / "debian" / "changelog").read_bytes()
    entry = write_changelog_entry(pkg, "1.0.79~pr751-14", "unstable", PR, {}, True, when=WHEN)
    assert entry.startswith("hello (1.0.79~pr751-14) unstable; urgency=medium\n\n  * CI build")
    assert entry.endswith(f" -- Zoë Example <zoe@example.org>  {rfc2822_date(WHEN)}\n\n")
    assert (pkg / "debian" / "changelog").read_bytes() == before


def test_file_mode_is_kept(tmp_path: Path) -> None:
    pkg = make_changelog(tmp_path, changelog_text("pkg", "1.0"))
    (pkg / "debian" / "changelog").chmod(0o640)
    write_changelog_entry(pkg, "1.0~pr1-1", "unstable", PR, {}, when=WHEN)
    assert (pkg / "debian" / "changelog").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("this is not a changelog\n", "malformed changelog"),
        ("", "malformed changelog"),
        (
            f"pkg (1.0) unstable; urgency=medium\n\n  * x\n\n -- {MAINTAINER}  yesterday\n",
            "malformed changelog",
        ),
        (
            f"pkg (:bad) unstable; urgency=medium\n\n  * x\n\n -- {MAINTAINER}  "
            "Mon, 01 Jan 2024 12:00:00 +0000\n",
            "invalid version",
        ),
    ],
)
def test_malformed_changelog(tmp_path: Path, text: str, complaint: str) -> None:
    pkg = make_changelog(tmp_path, text)
    with pytest.raises(BuildError, match=complaint) as info:
        write_changelog_entry(pkg, "1.0~pr1-1", "unstable", PR, {}, when=WHEN)
    assert "debian/changelog" in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_suite_is_refused(tmp_path: Path) -> None:
    pkg = make_changelog(tmp_path, changelog_text("pkg", "1.0"))
    with pytest.raises(BuildError, match="invalid distribution"):
        write_changelog_entry(pkg, "1.0~pr1-1", "bad suite; rm", PR, {}, when=WHEN)
