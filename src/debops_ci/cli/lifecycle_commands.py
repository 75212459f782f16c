"""Commands for an archive's life after upload: promote, prune, gc, phase.

Each one parses its flags, makes one library call and renders the result: one line
per thing done, then a summary line.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import timedelta
from typing import Any

import click

from debops_ci.archive.gc import DEFAULT_GRACE, gc
from debops_ci.archive.opening import open_archive as library_open_archive
from debops_ci.archive.phase import phase
from debops_ci.archive.promote import promote
from debops_ci.archive.prune import PrunePolicy, prune
from debops_ci.archive.remove import PackageSpec
from debops_ci.cli.common import archive_options, command_context, open_archive, shared_options
from debops_ci.errors import UsageError

__all__ = ["gc_command", "parse_duration", "phase_command", "promote_command", "prune_command"]

_DURATION = re.compile(r"^([0-9]+)([dhms])$")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str, flag: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s` as a timedelta; anything else is a UsageError."""
    found = _DURATION.match(text.strip())
    if found is None:
        raise UsageError(f"{flag} {text!r}: use a number and a unit, e.g. 30d, 12h, 90m, 45s")
    return timedelta(seconds=int(found[1]) * _UNITS[found[2]])


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count} {unit}"
        count //= 1024
    return f"{count} GiB"


@click.command("promote")
@click.argument("specs", nargs=-1)
@click.option("--from", "from_suite", required=True, help="The suite holding the tested build.")
@click.option("--to", "to_suite", required=True, help="The suite to promote it into.")
@click.option(
    "--to-archive",
    help="Promote into this other archive (s3://… or a path); default: the same archive.",
)
@click.option(
    "--phased-percentage", type=int, help="Write Phased-Update-Percentage N into the target."
)
@shared_options
@click.pass_context
def promote_command(
    ctx: click.Context,
    /,
    specs: tuple[str, ...],
    from_suite: str,
    to_suite: str,
    to_archive: str | None,
    phased_percentage: int | None,
    **kwargs: Any,
) -> None:
    """Copy PKG[=VERSION]... from one suite to another, exact bytes (default: newest)."""
    cctx = command_context(ctx, kwargs)
    settings = dataclasses.replace(cctx.settings(), suite=to_suite)
    settings.check()
    parsed = [PackageSpec.parse(spec, "promote") for spec in specs]
    if not parsed:
        raise UsageError("name at least one package: promote PKG[=VERSION]... --from S --to S")
    if to_archive is None:
        with open_archive(cctx, signing=True) as archive:
            result = promote(
                archive, archive, from_suite, settings, parsed, phased_percentage=phased_percentage
            )
            where = archive.store.describe()
    else:
        with (
            open_archive(cctx, signing=False) as source,
            library_open_archive(to_archive, archive_options(cctx), writable=True) as target,
        ):
            result = promote(
                source, target, from_suite, settings, parsed, phased_percentage=phased_percentage
            )
            where = target.store.describe()
    for entry in result.promoted:
        click.echo(
            f"promoted {entry.package} {entry.version} {entry.architecture} "
            f"{from_suite} -> {to_suite}/{settings.component} (sha256 {entry.sha256[:16]}…)"
        )
    for entry in result.already_present:
        click.echo(
            f"already in {to_suite} with identical bytes: {entry.package} {entry.version} "
            f"{entry.architecture}"
        )
    click.echo(
        f"{len(result.promoted)} promoted, {len(result.already_present)} already present, "
        f"{result.streamed} file(s) copied, {result.shared} already in place, in {where}"
    )


