"""Rendering of blocks: Markdown, AsciiDoc (real asciidoctor), highlighting, diagrams
(real Graphviz dot), issue links, and the kroki client against a local kroki-like server.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from debops_ci.docsite.diagrams import DiagramError, DiagramTools, find_tools, render_diagram
from debops_ci.docsite.htmlpass import (
    IssueLinker,
    code_and_diagrams,
    issue_linker_for,
    link_issues,
    plain_text,
)
from debops_ci.docsite.markup import render_asciidoc, render_markdown
from debops_ci.docsite.render import RenderSettings, render_file

TEMPLATE = "https://github.com/acme/widgets/{action}/main/{path}#L{lineno}"
LINKER = issue_linker_for(TEMPLATE, "")
DOT = "```dot\ndigraph G { alpha -> beta }\n```\n"


def _tools(**changes: object) -> DiagramTools:
    return replace(find_tools(), **changes)  # type: ignore[arg-type]


def _postprocess(fragment: str, tools: DiagramTools | None = None) -> tuple[str, list[str]]:
    warnings: list[str] = []
    out, _count = code_and_diagrams(fragment, tools or find_tools(), warnings.append)
    return out, warnings


def test_markdown_is_commonmark_with_tables_and_anchored_headings() -> None:
    out = render_markdown("# Title here\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n*em* <b>raw</b>\n")
    assert '<h1 id="title-here">Title here</h1>' in out
    assert "<table>" in out and "<td>1</td>" in out
    assert "<em>em</em>" in out and "<b>raw</b>" in out


def test_fenced_code_is_highlighted_and_unknown_languages_left_alone() -> None:
    html, warnings = _postprocess(render_markdown("```python\ndef f(): return 1\n```\n"))
    assert '<pre class="highlight"><code class="language-python">' in html
    assert '<span class="k">def</span>' in html
    assert warnings == []
    plain = render_markdown("```nosuchlang\nx < y\n```\n")
    assert _postprocess(plain)[0] == plain


def test_dot_fence_becomes_inline_svg() -> None:
    html, warnings = _postprocess(render_markdown(DOT))
    assert warnings == []
    assert '<figure class="diagram diagram-dot"><svg' in html
    assert ">alpha</text>" in html and ">beta</text>" in html
    assert "<?xml" not in html


def test_graphviz_fence_name_works_too() -> None:
    html, _ = _postprocess(render_markdown("```graphviz\ngraph { x -- y }\n```\n"))
    assert "<svg" in html


def test_a_broken_diagram_stays_as_code_and_is_reported() -> None:
    html, warnings = _postprocess(render_markdown("```dot\ndigraph { a -> \n```\n"))
    assert "<svg" not in html and "digraph" in html
    assert len(warnings) == 1 and warnings[0].startswith("dot diagram not rendered: dot failed")


def test_dot_timeout_is_reported(tmp_path: Path) -> None:
    slow = tmp_path / "slowdot"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    _html, warnings = _postprocess(render_markdown(DOT), _tools(dot=str(slow), timeout=0.2))
    assert warnings == ["dot diagram not rendered: dot took longer than 0.2 s (diagram_timeout)"]


def test_legacy_blockdiag_without_blockdiag_is_code_with_a_warning() -> None:
    fence = "```\nblockdiag {\n  A -> B;\n}\n```\n"
    html, warnings = _postprocess(render_markdown(fence), _tools(blockdiag={}, kroki_url=""))
    assert "blockdiag {" in html and "<svg" not in html
    assert warnings == [
        "blockdiag diagram not rendered: blockdiag is not installed, shown as code: "
        "pip install blockdiag (or set kroki_url)"
    ]


def test_missing_dot_without_kroki_is_a_warning() -> None:
    _html, warnings = _postprocess(render_markdown(DOT), _tools(dot="", kroki_url=""))
    assert warnings == [
        "dot diagram not rendered: dot not found: apt-get install graphviz (or set kroki_url)"
    ]


class _KrokiHandler(BaseHTTPRequestHandler):
    """A kroki-compatible endpoint: POST /graphviz/svg renders with the real dot."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/graphviz/svg":
            self.send_response(400)
            self.end_headers()
            return
        svg = subprocess.run(["dot", "-Tsvg"], input=body, capture_output=True, check=True)
        self.send_response(200)
        self.send_header("Content-Type", "image/svg+xml")
        self.end_headers()
        self.wfile.write(svg.stdout)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def kroki_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KrokiHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_kroki_is_used_only_when_configured_and_dot_is_missing(kroki_url: str) -> None:
    html, warnings = _postprocess(render_markdown(DOT), _tools(dot="", kroki_url=kroki_url))
    assert warnings == [] and ">alpha</text>" in html
    with pytest.raises(DiagramError, match="refused the blockdiag diagram"):
        render_diagram(
            "blockdiag", "blockdiag { A -> B }", _tools(blockdiag={}, kroki_url=kroki_url)
        )


