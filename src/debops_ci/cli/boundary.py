"""The error boundary of the three tools: every failure becomes one line and its exit code.

Library errors carry their exit code (`debops_ci.errors`); click's usage errors exit 2;
anything unexpected is exit 70 with its type only (a traceback with -v or
DEBOPS_DEBUG=1), so no message of a library below can leak a secret by accident.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Sequence

import click

from debops_ci.errors import DebopsError

__all__ = ["report_errors"]


def report_errors(prog: str, run: Callable[[], object], argv: Sequence[str] | None = None) -> None:
    """Run a click entry point; every failure becomes one line and its exit code.

    Shared by the three tools, so they answer bad input the same way.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    verbose = any(a in ("-v", "--verbose", "--show-commands") for a in args)
    try:
        run()
    except click.exceptions.Abort:
        click.echo(f"{prog}: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"{prog}: error: {exc.format_message()}", err=True)
        sys.exit(2 if exc.exit_code == 1 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except DebopsError as exc:
        # Some errors carry report lines (build-docs: every broken link) to print first.
        for line in getattr(exc, "reports", ()):
            click.echo(line, err=True)
        click.echo(f"{prog}: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if verbose or os.environ.get("DEBOPS_DEBUG"):
            traceback.print_exc()
        click.echo(
            f"{prog}: internal error: {type(exc).__name__}; rerun with DEBOPS_DEBUG=1 "
            "for details and report it",
            err=True,
        )
        sys.exit(70)
