"""run_ci end to end: real git, real dpkg-buildpackage, an injected publisher."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_ci_fixtures import clone, commit, copy_examples, git, init_repo, write_package

from debops_ci.ci.logger import CiLogger
from debops_ci.ci.pipeline import CiStatus, binary_names, run_ci, summary_markdown
from debops_ci.ci.providers import BuildEvent, EventKind, Provider, detect_event
from debops_ci.ci.scan import find_packages
from debops_ci.errors import BuildError


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples on main; a feature branch that touches hello and hello-tools."""
    origin = init_repo(tmp_path_factory.mktemp("pipeline") / "origin")
    copy_examples(origin)
    (origin / "README.md").write_text("examples\n")
    commit(origin, "examples")
    git(origin, "checkout", "-q", "-b", "feature/greet")
    hello_c = origin / "hello" / "hello.c"
    hello_c.write_text(hello_c.read_text().replace("world", "everyone"))
    tool = origin / "tools" / "hello-tools" / "hello-tools"
    tool.write_text(tool.read_text().replace("set -- world", "set -- everyone"))
    commit(origin, "greet everyone")
    git(origin, "checkout", "-q", "-b", "docs-only", "main")
    (origin / "README.md").write_text("examples, documented\n")
    commit(origin, "docs")
    git(origin, "checkout", "-q", "main")
    return origin


def checkout(origin: Path, dest: Path, branch: str) -> Path:
    clone(origin, dest)
    git(dest, "checkout", "-q", branch)
    return dest


def github_pr_env(work: Path, tmp_path: Path) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/5/merge",
        "GITHUB_HEAD_REF": "feature/greet",
        "GITHUB_BASE_REF": "main",
        "GITHUB_RUN_NUMBER": "3",
        "GITHUB_SHA": git(work, "rev-parse", "HEAD").strip(),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "DEBFULLNAME": "CI Robot",
        "DEBEMAIL": "ci@example.org",
    }


class Publisher:
    def __init__(self) -> None:
        self.calls: list[tuple[list[Path], BuildEvent]] = []

    def __call__(self, debs: list[Path], event: BuildEvent) -> object:
        self.calls.append((debs, event))
        for deb in debs:
            assert deb.is_file()
        return {"published": len(debs)}


def test_pull_request_builds_and_publishes(origin: Path, tmp_path: Path) -> None:
    work = checkout(origin, tmp_path / "work", "feature/greet")
    original = (work / "hello" / "debian" / "changelog").read_bytes()
    env = github_pr_env(work, tmp_path)
    event = detect_event(env)
    publisher = Publisher()
    consulted: list[tuple[str, str]] = []

    def already_published(name: str, version: str) -> bool:
        consulted.append((name, version))
        return True  # never consulted for pull requests: same bytes are no-ops there

    lines: list[str] = []
    result = run_ci(
        work,
        event,
        "pr-builds",
        build_dir=tmp_path / "build",
        jobs=2,
        publish=publisher,
        already_published=already_published,
        log=lines.append,
        env=env,
    )
    assert result.status is CiStatus.PUBLISHED
    assert result.published == {"published": 3}
    assert consulted == []
    assert [(p.package.rel, p.version) for p in result.planned] == [
        ("hello", "1.0.0-1~pr5.3"),
        ("tools/hello-tools", "1.0.0-1~pr5.3"),
    ]
    # One publish call with every .deb of the run.
    [(debs, published_event)] = publisher.calls
    assert sorted(d.name for d in debs) == [
        "hello-dbgsym_1.0.0-1~pr5.3_amd64.deb",
        "hello-tools_1.0.0-1~pr5.3_all.deb",
        "hello_1.0.0-1~pr5.3_amd64.deb",
    ]
    assert published_event.pr == 5
    assert published_event.commit == env["GITHUB_SHA"]
    assert result.apt_install == "apt install hello-tools=1.0.0-1~pr5.3 hello=1.0.0-1~pr5.3"

    # The built copy got a real entry on top; the rest of its changelog is untouched.
    hello = result.built[0]
    built_changelog = (hello.source_dir / "debian" / "changelog").read_bytes()
    assert built_changelog.endswith(original)
    entry = built_changelog[: -len(original)].decode()
    assert entry == result.planned[0].entry
    assert entry.startswith("hello (1.0.0-1~pr5.3) pr-builds; urgency=medium\n")
    assert " -- CI Robot <ci@example.org>  " in entry
    assert "pull request #5, build 3" in entry
    # ... and the source tree is untouched.
    assert (work / "hello" / "debian" / "changelog").read_bytes() == original
    assert git(work, "status", "--porcelain") == ""

    # GitHub Actions output: folded groups per package, and a job summary.
    assert "::group::hello 1.0.0-1~pr5.3: built" in lines
    assert lines.count("::endgroup::") >= 3
    summary = (tmp_path / "summary.md").read_text()
    assert "### debops-ci: pull request #5 (build 3)" in summary
    assert "Published to suite `pr-builds`." in summary
    assert "| `hello-tools` | `1.0.0-1~pr5.3` | all | hello-tools |" in summary
    assert "apt install hello-tools=1.0.0-1~pr5.3 hello=1.0.0-1~pr5.3" in summary