def test_unreachable_kroki_is_reported() -> None:
    tools = _tools(dot="", kroki_url="http://127.0.0.1:9", timeout=2)
    with pytest.raises(DiagramError, match="unreachable"):
        render_diagram("dot", "digraph { a }", tools)


def test_issue_links_short_and_cross_repository() -> None:
    out = link_issues("<p>Fixes #12, see other/lib#7.</p>", LINKER)
    assert '<a class="issue" href="https://github.com/acme/widgets/issues/12">#12</a>' in out
    assert '<a class="issue" href="https://github.com/other/lib/issues/7">other/lib#7</a>' in out


def test_issue_references_in_code_links_and_entities_stay_text() -> None:
    fragment = (
        '<p><code>#1</code> <a href="x">#2</a> &#35; a&#123; <pre><code>#3</code></pre>'
        "page#4 <span>#5</span></p>"
    )
    out = link_issues(fragment, LINKER)
    assert out.count('class="issue"') == 1 and "issues/5" in out


def test_issue_links_need_a_repository_or_an_explicit_template() -> None:
    assert issue_linker_for("", "") is None
    assert link_issues("<p>#3</p>", None) == "<p>#3</p>"
    custom = issue_linker_for("", "https://tracker.example/issue/{number}")
    assert custom == IssueLinker("https://tracker.example/issue/{number}", "")
    out = link_issues("<p>#3 and a/b#4</p>", custom)
    assert 'href="https://tracker.example/issue/3"' in out and "a/b#4</p>" in out


def test_plain_text_leaves_out_markup_and_diagrams() -> None:
    assert plain_text("<p>Hello &amp; <b>bye</b></p><svg><text>node</text></svg>") == "Hello & bye"


def test_asciidoc_really_renders_several_blocks_in_one_run() -> None:
    blocks = [
        "= Page title\n\n== Section *one*\n\nA paragraph.",
        "|===\n|a |b\n|1 |2\n|===",
        "[source,python]\n----\nx = 1 < 2\n----",
        "[source,dot]\n----\ndigraph { gamma -> delta }\n----",
    ]
    html, notes = render_asciidoc(blocks)
    assert len(html) == 4 and notes == []
    assert "<h1>Page title</h1>" in html[0]
    assert '<h2 id="_section_one">Section <strong>one</strong></h2>' in html[0]
    assert '<table class="tableblock' in html[1]
    highlighted, _ = _postprocess(html[2])
    assert '<span class="n">x</span>' in highlighted
    diagram, warnings = _postprocess(html[3])
    assert warnings == [] and ">gamma</text>" in diagram


def test_asciidoc_block_with_an_unclosed_delimiter_does_not_swallow_the_next() -> None:
    html, _notes = render_asciidoc(["----\nnever closed", "second *block*"])
    assert len(html) == 2 and "<strong>block</strong>" in html[1]


def test_render_file_uses_the_cache_and_keeps_warnings(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text('"""Doc #5.\n\n```dot\ndigraph { a -> }\n```\n"""\n')
    settings = RenderSettings(tools=find_tools(), linker=LINKER)
    first = render_file(source, "m.py", settings, str(tmp_path / "cache"))
    again = render_file(source, "m.py", settings, str(tmp_path / "cache"))
    assert not first.cached and again.cached
    assert again.blocks == first.blocks and again.warnings == first.warnings
    assert len(first.warnings) == 1 and first.warnings[0].lineno == 1
    assert "issues/5" in first.blocks[0].html
    source.write_text('"""Changed."""\n')
    changed = render_file(source, "m.py", settings, str(tmp_path / "cache"))
    assert not changed.cached and changed.blocks[0].text == "Changed."
