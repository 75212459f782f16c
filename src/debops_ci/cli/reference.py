"""The command reference, generated from the click definitions themselves.

`docs/commands.md` is this module's output; a test regenerates it and fails when the
file has drifted, so the reference can never disagree with the code. Run
`python -m debops_ci.cli.reference > docs/commands.md` after changing a command.
"""

from __future__ import annotations

import sys

import click

__all__ = ["render_group", "render_reference"]


def _option_row(param: click.Parameter) -> str | None:
    if not isinstance(param, click.Option) or param.hidden:
        return None
    names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    if not param.is_flag and param.metavar is None:
        names += f" {param.type.name.upper()}" if param.type.name != "text" else " TEXT"
    help_text = " ".join((param.help or "").split()).replace("|", "\\|")
    default = param.default
    if param.show_default and default not in (None, False, ()):
        help_text += f" (default: `{default}`)"
    return f"| {names} | {help_text} |"


def _usage(prog: str, command: click.Command) -> str:
    ctx = click.Context(command, info_name=f"{prog} {command.name}".strip())
    pieces = command.collect_usage_pieces(ctx)
    return " ".join([ctx.command_path, *pieces])


def render_group(prog: str, group: click.Group, *, shared: set[str] | None = None) -> str:
    """Markdown for every command of `group`; options in `shared` are listed once."""
    ctx = click.Context(group, info_name=prog)
    shared = shared or set()
    out: list[str] = []
    shared_rows = [
        row
        for param in group.params
        if param.name in shared and (row := _option_row(param)) is not None
    ]
    if shared_rows:
        out += [
            "## Options every command takes",
            "",
            "Before or after the command name, as the original tool accepted.",
            "",
            "| option | meaning |",
            "|---|---|",
            *shared_rows,
            "",
        ]
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        out += [f"## {name}", "", "```", _usage(prog, command), "```", ""]
        doc = (command.help or "").strip()
        if doc:
            out += [" ".join(doc.split("\n\n")[0].split()), ""]
        rows = [
            row
            for param in command.params
            if param.name not in shared and (row := _option_row(param)) is not None
        ]
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        if arguments:
            shown = ", ".join(f"`{a.human_readable_name}`" for a in arguments)
            out += [f"Arguments: {shown}.", ""]
        if rows:
            out += ["| option | meaning |", "|---|---|", *rows, ""]
    return "\n".join(out)


def render_command(prog: str, command: click.Command) -> str:
    """Markdown for a single-command tool (build-docs)."""
    out = ["```", _usage(prog, command).replace(f"{prog} {command.name}", prog), "```", ""]
    doc = (command.help or "").strip()
    if doc:
        out += [" ".join(doc.split("\n\n")[0].split()), ""]
    rows = [row for param in command.params if (row := _option_row(param)) is not None]
    if rows:
        out += ["| option | meaning |", "|---|---|", *rows, ""]
    return "\n".join(out)


def render_reference() -> str:
    from debops_ci.cli import build_docs, deployer
    from debops_ci.cli.flags import SHARED_NAMES
    from debops_ci.cli.main import ALIASES, cli

    aliases = ", ".join(f"`{old}` = `{new}`" for old, new in ALIASES.items())
    head = [
        "# Command reference",
        "",
        "Generated from the CLIs' own definitions by `python -m debops_ci.cli.reference`;",
        "a test fails when this file drifts. Examples with real output:",
        "[examples.md](examples.md), [deployer.md](deployer.md),",
        "[build-docs.md](build-docs.md), [lifecycle.md](lifecycle.md).",
        "",
        "# debops-ci",
        "",
        f"The original tool's names keep working: {aliases}.",
        "",
    ]
    parts = [
        "\n".join(head),
        render_group("debops-ci", cli, shared=set(SHARED_NAMES)),
        "# deployer\n",
    ]
    deployer_cli = deployer.cli
    assert isinstance(deployer_cli, click.Group)
    parts.append(render_command("deployer", deployer_cli))
    parts.append(render_group("deployer", deployer_cli))
    parts += ["# build-docs\n", render_command("build-docs", build_docs.cli)]
    return "\n".join(parts).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_reference())
