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

from debops_ci.archive.lock import DEFAULT_TIMEOUT_SECONDS
from debops_ci.archive.settings import SuiteSettings
from debops_ci.ci.providers import DEFAULT_MAIN_BRANCHES
from debops_ci.errors import UsageError
from debops_ci.storage.base import S3Tuning

__all__ = [
    "CONFIG_NAMES",
    "SETTINGS",
    "Resolver",
    "Setting",
    "find_config",
    "load_config_file",
    "load_resolver",
    "settings_table",
]

CONFIG_NAMES = ("debops-ci.toml", "pyproject.toml")


@dataclass(frozen=True)
class Setting:
    name: str  # the flag's long name without dashes, e.g. "archive"
    env: tuple[str, ...]
    default: Any
    kind: type = str
    minimum: float | None = None  # numbers only
    in_file: bool = True  # may be set in the config file


def settings_table(*settings: Setting) -> dict[str, Setting]:
    """A tool's settings by name: each tool declares its own table."""
    return {s.name: s for s in settings}


_SUITE = SuiteSettings()
_S3 = S3Tuning()

# debops-ci's settings. Defaults come from the frozen settings of the code that uses
# them (SuiteSettings, S3Tuning, the lock), so each is written once.
SETTINGS: dict[str, Setting] = settings_table(
    Setting("archive", ("DEBOPS_ARCHIVE",), None),
    Setting("bucket-name", ("DEBOPS_BUCKET_NAME",), None),
    Setting(
        "endpoint-url", ("DEBOPS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"), None
    ),
    Setting("profile", ("AWS_PROFILE",), None),
    Setting("public-url", ("DEBOPS_PUBLIC_URL",), None),
    Setting("distro", ("DEBOPS_DISTRO",), _SUITE.suite),
    Setting("component", ("DEBOPS_COMPONENT",), _SUITE.component),
    Setting("origin", ("DEBOPS_ORIGIN",), None),
    Setting("label", ("DEBOPS_LABEL",), None),
    Setting("arch", ("DEBOPS_ARCH",), _SUITE.default_arch),
    Setting("gpg-key-fp", ("DEBOPS_GPG_KEY_FP",), None),
    Setting("archive-key", ("DEBOPS_ARCHIVE_KEY",), None),
    Setting("valid-days", ("DEBOPS_VALID_DAYS",), None, int),
    Setting("lock-timeout", ("DEBOPS_LOCK_TIMEOUT",), DEFAULT_TIMEOUT_SECONDS, float, 0),
    Setting("jobs", ("DEBOPS_JOBS",), None, int, 1),
    Setting("build-dir", ("DEBOPS_BUILD_DIR",), None),
    Setting("base", ("DEBOPS_BASE",), None),
    Setting("main-branches", ("DEBOPS_MAIN_BRANCHES",), " ".join(DEFAULT_MAIN_BRANCHES)),
    Setting("branch-builds", ("DEBOPS_BRANCH_BUILDS",), False, bool),
    Setting("install-build-deps", ("DEBOPS_INSTALL_BUILD_DEPS",), None, bool),
    Setting("force", (), False, bool, in_file=False),
    Setting("throwaway-key", (), False, bool, in_file=False),
    Setting("unsafe-no-conditional-writes", (), False, bool, in_file=False),
    Setting("show-commands", (), False, bool, in_file=False),
    Setting("verbose", (), False, bool, in_file=False),
    # S3 tuning: environment only.
    Setting("s3-max-attempts", ("DEBOPS_S3_MAX_ATTEMPTS",), _S3.max_attempts, int, 1, False),
    Setting(
        "s3-connect-timeout", ("DEBOPS_S3_CONNECT_TIMEOUT",), _S3.connect_timeout, float, 0.1, False
    ),
    Setting("s3-read-timeout", ("DEBOPS_S3_READ_TIMEOUT",), _S3.read_timeout, float, 0.1, False),
)

EVENT_TABLES = ("pull-request", "mainline", "branch")


def find_config(
    start: Path, settings: dict[str, Setting] | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """The nearest debops-ci.toml, or pyproject.toml with a [tool.debops-ci] table."""
    for folder in (start, *start.parents):
        for name in CONFIG_NAMES:
            path = folder / name
            if not path.is_file():
                continue
            table = load_config_file(path, settings)
            if name == "pyproject.toml" and not table:
                continue
            return path, table
    return None


def load_config_file(path: Path, settings: dict[str, Setting] | None = None) -> dict[str, Any]:
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
    table_of = settings if settings is not None else SETTINGS
    allowed = {name for name, setting in table_of.items() if setting.in_file}
    known = allowed | set(EVENT_TABLES)
    for key, value in table.items():
        if key not in known:
            raise UsageError(f"{path}: unknown setting {key!r} (known: {', '.join(sorted(known))})")
        if key in EVENT_TABLES:
            if not isinstance(value, dict):
                raise UsageError(f"{path}: [{key}] must be a table")
            for sub in value:
                if sub not in allowed:
                    raise UsageError(f"{path}: unknown setting {sub!r} in [{key}]")
    return table


def _coerce(setting: Setting, value: Any, label: str) -> Any:
    """`label` names where the value came from: `--flag`, `ENV_VAR` or `file: name`."""
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
        raise UsageError(f"{label} must be true or false, not {value!r}")
    if setting.kind in (int, float):
        try:
            number = setting.kind(value)
        except (TypeError, ValueError):
            raise UsageError(f"{label} must be a number, not {value!r}") from None
        if setting.minimum is not None and number < setting.minimum:
            raise UsageError(f"{label} must be at least {setting.minimum:g}, not {value!r}")
        return number
    if not isinstance(value, str):
        if setting.name == "main-branches" and isinstance(value, list):
            return " ".join(str(v) for v in value)
        raise UsageError(f"{label} must be a string")
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
        settings: dict[str, Setting] | None = None,
    ) -> None:
        self.flags = flags
        self.env = env
        self.config = config or {}
        self.config_path = config_path
        self.event = event
        self.settings = settings if settings is not None else SETTINGS

    def with_event(self, event: str) -> Resolver:
        return Resolver(self.flags, self.env, self.config, self.config_path, event, self.settings)

    def get(self, name: str) -> Any:
        setting = self.settings[name]
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
                return _coerce(setting, table[name], f"{where} [{self.event}]: {name}")
        if name in self.config:
            return _coerce(setting, self.config[name], f"{where}: {name}")
        return setting.default


def load_resolver(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config_file: str | None,
    settings: dict[str, Setting] | None = None,
) -> Resolver:
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise UsageError(f"config file {config_file} does not exist")
        return Resolver(flags, env, load_config_file(path, settings), path, settings=settings)
    found = find_config(Path(os.getcwd()), settings)
    if found is None:
        return Resolver(flags, env, settings=settings)
    return Resolver(flags, env, found[1], found[0], settings=settings)