def test_mainline_version_already_published_stops_before_building(
    origin: Path, tmp_path: Path
) -> None:
    work = checkout(origin, tmp_path / "work", "main")
    event = detect_event({}, build=8)  # local, no PR: mainline
    assert event.kind is EventKind.MAINLINE

    def already_published(name: str, version: str) -> bool:
        return (name, version) == ("hello-data", "1.0.0-1")

    with pytest.raises(BuildError) as info:
        run_ci(
            work,
            event,
            "stable",
            base="HEAD",  # the first commit's packages: every package
            build_dir=tmp_path / "build",
            publish=Publisher(),
            already_published=already_published,
            log=lambda _: None,
            env={},
        )
    assert str(info.value) == (
        "hello-data 1.0.0-1 is already published in stable: bump hello-data/debian/changelog"
    )
    assert not (tmp_path / "build").exists()


def test_mainline_builds_the_version_as_written(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    write_package(repo / "tiny", "tiny", "2.1-3")
    commit(repo, "tiny")
    original = (repo / "tiny" / "debian" / "changelog").read_bytes()
    event = detect_event({})
    result = run_ci(
        repo,
        event,
        "stable",
        base="HEAD",
        build_dir=tmp_path / "build",
        already_published=lambda name, version: False,
        log=lambda _: None,
        env={},
    )
    assert result.status is CiStatus.BUILT
    assert result.planned[0].entry is None
    assert [d.name for d in result.debs] == ["tiny_2.1-3_all.deb"]
    assert (result.built[0].source_dir / "debian" / "changelog").read_bytes() == original
    assert result.event.commit == git(repo, "rev-parse", "HEAD").strip()
    assert result.message.startswith("built 1 .deb files (not published): tiny 2.1-3 (all)")


def test_branch_push_builds_nothing(origin: Path, tmp_path: Path) -> None:
    work = checkout(origin, tmp_path / "work", "feature/greet")
    summary = tmp_path / "summary.md"
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/heads/feature/greet",
        "GITHUB_REF_NAME": "feature/greet",
        "GITHUB_RUN_NUMBER": "7",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    event = detect_event(env)
    result = run_ci(
        work, event, "pr-builds", build_dir=tmp_path / "build", log=lambda _: None, env=env
    )
    assert result.nothing_to_build
    assert "feature/greet without a pull request" in result.message
    assert "Nothing to build" in summary.read_text()


def test_branch_builds_when_asked(origin: Path, tmp_path: Path) -> None:
    work = checkout(origin, tmp_path / "work", "feature/greet")
    event = BuildEvent(Provider.LOCAL, EventKind.BRANCH, None, 7, "feature/greet", None, None)
    result = run_ci(
        work,
        event,
        "branches",
        base="main",
        build_dir=tmp_path / "build",
        branch_builds=True,
        dry_run=True,
        log=lambda _: None,
        env={},
    )
    assert result.status is CiStatus.DRY_RUN
    assert [p.version for p in result.planned] == ["1.0.0-1~feature.greet.7"] * 2


def test_no_package_changed(origin: Path, tmp_path: Path) -> None:
    work = checkout(origin, tmp_path / "work", "docs-only")
    event = detect_event({}, pr=6, build=1)
    result = run_ci(
        work, event, "pr-builds", build_dir=tmp_path / "build", log=lambda _: None, env={}
    )
    assert result.status is CiStatus.NOTHING_TO_BUILD
    assert result.message == "nothing to build: no package changed since the base"


def test_dry_run_plans_without_writing(origin: Path, tmp_path: Path) -> None:
    work = checkout(origin, tmp_path / "work", "feature/greet")
    event = detect_event({}, pr=5, build=4)
    publisher = Publisher()
    result = run_ci(
        work,
        event,
        "pr-builds",
        select_all=True,
        build_dir=tmp_path / "build",
        publish=publisher,
        dry_run=True,
        log=lambda _: None,
        env={},
    )
    assert result.status is CiStatus.DRY_RUN
    assert [(p.package.name, p.version) for p in result.planned] == [
        ("hello", "1.0.0-1~pr5.4"),
        ("hello-data", "1.0.0-1~pr5.4"),
        ("hello-tools", "1.0.0-1~pr5.4"),
    ]
    assert all(p.entry and "pull request #5, build 4" in p.entry for p in result.planned)
    assert result.message == (
        "dry run: would build hello 1.0.0-1~pr5.4, hello-data 1.0.0-1~pr5.4, "
        "hello-tools 1.0.0-1~pr5.4"
    )
    assert publisher.calls == []
    assert not (tmp_path / "build").exists()
    assert git(work, "status", "--porcelain") == ""
    assert "Dry run" in summary_markdown(result)


def test_binary_names(origin: Path) -> None:
    pkgs = {p.name: p for p in find_packages(origin)}
    assert binary_names(pkgs["hello"]) == ["hello"]
    assert binary_names(pkgs["hello-data"]) == ["hello-data"]


def test_logger_groups_outside_github(tmp_path: Path) -> None:
    lines: list[str] = []
    plain = CiLogger(lines.append)
    with plain.group("hello"):
        plain("inside")
    plain.error("bad")
    assert lines == ["── hello", "inside", "── end of hello", "error: bad"]
    assert plain.summary("x") is False

    lines.clear()
    gha = CiLogger.from_env(
        {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "s.md")}, lines.append
    )
    with gha.group("hello"):
        gha("inside")
    gha.error("bad\nthing 100%")
    assert lines == ["::group::hello", "inside", "::endgroup::", "::error::bad%0Athing 100%25"]
    assert gha.summary("one") and gha.summary("two\n")
    assert (tmp_path / "s.md").read_text() == "one\ntwo\n"

    lines.clear()
    gitlab = CiLogger.from_env({"GITLAB_CI": "true"}, lines.append)
    with gitlab.group("hello"):
        gitlab("inside")
    assert "section_start:" in lines[0] and "[collapsed=true]" in lines[0]
    assert "section_end:" in lines[2]


