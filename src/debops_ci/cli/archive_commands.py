"""Commands that read or change the archive: upload, list, remove, verify, unlock, serve, keygen.

A command imports what only it needs when it runs: every command loads this module,
and `upload` (the one CI runs most) pays for nothing else.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from debops_ci.archive.publish import publish
from debops_ci.archive.release import parse_date
from debops_ci.archive.webpage import setup_lines
from debops_ci.cli.common import (
    Context,
    command_context,
    open_archive,
    shared_options,
    sources_line,
)
from debops_ci.errors import ArchiveIntegrityError, SigningError, UsageError

if TYPE_CHECKING:
    from debops_ci.archive.maintenance import SuiteCare


def _parse_floor(value: str | None) -> datetime | None:
    """A --not-older-than date: RFC 2822 (as in Release) or ISO 8601."""
    if not value:
        return None
    floor = parse_date(value)
    if floor is None:
        try:
            floor = datetime.fromisoformat(value)
        except ValueError:
            raise UsageError(
                f"--not-older-than {value!r}: use an RFC 2822 or ISO 8601 date"
            ) from None
    return floor if floor.tzinfo else floor.replace(tzinfo=UTC)


@click.command("upload")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--not-older-than",
    help="Refuse to publish if the suite's Date is older (the last Date you saw: rollback).",
)
@click.option(
    "--phased-percentage",
    type=int,
    help="Phased-Update-Percentage (0-100): apt upgrade rolls it out to that share of hosts.",
)
@shared_options
@click.pass_context
def upload_command(
    ctx: click.Context,
    /,
    files: tuple[Path, ...],
    not_older_than: str | None,
    phased_percentage: int | None,
    **kwargs: Any,
) -> None:
    """Publish .deb files into the archive, all in one transaction."""
    cctx = command_context(ctx, kwargs)
    if not files:
        raise UsageError("name at least one .deb file: debops-ci upload FILE.deb...")
    settings = dataclasses.replace(cctx.settings(), not_older_than=_parse_floor(not_older_than))
    with open_archive(cctx, signing=True) as archive:
        result = publish(archive, settings, list(files), phased_percentage=phased_percentage)
        for key in result.repaired:
            click.echo(f"repaired {key} (left torn by an earlier publisher)")
        for pkg in result.added:
            click.echo(f"published {pkg.package} {pkg.version} {pkg.architecture}")
        for pkg in result.already_present:
            click.echo(
                f"already published with identical bytes: {pkg.package} {pkg.version} "
                f"{pkg.architecture}"
            )
        if not result.added:
            click.echo(f"nothing to do: suite {settings.suite} already has every package")
        else:
            how = (
                "committed by the publisher holding the lock (group commit)"
                if result.by_other
                else f"{result.attempts} attempt(s), {result.commits} commit(s)"
            )
            click.echo(
                f"suite {settings.suite}/{settings.component} updated "
                f"({len(result.added)} added, {how}) in {archive.store.describe()}"
            )
        click.echo(sources_line(archive, settings.suite, [settings.component]))


@click.command("list")
@click.argument("package", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--all-suites", is_flag=True, help="List every suite of the archive.")
@shared_options
@click.pass_context
def list_command(
    ctx: click.Context, /, package: str | None, as_json: bool, all_suites: bool, **kwargs: Any
) -> None:
    """List the packages of a suite (or every suite)."""
    cctx = command_context(ctx, kwargs)
    settings = cctx.settings()
    from debops_ci.archive.listing import list_packages

    with open_archive(cctx, signing=False) as archive:
        rows = list_packages(archive, None if all_suites else [settings.suite], package=package)
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return
    if not rows:
        click.echo("no packages")
        return
    table = [
        {
            "suite": r.suite,
            "component": r.component,
            "package": r.package,
            "version": r.version,
            "architecture": r.architecture,
            "phased": "" if r.phased_percentage is None else f"{r.phased_percentage}%",
        }
        for r in rows
    ]
    columns = ["suite", "component", "package", "version", "architecture"]
    if any(row["phased"] for row in table):
        columns.append("phased")
    widths = {c: max(len(c), *(len(r[c]) for r in table)) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in table:
        click.echo("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())


@click.command("remove")
@click.argument("specs", nargs=-1)
@shared_options
@click.pass_context
def remove_command(ctx: click.Context, /, specs: tuple[str, ...], **kwargs: Any) -> None:
    """Remove PKG[=VERSION]... from a suite (pool files stay; --arch limits it)."""
    cctx = command_context(ctx, kwargs)
    settings = cctx.settings()
    arch_filter = cctx.flags.get("arch")
    from debops_ci.archive.remove import PackageSpec, remove

    parsed = [PackageSpec.parse(spec, "remove") for spec in specs]
    with open_archive(cctx, signing=True) as archive:
        result = remove(archive, settings, parsed, arch_filter)
    for component, entry in result.removed:
        click.echo(
            f"removed {entry.package} {entry.version} {entry.architecture} "
            f"from {settings.suite}/{component}"
        )


@click.command("verify")
@click.option("--not-older-than", help="Fail if a suite's Date is older (rollback check).")
@click.option("--no-files", is_flag=True, help="Skip hashing every .deb (indexes only).")
@click.option(
    "--all-suites", is_flag=True, help="Verify every suite (default when --distro is not given)."
)
@shared_options
@click.pass_context
def verify_command(
    ctx: click.Context,
    /,
    not_older_than: str | None,
    no_files: bool,
    all_suites: bool,
    **kwargs: Any,
) -> None:
    """Check signatures, every index and every file against their hashes."""
    cctx = command_context(ctx, kwargs)
    from debops_ci.archive.verify import verify

    floor = _parse_floor(not_older_than)
    explicit_suite = cctx.resolver.get("distro") if cctx.flags.get("distro") else None
    with open_archive(cctx, signing=False) as archive:
        archive.require_existing()
        suites = None if all_suites or not explicit_suite else [str(explicit_suite)]
        report = verify(archive, suites, not_older_than=floor, check_files=not no_files)
    for line in report.warnings:
        click.echo(f"warning: {line}")
    for line in report.errors:
        click.echo(f"error: {line}")
    status = "OK" if report.ok else "FAILED"
    click.echo(
        f"{status}: {len(report.suites)} suite(s), {report.packages} package(s), "
        f"{report.files_checked} file(s) checked, {len(report.errors)} error(s), "
        f"{len(report.warnings)} warning(s)"
    )
    if not report.ok:
        raise ArchiveIntegrityError(f"the archive does not verify ({len(report.errors)} errors)")


def _explicit_suites(cctx: Context, all_suites: bool) -> list[str] | None:
    """--distro names one suite; without it (or with --all-suites), every suite."""
    if all_suites or not cctx.flags.get("distro"):
        return None
    return [cctx.settings().suite]


def _render_care(done: list[SuiteCare], verb: str) -> None:
    for care in done:
        if care.repaired:
            click.echo(f"repaired dists/{care.suite}: {', '.join(care.repaired)}")
        if care.resigned:
            click.echo(f"re-signed dists/{care.suite}: Valid-Until moved forward")
        if not care.repaired and not care.resigned:
            click.echo(f"dists/{care.suite}: nothing to {verb}")


@click.command("repair")
@click.option("--all-suites", is_flag=True, help="Every suite (default without --distro).")
@shared_options
@click.pass_context
def repair_command(ctx: click.Context, /, all_suites: bool, **kwargs: Any) -> None:
    """Rewrite Release, Release.gpg and plain indexes that disagree with InRelease."""
    from debops_ci.archive.maintenance import repair

    cctx = command_context(ctx, kwargs)
    with open_archive(cctx, signing=True) as archive:
        done = repair(archive, cctx.settings(), _explicit_suites(cctx, all_suites))
    _render_care(done, "repair")


@click.command("resign")
@click.option("--all-suites", is_flag=True, help="Every suite (default without --distro).")
@click.option(
    "--within",
    help="Re-sign suites expiring within this long (e.g. 3d, 12h). [default: half their period]",
)
@shared_options
@click.pass_context
def resign_command(
    ctx: click.Context, /, all_suites: bool, within: str | None, **kwargs: Any
) -> None:
    """Re-sign the suites whose Valid-Until is near (run it on a schedule)."""
    cctx = command_context(ctx, kwargs)
    from debops_ci.archive.maintenance import resign
    from debops_ci.cli.lifecycle_commands import parse_duration

    horizon = parse_duration(within, "--within") if within else None
    with open_archive(cctx, signing=True) as archive:
        done = resign(archive, cctx.settings(), _explicit_suites(cctx, all_suites), within=horizon)
    _render_care(done, "re-sign")


@click.command("unlock")
@shared_options
@click.pass_context
def unlock_command(ctx: click.Context, /, **kwargs: Any) -> None:
    """Break a suite's lock by hand, after saying whose it was."""
    cctx = command_context(ctx, kwargs)
    from debops_ci.archive.lock import break_lock

    suite = cctx.settings().suite
    with open_archive(cctx, signing=False) as archive:
        holder = break_lock(archive.store, suite)
    if holder is None:
        click.echo(f"dists/{suite} is not locked")
    else:
        click.echo(f"broke the lock on dists/{suite} held by {holder.description}")


