"""Helpers for the CI tests: real git repositories and tiny Debian packages in tmp dirs.

Imported by the other ``test_ci_*`` modules; it also checks its own helpers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MAINTAINER = "debops-ci tests <tests@debops-ci.invalid>"
DATE = "Mon, 01 Jan 2024 12:00:00 +0000"

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "debops-ci tests",
    "GIT_AUTHOR_EMAIL": "tests@debops-ci.invalid",
    "GIT_COMMITTER_NAME": "debops-ci tests",
    "GIT_COMMITTER_EMAIL": "tests@debops-ci.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str, date: int | None = None) -> str:
    """Run git in ``cwd`` with a fixed identity (and commit date, when given)."""
    env = dict(os.environ, **_GIT_ENV)
    if date is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"@{date} +0000"
    proc = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    return path


_commit_clock = [1_710_000_000]  # March 2024, after the changelog dates


def commit(repo: Path, message: str) -> str:
    """Stage everything and commit (fixed, increasing dates); return the new SHA."""
    _commit_clock[0] += 60
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message, date=_commit_clock[0])
    return git(repo, "rev-parse", "HEAD").strip()


def clone(origin: Path, dest: Path, *args: str) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    git(dest.parent, "clone", "-q", *args, f"file://{origin}", str(dest))
    return dest


def changelog_text(name: str, version: str, distribution: str = "unstable") -> str:
    return (
        f"{name} ({version}) {distribution}; urgency=medium\n\n"
        "  * Initial release.\n\n"
        f" -- {MAINTAINER}  {DATE}\n"
    )


def write_package(
    path: Path,
    name: str,
    version: str = "1.0.0-1",
    *,
    build_depends: str = "debhelper-compat (= 13)",
    rules_extra: str = "",
) -> Path:
    """A tiny arch-all debhelper package shipping one text file; returns ``path``."""
    debian = path / "debian"
    (debian / "source").mkdir(parents=True, exist_ok=True)
    (debian / "changelog").write_text(changelog_text(name, version))
    (debian / "control").write_text(
        f"Source: {name}\nSection: misc\nPriority: optional\nMaintainer: {MAINTAINER}\n"
        f"Build-Depends: {build_depends}\nStandards-Version: 4.6.2\nRules-Requires-Root: no\n\n"
        f"Package: {name}\nArchitecture: all\nDepends: ${{misc:Depends}}\n"
        f"Description: test package {name}\n A package made by the debops-ci tests.\n"
    )
    (debian / "rules").write_text("#!/usr/bin/make -f\n\n%:\n\tdh $@\n" + rules_extra)
    (debian / "rules").chmod(0o755)
    (debian / "source" / "format").write_text("3.0 (quilt)\n")
    (debian / "copyright").write_text("Files: *\nCopyright: none\nLicense: CC0-1.0\n")
    (path / f"{name}.txt").write_text(f"data of {name}\n")
    (debian / "install").write_text(f"{name}.txt usr/share/{name}/\n")
    return path


def copy_examples(dest: Path) -> Path:
    """The examples/ tree as the content of ``dest`` (hello, hello-data, tools/hello-tools)."""
    shutil.copytree(EXAMPLES, dest, dirs_exist_ok=True)
    return dest


def test_helpers_make_a_repository(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    write_package(repo / "pkg", "pkg")
    sha = commit(repo, "add pkg")
    assert len(sha) == 40
    assert git(repo, "ls-files").split() == [
        "pkg/debian/changelog",
        "pkg/debian/control",
        "pkg/debian/copyright",
        "pkg/debian/install",
        "pkg/debian/rules",
        "pkg/debian/source/format",
        "pkg/pkg.txt",
    ]


def test_examples_are_complete() -> None:
    for rel in ("hello", "hello-data", "tools/hello-tools"):
        for name in ("changelog", "control", "rules", "copyright", "source/format"):
            assert (EXAMPLES / rel / "debian" / name).is_file(), f"{rel}/debian/{name}"
        assert os.access(EXAMPLES / rel / "debian" / "rules", os.X_OK)
    assert os.access(EXAMPLES / "tools" / "hello-tools" / "hello-tools", os.X_OK)
    assert "debhelper-compat (= 13)" in (EXAMPLES / "hello" / "debian" / "control").read_text()
