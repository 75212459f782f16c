"""CI versions, and the changelog entries that carry them.

The version of a build, from the top `debian/changelog` entry `V`:

=================================  =====================================================
event                              version
=================================  =====================================================
pull request N, build B            `V~prN-B` (`1.0.79~pr751-14`); when `V` has a
                                   Debian revision (`1.0.0-1`): `V~prN.B`
                                   (`1.0.0-1~pr751.14`)
push to the mainline branch        `V` as written; no new changelog entry
push to another branch             nothing is built; with `branch_builds`:
                                   `V~<branch>-B` (`V~<branch>.B` with a revision),
                                   the branch lowercased, every run of characters
                                   other than `a-z 0-9 + .` turned into one `.`
=================================  =====================================================

Why the revision case differs: `1.0.0-1~pr751-14` parses as upstream
`1.0.0-1~pr751`, revision `14`, which sorts *above* `1.0.0-2`: apt would prefer a
pull-request build to the next release. `1.0.0-1~pr751.14` sorts below `1.0.0-1`,
as `1.0.79~pr751-14` sorts below `1.0.79`. Either way the `~` makes a CI build
sort below the version it previews, and later builds of a pull request sort above
earlier ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from debian.debian_support import Version

from debops_ci.ci.git import commit_time
from debops_ci.ci.providers import BuildEvent, EventKind, Provider
from debops_ci.debian.changelog import (
    ChangelogEntry,
    format_entry,
    maintainer_from_env,
    prepend_entry,
    read_top_entry,
)
from debops_ci.errors import BuildError, UsageError

__all__ = [
    "ci_version",
    "entry_changes",
    "sanitize_branch",
    "source_date_epoch",
    "write_changelog_entry",
]

_BRANCH_JUNK = re.compile(r"[^a-z0-9+.]+")
_PROVIDER_NAMES = {
    Provider.GITHUB_ACTIONS: "GitHub Actions",
    Provider.CIRCLECI: "CircleCI",
    Provider.GITLAB_CI: "GitLab CI",
    Provider.LOCAL: "a local run",
}


def _parse(version: str) -> Version:
    try:
        return Version(version)
    except ValueError as exc:
        raise BuildError(
            f"{version!r} is not a valid Debian version: fix debian/changelog"
        ) from exc


def sanitize_branch(branch: str) -> str:
    """A branch name made fit for a Debian version: `feature/Foo_bar` → `feature.foo.bar`."""
    cleaned = _BRANCH_JUNK.sub(".", branch.lower()).strip(".")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return cleaned[:40].strip(".") or "branch"


def _with_suffix(version: str, tag: str, build: int) -> str:
    parsed = _parse(version)
    separator = "." if parsed.debian_revision else "-"
    result = f"{version}~{tag}{separator}{build}"
    _parse(result)
    return result


def ci_version(
    changelog_version: str, event: BuildEvent, branch_builds: bool = False
) -> str | None:
    """The version to build for `event`; None when the event builds nothing."""
    _parse(changelog_version)
    if event.kind is EventKind.MAINLINE:
        return changelog_version
    if event.kind is EventKind.PULL_REQUEST:
        if event.build is None:
            raise UsageError(
                f"pull request #{event.pr} needs a build number for its version: pass --build"
            )
        return _with_suffix(changelog_version, f"pr{event.pr}", event.build)
    if not branch_builds:
        return None
    if event.build is None:
        raise UsageError("a branch build needs a build number for its version: pass --build")
    return _with_suffix(changelog_version, sanitize_branch(event.branch or "branch"), event.build)


def entry_changes(event: BuildEvent) -> list[str]:
    """The bullets of the changelog entry of a CI build."""
    build = f", build {event.build}" if event.build is not None else ""
    if event.kind is EventKind.PULL_REQUEST:
        what = f"pull request #{event.pr}{build}"
    elif event.kind is EventKind.BRANCH:
        what = f"branch {event.branch or '(detached)'}{build}"
    else:
        what = f"{event.branch or 'the mainline'}{build}"
    changes = [f"CI build of {what} by debops-ci on {_PROVIDER_NAMES[event.provider]}."]
    if event.commit:
        changes.append(f"Commit {event.commit}.")
    return changes


def write_changelog_entry(
    pkg_dir: Path,
    version: str,
    suite: str,
    event: BuildEvent,
    env: Mapping[str, str],
    dry_run: bool = False,
    *,
    when: datetime | None = None,
) -> str:
    """Prepend a changelog entry for `version` to `pkg_dir/debian/changelog`.

    The entry: the top entry's source name, `version`, `suite` as distribution,
    urgency medium, the maintainer from `DEBFULLNAME`/`DEBEMAIL` (else the top
    entry's), and the date `when`. Without `when`: the committer date of the
    event's commit (of `HEAD`) when `pkg_dir` is in a git work tree, else now. So
    the same commit gives the same entry, and the same `SOURCE_DATE_EPOCH`, on every
    machine. The date never goes back before the previous entry's.

    The rest of the file stays byte-identical. Returns the entry's text; with
    `dry_run` nothing is written.
    """
    changelog = pkg_dir / "debian" / "changelog"
    top = read_top_entry(changelog)
    if when is None:
        when = _default_when(pkg_dir, event)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = max(when, top.timestamp).astimezone(UTC)
    entry = format_entry(
        source=top.source,
        version=version,
        distribution=suite,
        changes=entry_changes(event),
        maintainer=maintainer_from_env(env, top.maintainer),
        when=when,
    )
    prepend_entry(changelog, entry, dry_run=dry_run)
    return entry


def _default_when(pkg_dir: Path, event: BuildEvent) -> datetime:
    seconds = commit_time(pkg_dir, event.commit) if event.commit else None
    if seconds is None:
        seconds = commit_time(pkg_dir, "HEAD")
    if seconds is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(seconds, UTC)


def top_entry(pkg_dir: Path) -> ChangelogEntry:
    """The top entry of `pkg_dir/debian/changelog`."""
    return read_top_entry(pkg_dir / "debian" / "changelog")


def source_date_epoch(pkg_dir: Path) -> int:
    """`SOURCE_DATE_EPOCH` for a build of `pkg_dir`: its top changelog entry's date."""
    return top_entry(pkg_dir).epoch
