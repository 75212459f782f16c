"""Change detection on real git repositories made by the test."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import pytest
from test_ci_fixtures import changelog_text, clone, commit, git, init_repo, write_package

from debops_ci.ci.scan import (
    PackageDir,
    changed_packages,
    find_changes,
    find_packages,
    format_json,
    format_lines,
    owning_package,
)
from debops_ci.errors import BuildError

# The origin repository:
#   .                    package "rootpkg"  (README, docs/ belong to it)
#   alpha/               package "alpha"
#   beta/                package "beta"
#   nested/outer/        package "outer"
#   nested/outer/inner/  package "inner"   (nested in outer)
#   gone/                package "gone"    (deleted on the feature branch)
#   unowned/ would belong to the root package.


def make_origin(root: Path, *, main_commits_after_branch: int = 1) -> Path:
    origin = init_repo(root / "origin")
    write_package(origin, "rootpkg")
    (origin / "README").write_text("readme\n")
    (origin / "docs").mkdir()
    (origin / "docs" / "index.md").write_text("docs\n")
    write_package(origin / "alpha", "alpha")
    (origin / "alpha" / "src.txt").write_text("alpha\n")
    write_package(origin / "beta", "beta")
    (origin / "beta" / "data.txt").write_text("beta data\n")
    write_package(origin / "nested" / "outer", "outer", "2.0")
    (origin / "nested" / "outer" / "file.txt").write_text("outer\n")
    write_package(origin / "nested" / "outer" / "inner", "inner", "3.0-2")
    (origin / "nested" / "outer" / "inner" / "file.txt").write_text("inner\n")
    write_package(origin / "gone", "gone")
    (origin / "gone" / "x.txt").write_text("x\n")
    commit(origin, "initial")

    git(origin, "checkout", "-q", "-b", "feature")
    (origin / "alpha" / "src.txt").write_text("alpha changed\n")
    git(origin, "mv", "beta/data.txt", "nested/outer/data.txt")  # a rename across packages
    git(origin, "rm", "-q", "-r", "gone")  # a deleted package
    (origin / "nested" / "outer" / "inner" / "file.txt").write_text("inner changed\n")
    commit(origin, "feature work")

    git(origin, "checkout", "-q", "main")
    for i in range(main_commits_after_branch):
        (origin / "docs" / "index.md").write_text(f"docs {i}\n")  # root package, on main only
        commit(origin, f"main moves on {i}")
    return origin


FEATURE_PACKAGES = ["alpha", "beta", "nested/outer", "nested/outer/inner"]


def rels(pkgs: Iterable[PackageDir]) -> list[str]:
    return [p.rel for p in pkgs]


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_origin(tmp_path_factory.mktemp("scan"))


def feature_clone(origin: Path, dest: Path, *args: str) -> Path:
    clone(origin, dest, *args)
    git(dest, "checkout", "-q", "feature")
    return dest


def test_find_packages_root_and_nested(origin: Path) -> None:
    pkgs = find_packages(origin)
    assert rels(pkgs) == [".", "alpha", "beta", "gone", "nested/outer", "nested/outer/inner"]
    by_name = {p.name: p for p in pkgs}
    assert by_name["rootpkg"].path == PurePosixPath(".")
    assert by_name["rootpkg"].abs_path == origin.resolve()
    assert by_name["inner"].version == "3.0-2"
    assert by_name["outer"].abs_path == origin.resolve() / "nested" / "outer"


def test_find_packages_outside_git_and_excluding_the_build_dir(tmp_path: Path) -> None:
    write_package(tmp_path / "a", "pkg-a")
    write_package(tmp_path / "build" / "a" / "source", "pkg-a")  # a staged copy
    write_package(tmp_path / ".hidden", "hidden")
    assert rels(find_packages(tmp_path, exclude=[tmp_path / "build"])) == ["a"]


def test_owning_package_is_the_nearest() -> None:
    dirs = [PurePosixPath("."), PurePosixPath("a"), PurePosixPath("a/b")]
    assert owning_package("a/b/c/d.txt", dirs) == PurePosixPath("a/b")
    assert owning_package("a/debian/changelog", dirs) == PurePosixPath("a")
    assert owning_package("README", dirs) == PurePosixPath(".")
    assert owning_package("README", dirs[1:]) is None


def test_feature_branch_against_origin_head(origin: Path, tmp_path: Path) -> None:
    work = feature_clone(origin, tmp_path / "work")
    changes = find_changes(work, None, {})
    assert changes.base_ref == "origin/HEAD"
    # The merge base, not origin/main's tip: the root package changed on main only.
    assert changes.base_commit == git(work, "merge-base", "origin/main", "HEAD").strip()
    assert rels(changes.packages) == FEATURE_PACKAGES
    assert "beta/data.txt" in changes.changed_paths
    assert "nested/outer/data.txt" in changes.changed_paths
    pkgs = changed_packages(work, None, {})
    assert [p.name for p in pkgs] == ["alpha", "beta", "outer", "inner"]


def test_deleted_package_is_not_built_nor_its_parent(origin: Path, tmp_path: Path) -> None:
    work = feature_clone(origin, tmp_path / "work")
    changes = find_changes(work, None, {})
    assert any(p.startswith("gone/") for p in changes.changed_paths)
    names = [p.name for p in changes.packages]
    assert "gone" not in names
    assert "rootpkg" not in names  # gone/'s files were gone's, not the root package's


def test_output_forms(origin: Path, tmp_path: Path) -> None:
    work = feature_clone(origin, tmp_path / "work")
    pkgs = changed_packages(work, None, {})
    assert format_lines(pkgs) == "alpha\nbeta\nnested/outer\nnested/outer/inner\n"
    assert json.loads(format_json(pkgs))[2] == {
        "name": "outer",
        "directory": "nested/outer",
        "version": "2.0",
    }
    root_only = [p for p in find_packages(origin) if p.rel == "."]
    assert format_lines(root_only) == ".\n"


def test_github_base_ref(origin: Path, tmp_path: Path) -> None:
    work = feature_clone(origin, tmp_path / "work")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_BASE_REF": "main"}
    changes = find_changes(work, None, env)
    assert changes.base_ref == "origin/main"
    assert rels(changes.packages) == FEATURE_PACKAGES


def test_gitlab_target_branch_is_fetched_when_missing(origin: Path, tmp_path: Path) -> None:
    work = clone(origin, tmp_path / "work", "--single-branch", "--branch", "feature")
    assert git(work, "branch", "-r").split() == ["origin/feature"]
    env = {"GITLAB_CI": "true", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}
    changes = find_changes(work, None, env)
    assert changes.base_ref == "origin/main"
    assert rels(changes.packages) == FEATURE_PACKAGES


def test_remote_default_branch_is_asked_when_unknown(origin: Path, tmp_path: Path) -> None:
    # CircleCI has no base variable: with no origin/HEAD, main or master known
    # locally, the remote is asked for its default branch.
    work = clone(origin, tmp_path / "work", "--single-branch", "--branch", "feature")
    changes = find_changes(work, None, {"CIRCLECI": "true"})
    assert changes.base_ref == "origin/main"
    assert rels(changes.packages) == FEATURE_PACKAGES


def test_explicit_base_overrides(origin: Path, tmp_path: Path) -> None:
    work = feature_clone(origin, tmp_path / "work")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_BASE_REF": "main"}
    # Against the feature branch's parent commit, only that commit's changes count.
    changes = find_changes(work, "HEAD~1", env)
    assert changes.base_ref == "HEAD~1"
    assert rels(changes.packages) == FEATURE_PACKAGES
    # A branch name of origin works too.
    assert find_changes(work, "main", {}).base_ref in ("main", "origin/main")
    with pytest.raises(BuildError, match="--base"):
        find_changes(work, "no-such-branch", {})


def test_renamed_package_directory(tmp_path: Path) -> None:
    origin = init_repo(tmp_path / "origin")
    write_package(origin / "old-name", "mover")
    write_package(origin / "other", "other")
    commit(origin, "initial")
    git(origin, "checkout", "-q", "-b", "feature")
    git(origin, "mv", "old-name", "new-name")
    commit(origin, "rename the package directory")
    git(origin, "checkout", "-q", "main")
    work = feature_clone(origin, tmp_path / "work")
    changes = find_changes(work, None, {})
    assert "old-name/debian/control" in changes.changed_paths
    assert "new-name/debian/control" in changes.changed_paths
    assert rels(changes.packages) == ["new-name"]


def test_file_renamed_between_packages_maps_both(tmp_path: Path) -> None:
    origin = init_repo(tmp_path / "origin")
    write_package(origin / "a", "pkg-a")
    write_package(origin / "b", "pkg-b")
    write_package(origin / "c", "pkg-c")
    (origin / "a" / "moving.txt").write_text("a file big enough to be seen as renamed\n" * 5)
    commit(origin, "initial")
    git(origin, "checkout", "-q", "-b", "feature")
    git(origin, "mv", "a/moving.txt", "b/moved.txt")
    commit(origin, "move")
    git(origin, "checkout", "-q", "main")
    work = feature_clone(origin, tmp_path / "work")
    assert rels(changed_packages(work, None, {})) == ["a", "b"]


def test_mainline_push_uses_the_first_parent(origin: Path, tmp_path: Path) -> None:
    work = clone(origin, tmp_path / "work")  # on main, HEAD == origin/main
    changes = find_changes(work, None, {})
    assert changes.base_ref == "HEAD^"
    assert changes.changed_paths == ("docs/index.md",)
    assert rels(changes.packages) == ["."]


def test_mainline_push_uses_the_github_before_commit(origin: Path, tmp_path: Path) -> None:
    work = clone(origin, tmp_path / "work")
    first = git(work, "rev-list", "--max-parents=0", "HEAD").strip()
    payload = tmp_path / "event.json"
    payload.write_text(json.dumps({"before": first, "after": "x"}))
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(payload),
    }
    changes = find_changes(work, None, env)
    assert changes.base_commit == first
    assert changes.base_ref == first[:12]


def test_first_commit_counts_every_package(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    write_package(repo / "a", "pkg-a")
    write_package(repo / "b" / "c", "pkg-c")
    commit(repo, "initial")
    assert rels(changed_packages(repo, "HEAD", {})) == ["a", "b/c"]


def test_shallow_clone_is_deepened(tmp_path: Path) -> None:
    origin = make_origin(tmp_path, main_commits_after_branch=60)
    work = feature_clone(origin, tmp_path / "shallow", "--depth", "1", "--no-single-branch")
    assert git(work, "rev-parse", "--is-shallow-repository").strip() == "true"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_BASE_REF": "main"}
    changes = find_changes(work, None, env)
    assert rels(changes.packages) == FEATURE_PACKAGES
    assert changes.base_commit == git(origin, "merge-base", "main", "feature").strip()


def test_shallow_single_branch_clone_fetches_the_base(tmp_path: Path) -> None:
    origin = make_origin(tmp_path, main_commits_after_branch=60)
    work = clone(origin, tmp_path / "shallow", "--depth", "1", "--branch", "feature")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_BASE_REF": "main"}
    assert rels(changed_packages(work, None, env)) == FEATURE_PACKAGES


def test_shallow_mainline_clone_is_deepened_for_the_parent(origin: Path, tmp_path: Path) -> None:
    work = clone(origin, tmp_path / "shallow", "--depth", "1")
    assert rels(changed_packages(work, None, {})) == ["."]


def test_shallow_clone_that_cannot_be_deepened(tmp_path: Path) -> None:
    origin = make_origin(tmp_path, main_commits_after_branch=3)
    work = feature_clone(origin, tmp_path / "shallow", "--depth", "1", "--no-single-branch")
    git(work, "remote", "set-url", "origin", f"file://{tmp_path}/vanished")
    with pytest.raises(BuildError, match="fetch-depth: 0") as info:
        changed_packages(work, None, {})
    assert "shallow" in str(info.value)


def test_detached_head_without_any_base(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    write_package(repo / "a", "pkg-a")
    commit(repo, "one")
    (repo / "a" / "more.txt").write_text("more\n")
    commit(repo, "two")
    git(repo, "checkout", "-q", "--detach", "HEAD")
    with pytest.raises(BuildError, match="cannot find a base") as info:
        changed_packages(repo, None, {})
    assert "--base" in str(info.value)
    assert "\n" not in str(info.value)


def test_not_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not inside a git work tree"):
        changed_packages(tmp_path, None, {})


def test_malformed_changelog_of_a_changed_package(tmp_path: Path) -> None:
    origin = init_repo(tmp_path / "origin")
    write_package(origin / "a", "pkg-a")
    commit(origin, "initial")
    git(origin, "checkout", "-q", "-b", "feature")
    (origin / "a" / "debian" / "changelog").write_text("pkg-a (1.0) unstable; urgency=medium\n")
    commit(origin, "break it")
    git(origin, "checkout", "-q", "main")
    work = feature_clone(origin, tmp_path / "work")
    with pytest.raises(BuildError, match=r"a/debian/changelog: malformed changelog"):
        changed_packages(work, None, {})


def test_unchanged_packages_with_other_changes(tmp_path: Path) -> None:
    origin = init_repo(tmp_path / "origin")
    write_package(origin / "a", "pkg-a")
    (origin / "README").write_text("readme\n")
    commit(origin, "initial")
    git(origin, "checkout", "-q", "-b", "feature")
    (origin / "README").write_text("readme, better\n")
    (origin / "a" / "debian" / "changelog").write_text(changelog_text("pkg-a", "1.0.0-1"))
    commit(origin, "readme only")
    git(origin, "checkout", "-q", "main")
    work = feature_clone(origin, tmp_path / "work")
    assert changed_packages(work, None, {}) == []
