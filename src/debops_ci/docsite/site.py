"""Rendered files to a site on disk: pages, directory indexes, home, TODO list, search.

Every link is relative, so the site works from `file://`, under a sub-path on GitHub
Pages, and from any static server.
"""

from __future__ import annotations

import html
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from debops_ci.docsite.config import DocsConfig
from debops_ci.docsite.extract import Todo
from debops_ci.docsite.outdir import MARKER
from debops_ci.docsite.render import FileResult
from debops_ci.docsite.search import SEARCH_SCRIPT, SearchEntry, index_script, search_body
from debops_ci.docsite.theme import Crumb, page, stylesheet

__all__ = ["SiteStats", "page_url", "write_site"]

_LINK_ATTR = re.compile(r'(\s(?:href|src)=")([^"]*)(")')
_EXTERNAL = re.compile(r"^(?:[a-zA-Z][\w+.-]*:|//|#|\?)")


@dataclass
class SiteStats:
    pages: int = 0
    directories: int = 0
    todos: int = 0
    files: list[str] = field(default_factory=list)


def page_url(relpath: str) -> str:
    """Where the page of a source file goes (`a/b.py` -> `a/b.py.html`)."""
    return f"{relpath}.html"


def _prefix(relpath: str) -> str:
    return "/".join([".."] * relpath.count("/"))


def _rel(from_file: str, target: str) -> str:
    return posixpath.relpath(target, posixpath.dirname(from_file) or ".")


def _crumbs(relpath: str, site_title: str, is_dir: bool) -> list[Crumb]:
    parts = [p for p in relpath.split("/") if p]
    here = f"{relpath}/index.html" if is_dir and relpath else ("index.html" if is_dir else relpath)
    crumbs: list[Crumb] = [(site_title, _rel(here, "index.html") if parts else None)]
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        target = "/".join(parts[: depth + 1]) + "/index.html"
        crumbs.append((part, None if last else _rel(here, target)))
    return crumbs


def _summary(result: FileResult) -> str:
    for block in result.blocks:
        text = block.text.strip()
        if text:
            first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
            return first if len(first) <= 140 else first[:137] + "..."
    return ""


