"""`build-docs`: the documentation site of a project, from its source, without importing it.

Parse the flags, make one library call (`debops_ci.docsite.build_site`), print the
outcome. Warnings and skipped files go to stderr as `path:line: message`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import click

from debops_ci import __version__
from debops_ci.cli.boundary import report_errors
from debops_ci.docsite import (
    BuildOptions,
    BuildResult,
    build_site,
    load_config,
)
from debops_ci.docsite.config import validate

__all__ = ["cli", "main"]

PROG = "build-docs"


def _summary(result: BuildResult) -> str:
    parts = [
        f"{result.pages} pages",
        f"{result.blocks} blocks",
        f"{result.diagrams} diagrams",
        f"{result.todos} TODO/FIXME",
    ]
    if result.skipped:
        parts.append(f"{len(result.skipped)} skipped")
    if result.warnings:
        parts.append(f"{len(result.warnings)} warnings")
    where = os.path.relpath(result.outdir)
    if where.startswith(".."):
        where = str(result.outdir)
    return (
        f"{PROG}: {', '.join(parts)} -> {where}/ "
        f"({result.seconds:.2f} s, {result.cached} from cache)"
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The build_docs.ini to read (default: ./build_docs.ini; its directory is the root).",
)
@click.option(
    "--strict", is_flag=True, help="Any warning or skipped file fails the build (exit 1)."
)
@click.option("--outdir", help="Override the config's outdir (relative to the root).")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=0),
    default=0,
    help="Worker processes (0: one per core).",
)
@click.option(
    "--no-cache", is_flag=True, help="Render everything again; do not read or write the cache."
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where rendered files are cached (default: config cache_dir, else ~/.cache/build-docs).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only warnings and errors.")
def cli(
    config_path: Path | None,
    strict: bool,
    outdir: str | None,
    jobs: int,
    no_cache: bool,
    cache_dir: Path | None,
    quiet: bool,
) -> None:
    """Build the HTML documentation site of the Python and Markdown files of a project."""
    config = load_config(config_path)
    if outdir is not None:
        config = replace(config, outdir=outdir)
        validate(config, "--outdir")
    options = BuildOptions(strict=strict, jobs=jobs, use_cache=not no_cache, cache_dir=cache_dir)
    result = build_site(config, options)
    for report in result.reports:
        click.echo(str(report), err=True)
    if not quiet:
        click.echo(_summary(result))


def main(argv: list[str] | None = None) -> None:
    args = list(argv) if argv is not None else sys.argv[1:]
    report_errors(PROG, lambda: cli.main(args=args, prog_name=PROG, standalone_mode=False), args)


if __name__ == "__main__":
    main()
