"""The deployer's errors: each carries the exit code the `deployer` command ends with.

| code | class | meaning |
|---|---|---|
| 1 | `DeployFailedError` | a host failed: install, health check, dpkg interrupted, no version |
| 2 | `DeployConfigError` | bad flags or deployer.ini |
| 3 | `HostUnreachableError` | a host did not answer over ssh (connect or command timeout) |
| 4 | `DeployLockedError` | another deployer holds a host's deploy lock |
"""

from __future__ import annotations

from debops_ci.errors import DebopsError, UsageError

__all__ = [
    "DeployConfigError",
    "DeployError",
    "DeployFailedError",
    "DeployLockedError",
    "HostUnreachableError",
]


class DeployError(DebopsError):
    """Base of the deployer's errors."""

    exit_code = 1


class DeployFailedError(DeployError):
    """A deploy, promote or rollback did not complete on every host."""

    exit_code = 1


class DeployConfigError(UsageError):
    """deployer.ini or a flag is wrong; nothing was changed."""

    exit_code = 2


class HostUnreachableError(DeployError):
    """ssh could not reach the host, or a command on it did not finish in time."""

    exit_code = 3

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        super().__init__(f"{host}: unreachable: {reason}")


class DeployLockedError(DeployError):
    """Another deployer holds the host's deploy lock and did not release it in time."""

    exit_code = 4
