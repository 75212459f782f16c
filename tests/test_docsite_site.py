"""A whole build in-process: config, pages, navigation, TODO index, link checking,
atomic rebuild of outdir, the cache, and the CLI's errors.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from debops_ci.cli.build_docs import main
from debops_ci.docsite import (
    BuildFailed,
    BuildOptions,
    DocsBuildError,
    DocsConfigError,
    build_site,
    load_config,
)
from debops_ci.docsite.linkcheck import check_links

INI = """[DEFAULT]
title = Widgets
ignore_paths_substr = vendor/ skipme
github_url_template = https://github.com/acme/widgets/{action}/main/{path}#L{lineno}
"""


def _tree(root: Path, ini: str = INI) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "vendor").mkdir()
    (root / "build_docs_ini").write_text("")
    (root / "build_docs.ini").write_text(ini)
    (root / "pkg" / "__init__.py").write_text('"""The package. See #4."""\n')
    (root / "pkg" / "core.py").write_text(
        '"""Core.\n\nSee [the guide](../README.md#usage) and [sub](sub/leaf.py).\n"""\n'
        "import os  # TODO: drop os\n\n"
        "def run():\n"
        '    """Doc."""\n'
        '    """## Running\n\n    FIXME: explain the flags\n    """\n'
    )
    (root / "pkg" / "sub" / "leaf.py").write_text('"""Leaf module."""\n')
    (root / "vendor" / "lib.py").write_text('"""Vendored: ignored."""\n')
    (root / "pkg" / "skipme_gen.py").write_text('"""Ignored by substring."""\n')
    (root / "README.md").write_text("# Widgets\n\n## Usage\n\nRead [core](pkg/core.py).\n")
    return root


def _build(root: Path, **options: object) -> object:
    config = load_config(cwd=root)
    return build_site(config, BuildOptions(cache_dir=root / ".cache", **options))  # type: ignore[arg-type]


