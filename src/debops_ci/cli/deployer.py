"""`deployer`: roll packages through stages of hosts. Parse, one library call, render.

deployer                              the status table (= deployer status)
deployer versions PKG [STAGE]         what the stage's hosts can install
deployer deploy PKG [STAGE [VERSION]] plan, then install in batches
deployer promote PKG STAGE            install what the previous stage runs
deployer rollback PKG STAGE           back to what each host ran before
deployer refresh_badges               rewrite every host's badges
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from debops_ci import __version__
from debops_ci.cli.boundary import report_errors
from debops_ci.deploy import (
    DeployConfig,
    DeployRequest,
    Runtime,
    SshSettings,
    SshTransport,
    find_config,
    load_config,
    query_status,
    query_versions,
    refresh_badges,
    run_deploy,
)
from debops_ci.deploy.render import (
    render_badges,
    render_event,
    render_result,
    render_status,
    render_versions,
    to_json,
)

__all__ = ["cli", "main"]

_PROG = "deployer"
_ALIASES = {"refresh-badges": "refresh_badges", "show": "status"}


class _Group(click.Group):
    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, _ALIASES.get(cmd_name, cmd_name))


class _Context:
    """The group options, shared by every command; deployer.ini is read on first use
    (so that `deployer CMD --help` works anywhere)."""

    def __init__(self, load: Any, as_json: bool, color: bool) -> None:
        self._load = load
        self._config: DeployConfig | None = None
        self.as_json = as_json
        self.color = color

    @property
    def config(self) -> DeployConfig:
        if self._config is None:
            self._config = self._load()
        return self._config

    @contextlib.contextmanager
    def connected(self) -> Iterator[SshTransport]:
        """SSH to the hosts of deployer.ini, closed (every master connection) after."""
        c = self.config
        transport = SshTransport(
            SshSettings(
                config_file=c.ssh_config,
                connect_timeout=c.connect_timeout,
                command_timeout=c.command_timeout,
            )
        )
        try:
            yield transport
        finally:
            transport.close()


def _load(
    config_path: Path | None,
    ssh_config: Path | None,
    timeout: float | None,
    audit_log: Path | None,
) -> DeployConfig:
    config = load_config(config_path) if config_path else load_config(find_config(Path.cwd()))
    changes: dict[str, object] = {}
    if ssh_config is not None:
        changes["ssh_config"] = ssh_config
    if timeout is not None:
        changes["connect_timeout"] = timeout
        changes["command_timeout"] = max(timeout, 1.0) * 3
    env_audit = os.environ.get("DEPLOYER_AUDIT_LOG")
    if audit_log is not None or env_audit:
        changes["audit_log"] = audit_log or Path(env_audit or "")
    return config.with_overrides(**changes) if changes else config


@click.group(
    cls=_Group,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name=_PROG)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="deployer.ini to use (default: deployer.ini or .deployer.ini here or above).",
)
@click.option(
    "--ssh-config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="ssh config file (default: ssh_config in deployer.ini, else your ~/.ssh/config).",
)
@click.option("--timeout", type=click.FloatRange(min=0.5), help="ssh connect timeout, seconds.")
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="local audit log (env DEPLOYER_AUDIT_LOG).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def cli(
    ctx: click.Context,
    /,
    config_path: Path | None,
    ssh_config: Path | None,
    timeout: float | None,
    audit_log: Path | None,
    as_json: bool,
) -> None:
    """Roll Debian packages through stages of hosts over ssh; no command: the status table."""
    ctx.obj = _Context(
        lambda: _load(config_path, ssh_config, timeout, audit_log),
        as_json,
        sys.stdout.isatty() and not os.environ.get("NO_COLOR"),
    )
    if ctx.invoked_subcommand is None:
        ctx.invoke(status_command)


def _state(ctx: click.Context) -> _Context:
    obj = ctx.find_object(_Context)
    assert obj is not None
    return obj


@cli.command("status")
@click.pass_context
def status_command(ctx: click.Context) -> None:
    """The table: each package's version on each stage (every host asked)."""
    state = _state(ctx)
    with state.connected() as transport:
        report = query_status(state.config, transport)
    click.echo(to_json(report) if state.as_json else render_status(report, state.color))
    if report.unreachable:
        names = " ".join(h.host for h in report.unreachable)
        click.echo(f"{_PROG}: warning: unreachable: {names}", err=True)
        sys.exit(3)


