"""deployer.ini: the original tool's format, plus optional keys that old files lack.

```ini
[environment]
deb_packages = ooni-api fastpath analysis
badges_path = /var/www/package_badges
stages = test hel prod
# optional
ssh_config = ssh/config          ; relative to this file
connect_timeout = 10             ; seconds, ssh ConnectTimeout
command_timeout = 120            ; seconds, any query on a host
install_timeout = 3600           ; seconds, apt-get update + install on a host
lock_timeout = 300               ; seconds to wait for another deployer's lock
audit_log = ~/.local/state/deployer/audit.log
[stage:prod]
hosts = backend-fsn.ooni.org backend-hel.ooni.org
batch = 1 50% 100%               ; optional: rollout batches
check = systemctl is-active ooni-api   ; optional: health check after each batch
check_retries = 3
check_interval = 5
check_timeout = 60
```

Sections not named in `stages` are ignored, as the original did.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from debops_ci.deploy.batches import parse_batch_spec
from debops_ci.deploy.errors import DeployConfigError

__all__ = [
    "CONFIG_NAMES",
    "DeployConfig",
    "Stage",
    "find_config",
    "load_config",
    "parse_config",
]

CONFIG_NAMES = ("deployer.ini", ".deployer.ini")


@dataclass(frozen=True)
class Stage:
    """One stage: its hosts (ssh destinations), batches and health check."""

    name: str
    hosts: tuple[str, ...]
    batch: tuple[str, ...] = ("100%",)
    check: str | None = None
    check_retries: int = 3
    check_interval: float = 5.0
    check_timeout: float = 60.0


@dataclass(frozen=True)
class DeployConfig:
    """Everything deployer.ini says, validated."""

    packages: tuple[str, ...]
    stages: tuple[Stage, ...]
    badges_path: str | None = None
    ssh_config: Path | None = None
    connect_timeout: float = 10.0
    command_timeout: float = 120.0
    install_timeout: float = 3600.0
    lock_timeout: float = 300.0
    audit_log: Path = field(
        default_factory=lambda: (
            Path(os.environ.get("XDG_STATE_HOME", "~/.local/state")).expanduser()
            / "deployer"
            / "audit.log"
        )
    )
    path: Path | None = None

    def stage(self, name: str | None) -> Stage:
        """The stage called `name` (the first one when None)."""
        if name is None:
            return self.stages[0]
        for stage in self.stages:
            if stage.name == name:
                return stage
        names = " ".join(s.name for s in self.stages)
        raise DeployConfigError(f"unknown stage {name!r}: deployer.ini has {names}")

    def previous_stage(self, name: str) -> Stage | None:
        index = self.stages.index(self.stage(name))
        return self.stages[index - 1] if index else None

    def check_package(self, package: str) -> None:
        if package not in self.packages:
            raise DeployConfigError(
                f"unknown package {package!r}: deb_packages in deployer.ini lists "
                + " ".join(self.packages)
            )

    def all_hosts(self) -> tuple[str, ...]:
        """Every host once, in stage order."""
        seen: dict[str, None] = {}
        for stage in self.stages:
            seen.update(dict.fromkeys(stage.hosts))
        return tuple(seen)

    def with_overrides(self, **changes: object) -> DeployConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


def find_config(start: Path) -> Path:
    """deployer.ini, else .deployer.ini, in `start` or the nearest parent (not `/`)."""
    here = start.resolve()
    while here.parent != here:
        for name in CONFIG_NAMES:
            if (here / name).is_file():
                return here / name
        here = here.parent
    raise DeployConfigError(
        f"Configuration file deployer.ini not found in {start} or its parents; "
        "create one or pass --config FILE"
    )


def load_config(path: Path) -> DeployConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise DeployConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_config(text, path)


def _number(section: configparser.SectionProxy, key: str, default: float, where: str) -> float:
    raw = section.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise DeployConfigError(f"{where}: {key} = {raw!r} is not a number") from None
    if value < 0:
        raise DeployConfigError(f"{where}: {key} must not be negative")
    return value


def parse_config(text: str, path: Path | None = None) -> DeployConfig:
    """Parse deployer.ini text; `path` names it in errors and anchors relative paths."""
    where = str(path or "deployer.ini")
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    try:
        parser.read_string(text, source=where)
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise DeployConfigError(f"{where}: not a valid ini file: {first}") from None
    if not parser.has_section("environment"):
        raise DeployConfigError(f"{where}: no [environment] section")
    env = parser["environment"]
    packages = tuple(env.get("deb_packages", "").split())
    if not packages:
        raise DeployConfigError(f"{where}: [environment] deb_packages lists no package")
    stage_names = tuple(env.get("stages", "").split())
    if not stage_names:
        raise DeployConfigError(f"{where}: [environment] stages lists no stage")
    if len(set(stage_names)) != len(stage_names):
        raise DeployConfigError(f"{where}: [environment] stages names a stage twice")
    stages = tuple(_stage(parser, name, where) for name in stage_names)
    base = path.parent if path else Path.cwd()
    ssh_config = env.get("ssh_config")
    changes: dict[str, object] = {}
    audit = env.get("audit_log")
    if audit:
        changes["audit_log"] = base / Path(audit).expanduser()
    return DeployConfig(
        packages=packages,
        stages=stages,
        badges_path=env.get("badges_path") or None,
        ssh_config=(base / Path(ssh_config).expanduser()) if ssh_config else None,
        connect_timeout=_number(env, "connect_timeout", 10.0, where),
        command_timeout=_number(env, "command_timeout", 120.0, where),
        install_timeout=_number(env, "install_timeout", 3600.0, where),
        lock_timeout=_number(env, "lock_timeout", 300.0, where),
        path=path,
        **changes,  # type: ignore[arg-type]
    )


def _stage(parser: configparser.ConfigParser, name: str, where: str) -> Stage:
    section_name = f"stage:{name}"
    if not parser.has_section(section_name):
        raise DeployConfigError(f"{where}: stage {name!r} is listed but has no [{section_name}]")
    section = parser[section_name]
    hosts = tuple(section.get("hosts", "").split())
    if not hosts:
        raise DeployConfigError(f"{where}: [{section_name}] hosts lists no host")
    label = f"{where} [{section_name}]"
    batch = section.get("batch")
    return Stage(
        name=name,
        hosts=hosts,
        batch=parse_batch_spec(batch) if batch is not None else ("100%",),
        check=section.get("check") or None,
        check_retries=int(_number(section, "check_retries", 3, label)),
        check_interval=_number(section, "check_interval", 5.0, label),
        check_timeout=_number(section, "check_timeout", 60.0, label),
    )
