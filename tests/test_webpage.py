"""The archive's web pages, in process: renderers, names, and what publishing costs.

The pages in a real browser, from a real published archive, are in test_webpage_e2e.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from debops_ci.archive.indexes import PackageEntry
from debops_ci.archive.webpage import (
    FirstSeen,
    SuiteSummary,
    archive_slug,
    check_public_url,
    page_data_block,
    pages_data_key,
    publish_archive_page,
    publish_suite_page,
    render_archive_page,
    render_suite_page,
    resolve_public_url,
    setup_lines,
    suite_page_key,
)
from debops_ci.errors import UsageError
from debops_ci.storage import LocalStore, MemoryStore

DAY0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
URL = "https://acme-deb.s3.eu-west-1.amazonaws.com"


def entry(
    name: str,
    version: str,
    arch: str = "amd64",
    *,
    size: int = 1000,
    description: str = "a test package",
    filename: str | None = None,
) -> PackageEntry:
    filename = filename or f"pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb"
    text = (
        f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n"
        f"Filename: {filename}\nSize: {size}\nDescription: {description}\n More text."
    )
    return PackageEntry(name, version, arch, filename, size, "0" * 64, "0" * 32, text)


class _Dom(HTMLParser):
    """Elements, attributes and text of a page, as a browser's parser splits them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._in: list[str] = []
        self.script_bodies: list[str] = []
        # Per table body row: the first text of each cell (a version, not its badge).
        self.rows: list[list[str]] = []
        self._cell_open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in.append(tag)
        if tag == "tr" and "tbody" in self._in:
            self.rows.append([])
        if tag in ("td", "th") and "tbody" in self._in:
            self._cell_open = True

    def handle_endtag(self, tag: str) -> None:
        if tag in self._in:
            while self._in.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in and self._in[-1] == "script":
            self.script_bodies.append(data)
        if self._cell_open and data.strip():
            self.rows[-1].append(data.strip())
            self._cell_open = False


def parse(page: str) -> _Dom:
    dom = _Dom()
    dom.feed(page)
    dom.close()
    return dom


def page_of(components: dict[str, list[PackageEntry]], url: str = URL) -> str:
    first_seen = {
        f"{c}/{e.package}/{e.version}/{e.architecture}": FirstSeen(DAY0)
        for c, entries in components.items()
        for e in entries
    }
    return render_suite_page(
        "unstable", components, public_url=url, first_seen=first_seen, date=DAY0
    )


# -- escaping --------------------------------------------------------------------------


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quoted" \'single\''


def test_hostile_descriptions_names_and_filenames_are_text_not_markup() -> None:
    bad = entry(
        "evil<b>",
        '1.0"><script>alert(2)</script>',
        description=HOSTILE,
        filename='javascript:alert(3)//"><script>alert(4)</script>.deb',
    )
    page = page_of({"main": [bad, entry("good", "1.0")]})
    dom = parse(page)
    # The only script is the page's own; no element came out of the package's data.
    assert len([t for t, _ in dom.tags if t == "script"]) == 1
    assert not [t for t, _ in dom.tags if t == "img"]
    assert not [a for _, a in dom.tags if any(k.startswith("on") for k in a)]
    text = "".join(dom.text)
    assert HOSTILE in text  # shown to the reader exactly as written
    assert "evil<b>" in text
    # Links stay relative to the archive: no scheme survives in an href.
    hrefs = [a["href"] or "" for t, a in dom.tags if t == "a"]
    assert all(not re.match(r"^[a-z]+:", h) for h in hrefs), hrefs
    assert "../../javascript%3Aalert%283%29//%22%3E%3Cscript%3Ealert%284%29%3C/script%3E.deb" in (
        hrefs
    )


def test_hostile_suite_summary_is_escaped_on_the_root_page() -> None:
    summary = SuiteSummary(suite="unstable", components=("main",), architectures=("amd64",))
    page = render_archive_page([summary], public_url='https://x.example/"><script>')
    dom = parse(page)
    assert len([t for t, _ in dom.tags if t == "script"]) == 1
    assert '"><script>' in "".join(dom.text)


