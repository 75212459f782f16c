"""`build_docs.ini`: the original tool's keys and defaults, plus a few optional new ones.

Only the `[DEFAULT]` section is read, as the original did. Values are taken literally
(no `%` interpolation), so CSS such as `width: 100%` needs no escaping.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

from debops_ci.docsite.errors import DocsConfigError

__all__ = ["CONFIG_NAME", "DocsConfig", "load_config", "validate"]

CONFIG_NAME = "build_docs.ini"
_FORMATS = ("markdown", "asciidoc")
_TEMPLATE_FIELDS = {"action", "path", "lineno"}


@dataclass(frozen=True)
class DocsConfig:
    """Every setting of a build; the defaults are the original tool's.

    Paths are relative to `root`, the directory the config was found in (the original
    ran in the current directory; `--config` elsewhere makes that file's directory the
    root).
    """

    root: Path = Path(".")
    # -- the original's keys --
    ignore_paths_substr: tuple[str, ...] = ()
    markup_format: str = "markdown"
    outdir: str = "build_docs_output"
    github_url_template: str = ""
    html_imports: str = ""
    css: str = ""
    footer: str = ""
    author: str = ""
    # -- new, optional --
    title: str = ""
    paths: tuple[str, ...] = (".",)
    issues_url_template: str = ""
    kroki_url: str = ""
    diagram_timeout: float = 20.0
    cache_dir: str = ""

    @property
    def site_title(self) -> str:
        return self.title or self.root.resolve().name or "Documentation"

    @property
    def out_path(self) -> Path:
        return self.root / self.outdir

    def source_url(self, action: str, path: str, lineno: int) -> str:
        """The GitHub link of one line ("" when no template is configured)."""
        if not self.github_url_template:
            return ""
        return self.github_url_template.format(action=action, path=path, lineno=lineno)


def _split(value: str) -> tuple[str, ...]:
    return tuple(value.split())


def _check_template(key: str, value: str, allowed: set[str]) -> None:
    names = set(re.findall(r"{(\w*)}", value))
    unknown = names - allowed
    if unknown:
        raise DocsConfigError(
            f"{key} uses {{{sorted(unknown)[0]}}}; only "
            + ", ".join(f"{{{n}}}" for n in sorted(allowed))
            + " are known"
        )


def load_config(path: Path | None = None, *, cwd: Path | None = None) -> DocsConfig:
    """Read `build_docs.ini` (`path`, else the one in `cwd`); all defaults when absent.

    A missing file given explicitly, a section other than `[DEFAULT]`, an unknown key or
    a bad value is a `DocsConfigError`.
    """
    here = cwd or Path.cwd()
    if path is None:
        candidate = here / CONFIG_NAME
        if not candidate.is_file():
            return DocsConfig(root=here)
        path = candidate
    elif not path.is_file():
        raise DocsConfigError(f"config file {path} not found: give an existing build_docs.ini")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0]
        raise DocsConfigError(f"{path}: cannot parse: {reason}") from None
    if parser.sections():
        raise DocsConfigError(
            f"{path}: section [{parser.sections()[0]}] is not read; put every key under [DEFAULT]"
        )
    values = dict(parser.defaults())
    known = {f.name for f in fields(DocsConfig)} - {"root"}
    for key in values:
        if key not in known:
            raise DocsConfigError(
                f"{path}: unknown key {key!r}; known keys: {', '.join(sorted(known))}"
            )
    kwargs: dict[str, object] = {}
    for key, raw in values.items():
        if key in ("ignore_paths_substr", "paths"):
            kwargs[key] = _split(raw)
        elif key == "diagram_timeout":
            try:
                timeout = float(raw)
            except ValueError:
                timeout = -1.0
            if timeout <= 0:
                raise DocsConfigError(f"{path}: diagram_timeout must be a number of seconds > 0")
            kwargs[key] = timeout
        else:
            kwargs[key] = raw.strip() if key not in ("css", "footer", "html_imports") else raw
    config = DocsConfig(root=path.parent if path.parent != Path("") else here, **kwargs)  # type: ignore[arg-type]
    validate(config, path)
    return config


def validate(config: DocsConfig, path: object) -> None:
    """Refuse values that cannot work; `path` names where they came from."""
    if config.markup_format not in _FORMATS:
        raise DocsConfigError(
            f"{path}: markup_format is {config.markup_format!r}; use markdown or asciidoc"
        )
    if not config.outdir or Path(config.outdir).is_absolute() or ".." in Path(config.outdir).parts:
        raise DocsConfigError(f"{path}: outdir must be a relative path inside the project")
    if os.path.normpath(config.outdir) == ".":
        raise DocsConfigError(f"{path}: outdir cannot be the project directory itself")
    _check_template("github_url_template", config.github_url_template, _TEMPLATE_FIELDS)
    _check_template("issues_url_template", config.issues_url_template, {"repo", "number"})
    if not config.paths:
        raise DocsConfigError(f"{path}: paths is empty; give directories or files to document")
    for item in config.paths:
        if Path(item).is_absolute() or ".." in Path(item).parts:
            raise DocsConfigError(f"{path}: paths entry {item!r} must be inside the project")
    if config.kroki_url and not re.match(r"https?://", config.kroki_url):
        raise DocsConfigError(f"{path}: kroki_url must start with http:// or https://")
