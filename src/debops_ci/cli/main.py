"""`debops-ci`: the command group, aliases of the original tool, and error reporting."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from debops_ci import __version__
from debops_ci.cli.archive_commands import (
    keygen_command,
    list_command,
    remove_command,
    serve_command,
    unlock_command,
    upload_command,
    verify_command,
)
from debops_ci.cli.common import SHARED_NAMES, shared_options
from debops_ci.errors import DebopsError
from debops_ci.signing import install_sigterm_cleanup

# The original tool's action names, kept working.
ALIASES = {
    "publish": "upload",
    "delete_from_archive": "remove",
    "delete-from-archive": "remove",
}


class AliasGroup(click.Group):
    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else name), command, rest


@click.group(cls=AliasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="debops-ci")
@shared_options
@click.pass_context
def cli(ctx: click.Context, /, **kwargs: Any) -> None:
    """Build Debian packages in CI and publish them into a signed APT archive."""
    ctx.obj = {"flags": {name: kwargs.get(name) for name in SHARED_NAMES}}


for command in (
    upload_command,
    list_command,
    remove_command,
    verify_command,
    unlock_command,
    serve_command,
    keygen_command,
):
    cli.add_command(command)

try:  # the CI half registers itself when present
    from debops_ci.cli.ci_commands import register as _register_ci

    _register_ci(cli)
except ImportError:  # pragma: no cover
    pass


def main(argv: list[str] | None = None) -> None:
    install_sigterm_cleanup()
    verbose = any(a in ("-v", "--verbose", "--show-commands") for a in (argv or sys.argv[1:]))
    try:
        cli.main(args=argv, prog_name="debops-ci", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("debops-ci: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"debops-ci: error: {exc.format_message()}", err=True)
        sys.exit(2 if exc.exit_code == 1 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except DebopsError as exc:
        click.echo(f"debops-ci: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("debops-ci: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if verbose or os.environ.get("DEBOPS_DEBUG"):
            traceback.print_exc()
        click.echo(
            f"debops-ci: internal error: {type(exc).__name__}; rerun with -v for details "
            "and report it",
            err=True,
        )
        sys.exit(70)
