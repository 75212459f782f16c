"""build-docs end to end: a fixture tree with both markups, dot diagrams, a syntax error
and an ignored path, built by the real `build-docs` command, then read in headless
Chromium (`support.chromium`, over the DevTools protocol): the
rendered text, the diagram's SVG, search, dark mode, file:// and a static server
under a sub-path. Also: build-docs on debops-ci's own source with --strict.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.chromium import Chromium, Page
from support.httpserve import StaticHttpServer

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]

INI = """[DEFAULT]
title = Fixture docs
markup_format = asciidoc
ignore_paths_substr = third_party/
github_url_template = https://github.com/acme/fixture/{action}/main/{path}#L{lineno}
footer = <p id="custom-footer">Fixture footer</p>
css = .block-meta { letter-spacing: 1px; }
"""

ADOC_MODULE = '''"""
= Storage engine

The storage engine keeps *zanzibar* records. See #42.

[cols="1,1"]
|===
|key |value
|alpha |one
|===

[source,dot]
----
digraph flow { writer -> journal -> reader }
----
"""


def put(key):
    """Docstring, skipped."""
    """
    == Writing

    [source,python]
    ----
    put("k")
    ----
    """
'''

README = """# Fixture project

Markdown page with a **quokka** and a diagram:

```dot
digraph { markdown_node -> other_node }
```

