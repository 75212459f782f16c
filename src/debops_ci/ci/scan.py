"""Find the Debian packages of a repository, and the ones a change touches.

A *package* is a directory that holds `debian/changelog`: the repository root, any
directory below it, nested ones included. Every path changed between the merge base
and `HEAD` belongs to its nearest enclosing package.

The base to compare with, first found wins:

1. the `base` argument (a ref, a commit, or a branch name of `origin`);
2. the pull request's target branch named by the CI (`GITHUB_BASE_REF` on GitHub
   Actions, `CI_MERGE_REQUEST_TARGET_BRANCH_NAME` on GitLab CI), fetched from
   `origin` when the clone lacks it;
3. the remote's default branch: `origin/HEAD`, then `origin/main`, then
   `origin/master` (asked of the remote when none of them is known locally).

When `HEAD` is already contained in the base (a push to the mainline branch), the
change is the push itself: from the event's "before" commit when the CI names it
(GitHub's push payload, GitLab's `CI_COMMIT_BEFORE_SHA`), else from `HEAD`'s first
parent. A shallow clone that lacks the commits needed is deepened with
`git fetch --deepen` and at last `--unshallow`.

Renames count on both sides (the old path and the new one); a package whose directory
no longer exists at `HEAD` is not built, and the files it lost do not make an
enclosing package look changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

from debops_ci.ci.git import git, git_ok, is_git_repo
from debops_ci.ci.providers import pr_target_branch, push_before_sha
from debops_ci.debian.changelog import read_top_entry
from debops_ci.errors import BuildError

__all__ = [
    "ChangeSet",
    "PackageDir",
    "changed_packages",
    "find_changes",
    "find_packages",
    "format_json",
    "format_lines",
    "owning_package",
]

CHANGELOG = "debian/changelog"
_DEFAULT_BASES = ("origin/HEAD", "origin/main", "origin/master")
_DEEPEN_STEPS = (50, 200, 1000)
_ZERO_SHA = frozenset({"0" * 40, "0" * 64})
_T = TypeVar("_T")


@dataclass(frozen=True)
class PackageDir:
    """A directory holding `debian/changelog`."""

    path: PurePosixPath
    """Relative to the repository root; `.` for the root itself."""
    abs_path: Path
    name: str
    """The source package name, from the changelog's top entry."""
    version: str
    """The version of the changelog's top entry, as written."""

    @property
    def rel(self) -> str:
        """The directory as printed by `scan`: POSIX, relative, `.` for the root."""
        return self.path.as_posix()

    @property
    def changelog(self) -> Path:
        return self.abs_path / "debian" / "changelog"

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "directory": self.rel, "version": self.version}


@dataclass(frozen=True)
class ChangeSet:
    """What `changed_packages` compared, for messages and logs."""

    base_ref: str
    """The ref the base came from, e.g. `origin/main` or `HEAD^`."""
    base_commit: str
    head_commit: str
    changed_paths: tuple[str, ...]
    packages: tuple[PackageDir, ...]


def load_package(root: Path, rel: PurePosixPath) -> PackageDir:
    """Read the package at `root/rel` (BuildError when its changelog is malformed)."""
    abs_path = root if rel == PurePosixPath(".") else root.joinpath(*rel.parts)
    entry = read_top_entry(abs_path / "debian" / "changelog")
    return PackageDir(path=rel, abs_path=abs_path, name=entry.source, version=entry.version)


def _dirs_from_paths(paths: Iterable[str]) -> set[PurePosixPath]:
    dirs: set[PurePosixPath] = set()
    for path in paths:
        if path == CHANGELOG:
            dirs.add(PurePosixPath("."))
        elif path.endswith("/" + CHANGELOG):
            dirs.add(PurePosixPath(path[: -len(CHANGELOG) - 1]))
    return dirs


def owning_package(path: str, package_dirs: Iterable[PurePosixPath]) -> PurePosixPath | None:
    """The nearest package directory enclosing `path` (a file path, POSIX, relative)."""
    dirs = package_dirs if isinstance(package_dirs, (set, frozenset)) else set(package_dirs)
    for parent in PurePosixPath(path).parents:
        if parent in dirs:
            return parent
    return None


def repo_root(repo: Path) -> Path:
    """The top of the git work tree holding `repo`."""
    top = git_ok(repo, "rev-parse", "--show-toplevel")
    if top.returncode != 0 or not top.stdout.strip():
        raise BuildError(
            f"{repo} is not inside a git work tree: run in a clone, or use --all to build "
            "every package"
        )
    return Path(top.stdout.strip())


