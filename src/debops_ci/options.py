"""Every setting resolved in one place, with one precedence:

    command-line flag  >  environment variable  >  config file  >  built-in default

The config file is `debops-ci.toml` (top level) or `[tool.debops-ci]` in
`pyproject.toml`, found by walking up from the current directory (or given with
`--config`). Event-specific tables `[pull-request]` and `[mainline]` inside it override
the top level for that kind of build, e.g. to send pull-request builds to their own
bucket or suite.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debops_ci.errors import UsageError

CONFIG_NAMES = ("debops-ci.toml", "pyproject.toml")


@dataclass(frozen=True)
class Setting:
    name: str  # the flag's long name without dashes, e.g. "archive"
    env: tuple[str, ...]
    default: Any
    kind: type = str


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("archive", ("DEBOPS_ARCHIVE",), None),
        Setting("bucket-name", ("DEBOPS_BUCKET_NAME",), None),
        Setting("endpoint-url", ("DEBOPS_ENDPOINT_URL",), None),
        Setting("profile", ("AWS_PROFILE",), None),
        Setting("distro", ("DEBOPS_DISTRO",), "unstable"),
        Setting("component", ("DEBOPS_COMPONENT",), "main"),
        Setting("origin", ("DEBOPS_ORIGIN",), None),
        Setting("label", ("DEBOPS_LABEL",), None),
        Setting("arch", ("DEBOPS_ARCH",), "amd64"),
        Setting("gpg-key-fp", ("DEBOPS_GPG_KEY_FP",), None),
        Setting("archive-key", ("DEBOPS_ARCHIVE_KEY",), None),
        Setting("valid-days", ("DEBOPS_VALID_DAYS",), None, int),
        Setting("lock-timeout", ("DEBOPS_LOCK_TIMEOUT",), 900.0, float),
        Setting("jobs", ("DEBOPS_JOBS",), None, int),
        Setting("build-dir", ("DEBOPS_BUILD_DIR",), None),
        Setting("base", ("DEBOPS_BASE",), None),
        Setting("main-branches", ("DEBOPS_MAIN_BRANCHES",), "main master"),
        Setting("branch-builds", ("DEBOPS_BRANCH_BUILDS",), False, bool),
        Setting("install-build-deps", ("DEBOPS_INSTALL_BUILD_DEPS",), None, bool),
    )
}

EVENT_TABLES = ("pull-request", "mainline", "branch")


def find_config(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest debops-ci.toml, or pyproject.toml with a [tool.debops-ci] table."""
    for folder in (start, *start.parents):
        for name in CONFIG_NAMES:
            path = folder / name
            if not path.is_file():
                continue
            table = load_config_file(path)
            if name == "pyproject.toml" and not table:
                continue
            return path, table
    return None


def load_config_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    is_pyproject = path.name == "pyproject.toml"
    table = data.get("tool", {}).get("debops-ci", {}) if is_pyproject else data
    if not isinstance(table, dict):
        raise UsageError(f"{path}: the debops-ci settings must be a table")
    known = set(SETTINGS) | set(EVENT_TABLES)
    for key, value in table.items():
        if key not in known:
            raise UsageError(f"{path}: unknown setting {key!r} (known: {', '.join(sorted(known))})")
        if key in EVENT_TABLES:
            if not isinstance(value, dict):
                raise UsageError(f"{path}: [{key}] must be a table")
            for sub in value:
                if sub not in SETTINGS:
                    raise UsageError(f"{path}: unknown setting {sub!r} in [{key}]")
    return table


def _coerce(setting: Setting, value: Any, source: str) -> Any:
    if value is None:
        return None
    if setting.kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise UsageError(f"{source}: {setting.name} must be true or false, not {value!r}")
    if setting.kind in (int, float):
        try:
            return setting.kind(value)
        except (TypeError, ValueError):
            raise UsageError(f"{source}: {setting.name} must be a number, not {value!r}") from None
    if not isinstance(value, str):
        if setting.name == "main-branches" and isinstance(value, list):
            return " ".join(str(v) for v in value)
        raise UsageError(f"{source}: {setting.name} must be a string")
    return value


class Resolver:
    """Looks a setting up through flag, environment, config file and default."""

    def __init__(
        self,
        flags: Mapping[str, Any],
        env: Mapping[str, str],
        config: dict[str, Any] | None = None,
        config_path: Path | None = None,
        event: str | None = None,
    ) -> None:
        self.flags = flags
        self.env = env
        self.config = config or {}
        self.config_path = config_path
        self.event = event

    def with_event(self, event: str) -> Resolver:
        return Resolver(self.flags, self.env, self.config, self.config_path, event)

    def get(self, name: str) -> Any:
        setting = SETTINGS[name]
        flag = self.flags.get(name.replace("-", "_"))
        if flag is not None:
            return _coerce(setting, flag, f"--{name}")
        for var in setting.env:
            if self.env.get(var):
                return _coerce(setting, self.env[var], var)
        where = str(self.config_path) if self.config_path else "config"
        if self.event:
            table = self.config.get(self.event, {})
            if name in table:
                return _coerce(setting, table[name], f"{where} [{self.event}]")
        if name in self.config:
            return _coerce(setting, self.config[name], where)
        return setting.default


def load_resolver(
    flags: Mapping[str, Any], env: Mapping[str, str], config_file: str | None
) -> Resolver:
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise UsageError(f"config file {config_file} does not exist")
        return Resolver(flags, env, load_config_file(path), path)
    found = find_config(Path(os.getcwd()))
    if found is None:
        return Resolver(flags, env)
    return Resolver(flags, env, found[1], found[0])
