"""What every archive command shares: its flags, and turning them into an open Archive.

The original tool took its flags before or after the action
(`debops-ci --show-commands ci --bucket-name X`), so the same options are accepted on
the group and on each command; the command's own value wins.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click

from debops_ci.archive.layout import PUBLIC_KEY_ASC
from debops_ci.archive.opening import ArchiveOptions, SigningKey, read_public_key
from debops_ci.archive.opening import open_archive as library_open_archive
from debops_ci.archive.session import Archive
from debops_ci.archive.settings import SuiteSettings
from debops_ci.archive.webpage import resolve_public_url, setup_lines
from debops_ci.cli.flags import SHARED_NAMES, shared_options
from debops_ci.errors import UsageError
from debops_ci.options import Resolver, load_resolver
from debops_ci.signing import decode_key_env
from debops_ci.storage import S3Tuning

__all__ = [
    "SHARED_NAMES",
    "Context",
    "archive_options",
    "command_context",
    "err",
    "open_archive",
    "shared_options",
    "sources_line",
    "stdout_is_tty",
]


def err(message: str) -> None:
    click.echo(message, err=True)


@dataclass
class Context:
    """The merged flags of the group and the command, and the resolver over them."""

    flags: dict[str, Any]
    resolver: Resolver
    env: dict[str, str]

    def flag(self, name: str) -> bool:
        """A yes/no setting, resolved like every other one."""
        return bool(self.resolver.get(name.replace("_", "-")))

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


def _ci_run_url(env: Any) -> str:
    from debops_ci.ci.providers import ci_run_url  # the CI half, only when it is needed

    return ci_run_url(env)


def _observer(verb: str, key: str, detail: str) -> None:
    err(f"  {verb:6} {key}" + (f"  [{detail}]" if detail else ""))


def archive_options(cctx: Context, event: str | None = None) -> ArchiveOptions:
    """The typed options of the library's `open_archive`, from flags, env and config."""
    res = cctx.resolver.with_event(event) if event else cctx.resolver
    pinned = res.get("archive-key")
    return ArchiveOptions(
        endpoint_url=res.get("endpoint-url"),
        profile=res.get("profile"),
        s3=S3Tuning(
            max_attempts=res.get("s3-max-attempts"),
            connect_timeout=res.get("s3-connect-timeout"),
            read_timeout=res.get("s3-read-timeout"),
        ),
        key=SigningKey(
            private_key=decode_key_env(cctx.env),
            passphrase=cctx.env.get("DEB_GPG_PASSPHRASE") or None,
            fingerprint=res.get("gpg-key-fp"),
            throwaway=bool(res.get("throwaway-key")),
        ),
        archive_keys=(read_public_key(pinned),) if pinned else (),
        force=bool(res.get("force")),
        unsafe_no_conditional_writes=bool(res.get("unsafe-no-conditional-writes")),
        lock_timeout=float(res.get("lock-timeout")),
        public_url=res.get("public-url"),
        run=_ci_run_url(cctx.env),
        observer=_observer if cctx.verbose else None,
        log=err,
    )


@contextlib.contextmanager
def open_archive(cctx: Context, *, signing: bool, event: str | None = None) -> Iterator[Archive]:
    """An Archive with its store, and a signer when the command writes."""
    with library_open_archive(
        cctx.location(event), archive_options(cctx, event), writable=signing
    ) as archive:
        yield archive


def sources_line(archive: Archive, suite: str, components: list[str]) -> str:
    """The sources.list line for a suite; a local archive's own key file works as is.

    Elsewhere the keyring name is the one the archive's page tells users to install
    (derived from the archive's URL, so two archives coexist on a client).
    """
    store = archive.store
    root = store.capabilities.local_root
    if root is not None:
        return (
            f"deb [signed-by={root / PUBLIC_KEY_ASC}] file://{root} {suite} {' '.join(components)}"
        )
    url = resolve_public_url(store, archive.public_url)
    return setup_lines(url, suite, components).sources_line


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
