"""One source file to rendered blocks: the unit of parallel work and of the cache.

`render_file` reads the file, looks its content up in the cache, and on a miss
extracts, renders and post-processes every block. It runs in worker processes, so
everything it takes and returns is plain picklable data.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from debops_ci.docsite.cache import ContentCache
from debops_ci.docsite.diagrams import DiagramTools
from debops_ci.docsite.extract import Block, Extracted, Problem, Todo, extract_python, todos_in_text
from debops_ci.docsite.htmlpass import IssueLinker, code_and_diagrams, link_issues, plain_text
from debops_ci.docsite.markup import AsciidocError, render_asciidoc, render_markdown

__all__ = ["FileResult", "RenderSettings", "RenderedBlock", "render_file"]

# Bump when rendered output changes, so older cache entries are not reused.
RENDER_VERSION = "1"


@dataclass(frozen=True)
class RenderSettings:
    """Everything besides the file's bytes that changes its rendered blocks."""

    markup_format: str = "markdown"
    author: str = ""
    tools: DiagramTools = field(default_factory=DiagramTools)
    linker: IssueLinker | None = None

    def fingerprint(self) -> str:
        linker = f"{self.linker.template}|{self.linker.repo}" if self.linker else ""
        return (
            f"v{RENDER_VERSION};{self.markup_format};{self.author};"
            f"{self.tools.fingerprint()};{linker}"
        )


@dataclass(frozen=True)
class RenderedBlock:
    lineno: int
    scope: str
    html: str
    text: str


@dataclass(frozen=True)
class FileResult:
    """A file's page content. `problem` set: the file was skipped (reported)."""

    relpath: str
    blocks: tuple[RenderedBlock, ...] = ()
    todos: tuple[Todo, ...] = ()
    problem: Problem | None = None
    warnings: tuple[Problem, ...] = ()
    diagrams: int = 0
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileResult:
        problem = data.get("problem")
        return cls(
            relpath=data["relpath"],
            blocks=tuple(RenderedBlock(**b) for b in data["blocks"]),
            todos=tuple(Todo(**t) for t in data["todos"]),
            problem=Problem(**problem) if problem else None,
            warnings=tuple(Problem(**w) for w in data["warnings"]),
            diagrams=int(data["diagrams"]),
            cached=True,
        )


def _markdown_file(source: bytes) -> Extracted:
    text = source.decode("utf-8", errors="replace")
    return Extracted((Block(1, text),), tuple(todos_in_text(text, 1, 1)))


def _render_blocks(
    relpath: str, extracted: Extracted, settings: RenderSettings, markup: str
) -> FileResult:
    warnings: list[Problem] = []
    texts = [b.text for b in extracted.blocks]
    if markup == "asciidoc":
        try:
            fragments, notes = render_asciidoc(texts, author=settings.author)
        except AsciidocError as exc:
            first = extracted.blocks[0].lineno if extracted.blocks else 1
            warnings.append(Problem(first, f"{exc}; blocks shown as text"))
            fragments = [f"<pre>{html.escape(t)}</pre>" for t in texts]
            notes = []
        for index, offset, message in notes:
            warnings.append(
                Problem(extracted.blocks[index].lineno + offset, f"asciidoc: {message}")
            )
    else:
        fragments = [render_markdown(t) for t in texts]
    blocks = []
    diagrams = 0
    for block, fragment in zip(extracted.blocks, fragments, strict=True):

        def warn(message: str, lineno: int = block.lineno) -> None:
            warnings.append(Problem(lineno, message))

        body, count = code_and_diagrams(fragment, settings.tools, warn)
        diagrams += count
        body = link_issues(body, settings.linker)
        blocks.append(RenderedBlock(block.lineno, block.scope, body, plain_text(body)))
    return FileResult(relpath, tuple(blocks), extracted.todos, None, tuple(warnings), diagrams)


def render_file(path: Path, relpath: str, settings: RenderSettings, cache_dir: str) -> FileResult:
    """The rendered blocks of `path` (shown as `relpath`), from the cache when possible."""
    try:
        source = path.read_bytes()
    except OSError as exc:
        return FileResult(relpath, problem=Problem(1, f"cannot read: {exc.strerror}"))
    is_markdown = relpath.endswith(".md")
    key = hashlib.sha256(f"{settings.fingerprint()}\0{relpath}\0".encode() + source).hexdigest()
    cache = ContentCache(Path(cache_dir)) if cache_dir else None
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            try:
                return FileResult.from_json(hit)
            except (KeyError, TypeError, ValueError):
                pass  # an entry of another shape: render again
    if is_markdown:
        result = _render_blocks(relpath, _markdown_file(source), settings, "markdown")
    else:
        extracted = extract_python(source)
        if extracted.problem is not None:
            result = FileResult(relpath, problem=extracted.problem)
        else:
            result = _render_blocks(relpath, extracted, settings, settings.markup_format)
    if cache is not None:
        cache.put(key, result.to_json())
    return result
