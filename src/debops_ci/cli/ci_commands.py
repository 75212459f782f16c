"""The CI half of the CLI: scan, version, build, ci."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from debops_ci.archive.publish import PublishResult, publish
from debops_ci.archive.session import Archive
from debops_ci.archive.state import SuiteState
from debops_ci.ci.build import PackageBuildError
from debops_ci.ci.pipeline import CiResult, CiStatus, run_ci
from debops_ci.ci.providers import BuildEvent, EventKind, detect_event
from debops_ci.ci.scan import (
    PackageDir,
    find_changes,
    find_packages,
    format_json,
    format_lines,
)
from debops_ci.ci.versioning import ci_version, write_changelog_entry
from debops_ci.cli.common import Context, command_context, err, open_archive, shared_options
from debops_ci.cli.common import sources_line as archive_sources_line
from debops_ci.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])

# Which config table (`[pull-request]`, `[mainline]`, `[branch]`) an event reads.
EVENT_TABLE = {
    EventKind.PULL_REQUEST: "pull-request",
    EventKind.MAINLINE: "mainline",
    EventKind.BRANCH: "branch",
}


def event_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--pr", type=int, help="Pull request number (local/generic CI)."),
            click.option("--build", "build_number", type=int, help="CI build number."),
            click.option("--branch", help="Branch name (local/generic CI)."),
            click.option("--main-branches", help="Mainline branches. [default: main master]"),
        ]
    ):
        func = option(func)
    return func


def selection_options(func: F) -> F:
    for option in reversed(
        [
            click.option("-C", "--repo", "repo", default=".", help="Repository directory."),
            click.option("--base", help="Compare HEAD with this ref (default: the PR target)."),
            click.option("--all", "select_all", is_flag=True, help="Select every package."),
        ]
    ):
        func = option(func)
    return func


def build_options(func: F) -> F:
    """What `build` and `ci` share: how to build, what to select, which event, where."""
    for option in reversed(
        [
            click.option("--dry-run", is_flag=True, help="Show what would be done."),
            click.option("--jobs", type=int, help="Packages built in parallel. [default: CPUs]"),
            click.option("--build-dir", help="Where packages are built. [default: a temp dir]"),
            click.option("--install-build-deps/--no-install-build-deps", default=None),
            click.option("--branch-builds", is_flag=True, default=None, help="Build branches."),
        ]
    ):
        func = option(func)
    return shared_options(event_options(selection_options(func)))


def _event(cctx: Context, kwargs: dict[str, Any]) -> BuildEvent:
    branches = kwargs.get("main_branches") or cctx.resolver.get("main-branches")
    return detect_event(
        cctx.env,
        pr=kwargs.get("pr"),
        build=kwargs.get("build_number"),
        branch=kwargs.get("branch"),
        main_branches=str(branches).split() if branches else None,
    )


def _repo(kwargs: dict[str, Any]) -> Path:
    repo = Path(kwargs.get("repo") or ".")
    if not repo.is_dir():
        raise UsageError(f"repository directory {repo} does not exist")
    return repo.resolve()


def _selected_packages(cctx: Context, repo: Path) -> list[PackageDir]:
    """Every package (`--all`), or those the change since the base touches."""
    if cctx.flags.get("select_all"):
        return find_packages(repo)
    return list(find_changes(repo, cctx.resolver.get("base"), cctx.env).packages)


@click.command("scan")
@click.option("--json", "as_json", is_flag=True, help="Print name, directory and version.")
@selection_options
@shared_options
@click.pass_context
def scan_command(ctx: click.Context, /, as_json: bool, **kwargs: Any) -> None:
    """Print the package directories the change touches (one per line)."""
    cctx = command_context(ctx, kwargs)
    repo = _repo(kwargs)
    packages = _selected_packages(cctx, repo)
    click.echo(format_json(packages) if as_json else format_lines(packages), nl=False)


@click.command("version")
@click.option("--dry-run", is_flag=True, help="Print the versions; write nothing.")
@selection_options
@event_options
@shared_options
@click.pass_context
def version_command(ctx: click.Context, /, dry_run: bool, **kwargs: Any) -> None:
    """Give the selected packages their CI version (a new debian/changelog entry)."""
    cctx = command_context(ctx, kwargs)
    repo = _repo(kwargs)
    event = _event(cctx, kwargs)
    suite = cctx.settings(EVENT_TABLE[event.kind]).suite
    branch_builds = bool(cctx.resolver.get("branch-builds"))
    packages = _selected_packages(cctx, repo)
    for pkg in packages:
        version = ci_version(pkg.version, event, branch_builds)
        if version is None:
            click.echo(f"{pkg.rel}: nothing to build ({event.describe()})")
            continue
        if event.kind is not EventKind.MAINLINE:
            entry = write_changelog_entry(
                pkg.abs_path, version, suite, event, cctx.env, dry_run=dry_run
            )
            if dry_run:
                err(entry)
        click.echo(f"{pkg.rel}: {pkg.name} {version}")


def _print_result(result: CiResult, published: PublishResult | None, sources: str) -> None:
    click.echo(result.message)
    if published is not None:
        for pkg in published.already_present:
            click.echo(
                f"already published with identical bytes: {pkg.package} {pkg.version} "
                f"{pkg.architecture}"
            )
    if result.status is CiStatus.PUBLISHED:
        click.echo(sources)
        if result.apt_install:
            click.echo(result.apt_install)


def _run(ctx: click.Context, kwargs: dict[str, Any], *, publishing: bool, dry_run: bool) -> None:
    cctx = command_context(ctx, kwargs)
    repo = _repo(kwargs)
    event = _event(cctx, kwargs)
    table = EVENT_TABLE[event.kind]
    settings = cctx.settings(table)
    res = cctx.resolver.with_event(table)
    jobs = res.get("jobs") or os.cpu_count() or 1
    install = res.get("install-build-deps")
    if install is None:  # default: on for root in CI, where the machine is throwaway
        install = os.geteuid() == 0 and cctx.env.get("CI", "").lower() in ("true", "1")
    build_dir_setting = res.get("build-dir")
    with contextlib.ExitStack() as stack:
        if build_dir_setting:
            build_dir = Path(build_dir_setting).resolve()
        else:
            build_dir = Path(tempfile.mkdtemp(prefix="debops-ci-build-"))
        archive_holder: list[Archive] = []
        state_holder: list[SuiteState] = []
        published_holder: list[PublishResult] = []

        def archive() -> Archive:
            # Opened on first use: a run with nothing to build needs no key or archive.
            if not archive_holder:
                archive_holder.append(
                    stack.enter_context(open_archive(cctx, signing=True, event=table))
                )
            return archive_holder[0]

        def already_published(name: str, version: str) -> bool:
            if not state_holder:
                state_holder.append(archive().read(settings.suite))
            return any(
                e.package == name and e.version == version for _, e in state_holder[0].all_entries()
            )

        def publish_debs(debs: list[Path], _event: BuildEvent) -> PublishResult:
            result = publish(archive(), settings, debs)
            published_holder.append(result)
            return result

        try:
            result = run_ci(
                repo,
                event,
                settings.suite,
                base=res.get("base"),
                select_all=bool(kwargs.get("select_all")),
                build_dir=build_dir,
                jobs=int(jobs),
                install_build_deps=bool(install),
                branch_builds=bool(res.get("branch-builds")),
                publish=publish_debs if publishing else None,
                already_published=already_published if publishing else None,
                dry_run=dry_run,
                log=err,
                env=cctx.env,
            )
        except PackageBuildError as exc:
            if exc.tail:
                err(f"--- last lines of {exc.log_path} ---\n{exc.tail.rstrip()}\n---")
            raise
        sources = ""
        if archive_holder:
            sources = archive_sources_line(archive_holder[0], settings.suite, [settings.component])
        _print_result(result, published_holder[0] if published_holder else None, sources)
        if not publishing and result.debs:
            for deb in result.debs:
                click.echo(str(deb))


@click.command("build")
@build_options
@click.pass_context
def build_command(ctx: click.Context, /, dry_run: bool, **kwargs: Any) -> None:
    """Build the selected packages at their CI versions (no publishing)."""
    _run(ctx, kwargs, publishing=False, dry_run=dry_run)


@click.command("ci")
@build_options
@click.pass_context
def ci_command(ctx: click.Context, /, dry_run: bool, **kwargs: Any) -> None:
    """The whole job: scan, version, build, and publish in one archive transaction."""
    _run(ctx, kwargs, publishing=True, dry_run=dry_run)
