"""Markdown (markdown-it-py: CommonMark + tables) and AsciiDoc (asciidoctor) to HTML.

Code highlighting and diagrams are done afterwards on the HTML (`htmlpass`), the same
way for both markups.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache

from markdown_it import MarkdownIt
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.tasklists import tasklists_plugin

__all__ = ["AsciidocError", "asciidoctor_path", "render_asciidoc", "render_markdown"]

# A raw HTML passthrough between blocks: one asciidoctor run renders a whole file.
_SPLIT = "<!-- build-docs:split -->"
_WARNING = re.compile(r"<stdin>: line (\d+): (.*)")


class AsciidocError(Exception):
    """asciidoctor failed as a whole (not found, timed out, crashed)."""


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.use(anchors_plugin, min_level=1, max_level=4, permalink=False)
    md.use(footnote_plugin)
    md.use(tasklists_plugin)
    return md


def render_markdown(text: str) -> str:
    """One block of Markdown as an HTML fragment."""
    return str(_markdown().render(text))


def asciidoctor_path() -> str:
    return shutil.which("asciidoctor") or ""


def render_asciidoc(
    texts: list[str], *, author: str = "", timeout: float = 60.0
) -> tuple[list[str], list[tuple[int, int, str]]]:
    """Blocks of AsciiDoc as HTML fragments, in one asciidoctor run.

    Returns the fragments and asciidoctor's warnings as (block index, line in the
    block, message). Raises `AsciidocError` when asciidoctor cannot run.
    """
    program = asciidoctor_path()
    if not program:
        raise AsciidocError("asciidoctor not found: apt-get install asciidoctor")
    if not texts:
        return [], []
    separator = f"\n\n++++\n{_SPLIT}\n++++\n\n"
    starts: list[int] = []
    line = 1
    for text in texts:
        starts.append(line)
        line += text.count("\n") + separator.count("\n")
    cmd = [program, "-s", "-S", "secure", "-a", "showtitle", "-o", "-", "-"]
    if author:
        cmd[1:1] = ["-a", f"author={author}"]
    try:
        proc = subprocess.run(
            cmd,
            input=separator.join(texts).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AsciidocError(f"asciidoctor took longer than {timeout:g} s") from None
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AsciidocError(f"asciidoctor failed: {reason[-1] if reason else proc.returncode}")
    parts = proc.stdout.decode(errors="replace").split(_SPLIT)
    if len(parts) != len(texts):
        # A block swallowed the separator (an unclosed delimiter): render one by one.
        if len(texts) == 1:
            return ["".join(parts)], []
        html: list[str] = []
        warnings: list[tuple[int, int, str]] = []
        for index, text in enumerate(texts):
            one, notes = render_asciidoc([text], author=author, timeout=timeout)
            html.extend(one)
            warnings.extend((index, at, message) for _i, at, message in notes)
        return html, warnings
    warnings = []
    for message_line in proc.stderr.decode(errors="replace").splitlines():
        match = _WARNING.search(message_line)
        if not match:
            continue
        at = int(match.group(1))
        index = max(i for i, start in enumerate(starts) if start <= at)
        warnings.append((index, at - starts[index], match.group(2).strip()))
    return [_strip_passthrough(p) for p in parts], warnings


def _strip_passthrough(html: str) -> str:
    return html.strip()