def find_packages(repo: Path, *, exclude: Sequence[Path] = ()) -> list[PackageDir]:
    """Every package of the repository (the `--all` selection), sorted by directory.

    In a git work tree the tracked and the untracked-but-not-ignored files are listed;
    anything else is walked, skipping hidden directories. Packages under one of the
    `exclude` directories (the build directory) are skipped, and so are packages
    outside `repo` when it is a subdirectory of the work tree (`-C examples` selects
    the examples only, not the repository's own package at its root).
    """
    repo = repo.resolve()
    if is_git_repo(repo):
        root = repo_root(repo)
        out = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        paths = [
            p
            for p in out.split("\0")
            if (p == CHANGELOG or p.endswith("/" + CHANGELOG)) and (root / p).is_file()
        ]
    else:
        root = repo
        paths = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if "changelog" in filenames and Path(dirpath).name == "debian":
                paths.append(Path(dirpath, "changelog").relative_to(root).as_posix())
    excluded = [e.resolve() for e in exclude]
    found = []
    for rel in sorted(_dirs_from_paths(paths)):
        abs_path = (root / rel).resolve()
        if any(abs_path == e or e in abs_path.parents for e in excluded):
            continue
        if abs_path != repo and repo not in abs_path.parents:
            continue  # outside the -C directory
        found.append(load_package(root, rel))
    return found


def changed_packages(repo: Path, base: str | None, env: Mapping[str, str]) -> list[PackageDir]:
    """The packages touched between the merge base (see the module doc) and `HEAD`."""
    return list(find_changes(repo, base, env).packages)


def find_changes(repo: Path, base: str | None, env: Mapping[str, str]) -> ChangeSet:
    """Like `changed_packages`, with the base and changed paths it used."""
    root = repo_root(repo.resolve())
    head = _rev(root, "HEAD")
    if head is None:
        raise BuildError(f"{root} has no commit yet: commit something first")
    base_ref, base_commit = _resolve_base(root, base, env)

    merge_base = _with_history(root, lambda: _merge_base(root, base_commit, head))
    if merge_base is None:
        raise BuildError(
            f"HEAD and {base_ref} have no common history: pass --base with a commit "
            "HEAD descends from, or use --all"
        )
    if merge_base == head:
        # HEAD is already in the base: a mainline push. The change is the push itself.
        base_ref, merge_base = _push_base(root, head, env)

    changed = _diff(root, merge_base, head)
    at_head = _dirs_from_paths(_tree_files(root, head))
    before = _dirs_from_paths(_tree_files(root, merge_base)) if merge_base else set()
    known = at_head | before
    selected: set[PurePosixPath] = set()
    for path in changed:
        owner = owning_package(path, known)
        if owner is not None and owner in at_head:
            selected.add(owner)
    packages = tuple(load_package(root, rel) for rel in sorted(selected))
    return ChangeSet(
        base_ref=base_ref,
        base_commit=merge_base or "(empty tree)",
        head_commit=head,
        changed_paths=tuple(changed),
        packages=packages,
    )


def format_lines(packages: Iterable[PackageDir]) -> str:
    """`scan`'s plain output: one package directory per line."""
    return "".join(f"{p.rel}\n" for p in packages)


def format_json(packages: Iterable[PackageDir]) -> str:
    """`scan`'s JSON output: a list of `{name, directory, version}`."""
    return json.dumps([p.to_json() for p in packages], indent=2) + "\n"


# -- git plumbing ------------------------------------------------------------------


