"""The deployer: roll packages from an APT archive through stages of real hosts.

It talks to hosts over ssh (never to the archive): what they run (`query_status`),
what apt offers them (`query_versions`), and changes (`run_deploy` for deploy,
promote and rollback), with a host-side lock, a host-side record for rollback, an
audit trail and badges. The `deployer` command (`debops_ci.cli.deployer`) is a thin
shell over this package.
"""

from __future__ import annotations

from debops_ci.deploy.config import DeployConfig, Stage, find_config, load_config, parse_config
from debops_ci.deploy.errors import (
    DeployConfigError,
    DeployError,
    DeployFailedError,
    DeployLockedError,
    HostUnreachableError,
)
from debops_ci.deploy.queries import query_versions, refresh_badges
from debops_ci.deploy.rollout import DeployRequest, DeployResult, Runtime, run_deploy
from debops_ci.deploy.ssh import SshSettings, SshTransport, Transport
from debops_ci.deploy.status import StatusReport, query_status

__all__ = [
    "DeployConfig",
    "DeployConfigError",
    "DeployError",
    "DeployFailedError",
    "DeployLockedError",
    "DeployRequest",
    "DeployResult",
    "HostUnreachableError",
    "Runtime",
    "SshSettings",
    "SshTransport",
    "Stage",
    "StatusReport",
    "Transport",
    "find_config",
    "load_config",
    "parse_config",
    "query_status",
    "query_versions",
    "refresh_badges",
    "run_deploy",
]