@click.command("serve")
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--bind", default="127.0.0.1", show_default=True)
@shared_options
@click.pass_context
def serve_command(ctx: click.Context, /, port: int, bind: str, **kwargs: Any) -> None:
    """Serve a local-directory archive over HTTP for apt."""
    import http.server
    import threading

    class _QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

    cctx = command_context(ctx, kwargs)
    with open_archive(cctx, signing=False) as archive:
        root = archive.store.capabilities.local_root
        if root is None:
            raise UsageError("serve works on a local-directory archive; S3 serves itself")
        archive.require_existing()
        handler = functools.partial(_QuietHandler, directory=str(root))
        try:
            server = http.server.ThreadingHTTPServer((bind, port), handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {bind}:{port}: {exc.strerror}") from None
        url = f"http://{bind}:{server.server_address[1]}"
        click.echo(f"serving {root} at {url} (Ctrl-C to stop)")
        for suite in archive.suites():
            click.echo(f"  {setup_lines(url, suite, ['main']).sources_line}")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            thread.join()
        except KeyboardInterrupt:
            server.shutdown()


@click.command("keygen")
@click.option("--name", default="debops-ci archive signing key", show_default=True)
@click.option("--email", default="archive@example.invalid", show_default=True)
@click.option(
    "--public-key",
    "public_key",
    default="archive-key.asc",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the base64 private key (mode 0600) to store as a CI secret.",
)
def keygen_command(name: str, email: str, public_key: Path, secret_file: Path) -> None:
    """Make a new archive signing key (ed25519, no passphrase)."""
    for value in (name, email):
        if any(c in value for c in "<>\n\r"):
            raise UsageError("--name and --email must be one line without < or >")
    if secret_file.exists():
        raise UsageError(f"{secret_file} exists; refusing to overwrite a private key")
    from debops_ci.signing import _gpg, generate_key, private_gnupg_home

    with private_gnupg_home() as home:
        gpg = _gpg(home)
        fingerprint = generate_key(gpg, f"{name} <{email}>")
        public = str(gpg.export_keys(fingerprint, armor=True))
        private = gpg.export_keys(fingerprint, secret=True, armor=True, passphrase="")
        if not private:
            raise SigningError("GnuPG could not export the new private key")
        encoded = base64.b64encode(str(private).encode()).decode() + "\n"
    public_key.write_text(public)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(encoded)
    click.echo(f"new signing key {fingerprint}")
    click.echo(f"public key written to {public_key} (publish it; pin it with --archive-key)")
    click.echo(
        f"private key (base64) written to {secret_file}, mode 0600. Store it as a CI secret:"
    )
    click.echo(f"  gh secret set DEB_GPG_KEY_BASE64 < {secret_file}")
    click.echo(f"then delete it: shred -u {secret_file}")
