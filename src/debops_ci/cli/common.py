"""What every archive command shares: its flags, and turning them into an open Archive.

The original tool took its flags before or after the action
(`debops-ci --show-commands ci --bucket-name X`), so the same options are accepted on
the group and on each command; the command's own value wins.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from debops_ci.archive.layout import PUBLIC_KEY_ASC
from debops_ci.archive.session import Archive, SuiteSettings
from debops_ci.errors import UsageError
from debops_ci.options import Resolver, load_resolver
from debops_ci.signing import Signer, decode_key_env
from debops_ci.storage import LocalStore, open_store

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


def err(message: str) -> None:
    click.echo(message, err=True)


@dataclass
class Context:
    """The merged flags of the group and the command, and the resolver over them."""

    flags: dict[str, Any]
    resolver: Resolver
    env: dict[str, str]

    def flag(self, name: str) -> bool:
        return bool(self.flags.get(name))

    @property
    def verbose(self) -> bool:
        return self.flag("show_commands") or self.flag("verbose")

    def settings(self, event: str | None = None) -> SuiteSettings:
        res = self.resolver.with_event(event) if event else self.resolver
        settings = SuiteSettings(
            suite=str(res.get("distro")),
            component=str(res.get("component")),
            origin=res.get("origin"),
            label=res.get("label"),
            default_arch=str(res.get("arch")),
            valid_days=res.get("valid-days"),
        )
        settings.check()  # before any key is loaded or any file read
        return settings

    def location(self, event: str | None = None) -> str:
        res = self.resolver.with_event(event) if event else self.resolver
        archive = res.get("archive")
        bucket = res.get("bucket-name")
        if archive and bucket:
            raise UsageError("give either --archive or --bucket-name, not both")
        if bucket:
            return f"s3://{bucket}"
        if archive:
            return str(archive)
        raise UsageError(
            "no archive given: pass --archive s3://bucket or --archive ./dir "
            "(or set DEBOPS_ARCHIVE, or `archive` in debops-ci.toml)"
        )


def command_context(ctx: click.Context, /, kwargs: dict[str, Any]) -> Context:
    """Merge the group's shared flags under the command's own."""
    group_flags: dict[str, Any] = (ctx.obj or {}).get("flags", {})
    flags = {name: group_flags.get(name) for name in SHARED_NAMES}
    # The command's own flags (shared or not) win over the group's.
    flags.update({name: value for name, value in kwargs.items() if value is not None})
    env = dict(os.environ)
    resolver = load_resolver(flags, env, flags.get("config_file"))
    return Context(flags, resolver, env)


def _observer(verb: str, key: str, detail: str) -> None:
    err(f"  {verb:6} {key}" + (f"  [{detail}]" if detail else ""))


def read_key_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --archive-key {path}: {exc}") from None
    if "BEGIN PGP PUBLIC KEY BLOCK" not in text:
        raise UsageError(f"--archive-key {path} is not an armored OpenPGP public key")
    return text


@contextlib.contextmanager
def open_archive(cctx: Context, *, signing: bool, event: str | None = None) -> Iterator[Archive]:
    """An Archive with its store, and a signer when the command writes."""
    res = cctx.resolver.with_event(event) if event else cctx.resolver
    store = open_store(
        cctx.location(event),
        endpoint_url=res.get("endpoint-url"),
        profile=res.get("profile"),
        observer=_observer if cctx.verbose else None,
    )
    pinned = res.get("archive-key")
    trusted = [read_key_file(pinned)] if pinned else None
    with contextlib.ExitStack() as stack:
        signer = None
        throwaway = cctx.flag("throwaway_key")
        # Readers trust the signing key when one is configured, like writers do.
        has_key = bool(decode_key_env(cctx.env) or res.get("gpg-key-fp"))
        if signing or (has_key and not trusted and not throwaway):
            signer = stack.enter_context(
                Signer.open(cctx.env, key_fingerprint=res.get("gpg-key-fp"), throwaway=throwaway)
            )
            if throwaway:
                err(f"signing with a throwaway key {signer.fingerprint} (valid for this run only)")
        archive = stack.enter_context(
            Archive(
                store,
                signer=signer,
                trusted_keys=trusted,
                force=cctx.flag("force") or throwaway,
                allow_unsafe_store=cctx.flag("unsafe_no_conditional_writes"),
                env=cctx.env,
                log=err,
                lock_timeout=float(res.get("lock-timeout")),
            )
        )
        yield archive


def sources_line(archive: Archive, suite: str, components: list[str]) -> str:
    """The sources.list line for a suite; a local archive's own key file works as is."""
    store = archive.store
    if isinstance(store, LocalStore):
        url = f"file://{store.root}"
        key = str(store.root / PUBLIC_KEY_ASC)
    else:
        url = store.public_url() or store.describe()
        key = "/etc/apt/keyrings/debops-ci-archive.asc"
    return f"deb [signed-by={key}] {url} {suite} {' '.join(components)}"


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
