"""Read-mostly fleet operations: available versions per stage, badge refresh."""

from __future__ import annotations

from dataclasses import dataclass

from debops_ci.debian.version import version_sort_key
from debops_ci.deploy import hosts as remote
from debops_ci.deploy.badges import badge_svg
from debops_ci.deploy.config import DeployConfig
from debops_ci.deploy.errors import DeployConfigError, DeployError, HostUnreachableError
from debops_ci.deploy.ssh import Transport
from debops_ci.deploy.status import parallel

__all__ = [
    "BadgeOutcome",
    "HostVersions",
    "VersionsReport",
    "query_versions",
    "refresh_badges",
]


@dataclass(frozen=True)
class HostVersions:
    host: str
    installed: str | None
    available: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True)
class VersionsReport:
    package: str
    stage: str
    hosts: tuple[HostVersions, ...]

    def versions(self) -> list[str]:
        """Every version any host offers or runs, newest first."""
        found = {v for h in self.hosts for v in h.available}
        found |= {h.installed for h in self.hosts if h.installed}
        return sorted(found, key=version_sort_key, reverse=True)


def query_versions(
    config: DeployConfig, transport: Transport, package: str, stage_name: str | None
) -> VersionsReport:
    """`apt-get update` then `apt-cache madison PKG` on every host of the stage."""
    config.check_package(package)
    stage = config.stage(stage_name)

    def ask(host: str) -> HostVersions:
        try:
            state = remote.available_versions(
                transport, host, package, timeout=config.install_timeout
            )
        except HostUnreachableError as exc:
            return HostVersions(host, None, (), exc.reason)
        except DeployError as exc:
            return HostVersions(host, None, (), str(exc))
        return HostVersions(host, state.package.version, state.available)

    return VersionsReport(package, stage.name, tuple(parallel(ask, stage.hosts)))


@dataclass(frozen=True)
class BadgeOutcome:
    host: str
    written: tuple[str, ...]
    error: str | None = None


def refresh_badges(config: DeployConfig, transport: Transport) -> list[BadgeOutcome]:
    """Write `<badges_path>/<pkg>.svg` on every host, from what dpkg has installed."""
    if not config.badges_path:
        raise DeployConfigError("refresh_badges: deployer.ini has no badges_path in [environment]")
    directory = config.badges_path

    def one(host: str) -> BadgeOutcome:
        try:
            found = remote.installed_packages(
                transport, host, config.packages, timeout=config.command_timeout
            )
            svgs = {p: badge_svg(p, found[p].version) for p in config.packages}
            remote.write_badges(transport, host, directory, svgs)
        except HostUnreachableError as exc:
            return BadgeOutcome(host, (), exc.reason)
        except DeployError as exc:
            return BadgeOutcome(host, (), str(exc))
        return BadgeOutcome(host, config.packages)

    return parallel(one, config.all_hosts())
