"""The few git commands the CI half needs, run as real `git` subprocesses."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from debops_ci.errors import BuildError

__all__ = ["GitResult", "commit_time", "git", "git_ok", "head_commit", "is_git_repo"]


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Stable, parseable output whatever the user's configuration.
    env["LC_ALL"] = "C"
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


def git_ok(repo: Path, *args: str) -> GitResult:
    """Run `git -C repo args`; return its result whatever the exit status."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), "-c", "core.quotepath=off", *args],
            capture_output=True,
            text=True,
            env=_env(),
            check=False,
        )
    except FileNotFoundError as exc:
        raise BuildError("git is not installed: install git (apt-get install git)") from exc
    return GitResult(proc.returncode, proc.stdout, proc.stderr)


def git(repo: Path, *args: str) -> str:
    """Run `git -C repo args` and return stdout; a failure is a BuildError."""
    result = git_ok(repo, *args)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        reason = detail[-1] if detail else f"exit status {result.returncode}"
        raise BuildError(f"git {' '.join(args)} failed in {repo}: {reason}")
    return result.stdout


def is_git_repo(repo: Path) -> bool:
    result = git_ok(repo, "rev-parse", "--is-inside-work-tree")
    return result.returncode == 0 and result.stdout.strip() == "true"


def head_commit(repo: Path) -> str | None:
    """The full SHA of HEAD, or None outside a repository or before the first commit."""
    result = git_ok(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    return result.stdout.strip() or None if result.returncode == 0 else None


def commit_time(repo: Path, rev: str = "HEAD") -> int | None:
    """The committer date of `rev` in seconds since the epoch, or None."""
    result = git_ok(repo, "log", "-1", "--format=%ct", rev, "--")
    text = result.stdout.strip()
    return int(text) if result.returncode == 0 and text.isdecimal() else None