def test_pages_indexes_home_and_ignored_paths(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    result = _build(root)
    out = root / "build_docs_output"
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html"))
    assert pages == [
        "README.md.html",
        "index.html",
        "pkg/__init__.py.html",
        "pkg/core.py.html",
        "pkg/index.html",
        "pkg/sub/index.html",
        "pkg/sub/leaf.py.html",
        "search.html",
        "todo.html",
    ]
    assert result.pages == 4  # type: ignore[attr-defined]
    assert (out / ".nojekyll").is_file() and (out / "_static" / "style.css").is_file()


def test_block_links_carry_the_real_line_number(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _build(root)
    html = (root / "build_docs_output" / "pkg" / "core.py.html").read_text()
    base = "https://github.com/acme/widgets"
    assert f'href="{base}/blob/main/pkg/core.py#L1">view</a>' in html
    assert f'href="{base}/edit/main/pkg/core.py#L1">edit</a>' in html
    assert f'href="{base}/blob/main/pkg/core.py#L9">view</a>' in html
    assert 'id="L9"' in html and '<span class="scope">run</span>' in html
    assert "#L0" not in html


def test_breadcrumbs_are_relative_and_lead_to_real_pages(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _build(root)
    html = (root / "build_docs_output" / "pkg" / "sub" / "leaf.py.html").read_text()
    crumbs = re.search(r'<nav class="crumbs">(.*?)</nav>', html)
    assert crumbs is not None
    assert crumbs.group(1) == (
        '<a href="../../index.html">Widgets</a> / <a href="../index.html">pkg</a> / '
        '<a href="index.html">sub</a> / <span>leaf.py</span>'
    )
    assert 'href="../../_static/style.css"' in html


def test_relative_links_in_blocks_point_at_pages(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _build(root)
    html = (root / "build_docs_output" / "pkg" / "core.py.html").read_text()
    assert 'href="../README.md.html#usage"' in html
    assert 'href="sub/leaf.py.html"' in html
    readme = (root / "build_docs_output" / "README.md.html").read_text()
    assert 'href="pkg/core.py.html"' in readme


def test_issue_links_in_pages(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _build(root)
    html = (root / "build_docs_output" / "pkg" / "__init__.py.html").read_text()
    assert 'href="https://github.com/acme/widgets/issues/4">#4</a>' in html


def test_todo_index_lists_comments_and_blocks(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    result = _build(root)
    html = (root / "build_docs_output" / "todo.html").read_text()
    assert result.todos == 2  # type: ignore[attr-defined]
    rows = re.findall(r"<tr><td>(\w+)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", html)
    assert rows == [
        (
            "TODO",
            "drop os",
            '<a href="https://github.com/acme/widgets/blob/main/pkg/core.py#L5">pkg/core.py:5</a>',
            '<a href="pkg/core.py.html">pkg/core.py</a> (comment)',
        ),
        (
            "FIXME",
            "explain the flags",
            '<a href="https://github.com/acme/widgets/blob/main/pkg/core.py#L11">pkg/core.py:11</a>',
            '<a href="pkg/core.py.html#L9">pkg/core.py</a> (block)',
        ),
    ]


def test_search_index_holds_the_words(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _build(root)
    index = (root / "build_docs_output" / "_static" / "search-index.js").read_text()
    assert index.startswith("window.BUILD_DOCS_INDEX = [")
    assert '"pkg/core.py.html","pkg/core.py","Core."' in index and " running " in index


def test_link_checker_finds_missing_files_fragments_and_escapes(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "index.html").write_text('<h1 id="top">x</h1>')
    (tmp_path / "a.html").write_text(
        '<a href="d/">ok dir</a><a href="d/index.html#top">ok</a><a href="#self">ok</a>'
        '<p id="self"></p><a href="https://example.invalid/x">external</a>'
        '<a href="mailto:a@b">mail</a><img src="missing.png">'
        '<a href="d/index.html#nope">bad fragment</a><a href="../outside.html">escape</a>'
        "<a href='#gone'>bad self</a>"
    )
    broken = [(b.target, b.reason) for b in check_links(tmp_path)]
    assert broken == [
        ("missing.png", "no such file"),
        ("d/index.html#nope", "no #nope in d/index.html"),
        ("../outside.html", "leaves the site"),
        ("#gone", "no #gone in a.html"),
    ]


def test_a_broken_link_fails_and_keeps_the_previous_site(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _build(root)
    before = (root / "build_docs_output" / "pkg" / "core.py.html").read_text()
    (root / "README.md").write_text("# Widgets\n\n[gone](pkg/core.py#no-such-heading)\n")
    (root / "pkg" / "core.py").write_text('"""Changed."""\n')
    with pytest.raises(BuildFailed, match="1 broken link") as failed:
        _build(root)
    assert any("no #no-such-heading" in line for line in failed.value.reports)
    assert (root / "build_docs_output" / "pkg" / "core.py.html").read_text() == before
    assert [p.name for p in root.iterdir() if p.name.startswith(".build_docs_output")] == []


def test_rebuild_removes_stale_pages(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _build(root)
    (root / "pkg" / "sub" / "leaf.py").unlink()
    (root / "pkg" / "core.py").write_text('"""Core, no links now."""\n')
    _build(root)
    out = root / "build_docs_output"
    assert not (out / "pkg" / "sub").exists()
    assert (out / "pkg" / "core.py.html").is_file()


def test_syntax_errors_are_reported_skipped_and_fail_strict(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "pkg" / "bad.py").write_text("x = 1\ndef broken(:\n")
    result = _build(root)
    assert [str(r) for r in result.skipped] == [  # type: ignore[attr-defined]
        "pkg/bad.py:2: syntax error: invalid syntax"
    ]
    assert not (root / "build_docs_output" / "pkg" / "bad.py.html").exists()
    (root / "pkg" / "core.py").write_text('"""Strict run."""\n')
    with pytest.raises(BuildFailed, match="--strict: 1 warning"):
        _build(root, strict=True)
    assert "Strict run" not in (root / "build_docs_output" / "pkg" / "core.py.html").read_text()


def test_second_build_comes_from_the_cache(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    first = _build(root)
    (root / "pkg" / "sub" / "leaf.py").write_text('"""Leaf, edited."""\n')
    second = _build(root)
    assert first.cached == 0  # type: ignore[attr-defined]
    assert second.cached == 3  # type: ignore[attr-defined]
    assert (
        "Leaf, edited." in (root / "build_docs_output" / "pkg" / "sub" / "leaf.py.html").read_text()
    )


def test_an_outdir_that_is_not_a_site_is_refused_untouched(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "build_docs_output").mkdir()
    (root / "build_docs_output" / "precious.txt").write_text("keep me")
    with pytest.raises(DocsBuildError, match="not made by build-docs"):
        _build(root)
    assert (root / "build_docs_output" / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("[DEFAULT]\nmarkup = markdown\n", "unknown key 'markup'"),
        ("[DEFAULT]\n[docs]\nouttdir = x\n", "section [docs] is not read"),
        ("[DEFAULT]\nmarkup_format = rst\n", "markup_format is 'rst'; use markdown or asciidoc"),
        ("[DEFAULT]\ngithub_url_template = https://x/{branch}/{path}\n", "uses {branch}"),
        ("[DEFAULT]\noutdir = ../elsewhere\n", "outdir must be a relative path inside"),
        ("[DEFAULT]\noutdir = .\n", "outdir cannot be the project directory"),
        ("[DEFAULT]\ndiagram_timeout = soon\n", "diagram_timeout must be a number"),
        ("no section\n", "cannot parse"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ini: str, message: str
) -> None:
    (tmp_path / "build_docs.ini").write_text(ini)
    with pytest.raises(DocsConfigError):
        load_config(cwd=tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(tmp_path / "build_docs.ini")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("build-docs: error: ") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build_docs.ini"]


def test_cli_missing_config_and_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(tmp_path / "nope.ini")])
    assert exited.value.code == 2
    assert "nope.ini not found" in capsys.readouterr().err
    main(["--version"])  # returns: exit status 0
    assert capsys.readouterr().out.startswith("build-docs, version ")


def test_cli_builds_and_strict_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _tree(tmp_path)
    config = str(root / "build_docs.ini")
    main(["--config", config, "--cache-dir", str(root / ".c")])
    out = capsys.readouterr().out
    assert out.startswith("build-docs: 4 pages, 5 blocks, 0 diagrams, 2 TODO/FIXME -> ")
    (root / "pkg" / "bad.py").write_text("def (:\n")
    with pytest.raises(SystemExit) as exited:
        main(["--config", config, "--strict", "--no-cache"])
    assert exited.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "pkg/bad.py:1: syntax error: invalid syntax"
    assert err[-1] == "build-docs: error: --strict: 1 warning(s); the previous site is kept"