@cli.command("versions")
@click.argument("package")
@click.argument("stage", required=False)
@click.pass_context
def versions_command(ctx: click.Context, package: str, stage: str | None) -> None:
    """What apt on the stage's hosts can install (after apt-get update)."""
    state = _state(ctx)
    with state.connected() as transport:
        report = query_versions(state.config, transport, package, stage)
    click.echo(to_json(report) if state.as_json else render_versions(report))
    if any(h.error for h in report.hosts):
        sys.exit(3)


def _rollout_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--dry-run", is_flag=True, help="Plan and simulate only."),
            click.option("--batch", help="Batches, e.g. '1 50% 100%' (default: deployer.ini)."),
            click.option("--check", help="Health check command run on each host after a batch."),
            click.option(
                "--rollback-on-failure",
                is_flag=True,
                help="Put a failed batch back to its previous version.",
            ),
            click.option(
                "--lock-timeout",
                type=click.FloatRange(min=0),
                help="Seconds to wait for another deployer (0: refuse at once).",
            ),
        ]
    ):
        func = option(func)
    return func


def _rollout(ctx: click.Context, request: DeployRequest) -> None:
    state = _state(ctx)

    def report(event: object) -> None:
        if not state.as_json:
            click.echo(render_event(event))

    with state.connected() as transport:
        result = run_deploy(state.config, Runtime(transport, report=report), request)
    click.echo(to_json(result) if state.as_json else render_result(result))


@cli.command("deploy")
@click.argument("package")
@click.argument("stage", required=False)
@click.argument("version", required=False)
@_rollout_options
@click.pass_context
def deploy_command(
    ctx: click.Context, /, package: str, stage: str | None, version: str | None, **flags: Any
) -> None:
    """Install PACKAGE (VERSION, default the newest) on STAGE (default the first)."""
    _rollout(ctx, DeployRequest(package, stage, version, "deploy", **flags))


@cli.command("promote")
@click.argument("package")
@click.argument("stage")
@_rollout_options
@click.pass_context
def promote_command(ctx: click.Context, /, package: str, stage: str, **flags: Any) -> None:
    """Install on STAGE the version the previous stage runs."""
    _rollout(ctx, DeployRequest(package, stage, None, "promote", **flags))


@cli.command("rollback")
@click.argument("package")
@click.argument("stage")
@_rollout_options
@click.pass_context
def rollback_command(ctx: click.Context, /, package: str, stage: str, **flags: Any) -> None:
    """Return each host of STAGE to the version it ran before the last deploy."""
    _rollout(ctx, DeployRequest(package, stage, None, "rollback", **flags))


@cli.command("refresh_badges")
@click.pass_context
def refresh_badges_command(ctx: click.Context) -> None:
    """Write an SVG badge per package to badges_path on every host."""
    state = _state(ctx)
    with state.connected() as transport:
        outcomes = refresh_badges(state.config, transport)
    directory = state.config.badges_path or ""
    click.echo(to_json(outcomes) if state.as_json else render_badges(outcomes, directory))
    failed = [o for o in outcomes if o.error]
    if failed:
        sys.exit(3)


def main(argv: list[str] | None = None) -> None:
    """Console script: errors become one line on stderr and the documented exit code."""
    args = list(argv) if argv is not None else sys.argv[1:]
    report_errors(_PROG, lambda: cli.main(args=args, prog_name=_PROG, standalone_mode=False), args)


if __name__ == "__main__":  # pragma: no cover
    main()
