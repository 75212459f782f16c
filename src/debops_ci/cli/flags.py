"""The shared flags of every debops-ci command, as click options; nothing else.

Kept apart from `common.py` so the command group (and `--version`) can declare them
without importing the library behind them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["SHARED_NAMES", "shared_options", "shared_options_params"]

F = TypeVar("F", bound=Callable[..., Any])

_FLAG: dict[str, Any] = {"is_flag": True, "default": None}
_SHARED_OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--archive",
        help="Archive: s3://bucket[/prefix], file:///path or a path. [env DEBOPS_ARCHIVE]",
    ),
    click.option("--bucket-name", help="S3 bucket (the original tool's flag; = s3://NAME)."),
    click.option("--endpoint-url", help="S3-compatible endpoint. [env AWS_ENDPOINT_URL]"),
    click.option("--profile", help="AWS profile for credentials. [env AWS_PROFILE]"),
    click.option("--public-url", help="Where clients read the archive (its pages, sources lines)."),
    click.option("--distro", help="Suite (= codename) to publish to. [default: unstable]"),
    click.option("--component", help="Archive component. [default: main]"),
    click.option("--origin", help="Release Origin. [default: kept, or 'private']"),
    click.option("--label", help="Release Label. [default: kept, or the origin]"),
    click.option("--arch", help="Architecture for suites of only 'all' packages. [default: amd64]"),
    click.option("--gpg-key-fp", help="Sign with this key from the local GnuPG keyring."),
    click.option("--archive-key", help="Pinned public key file the archive must be signed with."),
    click.option("--valid-days", type=int, help="Add Valid-Until this many days ahead."),
    click.option("--lock-timeout", type=float, help="Seconds to wait for a lock. [default: 900]"),
    click.option("--config", "config_file", help="Config file. [default: nearest debops-ci.toml]"),
    click.option("--force", **_FLAG, help="Accept an InRelease that does not verify (rotation)."),
    click.option(
        "--unsafe-no-conditional-writes",
        **_FLAG,
        help="Publish even if the S3 server ignores conditional writes.",
    ),
    click.option(
        "--throwaway-key", **_FLAG, help="Sign with a key made for this run only (demos)."
    ),
    click.option("--show-commands", **_FLAG, help="Print every storage operation (no secrets)."),
    click.option("-v", "--verbose", **_FLAG, help="More detail (same as --show-commands)."),
]


def shared_options(func: F) -> F:
    for option in reversed(_SHARED_OPTIONS):
        func = option(func)
    return func


def shared_options_params() -> list[click.Parameter]:
    probe = click.Command("probe")
    for option in _SHARED_OPTIONS:
        option(probe)
    return list(probe.params)


# The parameter names of the shared options, read off a probe command.
SHARED_NAMES: list[str] = [str(param.name) for param in shared_options_params()]
