"""A Markdown page of ```` ```console ```` blocks, run as a test: parse, run, mask, compare.

Why: a tutorial whose outputs are pasted by hand drifts from the tools the day after it
is written. Here the page is the test: its commands run, in order, in one bash session,
and what they print must be what the page shows, after masking the few things that
differ on every run (`MASKS`) and mapping the machine-specific strings the page shows
to this run's values (`Substitutions`). The same code rewrites the page's outputs from
a real run, so the first version is produced by the tools, not typed.

Format (also described at the top of docs/tutorial.md): inside a ```` ```console ````
block, `$ CMD` starts a command, `> MORE` (or a lone `>`) continues it, every other
line up to the next `$ ` is its output (stdout and stderr, merged).
"""

from __future__ import annotations

import difflib
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MASKS",
    "Command",
    "Mismatch",
    "Session",
    "Substitutions",
    "mask",
    "mismatch_report",
    "parse",
    "rewrite_outputs",
]

# What differs on every run, and nothing else: each pattern is as narrow as the text
# it hides, so the rest of each line is still compared.
MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    # ISO 8601 timestamps (deployer's lock owner, audit lines).
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<time>"),
    # OpenPGP fingerprints (a new key per run) and git commit ids (they carry dates).
    (re.compile(r"\b[0-9A-F]{40}\b"), "<fingerprint>"),
    (re.compile(r"\b[0-9a-f]{40}\b"), "<commit>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<commit>"),  # short ones, as `scan` prints them
    # SHA-256 of files that embed a signature or a date, and their short forms.
    (re.compile(r"\b[0-9a-f]{64}\b"), "<sha256>"),
    (re.compile(r"\bsha256 [0-9a-f]{16}…"), "sha256 <sha256>…"),
    # Durations printed by the tools ("in 3.2 s", "took 0.41s").
    (re.compile(r"\b\d+(?:\.\d+)? ?(?:ms|s)\b(?= |\)|,|$)", re.MULTILINE), "<duration>"),
)


def mask(text: str) -> str:
    """`text` with every `MASKS` pattern replaced by its placeholder."""
    for pattern, placeholder in MASKS:
        text = pattern.sub(placeholder, text)
    return text


@dataclass(frozen=True)
class Command:
    """One `$ ` command of the page, its expected output, and where both are."""

    text: str  # the command as bash runs it (continuation lines joined by newlines)
    expected: str  # the output lines, each ending in "\n" ("" for no output)
    line: int  # 1-based line of the `$ ` in the page
    output_start: int  # 0-based index of the first output line in the page's lines
    output_end: int  # 0-based index just past the last output line


def parse(page: str) -> list[Command]:
    """Every command of every ```` ```console ```` block, in page order."""
    lines = page.splitlines()
    commands: list[Command] = []
    in_block = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if not in_block:
            in_block = line.strip() == "```console"
            i += 1
            continue
        if line.strip() == "```":
            in_block = False
            i += 1
            continue
        if not line.startswith("$ "):
            raise ValueError(f"line {i + 1}: output before any command in a console block")
        start = i
        text = [line[2:]]
        i += 1
        while i < len(lines) and (lines[i] == ">" or lines[i].startswith("> ")):
            text.append(lines[i][2:])
            i += 1
        out_start = i
        while i < len(lines) and not lines[i].startswith("$ ") and lines[i].strip() != "```":
            i += 1
        expected = "".join(f"{out}\n" for out in lines[out_start:i])
        commands.append(Command("\n".join(text), expected, start + 1, out_start, i))
    if in_block:
        raise ValueError("the page ends inside a console block")
    return commands


def rewrite_outputs(page: str, commands: Sequence[Command], outputs: Sequence[str]) -> str:
    """The page with each command's output lines replaced by `outputs` (same order)."""
    for command, output in zip(commands, outputs, strict=False):
        for line in output.splitlines():
            if line.startswith(("$ ", "> ", "```")) or line == ">":
                raise ValueError(
                    f"line {command.line}: the output of `{command.text}` has a line that "
                    f"would be read as a command or a block's end: {line!r}; "
                    "redirect or filter that output"
                )
    lines = page.splitlines()
    for command, output in sorted(
        zip(commands, outputs, strict=True), key=lambda pair: -pair[0].output_start
    ):
        lines[command.output_start : command.output_end] = output.splitlines()
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Substitutions:
    """Strings the page shows (keys) and what this run uses instead (values).

    Commands get page -> run; outputs get run -> page, so the page stays stable.
    """

    pairs: Mapping[str, str]

    def to_run(self, text: str) -> str:
        for shown, actual in self.pairs.items():
            text = text.replace(shown, actual)
        return text

    def to_page(self, text: str) -> str:
        # Longest actual value first: one may contain another.
        for shown, actual in sorted(self.pairs.items(), key=lambda kv: -len(kv[1])):
            text = text.replace(actual, shown)
        return text


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str


class Session:
    """One bash "session" across separate processes: the cwd and exports carry over.

    Each command runs as `env -i bash` that sources the previous command's exported
    variables (`export -p`) and directory, runs the command, and saves both again; so
    `cd`, `export` and `unset` behave as in one interactive shell, while each command
    is its own process with its own exit code and output.
    """

    def __init__(self, statedir: Path, cwd: Path, env: Mapping[str, str]) -> None:
        statedir.mkdir(parents=True, exist_ok=True)
        self._state = statedir / "exports.sh"
        self._cwd = statedir / "cwd"
        self._command = statedir / "command.sh"
        self._wrapper = statedir / "wrapper.sh"
        self._state.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
        self._cwd.write_text(str(cwd))
        self._wrapper.write_text(
            f". {shlex.quote(str(self._state))}\n"
            f'cd "$(cat {shlex.quote(str(self._cwd))})" || exit 99\n'
            f". {shlex.quote(str(self._command))}\n"
            "rc=$?\n"
            f"export -p > {shlex.quote(str(self._state))}\n"
            f"pwd > {shlex.quote(str(self._cwd))}\n"
            "exit $rc\n"
        )

    def run(self, command: str, timeout: float = 300) -> Result:
        self._command.write_text(command + "\n")
        proc = subprocess.run(
            ["env", "-i", "/bin/bash", "--noprofile", "--norc", str(self._wrapper)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout.decode(errors="replace"))


@dataclass(frozen=True)
class Mismatch:
    command: Command
    actual: str  # masked, in the page's terms


def mismatch_report(page_name: str, mismatches: Sequence[Mismatch]) -> str:
    """A readable unified diff per mismatching command (masked texts)."""
    parts: list[str] = []
    for m in mismatches:
        diff = difflib.unified_diff(
            mask(m.command.expected).splitlines(keepends=True),
            m.actual.splitlines(keepends=True),
            fromfile=f"{page_name}:{m.command.line} (page)",
            tofile="actual run",
        )
        parts.append(f"$ {m.command.text}\n" + "".join(diff))
    return "\n".join(parts)