class _Writer:
    def __init__(self, staging: Path, config: DocsConfig, results: list[FileResult]) -> None:
        self.staging = staging
        self.config = config
        self.results = sorted(results, key=lambda r: r.relpath)
        self.pages = {r.relpath for r in self.results}
        self.dirs: dict[str, tuple[set[str], list[FileResult]]] = {"": (set(), [])}
        for result in self.results:
            parent = posixpath.dirname(result.relpath)
            self._ensure_dir(parent)
            self.dirs[parent][1].append(result)

    def _ensure_dir(self, directory: str) -> None:
        if directory in self.dirs:
            return
        parent = posixpath.dirname(directory)
        self._ensure_dir(parent)
        self.dirs[directory] = (set(), [])
        self.dirs[parent][0].add(directory)

    def _write(self, rel: str, text: str) -> None:
        path = self.staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def _page(self, rel: str, title: str, crumbs: list[Crumb], body: str) -> str:
        c = self.config
        return page(
            title=title,
            site_title=c.site_title,
            prefix=_prefix(rel),
            crumbs=crumbs,
            body=body,
            html_imports=c.html_imports,
            css=c.css,
            footer=c.footer,
            author=c.author,
        )

    def _relink(self, fragment: str, relpath: str) -> str:
        """Relative links written in a block: to the page of that file, else to GitHub."""
        base = posixpath.dirname(relpath)
        url = page_url(relpath)

        def fix(match: re.Match[str]) -> str:
            target = html.unescape(match.group(2))
            if not target or _EXTERNAL.match(target) or target.startswith("/"):
                return match.group(0)
            path, sep, fragment = target.partition("#")
            path = path.partition("?")[0]
            resolved = posixpath.normpath(posixpath.join(base, path)).rstrip("/")
            if resolved.startswith(".."):
                return match.group(0)
            if resolved in self.pages:
                new = _rel(url, page_url(resolved)) + sep + fragment
            elif resolved in self.dirs or resolved == ".":
                index = "index.html" if resolved == "." else f"{resolved}/index.html"
                new = _rel(url, index) + sep + fragment
            elif self.config.github_url_template:
                new = self.config.source_url("blob", resolved, 1).partition("#")[0]
            else:
                return match.group(0)
            return f"{match.group(1)}{html.escape(new)}{match.group(3)}"

        return _LINK_ATTR.sub(fix, fragment)

    def file_page(self, result: FileResult) -> SearchEntry:
        c = self.config
        rel = page_url(result.relpath)
        parts = []
        for block in result.blocks:
            meta = []
            view = c.source_url("blob", result.relpath, block.lineno)
            edit = c.source_url("edit", result.relpath, block.lineno)
            if view:
                meta.append(f'<a class="view" href="{html.escape(view)}">view</a>')
            if edit:
                meta.append(f'<a class="edit" href="{html.escape(edit)}">edit</a>')
            meta.append(f'<a class="line" href="#L{block.lineno}">line {block.lineno}</a>')
            if block.scope:
                meta.append(f'<span class="scope">{html.escape(block.scope)}</span>')
            parts.append(
                f'<section class="block" id="L{block.lineno}">'
                f'<div class="block-meta">{" ".join(meta)}</div>\n'
                f"{self._relink(block.html, result.relpath)}\n</section>"
            )
        name = posixpath.basename(result.relpath)
        body = f"<h1>{html.escape(name)}</h1>\n" + (
            "\n".join(parts) or '<p class="empty">No documentation blocks in this file.</p>'
        )
        crumbs = _crumbs(result.relpath, c.site_title, is_dir=False)
        self._write(rel, self._page(rel, result.relpath, crumbs, body))
        text = " ".join(b.text for b in result.blocks)
        return SearchEntry(rel, result.relpath, _summary(result), text)

    def dir_page(self, directory: str) -> None:
        rel = f"{directory}/index.html" if directory else "index.html"
        subdirs, files = self.dirs[directory]
        items = []
        for sub in sorted(subdirs):
            name = posixpath.basename(sub)
            items.append(
                f'<li><a href="{html.escape(name)}/index.html">{html.escape(name)}/</a></li>'
            )
        for result in files:
            name = posixpath.basename(result.relpath)
            summary = html.escape(_summary(result))
            items.append(
                f'<li><a href="{html.escape(page_url(name))}">{html.escape(name)}</a>'
                f'<span class="summary">{summary}</span></li>'
            )
        title = directory or self.config.site_title
        listing = "\n".join(items) or '<li class="empty">Nothing documented here.</li>'
        body = f"<h1>{html.escape(title)}</h1>\n"
        if not directory:
            count = sum(len(r.todos) for r in self.results)
            body += (
                f"<p>{len(self.results)} files documented · "
                f'<a href="todo.html">{count} TODO/FIXME</a>'
                ' · <a href="search.html">search</a></p>\n'
            )
        body += f'<ul class="listing">\n{listing}\n</ul>'
        crumbs = _crumbs(directory, self.config.site_title, is_dir=True)
        self._write(rel, self._page(rel, title, crumbs, body))

    def todo_page(self) -> int:
        rows = []
        count = 0
        for result in self.results:
            for todo in result.todos:
                count += 1
                rows.append(self._todo_row(result.relpath, todo))
        table = (
            "<table><thead><tr><th>kind</th><th>text</th><th>source</th><th>page</th></tr>"
            "</thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
            if rows
            else '<p class="empty">No TODO or FIXME anywhere.</p>'
        )
        body = f"<h1>TODO and FIXME</h1>\n<p>{count} found in comments and blocks.</p>\n{table}"
        crumbs: list[Crumb] = [(self.config.site_title, "index.html"), ("TODO", None)]
        self._write("todo.html", self._page("todo.html", "TODO", crumbs, body))
        return count

    def _todo_row(self, relpath: str, todo: Todo) -> str:
        where = f"{relpath}:{todo.lineno}"
        view = self.config.source_url("blob", relpath, todo.lineno)
        source = (
            f'<a href="{html.escape(view)}">{html.escape(where)}</a>'
            if view
            else html.escape(where)
        )
        target = page_url(relpath) + (f"#L{todo.block}" if todo.block is not None else "")
        origin = "block" if todo.block is not None else "comment"
        return (
            f"<tr><td>{todo.kind}</td><td>{html.escape(todo.text)}</td><td>{source}</td>"
            f'<td><a href="{html.escape(target)}">{html.escape(relpath)}</a> ({origin})</td></tr>'
        )

    def search_page(self, entries: list[SearchEntry]) -> None:
        crumbs: list[Crumb] = [(self.config.site_title, "index.html"), ("Search", None)]
        self._write("search.html", self._page("search.html", "Search", crumbs, search_body()))
        self._write("_static/search-index.js", index_script(entries))
        self._write("_static/search.js", SEARCH_SCRIPT)


def write_site(staging: Path, config: DocsConfig, results: list[FileResult]) -> SiteStats:
    """Write the whole site into the (empty) directory `staging`."""
    writer = _Writer(staging, config, results)
    entries = [writer.file_page(result) for result in writer.results]
    for directory in sorted(writer.dirs):
        writer.dir_page(directory)
    todos = writer.todo_page()
    writer.search_page(entries)
    writer._write("_static/style.css", stylesheet())
    writer._write(".nojekyll", "")  # GitHub Pages: serve _static/ as it is
    writer._write(MARKER, "This directory is rebuilt whole by build-docs.\n")
    return SiteStats(len(entries), len(writer.dirs), todos, [r.relpath for r in writer.results])