def test_content_security_policy_allows_only_the_inline_style_and_script() -> None:
    dom = parse(page_of({"main": [entry("hello", "1.0")]}))
    csp = next(
        a["content"] or ""
        for t, a in dom.tags
        if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    )
    assert "default-src 'none'" in csp
    (script,) = dom.script_bodies
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    # Nothing is fetched from elsewhere: no src= or stylesheet link at all.
    assert not [a for t, a in dom.tags if "src" in a]
    assert not [a for t, a in dom.tags if t == "link" and a.get("rel") == "stylesheet"]


# -- order ---------------------------------------------------------------------------------


def test_versions_are_listed_newest_first_by_debian_rules() -> None:
    versions = ["1.0~rc1", "1.9", "1.0-1", "1:0.5", "1.0", "1.10", "1.0-1~pr7.3", "1.0-1+b1"]
    page = page_of({"main": [entry("hello", v) for v in versions]})
    rows = parse(page).rows
    # The first row starts with the package's name cell.
    shown = [row[1] if row[0] == "hello" else row[0] for row in rows]
    # String order would put 1.9 above 1.10 and 1.0~rc1 above 1.0.
    assert shown == ["1:0.5", "1.10", "1.9", "1.0-1+b1", "1.0-1", "1.0-1~pr7.3", "1.0", "1.0~rc1"]


def test_packages_by_name_and_architectures_within_a_version() -> None:
    page = page_of(
        {
            "main": [
                entry("zeta", "1"),
                entry("alpha", "2", "arm64"),
                entry("alpha", "2", "amd64"),
                entry("alpha", "3", "all"),
            ]
        }
    )
    dom = parse(page)
    groups = [a["data-package"] for t, a in dom.tags if t == "tbody" and "data-package" in a]
    assert groups == ["alpha", "zeta"]
    alpha = dom.rows[:3]
    assert [(r[-4], r[-3]) for r in alpha] == [("3", "all"), ("2", "amd64"), ("2", "arm64")]
    assert dom.rows[0][0] == "alpha" and dom.rows[3][0] == "zeta"


# -- names and setup lines -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("https://acme-deb.s3.eu-west-1.amazonaws.com", "acme-deb"),
        ("https://acme-deb.s3.amazonaws.com/releases", "acme-deb-releases"),
        ("https://s3.eu-west-1.amazonaws.com/acme-deb-pr", "acme-deb-pr"),
        ("http://127.0.0.1:8333/my-bucket/prefix", "127.0.0.1-8333-my-bucket-prefix"),
        ("https://apt.example.com/debian/", "apt.example.com-debian"),
        ("file:///srv/apt/PR%20builds", "srv-apt-pr-20builds"),
        ("file:///tmp/x/demo_archive", "tmp-x-demo-archive"),
    ],
)
def test_slug_comes_from_the_bucket_or_host_and_path(url: str, slug: str) -> None:
    assert archive_slug(url) == slug


def test_two_archives_get_different_names_that_apt_accepts() -> None:
    urls = [
        "https://acme-deb.s3.eu-west-1.amazonaws.com",
        "https://acme-deb-pr.s3.eu-west-1.amazonaws.com",
        "file:///srv/a/archive",
        "file:///srv/b/archive",
        "https://apt.example.com/" + "x" * 80 + "/one",
        "https://apt.example.com/" + "x" * 80 + "/two",
    ]
    slugs = [archive_slug(u) for u in urls]
    assert len(set(slugs)) == len(urls), slugs
    for slug in slugs:
        # apt ignores sources.list.d files with other characters in their names.
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", slug) and len(slug) <= 64
    keyrings = {setup_lines(u, "unstable", ["main"]).keyring for u in urls}
    lists = {setup_lines(u, "unstable", ["main"]).list_file for u in urls}
    assert len(keyrings) == len(lists) == len(urls)