| col | val |
|-----|-----|
| a   | 1   |
"""


def _run_build_docs(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cwd / ".xdg-cache")}
    return subprocess.run(
        [sys.executable, "-c", "from debops_ci.cli.build_docs import main; main()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Page]:
    """One headless Chromium tab for the module (tests/support/chromium.py)."""
    with Chromium() as chromium:
        yield chromium.new_page(width=1100, height=900)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("fixture")
    (root / "build_docs.ini").write_text(INI)
    (root / "engine").mkdir()
    (root / "engine" / "storage.py").write_text(ADOC_MODULE)
    (root / "engine" / "broken.py").write_text('"""Fine so far."""\n\nclass Broken(\n')
    (root / "third_party").mkdir()
    (root / "third_party" / "vendored.py").write_text('"""Must not appear."""\n')
    (root / "README.md").write_text(README)
    proc = _run_build_docs([], root)
    return root / "build_docs_output", proc


def test_build_reports_the_syntax_error_and_skips_it(
    site: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, proc = site
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["engine/broken.py:3: syntax error: '(' was never closed"]
    assert proc.stdout.startswith("build-docs: 2 pages, 3 blocks, 2 diagrams, 0 TODO/FIXME")
    assert not (out / "engine" / "broken.py.html").exists()
    assert not (out / "third_party").exists()
    assert "Must not appear" not in (out / "_static" / "search-index.js").read_text()


def test_asciidoc_page_renders_text_table_code_and_diagram(
    site: tuple[Path, subprocess.CompletedProcess[str]], browser: Page
) -> None:
    out, _proc = site
    browser.navigate((out / "engine" / "storage.py.html").as_uri())
    text = browser.evaluate("document.querySelector('main').innerText")
    assert "Storage engine" in text and "zanzibar" in text and "Writing" in text
    assert "Docstring, skipped." not in text
    assert browser.evaluate("document.querySelector('main strong').textContent") == "zanzibar"
    assert browser.evaluate("document.querySelectorAll('main table td').length") >= 4
    assert (
        browser.evaluate("document.querySelector('code.language-python .s2').textContent") == '"k"'
    )
    labels = browser.evaluate(
        "Array.from(document.querySelectorAll('figure.diagram svg text')).map(t => t.textContent)"
    )
    assert labels == ["writer", "journal", "reader"]
    width = browser.evaluate(
        "document.querySelector('figure.diagram svg').getBoundingClientRect().width"
    )
    assert width > 50
    issue = browser.evaluate("document.querySelector('a.issue').href")
    assert issue == "https://github.com/acme/fixture/issues/42"
    views = browser.evaluate("Array.from(document.querySelectorAll('a.view')).map(a => a.href)")
    assert views == [
        "https://github.com/acme/fixture/blob/main/engine/storage.py#L1",
        "https://github.com/acme/fixture/blob/main/engine/storage.py#L21",
    ]
    assert (
        browser.evaluate("document.getElementById('custom-footer').textContent") == "Fixture footer"
    )
    spacing = browser.evaluate(
        "getComputedStyle(document.querySelector('.block-meta')).letterSpacing"
    )
    assert spacing == "1px"


def test_markdown_page_and_breadcrumb_navigation(
    site: tuple[Path, subprocess.CompletedProcess[str]], browser: Page
) -> None:
    out, _proc = site
    browser.navigate((out / "README.md.html").as_uri())
    assert browser.evaluate("document.querySelector('main h1#fixture-project').textContent") == (
        "Fixture project"
    )
    assert browser.evaluate("document.querySelector('main strong').textContent") == "quokka"
    assert browser.evaluate("document.querySelectorAll('figure.diagram svg').length") == 1
    browser.navigate((out / "engine" / "storage.py.html").as_uri())
    crumbs = browser.evaluate(
        "Array.from(document.querySelectorAll('nav.crumbs a')).map(a => a.href)"
    )
    assert crumbs == [(out / "index.html").as_uri(), (out / "engine" / "index.html").as_uri()]
    browser.navigate(crumbs[1])
    assert "storage.py" in browser.evaluate("document.querySelector('ul.listing').innerText")


def test_search_finds_a_word_from_file_urls(
    site: tuple[Path, subprocess.CompletedProcess[str]], browser: Page
) -> None:
    out, _proc = site
    browser.navigate((out / "search.html").as_uri() + "?q=zanzibar")
    hits = browser.evaluate(
        "Array.from(document.querySelectorAll('#search-results a')).map(a => a.href)"
    )
    assert hits == [(out / "engine" / "storage.py.html").as_uri()]
    browser.evaluate("document.getElementById('search-input').value = ''")
    browser.type_text("#search-input", "quokka")  # key by key, as a user types
    hits = browser.evaluate(
        "Array.from(document.querySelectorAll('#search-results a')).map(a => a.href)"
    )
    assert hits == [(out / "README.md.html").as_uri()]
    assert browser.evaluate("document.getElementById('search-status').textContent").startswith(
        "1 page"
    )
    browser.navigate((out / "search.html").as_uri() + "?q=nosuchwordanywhere")
    assert browser.evaluate("document.querySelectorAll('#search-results li').length") == 0


def test_dark_mode_applies(
    site: tuple[Path, subprocess.CompletedProcess[str]], browser: Page
) -> None:
    out, _proc = site
    page = (out / "engine" / "storage.py.html").as_uri()
    background = "getComputedStyle(document.body).backgroundColor"
    try:
        browser.set_dark(False)
        browser.navigate(page)
        assert browser.evaluate(background) == "rgb(255, 255, 255)"
        browser.set_dark(True)
        assert browser.evaluate(background) == "rgb(15, 20, 25)"
        assert browser.evaluate("getComputedStyle(document.body).color") == "rgb(230, 237, 243)"
    finally:
        browser.set_dark(False)


def test_site_works_from_a_static_server_under_a_sub_path(
    site: tuple[Path, subprocess.CompletedProcess[str]], browser: Page, tmp_path: Path
) -> None:
    out, _proc = site
    shutil.copytree(out, tmp_path / "www" / "fixture" / "docs")
    server = StaticHttpServer(tmp_path / "www")
    try:
        base = f"{server.url}/fixture/docs"
        browser.navigate(f"{base}/engine/storage.py.html")
        font = browser.evaluate("getComputedStyle(document.body).fontFamily")
        assert "system-ui" in font  # the stylesheet loaded through its relative link
        browser.navigate(f"{base}/search.html?q=zanzibar")
        hits = browser.evaluate(
            "Array.from(document.querySelectorAll('#search-results a')).map(a => a.href)"
        )
        assert hits == [f"{base}/engine/storage.py.html"]
        failed = [r for r in server.requests if r.status >= 400]
        assert failed == []
    finally:
        server.stop()


def test_build_docs_documents_debops_ci_itself_strictly(tmp_path: Path) -> None:
    root = tmp_path / "debops-ci"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "src", root / "src", ignore=ignore)
    shutil.copytree(REPO / "docs", root / "docs", ignore=ignore)
    shutil.copy(REPO / "README.md", root / "README.md")
    shutil.copy(REPO / "build_docs.ini", root / "build_docs.ini")
    proc = _run_build_docs(["--strict"], root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    out = root / "build_docs_output"
    page = (out / "src" / "debops_ci" / "docsite" / "extract.py.html").read_text()
    assert "Documentation blocks and TODOs of one Python file" in page
    assert (out / "docs" / "build-docs.md.html").is_file()
    second = _run_build_docs(["--strict"], root)
    assert second.returncode == 0 and " from cache)" in second.stdout
    assert ", 0 from cache)" not in second.stdout
