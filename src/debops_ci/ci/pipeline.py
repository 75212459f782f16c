"""The `ci` command as one function: scan → event → version → build → publish.

`run_ci` reads top to bottom:

1. An event that builds nothing (a push to a branch without a pull request, unless
   `branch_builds`) stops here.
2. Select the packages: every one (`select_all`) or those changed since the base
   (`debops_ci.ci.scan`). None: nothing to build.
3. Give each its CI version (`debops_ci.ci.versioning`) and, outside the
   mainline, the text of the changelog entry that carries it.
4. Pre-flight, mainline only: a version `already_published` means the changelog was
   not bumped; stop before spending build minutes.
5. `dry_run` stops here and reports the plan.
6. Build (`debops_ci.ci.build`), each package in a copy that gets the entry.
7. `publish(debs, event)`: the caller's archive transaction, all debs of the run in
   one go.
8. On GitHub Actions, a job summary: what was published and the `apt install` line.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from debian.deb822 import Deb822

from debops_ci.ci.build import BuiltPackage, build_packages
from debops_ci.ci.git import commit_time, head_commit
from debops_ci.ci.logger import CiLogger
from debops_ci.ci.providers import BuildEvent, EventKind
from debops_ci.ci.scan import PackageDir, find_changes, find_packages
from debops_ci.ci.versioning import ci_version, write_changelog_entry
from debops_ci.debian.changelog import prepend_entry
from debops_ci.debian.package import read_deb_control
from debops_ci.errors import BuildError, DebopsError

__all__ = [
    "AlreadyPublished",
    "BinaryInfo",
    "CiResult",
    "CiStatus",
    "PlannedPackage",
    "Publish",
    "binary_names",
    "run_ci",
]

Publish = Callable[[list[Path], BuildEvent], object]
AlreadyPublished = Callable[[str, str], bool]


class CiStatus(enum.Enum):
    NOTHING_TO_BUILD = "nothing to build"
    DRY_RUN = "dry run"
    BUILT = "built"
    PUBLISHED = "published"


@dataclass(frozen=True)
class PlannedPackage:
    """A package selected for the run, with the version it gets."""

    package: PackageDir
    version: str
    entry: str | None
    """The changelog entry added for the build; None on the mainline (none is added)."""


@dataclass(frozen=True)
class BinaryInfo:
    """A built `.deb`, as the summary shows it."""

    path: Path
    package: str
    version: str
    architecture: str


@dataclass(frozen=True)
class CiResult:
    status: CiStatus
    message: str
    event: BuildEvent
    suite: str
    planned: tuple[PlannedPackage, ...] = ()
    built: tuple[BuiltPackage, ...] = ()
    binaries: tuple[BinaryInfo, ...] = ()
    published: object | None = None

    @property
    def nothing_to_build(self) -> bool:
        return self.status is CiStatus.NOTHING_TO_BUILD

    @property
    def debs(self) -> list[Path]:
        return [deb for built in self.built for deb in built.debs]

    @property
    def apt_install(self) -> str | None:
        """`apt install pkg=version ...` for the binaries built (debug symbols left out)."""
        wanted = [b for b in self.binaries if not b.package.endswith("-dbgsym")]
        if not wanted:
            return None
        pins = sorted({f"{b.package}={b.version}" for b in wanted})
        return "apt install " + " ".join(pins)


def binary_names(pkg: PackageDir) -> list[str]:
    """The binary package names declared in `pkg`'s `debian/control`."""
    control = pkg.abs_path / "debian" / "control"
    try:
        with control.open(encoding="utf-8") as handle:
            paragraphs = list(Deb822.iter_paragraphs(handle))
    except OSError:
        return []
    return [str(p["Package"]).strip() for p in paragraphs if "Package" in p]


def _inspect(deb: Path) -> BinaryInfo:
    """The one .deb reader (`debops_ci.debian.package`): a .deb that publishing would
    refuse is refused here, before anything else happens (PackageError, exit 8)."""
    control = read_deb_control(deb)
    return BinaryInfo(deb, control.package, control.version, control.architecture)


def run_ci(
    repo: Path,
    event: BuildEvent,
    suite: str,
    *,
    base: str | None = None,
    select_all: bool = False,
    build_dir: Path,
    jobs: int = 1,
    install_build_deps: bool = False,
    branch_builds: bool = False,
    publish: Publish | None = None,
    already_published: AlreadyPublished | None = None,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
    env: Mapping[str, str] | None = None,
) -> CiResult:
    """Run the CI for `repo` on `event`; see the module doc for the steps.

    `publish` None builds without publishing. `already_published(name, version)`
    answers whether a source or binary package `name` at `version` is already in
    `suite`. `log` is a line printer, or a `CiLogger`; a plain printer gets
    the CI provider's folding from `env`. `env` (default: the process environment)
    is read for the CI provider, the scan's base and the changelog maintainer; the
    builds themselves always run in the process environment.
    """
    env = os.environ if env is None else env
    logger = log if isinstance(log, CiLogger) else CiLogger.from_env(env, log)
    try:
        return _run_ci(
            repo.resolve(),
            event,
            suite,
            base=base,
            select_all=select_all,
            build_dir=build_dir,
            jobs=jobs,
            install_build_deps=install_build_deps,
            branch_builds=branch_builds,
            publish=publish,
            already_published=already_published,
            dry_run=dry_run,
            logger=logger,
            env=env,
        )
    except DebopsError as exc:
        logger.summary(f"### debops-ci: {event.describe()}\n\n**Failed:** {exc}\n")
        raise