@click.command("prune")
@click.argument("specs", nargs=-1)
@click.option("--keep-last", type=int, help="Keep the newest K builds per package per PR.")
@click.option("--older-than", help="Only builds published longer ago than this (30d, 12h…).")
@click.option("--pr", type=int, help="Only builds of this pull request (alone: all of them).")
@click.option("--dry-run", is_flag=True, help="List what would go; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@shared_options
@click.pass_context
def prune_command(
    ctx: click.Context,
    /,
    specs: tuple[str, ...],
    keep_last: int | None,
    older_than: str | None,
    pr: int | None,
    dry_run: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Remove pull-request builds by retention policy (mainline versions stay unless named)."""
    cctx = command_context(ctx, kwargs)
    settings = cctx.settings()
    policy = PrunePolicy(
        keep_last=keep_last,
        older_than=parse_duration(older_than, "--older-than") if older_than else None,
        pr=pr,
        packages=tuple(PackageSpec.parse(spec, "prune") for spec in specs),
    )
    policy.check()
    with open_archive(cctx, signing=not dry_run) as archive:
        result = prune(archive, settings, policy, dry_run=dry_run)
    verb = "would prune" if dry_run else "pruned"
    if as_json:
        rows = [
            {
                "component": p.component,
                "package": p.entry.package,
                "version": p.entry.version,
                "architecture": p.entry.architecture,
                "filename": p.entry.filename,
                "reason": p.reason,
            }
            for p in result.pruned
        ]
        doc = {"suite": result.suite, "dry_run": dry_run, "pruned": rows, "kept": result.kept}
        click.echo(json.dumps(doc, indent=2))
        return
    for p in result.pruned:
        click.echo(
            f"{verb} {p.entry.package} {p.entry.version} {p.entry.architecture} "
            f"from {result.suite}/{p.component} ({p.reason})"
        )
    click.echo(
        f"{verb} {len(result.pruned)}, kept {result.kept} in {result.suite}"
        + ("" if dry_run or not result.pruned else "; files stay for `debops-ci gc`")
    )


@click.command("gc")
@click.option(
    "--grace",
    default=f"{int(DEFAULT_GRACE.total_seconds()) // 3600}h",
    show_default=True,
    help="Only collect files unreferenced and older than this (longer than the lock lease).",
)
@click.option("--dry-run", is_flag=True, help="List what would go; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@shared_options
@click.pass_context
def gc_command(
    ctx: click.Context, /, grace: str, dry_run: bool, as_json: bool, **kwargs: Any
) -> None:
    """Delete pool files and by-hash indexes no suite references (every suite)."""
    cctx = command_context(ctx, kwargs)
    period = parse_duration(grace, "--grace")
    with open_archive(cctx, signing=False) as archive:
        result = gc(archive, grace=period, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    for item in result.deleted:
        click.echo(f"{verb} {item.key} ({_size(item.size)})")
    click.echo(
        f"{verb} {len(result.deleted)} object(s) ({_size(result.bytes_freed)}) across "
        f"{len(result.suites)} suite(s); kept {result.kept_referenced} referenced, "
        f"{result.kept_young} younger than {grace}"
    )


@click.command("phase")
@click.argument("spec")
@click.argument("percentage")
@shared_options
@click.pass_context
def phase_command(ctx: click.Context, /, spec: str, percentage: str, **kwargs: Any) -> None:
    """Set PKG=VERSION's Phased-Update-Percentage to N (0-100), or `none` to drop it."""
    cctx = command_context(ctx, kwargs)
    settings = cctx.settings()
    parsed = PackageSpec.parse(spec, "phase")
    if percentage.lower() == "none":
        value = None
    elif percentage.isdigit():
        value = int(percentage)
    else:
        raise UsageError(f"phase: {percentage!r} is not a percentage: use 0 to 100, or none")
    with open_archive(cctx, signing=True) as archive:
        result = phase(archive, settings, parsed, value)
    shown = "no phasing" if value is None else f"{value}%"
    for component, entry in result.changed:
        click.echo(
            f"phased {entry.package} {entry.version} {entry.architecture} in "
            f"{settings.suite}/{component}: {shown}"
        )
    for _component, entry in result.unchanged:
        click.echo(f"already {shown}: {entry.package} {entry.version} {entry.architecture}")
    click.echo(f"{len(result.changed)} changed, {len(result.unchanged)} already so")