def test_setup_lines_are_exact() -> None:
    setup = setup_lines(URL, "pr-builds", ["contrib", "main"])
    key = "/etc/apt/keyrings/acme-deb.asc"
    assert setup.commands == (
        "sudo install -d -m 0755 /etc/apt/keyrings",
        f"sudo curl -fsSL {URL}/archive-key.asc -o {key}",
        f"echo 'deb [signed-by={key}] {URL} pr-builds contrib main' "
        "| sudo tee /etc/apt/sources.list.d/acme-deb.list",
        "sudo apt-get update",
    )
    page = page_of({"main": [entry("hello", "1.0")]})
    pre = re.findall(r'<pre id="setup-\d">(.*?)</pre>', page)
    assert pre[1] == f"sudo curl -fsSL {URL}/archive-key.asc -o {key}"
    assert "&#x27;deb [signed-by=/etc/apt/keyrings/acme-deb.asc]" in pre[2]


def test_a_local_archive_shows_its_file_url(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "demo-archive")
    url = resolve_public_url(store, None)
    assert url == f"file://{tmp_path}/demo-archive"
    publish_suite_page(
        store, "unstable", {"main": [entry("hello", "1.0")]}, date=DAY0, public_url=None
    )
    page = (tmp_path / "demo-archive" / "dists/unstable/index.html").read_text()
    assert f"deb [signed-by=/etc/apt/keyrings/{archive_slug(url)}.asc] {url} unstable main" in page
    assert "URL of this archive" not in page


def test_the_public_url_given_wins_and_a_bad_one_is_refused() -> None:
    store = MemoryStore()
    assert resolve_public_url(store, "https://apt.example.com/debian/") == (
        "https://apt.example.com/debian"
    )
    for bad in ("apt.example.com", "ftp://x.example", "https://", "https://x.example/a b"):
        with pytest.raises(UsageError, match="--public-url"):
            check_public_url(bad)
    with pytest.raises(UsageError):
        publish_suite_page(store, "unstable", {}, date=DAY0, public_url="not a url")
    assert list(store.list_objects("")) == []  # refused before any write


# -- publishing: cost and dates ----------------------------------------------------------------


def data_of(store: MemoryStore, suite: str = "unstable") -> dict[str, list[object]]:
    block = page_data_block(store.get(suite_page_key(suite)).data.decode())
    assert block is not None
    first_seen: dict[str, list[object]] = json.loads(block)["first_seen"]
    return first_seen


def test_a_suite_page_costs_one_get_and_one_put_and_dates_survive_commits() -> None:
    store = MemoryStore()
    hello = entry("hello", "1.0-1")
    publish_suite_page(
        store, "unstable", {"main": [hello]}, date=DAY0, public_url=URL, first_commit=True
    )
    later = DAY0 + timedelta(days=2)
    newer = entry("hello", "1.1-1")
    store.operations.clear()
    publish_suite_page(store, "unstable", {"main": [hello, newer]}, date=later, public_url=URL)
    assert store.operations == [
        ("GET", suite_page_key("unstable")),
        ("PUT", suite_page_key("unstable")),
    ]
    assert data_of(store) == {
        "main/hello/1.0-1/amd64": ["2024-05-01T10:00:00Z"],
        "main/hello/1.1-1/amd64": ["2024-05-03T10:00:00Z"],
    }
    page = store.get(suite_page_key("unstable")).data.decode()
    assert '<time datetime="2024-05-03T10:00:00Z">2024-05-03 10:00</time>' in page
    # Removed entries are forgotten.
    publish_suite_page(store, "unstable", {"main": [newer]}, date=later, public_url=URL)
    assert list(data_of(store)) == ["main/hello/1.1-1/amd64"]


def test_hostile_names_cannot_end_the_data_block_early() -> None:
    store = MemoryStore()
    hostile = entry("x", "1</script><script>alert(1)</script>")
    publish_suite_page(store, "unstable", {"main": [hostile]}, date=DAY0, public_url=URL)
    page = store.get(suite_page_key("unstable")).data.decode()
    assert "</script><script>alert(1)" not in page
    assert list(data_of(store)) == ["main/x/1</script><script>alert(1)</script>/amd64"]
    dom = parse(page)
    scripts = [a for t, a in dom.tags if t == "script"]
    assert sorted(str(a.get("type")) for a in scripts) == ["None", "application/json"]


