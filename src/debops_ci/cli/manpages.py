"""Manual pages (roff, section 1) generated from the click definitions themselves.

One page per installed tool: `debops-ci(1)`, `deployer(1)` and `build-docs(1)`. The
Debian package generates them at build time (`debian/rules` runs
`python3 -m debops_ci.cli.manpages DIR`), so a page can never disagree with the code it
documents. The pages carry no date: the same commit gives the same bytes.

Each page has NAME, SYNOPSIS, DESCRIPTION, OPTIONS (the group's own options; for
`debops-ci` the shared flags every command takes), COMMANDS (usage, first paragraph of
the help and options of each command), EXIT STATUS and SEE ALSO.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from debops_ci import __version__

__all__ = ["ManPage", "render_all", "render_page", "write_pages"]

_EXIT_STATUS_DEBOPS = (
    ("0", "done (or nothing to do)"),
    ("2", "bad flags, environment or configuration"),
    ("3", "refused to overwrite: same package/version/arch with different bytes"),
    ("4", "the archive does not verify (tampered, torn, another key)"),
    ("5", "timed out waiting for another publisher's lock"),
    ("6", "storage failed or refused (credentials, bucket, network)"),
    ("7", "GnuPG could not load the key, sign or verify"),
    ("8", "a .deb is malformed or unsafe"),
    ("9", "scan, versioning or build failed"),
    ("130", "interrupted"),
)
_EXIT_STATUS_DEPLOYER = (
    ("0", "done (or nothing to do)"),
    (
        "1",
        "the deploy failed: a host's install or health check failed, dpkg interrupted, "
        "no such version, a refused downgrade or promote",
    ),
    ("2", "bad flags or deployer.ini (unknown package or stage, bad batch, no config)"),
    ("3", "a host is unreachable (ssh could not connect, or a command timed out)"),
    ("4", "another deployer holds a host's deploy lock"),
    ("130", "interrupted"),
)
_EXIT_STATUS_BUILD_DOCS = (
    ("0", "built (warnings, if any, were printed)"),
    ("1", "broken links, or --strict and a warning or skipped file; the previous site is kept"),
    ("2", "bad flags or build_docs.ini"),
    ("130", "interrupted"),
)


@dataclass(frozen=True)
class ManPage:
    """One generated page: the tool's name and its roff source."""

    name: str
    text: str

    @property
    def filename(self) -> str:
        return f"{self.name}.1"


