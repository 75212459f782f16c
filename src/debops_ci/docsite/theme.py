"""The look: one stylesheet (light and dark by `prefers-color-scheme`) and the page frame.

No external fonts, scripts or CSS: only what the config's `html_imports` adds.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from pygments.formatters import HtmlFormatter

__all__ = ["Crumb", "page", "stylesheet"]

Crumb = tuple[str, str | None]  # (label, relative href or None for the current page)

_BASE_CSS = """\
:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --link: #0b5cad;
  --border: #d1d9e0; --code-bg: #f6f8fa; --accent: #eef4fb;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1419; --fg: #e6edf3; --muted: #9198a1; --link: #6cb6ff;
    --border: #30363d; --code-bg: #161b22; --accent: #152232;
  }
}
* { box-sizing: border-box; }
html { background: var(--bg); color: var(--fg); }
body {
  margin: 0; background: var(--bg); color: var(--fg);
  font: 16px/1.6 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
}
a { color: var(--link); text-decoration: none; }
a:hover { text-decoration: underline; }
header.site {
  display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center;
  padding: .6rem 1.5rem; border-bottom: 1px solid var(--border); background: var(--accent);
}
header.site .name { font-weight: 600; color: var(--fg); }
header.site form { margin-left: auto; }
header.site input[type=search], #search-page input[type=search] {
  font: inherit; padding: .25rem .5rem; border: 1px solid var(--border); border-radius: 6px;
  background: var(--bg); color: var(--fg); min-width: 14rem;
}
nav.crumbs { padding: .5rem 1.5rem 0; color: var(--muted); font-size: .9rem; }
nav.crumbs a { color: var(--muted); }
main { max-width: 60rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1, h2, h3, h4 { line-height: 1.25; }
h1 { font-size: 1.7rem; word-break: break-word; }
section.block { border-top: 1px solid var(--border); padding-top: .5rem; margin-top: 1.5rem; }
section.block:first-of-type { border-top: none; margin-top: 0; }
.block-meta { font-size: .8rem; color: var(--muted); display: flex; gap: .75rem; }
.block-meta .scope { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code, pre {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em;
}
pre { background: var(--code-bg); padding: .75rem 1rem; border-radius: 6px; overflow-x: auto;
  border: 1px solid var(--border); }
:not(pre) > code { background: var(--code-bg); padding: .1em .3em; border-radius: 4px; }
table { border-collapse: collapse; margin: 1rem 0; display: block; overflow-x: auto; }
th, td {
  border: 1px solid var(--border); padding: .3rem .6rem; text-align: left; vertical-align: top;
}
th { background: var(--code-bg); }
blockquote {
  margin: 0; padding-left: 1rem; border-left: 3px solid var(--border); color: var(--muted);
}
figure.diagram { margin: 1rem 0; overflow-x: auto; }
figure.diagram svg { max-width: 100%; height: auto; background: #ffffff; border-radius: 6px; }
ul.listing { list-style: none; padding: 0; }
ul.listing li { padding: .3rem 0; border-bottom: 1px solid var(--border); }
ul.listing .summary { color: var(--muted); margin-left: .5rem; }
.empty { color: var(--muted); font-style: italic; }
footer.site { max-width: 60rem; margin: 0 auto; padding: 1rem 1.5rem 2rem; color: var(--muted);
  font-size: .85rem; border-top: 1px solid var(--border); }
"""


def stylesheet() -> str:
    """The default CSS, with Pygments' light and dark code colours."""
    light = str(HtmlFormatter(style="default").get_style_defs(".highlight"))  # type: ignore[no-untyped-call]
    dark = str(HtmlFormatter(style="github-dark").get_style_defs(".highlight"))  # type: ignore[no-untyped-call]
    dark_rules = "\n".join("  " + line for line in dark.splitlines())
    return (
        f"{_BASE_CSS}\n/* code, light */\n{light}\n"
        f"@media (prefers-color-scheme: dark) {{\n{dark_rules}\n}}\n"
        ".highlight .hll, pre.highlight { background: var(--code-bg); }\n"
    )


def page(
    *,
    title: str,
    site_title: str,
    prefix: str,
    crumbs: Sequence[Crumb],
    body: str,
    html_imports: str = "",
    css: str = "",
    footer: str = "",
    author: str = "",
) -> str:
    """A complete HTML page; `prefix` leads from this page to the site root ("../..")."""
    root = f"{prefix}/" if prefix else ""
    trail = " / ".join(
        f'<a href="{html.escape(href)}">{html.escape(label)}</a>'
        if href is not None
        else f"<span>{html.escape(label)}</span>"
        for label, href in crumbs
    )
    meta_author = f'<meta name="author" content="{html.escape(author)}">\n' if author else ""
    extra_css = f"<style>\n{css}\n</style>\n" if css.strip() else ""
    foot = (
        footer if footer.strip() else "Built by build-docs from the source, without importing it."
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        '<link rel="icon" href="data:,">\n'  # no favicon request: nothing to 404
        f"{meta_author}"
        f"<title>{html.escape(title)} — {html.escape(site_title)}</title>\n"
        f'<link rel="stylesheet" href="{root}_static/style.css">\n'
        f"{html_imports}\n{extra_css}"
        "</head>\n<body>\n"
        '<header class="site">'
        f'<a class="name" href="{root}index.html">{html.escape(site_title)}</a>'
        f'<a href="{root}todo.html">TODO</a>'
        f'<form class="search" action="{root}search.html" method="get" role="search">'
        '<input type="search" name="q" placeholder="Search" aria-label="Search"></form>'
        "</header>\n"
        f'<nav class="crumbs">{trail}</nav>\n'
        f"<main>\n{body}\n</main>\n"
        f'<footer class="site">{foot}</footer>\n'
        "</body>\n</html>\n"
    )