def test_entries_older_than_the_first_page_are_marked_on_or_before() -> None:
    store = MemoryStore()
    publish_suite_page(store, "unstable", {"main": [entry("old", "1")]}, date=DAY0, public_url=URL)
    assert data_of(store) == {"main/old/1/amd64": ["2024-05-01T10:00:00Z", False]}
    page = store.get(suite_page_key("unstable")).data.decode()
    assert "≤ 2024-05-01" in page


def test_a_page_of_an_older_commit_does_not_replace_a_newer_one() -> None:
    store = MemoryStore()
    later = DAY0 + timedelta(hours=1)
    publish_suite_page(store, "unstable", {"main": [entry("new", "2")]}, date=later, public_url=URL)
    before = store.get(suite_page_key("unstable")).data
    publish_suite_page(store, "unstable", {"main": [entry("old", "1")]}, date=DAY0, public_url=URL)
    assert store.get(suite_page_key("unstable")).data == before


def test_a_corrupt_data_block_is_replaced_not_fatal() -> None:
    store = MemoryStore()
    store.put(
        suite_page_key("unstable"),
        b'<script type="application/json" id="debops-ci-data">{not json</script>',
    )
    publish_suite_page(store, "unstable", {"main": [entry("a", "1")]}, date=DAY0, public_url=URL)
    assert list(data_of(store)) == ["main/a/1/amd64"]


def test_the_dates_of_the_old_data_file_move_into_the_page() -> None:
    store = MemoryStore()
    old = {
        "format": 1,
        "suite": "unstable",
        "date": "2024-05-01T10:00:00Z",
        "first_seen": {"main/a/1/amd64": ["2024-04-01T08:00:00Z"]},
    }
    store.put(pages_data_key("unstable"), json.dumps(old).encode())
    store.put(suite_page_key("unstable"), b"<!doctype html><p>a page of format 1</p>")
    later = DAY0 + timedelta(days=1)
    publish_suite_page(store, "unstable", {"main": [entry("a", "1")]}, date=later, public_url=URL)
    assert data_of(store) == {"main/a/1/amd64": ["2024-04-01T08:00:00Z"]}
    assert store.head(pages_data_key("unstable")) is None  # read once, then removed


def test_the_root_page_reads_each_suites_root_and_no_more() -> None:
    store = MemoryStore()
    publish_suite_page(store, "unstable", {"main": [entry("pkg", "1")]}, date=DAY0, public_url=URL)
    store.put("dists/legacy/InRelease", b"not signed at all")  # a suite without a page
    store.operations.clear()
    publish_archive_page(
        store, public_url=URL, known={"pr-builds": (("main", "contrib"), ("amd64",))}
    )
    gets = sorted(k for op, k in store.operations if op == "GET")
    assert gets == ["dists/legacy/InRelease", "dists/unstable/InRelease"]
    assert [op for op, _ in store.operations].count("LIST") == 1
    dom = parse(store.get("index.html").data.decode())
    links = [a["href"] for t, a in dom.tags if t == "a"]
    # pr-builds: its page is being written now (its first commit).
    assert "dists/unstable/index.html" in links and "dists/pr-builds/index.html" in links
    assert "dists/legacy/index.html" not in links  # no page to link to yet
    text = "".join(dom.text)
    assert "legacy" in text and "No package list yet" in text
    assert "main contrib" in text


def test_an_empty_suite_and_an_empty_archive_render() -> None:
    store = MemoryStore()
    publish_archive_page(store, public_url=URL)
    assert "No suites yet." in store.get("index.html").data.decode()
    publish_suite_page(store, "unstable", {"main": []}, date=DAY0, public_url=URL)
    page = store.get(suite_page_key("unstable")).data.decode()
    assert "This suite holds no packages." not in page  # the component is still listed
    assert "0 packages" in page
    assert f"{URL} unstable main&#x27;" in page