def test_pull_request_builds_are_reproducible_across_clones(origin: Path, tmp_path: Path) -> None:
    debs = []
    for where in (tmp_path / "a", tmp_path / "b" / "somewhere" / "else"):
        work = checkout(origin, where / "clone", "feature/greet")
        env = github_pr_env(work, where)
        result = run_ci(
            work,
            detect_event(env),
            "pr-builds",
            build_dir=where / "build",
            jobs=2,
            log=lambda _: None,
            env=env,
        )
        assert result.status is CiStatus.BUILT
        debs.append(sorted(result.debs))
    first, second = debs
    assert [d.name for d in first] == [d.name for d in second]
    assert len(first) == 3
    for one, two in zip(first, second, strict=True):
        assert one.read_bytes() == two.read_bytes(), f"{one.name} differs between clones"


def test_failure_goes_to_the_job_summary(origin: Path, tmp_path: Path) -> None:
    work = checkout(origin, tmp_path / "work", "main")
    summary = tmp_path / "summary.md"
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REF_NAME": "main",
        "GITHUB_RUN_NUMBER": "9",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    with pytest.raises(BuildError, match="already published in stable"):
        run_ci(
            work,
            detect_event(env),
            "stable",
            select_all=True,
            build_dir=tmp_path / "build",
            already_published=lambda name, version: True,
            log=lambda _: None,
            env=env,
        )
    text = summary.read_text()
    assert text.startswith("### debops-ci: mainline main (build 9)\n\n**Failed:** hello 1.0.0-1")