def _escape(text: str) -> str:
    """Text safe for roff: backslashes and hyphens escaped, non-ASCII as `\\[uXXXX]`
    (troff reads bytes, not UTF-8), no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)
    lines = []
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith((".", "'")):
            line = "\\&" + stripped
        lines.append(line)
    return "\n".join(lines)


def _paragraphs(doc: str) -> list[str]:
    """The help text as paragraphs, each on one line (click's `\\b` markers dropped)."""
    parts = []
    for block in doc.strip().split("\n\n"):
        words = [w for w in block.split() if w != "\b"]
        if words:
            parts.append(" ".join(words))
    return parts


def _option_names(param: click.Option) -> str:
    names = [f"\\fB{_escape(n)}\\fR" for n in [*param.opts, *param.secondary_opts]]
    text = ", ".join(names)
    if not param.is_flag and not param.count:
        metavar = param.metavar or param.type.name.upper()
        text += f" \\fI{_escape(metavar)}\\fR"
    return text


def _option_help(param: click.Option) -> str:
    help_text = " ".join((param.help or "").split())
    if param.show_default and param.default not in (None, False, ()):
        help_text += f" (default: {param.default})"
    return _escape(help_text)


def _options(params: Sequence[click.Parameter], skip: set[str]) -> list[str]:
    out: list[str] = []
    for param in params:
        if not isinstance(param, click.Option) or param.hidden or param.name in skip:
            continue
        out += [".TP", _option_names(param)]
        help_text = _option_help(param)
        if help_text:
            out.append(help_text)
    return out


def _usage(ctx: click.Context, command: click.Command) -> str:
    pieces = command.collect_usage_pieces(ctx)
    return " ".join([ctx.command_path, *pieces])


def _commands(prog: str, group: click.Group, shared: set[str]) -> list[str]:
    ctx = click.Context(group, info_name=prog)
    out: list[str] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = click.Context(command, info_name=f"{prog} {name}", parent=None)
        out += [".SS " + _escape(name), ".PP", f"\\fB{_escape(_usage(sub, command))}\\fR"]
        for paragraph in _paragraphs(command.help or "")[:1]:
            out += [".PP", _escape(paragraph)]
        out += _options(command.params, shared | {"help"})
    return out


def render_page(
    prog: str,
    command: click.Command,
    *,
    summary: str,
    shared: set[str] | None = None,
    exit_status: Sequence[tuple[str, str]] = (),
    see_also: Sequence[str] = (),
    extra: Sequence[tuple[str, str]] = (),
) -> ManPage:
    """The page of `command` (a group or a plain command) invoked as `prog`.

    `shared` names the group options every subcommand takes: listed once, under
    OPTIONS, and left out of each command. `extra` adds sections (title, text).
    """
    shared = shared or set()
    ctx = click.Context(command, info_name=prog)
    lines = [
        f'.TH {prog.upper()} 1 "" "{prog} {__version__}" "User Commands"',
        ".SH NAME",
        f"{_escape(prog)} \\- {_escape(summary)}",
        ".SH SYNOPSIS",
        f"\\fB{_escape(_usage(ctx, command))}\\fR",
        ".SH DESCRIPTION",
    ]
    for paragraph in _paragraphs(command.help or ""):
        lines += [".PP", _escape(paragraph)]
    options = _options(command.params, {"help"})
    if options:
        lines += [".SH OPTIONS", *options]
        lines += [".TP", "\\fB\\-h\\fR, \\fB\\-\\-help\\fR", "Show the help and exit."]
    if isinstance(command, click.Group):
        lines += [".SH COMMANDS", *_commands(prog, command, shared)]
    for title, text in extra:
        lines.append(f".SH {title.upper()}")
        for paragraph in _paragraphs(text):
            lines += [".PP", _escape(paragraph)]
    if exit_status:
        lines.append(".SH EXIT STATUS")
    for code, meaning in exit_status:
        lines += [".TP", f"\\fB{code}\\fR", _escape(meaning)]
    if see_also:
        lines += [".SH SEE ALSO", ",\n".join(f"\\fB{_escape(p)}\\fR(1)" for p in see_also)]
    return ManPage(prog, "\n".join(lines) + "\n")


def _debops_ci() -> ManPage:
    from debops_ci.cli.flags import SHARED_NAMES
    from debops_ci.cli.main import ALIASES, cli

    aliases = ", ".join(f"{old} = {new}" for old, new in ALIASES.items())
    return render_page(
        "debops-ci",
        cli,
        summary="build Debian packages in CI and publish them into a signed APT archive",
        shared=set(SHARED_NAMES),
        exit_status=_EXIT_STATUS_DEBOPS,
        see_also=("deployer", "build-docs", "dpkg-buildpackage", "apt-get", "gpg"),
        extra=(
            ("Aliases", f"The original tool's command names keep working: {aliases}."),
            (
                "Environment",
                "Every shared option has a DEBOPS_* environment variable (DEBOPS_ARCHIVE, "
                "DEBOPS_DISTRO, ...). The signing key comes from DEB_GPG_KEY (armored) or "
                "DEB_GPG_KEY_BASE64, its passphrase from DEB_GPG_PASSPHRASE; S3 "
                "credentials from the standard AWS chain (AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_ENDPOINT_URL, ...). Precedence: "
                "flag, environment variable, configuration file (debops-ci.toml), default.",
            ),
        ),
    )


def _deployer() -> ManPage:
    from debops_ci.cli.deployer import cli

    return render_page(
        "deployer",
        cli,
        summary="roll Debian packages through stages of hosts over ssh",
        exit_status=_EXIT_STATUS_DEPLOYER,
        see_also=("debops-ci", "ssh", "apt-get"),
    )


def _build_docs() -> ManPage:
    from debops_ci.cli.build_docs import cli

    return render_page(
        "build-docs",
        cli,
        summary="build the documentation site of a Python project from its source",
        exit_status=_EXIT_STATUS_BUILD_DOCS,
        see_also=("debops-ci", "asciidoctor", "dot"),
    )


_PAGES: tuple[Callable[[], ManPage], ...] = (_debops_ci, _deployer, _build_docs)


def render_all() -> list[ManPage]:
    """The pages of the three tools, in the order debops-ci, deployer, build-docs."""
    return [page() for page in _PAGES]


def write_pages(directory: Path) -> list[Path]:
    """Write every page into `directory` (created if needed); the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for page in render_all():
        path = directory / page.filename
        path.write_text(page.text, encoding="utf-8")
        written.append(path)
    return written


def _main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m debops_ci.cli.manpages DIRECTORY\n")
        return 2
    for path in write_pages(Path(argv[0])):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
