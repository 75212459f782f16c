"""`debops-ci`: the command group, aliases of the original tool, and error reporting.

Commands are imported when they run, not when the group is built: `debops-ci
--version` and `debops-ci list` on a local archive do not pay for boto3 or for the CI
half. `COMMANDS` is the one table of what exists and where it lives.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from debops_ci import __version__
from debops_ci.cli.boundary import report_errors
from debops_ci.cli.flags import SHARED_NAMES, shared_options

__all__ = ["ALIASES", "COMMANDS", "cli", "main"]

# name -> "module:attribute", in the order `--help` lists them.
COMMANDS: dict[str, str] = {
    "scan": "debops_ci.cli.ci_commands:scan_command",
    "version": "debops_ci.cli.ci_commands:version_command",
    "build": "debops_ci.cli.ci_commands:build_command",
    "ci": "debops_ci.cli.ci_commands:ci_command",
    "upload": "debops_ci.cli.archive_commands:upload_command",
    "list": "debops_ci.cli.archive_commands:list_command",
    "remove": "debops_ci.cli.archive_commands:remove_command",
    "verify": "debops_ci.cli.archive_commands:verify_command",
    "promote": "debops_ci.cli.lifecycle_commands:promote_command",
    "prune": "debops_ci.cli.lifecycle_commands:prune_command",
    "gc": "debops_ci.cli.lifecycle_commands:gc_command",
    "phase": "debops_ci.cli.lifecycle_commands:phase_command",
    "repair": "debops_ci.cli.archive_commands:repair_command",
    "resign": "debops_ci.cli.archive_commands:resign_command",
    "unlock": "debops_ci.cli.archive_commands:unlock_command",
    "serve": "debops_ci.cli.archive_commands:serve_command",
    "keygen": "debops_ci.cli.archive_commands:keygen_command",
}

# The original tool's action names, kept working.
ALIASES = {
    "publish": "upload",
    "delete_from_archive": "remove",
    "delete-from-archive": "remove",
}


def load_command(name: str) -> click.Command:
    module, _, attribute = COMMANDS[name].partition(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command)
    return command


class LazyGroup(click.Group):
    """Resolves aliases, and imports a command's module only when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = ALIASES.get(cmd_name, cmd_name)
        return load_command(name) if name in COMMANDS else None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else name), command, rest


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="debops-ci")
@shared_options
@click.pass_context
def cli(ctx: click.Context, /, **kwargs: Any) -> None:
    """Build Debian packages in CI and publish them into a signed APT archive."""
    ctx.obj = {"flags": {name: kwargs.get(name) for name in SHARED_NAMES}}


def main(argv: list[str] | None = None) -> None:
    args = list(argv) if argv is not None else sys.argv[1:]

    def run() -> None:
        if args[:1] not in (["--version"], ["--help"], ["-h"]):
            # Removes the private GnuPG homes on SIGTERM; not needed to print a version.
            from debops_ci.signing import install_sigterm_cleanup

            install_sigterm_cleanup()
        cli.main(args=args, prog_name="debops-ci", standalone_mode=False)

    report_errors("debops-ci", run, args)
