"""The man pages generated from the click definitions (`debops_ci.cli.manpages`).

The Debian package generates them at build time; `test_debian_package.py` checks that
the pages in the built .deb are exactly these. Here: what they contain, fast.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from debops_ci import __version__
from debops_ci.cli.deployer import cli as deployer_cli
from debops_ci.cli.flags import SHARED_NAMES
from debops_ci.cli.main import ALIASES, COMMANDS
from debops_ci.cli.manpages import _escape, _main, render_all, render_page, write_pages


def _pages() -> dict[str, str]:
    return {page.name: page.text for page in render_all()}


def test_one_page_per_installed_tool() -> None:
    pages = _pages()
    assert list(pages) == ["debops-ci", "deployer", "build-docs"]
    for name, text in pages.items():
        assert text.startswith(f'.TH {name.upper()} 1 "" "{name} {__version__}" "User Commands"\n')
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS"):
            assert f"\n.SH {section}\n" in text, (name, section)


def test_debops_ci_page_has_every_command_and_each_shared_flag_once() -> None:
    text = _pages()["debops-ci"]
    for command in COMMANDS:
        assert f"\n.SS {command}\n" in text
    for old in ALIASES:
        assert old.replace("-", "\\-") in text
    # Shared flags are listed once, under OPTIONS, not under every command.
    assert text.count("\\fB\\-\\-archive\\fR") == 1
    assert len(SHARED_NAMES) > 5
    for code in range(2, 10):
        assert f".TP\n\\fB{code}\\fR\n" in text


def test_every_error_class_exit_code_is_documented() -> None:
    from debops_ci import errors
    from debops_ci.deploy import errors as deploy_errors

    pages = _pages()
    for module, page in ((errors, "debops-ci"), (deploy_errors, "deployer")):
        codes = {
            obj.exit_code
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, Exception) and hasattr(obj, "exit_code")
        }
        assert codes
        for code in codes - {1}:  # 1: the base class, never raised as such by debops-ci
            assert f".TP\n\\fB{code}\\fR\n" in pages[page], (page, code)


def test_deployer_page_lists_its_commands() -> None:
    text = _pages()["deployer"]
    ctx = click.Context(deployer_cli, info_name="deployer")
    names = deployer_cli.list_commands(ctx)
    assert names
    for name in names:
        assert f"\n.SS {_escape(name)}\n" in text


def test_pages_are_ascii_and_reproducible() -> None:
    first, second = _pages(), _pages()
    assert first == second
    for text in first.values():
        text.encode("ascii")  # troff reads bytes: non-ASCII is escaped


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("--all", "\\-\\-all"),
        ("a\\b", "a\\eb"),
        (".starts a request", "\\&.starts a request"),
        ("'quote first", "\\&'quote first"),
        ("flag \u2014 dash", "flag \\[u2014] dash"),
    ],
)
def test_escape(raw: str, escaped: str) -> None:
    assert _escape(raw) == escaped


def test_a_plain_command_has_no_commands_section() -> None:
    @click.command()
    @click.option("--level", type=int, help="How much.")
    def tool(level: int) -> None:
        """Do one thing.

        More detail here."""

    text = render_page("tool", tool, summary="does one thing").text
    assert "\n.SH COMMANDS\n" not in text
    assert "\\fB\\-\\-level\\fR \\fIINTEGER\\fR\nHow much.\n" in text
    assert ".PP\nDo one thing.\n.PP\nMore detail here.\n" in text


def test_write_pages_and_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write_pages(tmp_path / "man")
    assert sorted(p.name for p in written) == ["build-docs.1", "debops-ci.1", "deployer.1"]
    assert _main([str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "debops-ci.1").read_text() == written[0].read_text()
    assert _main([]) == 2
    assert "usage:" in capsys.readouterr().err