def _run_ci(
    repo: Path,
    event: BuildEvent,
    suite: str,
    *,
    base: str | None,
    select_all: bool,
    build_dir: Path,
    jobs: int,
    install_build_deps: bool,
    branch_builds: bool,
    publish: Publish | None,
    already_published: AlreadyPublished | None,
    dry_run: bool,
    logger: CiLogger,
    env: Mapping[str, str],
) -> CiResult:
    logger(f"event: {event.describe()} on {event.provider.value}")

    # 1. Events that build nothing.
    if event.kind is EventKind.BRANCH and not branch_builds:
        message = (
            f"nothing to build: a push to branch {event.branch or '(unknown)'} without a "
            "pull request (pass --branch-builds to build branches)"
        )
        return _finish(logger, CiResult(CiStatus.NOTHING_TO_BUILD, message, event, suite))

    # 2. Select the packages.
    if select_all:
        packages = find_packages(repo, exclude=[build_dir])
        logger(f"selected all {len(packages)} packages")
    else:
        changes = find_changes(repo, base, env)
        packages = list(changes.packages)
        logger(
            f"compared HEAD with {changes.base_ref} ({changes.base_commit[:12]}): "
            f"{len(changes.changed_paths)} paths changed, {len(packages)} packages touched"
        )
    if not packages:
        message = "nothing to build: no package changed" + ("" if select_all else " since the base")
        return _finish(logger, CiResult(CiStatus.NOTHING_TO_BUILD, message, event, suite))
    if event.commit is None:
        event = dataclasses.replace(event, commit=head_commit(repo))

    # 3. Versions and changelog entries.
    seconds = commit_time(repo, event.commit or "HEAD")
    when = datetime.fromtimestamp(seconds, UTC) if seconds is not None else datetime.now(UTC)
    planned = []
    for pkg in packages:
        version = ci_version(pkg.version, event, branch_builds)
        if version is None:  # only a branch event without branch builds, handled above
            continue
        entry = None
        if event.kind is not EventKind.MAINLINE:
            entry = write_changelog_entry(
                pkg.abs_path, version, suite, event, env, dry_run=True, when=when
            )
        planned.append(PlannedPackage(pkg, version, entry))
        logger(f"{pkg.rel}: {pkg.name} {version}")

    # 4. Pre-flight: a mainline version already published means no changelog bump.
    if already_published is not None and event.kind is EventKind.MAINLINE:
        stale = [
            f"{p.package.name} {p.version} is already published in {suite}: "
            f"bump {p.package.rel}/debian/changelog"
            for p in planned
            if any(already_published(name, p.version) for name in _names(p.package))
        ]
        if stale:
            raise BuildError("; ".join(stale))

    # 5. Dry run: the plan only.
    if dry_run:
        listing = ", ".join(f"{p.package.name} {p.version}" for p in planned)
        result = CiResult(
            CiStatus.DRY_RUN, f"dry run: would build {listing}", event, suite, tuple(planned)
        )
        return _finish(logger, result)

    # 6. Build.
    entries = {p.package.name: p.entry for p in planned}

    def prepare(pkg: PackageDir, copy: Path) -> None:
        entry = entries.get(pkg.name)
        if entry is not None:
            prepend_entry(copy / "debian" / "changelog", entry)

    built = build_packages(
        [p.package for p in planned],
        build_dir,
        jobs=jobs,
        install_build_deps=install_build_deps,
        log=logger,
        prepare=prepare,
    )
    binaries = tuple(_inspect(deb) for b in built for deb in b.debs)
    debs = [b.path for b in binaries]

    # 7. Publish.
    if publish is None:
        message = f"built {len(debs)} .deb files (not published): " + _listing(binaries)
        result = CiResult(
            CiStatus.BUILT, message, event, suite, tuple(planned), tuple(built), binaries
        )
        return _finish(logger, result)
    with logger.group(f"publish {len(debs)} .deb files to {suite}"):
        published = publish(debs, event)
    message = f"published {len(debs)} .deb files to {suite}: " + _listing(binaries)
    result = CiResult(
        CiStatus.PUBLISHED,
        message,
        event,
        suite,
        tuple(planned),
        tuple(built),
        binaries,
        published,
    )
    return _finish(logger, result)


def _names(pkg: PackageDir) -> list[str]:
    return [pkg.name, *(n for n in binary_names(pkg) if n != pkg.name)]


def _listing(binaries: Sequence[BinaryInfo]) -> str:
    return ", ".join(f"{b.package} {b.version} ({b.architecture})" for b in binaries)


def _finish(logger: CiLogger, result: CiResult) -> CiResult:
    logger(result.message)
    logger.summary(summary_markdown(result))
    return result


def summary_markdown(result: CiResult) -> str:
    """The job summary of a run, in Markdown."""
    lines = [f"### debops-ci: {result.event.describe()}", ""]
    if result.status is CiStatus.NOTHING_TO_BUILD:
        return "\n".join([*lines, result.message.capitalize(), ""])
    if result.status is CiStatus.DRY_RUN:
        lines += ["Dry run: nothing was built or published.", ""]
    elif result.status is CiStatus.BUILT:
        lines += ["Built, not published.", ""]
    else:
        lines += [f"Published to suite `{result.suite}`.", ""]
    if result.binaries:
        lines += ["| package | version | architecture | source |", "|---|---|---|---|"]
        source_of = {deb: b.package for b in result.built for deb in b.debs}
        for b in result.binaries:
            lines.append(
                f"| `{b.package}` | `{b.version}` | {b.architecture} | {source_of[b.path].name} |"
            )
    else:
        lines += ["| source | version | directory |", "|---|---|---|"]
        for p in result.planned:
            lines.append(f"| `{p.package.name}` | `{p.version}` | `{p.package.rel}` |")
    install = result.apt_install
    if install and result.status is CiStatus.PUBLISHED:
        lines += ["", "Install with:", "", "```sh", "apt update", install, "```"]
    return "\n".join([*lines, ""])
