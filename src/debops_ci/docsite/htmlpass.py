"""Passes over rendered HTML, shared by both markups: code highlighting, diagrams,
issue links, and the plain text the search index is built from.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from debops_ci.docsite.diagrams import (
    BLOCKDIAG_KINDS,
    DOT_KINDS,
    DiagramError,
    DiagramTools,
    render_diagram,
)

__all__ = [
    "IssueLinker",
    "code_and_diagrams",
    "issue_linker_for",
    "link_issues",
    "plain_text",
]

_CODE = re.compile(r"<pre(?P<pre>[^>]*)><code(?P<attrs>[^>]*)>(?P<body>.*?)</code></pre>", re.S)
_LANG = re.compile(r'class="[^"]*\blanguage-([\w+#.-]+)')
_TAG = re.compile(r"(<[^>]*>)")
_TAG_NAME = re.compile(r"</?([a-zA-Z][\w-]*)")
_NO_LINKS = frozenset({"a", "code", "pre", "script", "style", "svg", "kbd", "samp", "textarea"})
_ISSUE = re.compile(r"(?<![\w&#/.-])(?:(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+))?#(?P<num>\d+)\b")
_REPO_OF_TEMPLATE = re.compile(r"^(https?://[^/]+)/([^/{}]+)/([^/{}]+)/")


@dataclass(frozen=True)
class IssueLinker:
    """`#123` -> the project's issue 123; `owner/repo#123` -> that repository's.

    `template` has `{number}` and optionally `{repo}` ("owner/repo"); without `{repo}`
    only the short form is linked.
    """

    template: str
    repo: str = ""

    def url(self, repo: str | None, number: str) -> str | None:
        if repo and "{repo}" not in self.template:
            return None
        return self.template.format(repo=repo or self.repo, number=number)


def issue_linker_for(github_url_template: str, issues_url_template: str) -> IssueLinker | None:
    """The linker the config asks for (`None`: issue references stay text)."""
    match = _REPO_OF_TEMPLATE.match(github_url_template)
    repo = f"{match.group(2)}/{match.group(3)}" if match else ""
    if issues_url_template:
        return IssueLinker(issues_url_template, repo)
    if match:
        return IssueLinker(f"{match.group(1)}/{{repo}}/issues/{{number}}", repo)
    return None


def link_issues(fragment: str, linker: IssueLinker | None) -> str:
    """Issue references in text become links, except inside links, code and scripts."""
    if linker is None or "#" not in fragment:
        return fragment
    out: list[str] = []
    skip = 0
    for piece in _TAG.split(fragment):
        if piece.startswith("<"):
            name = _TAG_NAME.match(piece)
            if name and name.group(1).lower() in _NO_LINKS and not piece.endswith("/>"):
                skip += -1 if piece.startswith("</") else 1
                skip = max(skip, 0)
            out.append(piece)
        elif skip or "#" not in piece:
            out.append(piece)
        else:
            out.append(_ISSUE.sub(lambda m: _issue_link(m, linker), piece))
    return "".join(out)


def _issue_link(match: re.Match[str], linker: IssueLinker) -> str:
    url = linker.url(match.group("repo"), match.group("num"))
    if url is None:
        return match.group(0)
    return f'<a class="issue" href="{html.escape(url)}">{match.group(0)}</a>'


@lru_cache(maxsize=64)
def _formatter() -> HtmlFormatter[str]:
    return HtmlFormatter(nowrap=True)


def _highlight(language: str, code: str) -> str | None:
    try:
        lexer = get_lexer_by_name(language)
    except ClassNotFound:
        return None
    return str(highlight(code, lexer, _formatter()))


def _diagram_kind(language: str, code: str) -> str | None:
    if language in DOT_KINDS or language in BLOCKDIAG_KINDS:
        return language
    head = code.lstrip()
    for kind in BLOCKDIAG_KINDS:  # the original's legacy form: "blockdiag {" in any fence
        if head.startswith(kind) and head[len(kind) :].lstrip().startswith("{"):
            return kind
    return None


def code_and_diagrams(
    fragment: str, tools: DiagramTools, warn: Callable[[str], None]
) -> tuple[str, int]:
    """Highlight fenced code; replace diagram fences by inline SVG.

    A diagram that fails stays as code and `warn` is told why. Returns the HTML and the
    number of diagrams rendered.
    """
    rendered = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal rendered
        lang_match = _LANG.search(match.group("attrs"))
        language = lang_match.group(1).lower() if lang_match else ""
        code = html.unescape(match.group("body"))
        kind = _diagram_kind(language, code)
        if kind is not None:
            try:
                svg = render_diagram(kind, code, tools)
            except DiagramError as exc:
                warn(f"{kind} diagram not rendered: {exc}")
            else:
                rendered += 1
                return f'<figure class="diagram diagram-{kind}">{svg}</figure>'
        if not language:
            return match.group(0)
        body = _highlight(language, code)
        if body is None:
            return match.group(0)
        return (
            f'<pre class="highlight"><code class="language-{html.escape(language)}">'
            f"{body}</code></pre>"
        )

    return _CODE.sub(replace, fragment), rendered


_DROP = re.compile(r"<(script|style|svg)\b.*?</\1>", re.S | re.I)


def plain_text(fragment: str) -> str:
    """The words of an HTML fragment (diagrams and scripts left out)."""
    text = _TAG.sub(" ", _DROP.sub(" ", fragment))
    return " ".join(html.unescape(text).split())