def _rev(root: Path, rev: str) -> str | None:
    result = git_ok(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and sha else None


def _has_origin(root: Path) -> bool:
    return git_ok(root, "remote", "get-url", "origin").returncode == 0


def _fetch_branch(root: Path, branch: str) -> str | None:
    """Fetch `branch` of origin into `origin/<branch>`; its commit, or None."""
    if not _has_origin(root):
        return None
    args = ["fetch", "--quiet", "--no-tags"]
    if _is_shallow(root):
        args.append(f"--depth={_DEEPEN_STEPS[0]}")
    args += ["origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}"]
    if git_ok(root, *args).returncode != 0:
        return None
    return _rev(root, f"origin/{branch}")


def _resolve_base(root: Path, base: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    if base:
        for candidate in (base, f"origin/{base}"):
            sha = _rev(root, candidate)
            if sha:
                return candidate, sha
        sha = _fetch_branch(root, base)
        if sha:
            return f"origin/{base}", sha
        raise BuildError(f"base {base!r} is neither a ref nor a branch of origin: check --base")

    target, variable = pr_target_branch(env)
    if target:
        sha = _rev(root, f"origin/{target}") or _fetch_branch(root, target)
        if sha:
            return f"origin/{target}", sha
        raise BuildError(
            f"{variable}={target} but origin/{target} cannot be fetched: check the "
            "checkout step (actions/checkout with fetch-depth: 0 fetches every branch)"
        )

    for candidate in _DEFAULT_BASES:
        sha = _rev(root, candidate)
        if sha:
            return candidate, sha
    default = _remote_default_branch(root)
    if default:
        sha = _fetch_branch(root, default)
        if sha:
            return f"origin/{default}", sha
    raise BuildError(
        "cannot find a base to compare HEAD with: none of origin/HEAD, origin/main, "
        "origin/master exists and no CI base branch is set: pass --base <ref>, or --all"
    )


def _remote_default_branch(root: Path) -> str | None:
    if not _has_origin(root):
        return None
    result = git_ok(root, "ls-remote", "--symref", "origin", "HEAD")
    for line in result.stdout.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            return line[len("ref: refs/heads/") : -len("\tHEAD")]
    return None


def _merge_base(root: Path, base_commit: str, head: str) -> str | None:
    result = git_ok(root, "merge-base", base_commit, head)
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and sha else None


def _is_shallow(root: Path) -> bool:
    return git_ok(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"


def _shallow_commits(root: Path) -> set[str]:
    path = git(root, "rev-parse", "--git-path", "shallow").strip()
    shallow = Path(path) if Path(path).is_absolute() else root / path
    try:
        return set(shallow.read_text().split())
    except OSError:
        return set()


def _with_history(root: Path, attempt: Callable[[], _T | None]) -> _T | None:
    """`attempt()`, deepening a shallow clone step by step until it gives an answer."""
    found = attempt()
    if found is not None or not _is_shallow(root):
        return found
    steps = [f"--deepen={n}" for n in _DEEPEN_STEPS] + ["--unshallow"]
    for step in steps:
        result = git_ok(root, "fetch", "--quiet", "--no-tags", step, "origin")
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            reason = lines[-1] if lines else f"exit status {result.returncode}"
            raise BuildError(
                "the clone is shallow and lacks the history needed to find what changed; "
                f"fetching more failed ({reason}): clone with the full history "
                "(actions/checkout: fetch-depth: 0)"
            )
        found = attempt()
        if found is not None or not _is_shallow(root):
            return found
    return found


def _push_base(root: Path, head: str, env: Mapping[str, str]) -> tuple[str, str | None]:
    """The base of a mainline push: the "before" commit, else HEAD's first parent."""
    before = _push_before(env)
    if before:

        def before_commit() -> str | None:
            sha = _rev(root, before)
            if sha and git_ok(root, "merge-base", "--is-ancestor", sha, head).returncode == 0:
                return sha
            return None

        sha = _with_history(root, before_commit)
        if sha and sha != head:
            return before[:12], sha

    def parent() -> str | None:
        if head in _shallow_commits(root):
            return None  # the parent exists, we just do not have it
        return _rev(root, f"{head}^1") or ""

    first_parent = _with_history(root, parent)
    if first_parent:
        return "HEAD^", first_parent
    return "(root commit)", None


def _push_before(env: Mapping[str, str]) -> str | None:
    before = push_before_sha(env)
    if not before or before in _ZERO_SHA or not all(c in "0123456789abcdef" for c in before):
        return None
    return before


def _diff(root: Path, base: str | None, head: str) -> list[str]:
    """Paths changed from `base` (None: the empty tree) to `head`; renames both ways."""
    if base is None:
        return _tree_files(root, head)
    out = git(root, "diff", "--name-status", "-z", "-M", "--no-ext-diff", base, head, "--")
    tokens = out.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(tokens) and tokens[i]:
        status = tokens[i]
        if status[:1] in ("R", "C"):
            paths += [tokens[i + 1], tokens[i + 2]]
            i += 3
        else:
            paths.append(tokens[i + 1])
            i += 2
    return paths


def _tree_files(root: Path, rev: str) -> list[str]:
    out = git(root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", rev)
    return [p for p in out.split("\0") if p]
