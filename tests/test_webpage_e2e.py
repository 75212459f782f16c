"""The archive's pages in a real browser, from an archive the real CLI published.

Real .debs (dpkg-deb), the real `debops-ci upload --public-url` into a local archive
(each commit writes the pages itself), served over
HTTP on 127.0.0.1, rendered by headless Chromium: the DOM is read, the filter box is
typed into, dark mode is emulated, widths are measured at 1200 px, every link fetched.
"""

from __future__ import annotations

import gzip
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.chromium import Chromium, Page, dump_dom
from support.cli import key_env, run_cli
from support.debs import make_deb
from support.gpgkeys import GpgKey
from support.httpserve import StaticHttpServer
from support.seaweed import S3Bucket

from debops_ci.archive.state import read_suite
from debops_ci.archive.webpage import archive_slug
from debops_ci.signing import Verifier
from debops_ci.storage import LocalStore

pytestmark = pytest.mark.e2e

HOSTILE = '<script>alert("pwned")</script> <img src=x onerror=alert(1)> & friends'
LONG_NAME = "a-package-with-a-name-long-enough-to-push-a-table-cell-past-any-sane-width"
LONG_VERSION = "2.0.0~rc1+git20240501.0123456789abcdef0123456789abcdef-1~pr1234.567"
# Where the screenshots are copied for a human to look at (outside pytest's tmp).
SHOTS = Path("/tmp/debops-ci-webpage-shots")


def _upload(root: Path, key: GpgKey, debs: list[Path], *extra: str) -> None:
    """The real CLI: each commit writes the suite's page and the root page itself."""
    result = run_cli(["upload", "--archive", str(root), *extra, *map(str, debs)], key_env(key))
    assert result.returncode == 0, result.output


def _release_date(root: Path, key: GpgKey, suite: str = "unstable") -> str:
    """The suite's signed Release Date, as the pages' `datetime` attributes give it."""
    with Verifier.open([key.public_armored]) as verifier:
        state = read_suite(LocalStore(root), suite, verifier)
    assert state.date is not None
    return state.date.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, signing_key: GpgKey
) -> Iterator[tuple[StaticHttpServer, Path, tuple[str, str]]]:
    tmp = tmp_path_factory.mktemp("webpage")
    root = tmp / "archive"
    debs = tmp / "debs"
    server = StaticHttpServer(root.parent)  # the archive is served under /archive
    url = f"{server.url}/archive"
    try:
        public = ("--public-url", url)
        _upload(
            root,
            signing_key,
            [
                make_deb(debs, "hello", "1.0-1", "amd64"),
                make_deb(debs, "hello", "1.0-1", "arm64"),
                make_deb(debs, "hello-data", "1.0-1", "all", payload_size=300_000),
            ],
            *public,
        )
        _upload(
            root,
            signing_key,
            [make_deb(debs, "tool", "0.9", "amd64")],
            "--distro",
            "pr-builds",
            *public,
        )
        first = _release_date(root, signing_key)
        # A second commit: its new entries get a later date, the old keep theirs.
        _upload(
            root,
            signing_key,
            [
                make_deb(debs, "hello", "1.10-1", "amd64"),
                make_deb(debs, "hello", "1.9-1", "amd64"),
                make_deb(debs, "hello", "1.10-1~pr7.3", "amd64"),
                make_deb(debs, "mischief", "1.0", "all", extra_fields={"Description": HOSTILE}),
                make_deb(debs, LONG_NAME, LONG_VERSION, "amd64"),
            ],
            *public,
        )
        second = _release_date(root, signing_key)
        yield server, root, (first, second)
    finally:
        server.stop()


def _open(browser: Chromium, url: str, *, dark: bool = False) -> Page:
    page = browser.new_page(width=1200, height=900, dark=dark)
    page.navigate(url)
    return page


def _overflowing(page: Page) -> Any:
    """Elements whose box reaches past the 1200 px viewport, and the page's scroll width."""
    return page.evaluate(
        """(() => {
        const width = document.documentElement.clientWidth;
        const wide = [...document.querySelectorAll('body *')]
          .filter(e => { const r = e.getBoundingClientRect();
                         return r.width > 0 && (r.right > width + 0.5 || r.left < -0.5); })
          .map(e => e.tagName + " " + (e.textContent || "").slice(0, 60));
        return {width, scroll: document.documentElement.scrollWidth, wide};
      })()"""
    )


def _links(page: Page) -> list[str]:
    hrefs: list[str] = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    return sorted({h.split("#", 1)[0] for h in hrefs})


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _screenshot(page: Page, tmp_path: Path, name: str) -> None:
    shot = page.screenshot(tmp_path / name)
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(shot, SHOTS / name)


def _visible_packages(page: Page) -> list[str]:
    names: list[str] = page.evaluate(
        "[...document.querySelectorAll('tbody[data-package]')]"
        ".filter(g => g.offsetParent !== null).map(g => g.dataset.package)"
    )
    return names


def test_root_page_lists_the_suites_and_its_links_resolve(
    site: tuple[StaticHttpServer, Path, tuple[str, str]], tmp_path: Path
) -> None:
    server, _root, _dates = site
    url = f"{server.url}/archive"
    dom = dump_dom(f"{url}/index.html")
    assert 'href="dists/unstable/index.html"' in dom
    assert 'href="dists/pr-builds/index.html"' in dom
    slug = archive_slug(url)
    assert slug == f"127.0.0.1-{server.port}-archive"
    with Chromium() as browser:
        page = _open(browser, f"{url}/index.html")
        setup = page.evaluate("[...document.querySelectorAll('pre')].map(p => p.textContent)")
        assert f"sudo curl -fsSL {url}/archive-key.asc -o /etc/apt/keyrings/{slug}.asc" in setup
        assert (
            f"echo 'deb [signed-by=/etc/apt/keyrings/{slug}.asc] {url} unstable main' "
            f"| sudo tee /etc/apt/sources.list.d/{slug}.list"
        ) in setup
        layout = _overflowing(page)
        assert layout["wide"] == [] and layout["scroll"] <= layout["width"], layout
        links = _links(page)
        assert f"{url}/dists/unstable/index.html" in links
        assert f"{url}/archive-key.asc" in links
        assert {link: _status(link) for link in links} == dict.fromkeys(links, 200)
        _screenshot(page, tmp_path, "root-light.png")


def test_suite_page_lists_every_version_newest_first_and_its_links_resolve(
    site: tuple[StaticHttpServer, Path, tuple[str, str]], tmp_path: Path
) -> None:
    server, _root, commits = site
    url = f"{server.url}/archive/dists/unstable/index.html"
    with Chromium() as browser:
        page = _open(browser, url)
        versions = page.evaluate(
            "[...document.querySelector('tbody[data-package=\"hello\"]').rows]"
            ".map(r => r.querySelector('td.ver a').textContent + ' ' +"
            " r.querySelector('td.ver').nextElementSibling.textContent)"
        )
        assert versions == [
            "1.10-1 amd64",
            "1.10-1~pr7.3 amd64",
            "1.9-1 amd64",
            "1.0-1 amd64",
            "1.0-1 arm64",
        ]
        # Dates: the first commit's entries keep theirs; the second commit's are later.
        dates = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('tbody[data-package=\"hello\"] tr')]"
            ".map(r => [r.querySelector('td.ver a').textContent + '/' +"
            " r.querySelector('td.ver').nextElementSibling.textContent,"
            " r.querySelector('time').getAttribute('datetime')]))"
        )
        first, second = commits
        assert dates["1.0-1/amd64"] == dates["1.0-1/arm64"] == first
        assert dates["1.10-1/amd64"] == dates["1.9-1/amd64"] == second
        # The hostile description is text on the page, and no script of its own ran.
        # (Two script elements: the page's own, and its JSON data block, which no
        # browser runs.)
        scripts = "[...document.querySelectorAll('script')].map(s => s.type)"
        assert sorted(page.evaluate(scripts)) == ["", "application/json"]
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        shown = page.evaluate(
            "document.querySelector('tbody[data-package=\"mischief\"] .desc').textContent"
        )
        assert shown == HOSTILE
        layout = _overflowing(page)
        assert layout["wide"] == [] and layout["scroll"] <= layout["width"], layout
        links = _links(page)
        assert any(link.endswith(".deb") for link in links)
        assert f"{server.url}/archive/index.html" in links
        assert {link: _status(link) for link in links} == dict.fromkeys(links, 200)
        _screenshot(page, tmp_path, "suite-light.png")


def test_the_filter_box_keeps_only_matching_packages(
    site: tuple[StaticHttpServer, Path, tuple[str, str]],
) -> None:
    server, _root, _dates = site
    with Chromium() as browser:
        page = _open(browser, f"{server.url}/archive/dists/unstable/index.html")
        everything = _visible_packages(page)
        assert everything == sorted(["hello", "hello-data", "mischief", LONG_NAME])
        page.type_text("#filter", "hello")
        assert _visible_packages(page) == ["hello", "hello-data"]
        page.type_text("#filter", "-d")
        assert _visible_packages(page) == ["hello-data"]
        assert page.evaluate("document.getElementById('filter-count').textContent") == (
            "1 of 4 packages"
        )
        page.type_text("#filter", "zzz")
        assert _visible_packages(page) == []
        # The component's section goes when none of its packages is left.
        assert (
            page.evaluate("document.querySelector('section[data-component=\"main\"]').offsetParent")
            is None
        )


def test_copy_buttons_copy_the_exact_lines(
    site: tuple[StaticHttpServer, Path, tuple[str, str]],
) -> None:
    server, _root, _dates = site
    url = f"{server.url}/archive"
    with Chromium() as browser:
        browser.call(
            "Browser.grantPermissions",
            {
                "origin": server.url,
                "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
            },
        )
        page = _open(browser, f"{url}/dists/unstable/index.html")
        expected = page.evaluate(
            "[...document.querySelectorAll('pre[id^=\"setup-\"]')].map(p => p.textContent)"
        )
        assert len(expected) == 4
        copied = page.evaluate(
            """(async () => {
              const button = [...document.querySelectorAll('button[data-copy]')]
                .find(b => b.textContent === 'Copy all');
              button.click();
              for (let i = 0; i < 100 && button.textContent !== 'Copied'; i++) {
                await new Promise(r => setTimeout(r, 20));
              }
              return await navigator.clipboard.readText();
            })()"""
        )
        assert copied == "\n".join(expected) + "\n"


def test_dark_mode_and_no_javascript(
    site: tuple[StaticHttpServer, Path, tuple[str, str]], tmp_path: Path
) -> None:
    server, _root, _dates = site
    url = f"{server.url}/archive/dists/unstable/index.html"
    background = "getComputedStyle(document.documentElement).backgroundColor"
    with Chromium() as browser:
        light = _open(browser, url).evaluate(background)
        dark_page = _open(browser, url, dark=True)
        dark = dark_page.evaluate(background)
        _screenshot(dark_page, tmp_path, "suite-dark.png")
        assert _luminance(light) > 0.8 and _luminance(dark) < 0.2, (light, dark)
        layout = _overflowing(dark_page)
        assert layout["wide"] == [], layout

        plain = browser.new_page(width=1200, height=900)
        plain.disable_javascript()
        plain.navigate(url)
        # Everything is there to read; the controls that need a script are not shown.
        assert _visible_packages(plain) == sorted(["hello", "hello-data", "mischief", LONG_NAME])
        assert plain.evaluate("document.getElementById('filter-bar').offsetParent") is None
        assert (
            plain.evaluate(
                "[...document.querySelectorAll('button')].filter(b => b.offsetParent).length"
            )
            == 0
        )
        root = browser.new_page(width=1200, height=900, dark=True)
        root.navigate(f"{server.url}/archive/index.html")
        _screenshot(root, tmp_path, "root-dark.png")


def _luminance(css_color: str) -> float:
    """Relative brightness 0..1 of `rgb(r, g, b)`."""
    r, g, b = (int(x) for x in css_color[css_color.index("(") + 1 : -1].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_two_archives_get_their_own_names(tmp_path: Path, signing_key: GpgKey) -> None:
    """Two local archives on one machine: different keyring and list file names."""
    keyrings = set()
    for name in ("releases", "pr"):
        root = tmp_path / name
        _upload(root, signing_key, [make_deb(tmp_path / f"debs-{name}", "xy", "1", "all")])
        page = (root / "dists/unstable/index.html").read_text()
        # No --public-url: the page shows this archive's own file:// URL.
        assert f"file://{root}" in page
        slug = archive_slug(f"file://{root}")
        assert f"/etc/apt/sources.list.d/{slug}.list" in page
        keyrings |= set(re.findall(r"/etc/apt/keyrings/[a-z0-9.-]+\.asc", page))
    assert len(keyrings) == 2, keyrings


def test_on_s3_the_suite_page_is_stored_gzipped_and_a_browser_reads_it(
    s3_bucket: S3Bucket, signing_key: GpgKey, tmp_path: Path
) -> None:
    env = {**key_env(signing_key), **s3_bucket.env()}
    url = s3_bucket.http_url
    for deb in (
        make_deb(tmp_path / "a", "gz-first", "1.0", "amd64"),
        make_deb(tmp_path / "b", "gz-second", "2.0", "amd64"),
    ):
        done = run_cli(["upload", "--archive", s3_bucket.archive_url, str(deb)], env)
        assert done.returncode == 0, done.output
    with urllib.request.urlopen(f"{url}/dists/unstable/index.html", timeout=30) as answer:
        assert answer.headers["Content-Encoding"] == "gzip"
        stored = answer.read()
    page = gzip.decompress(stored).decode()
    assert len(stored) < len(page) / 2  # (a 2-package page is mostly style and script)
    # The second commit read the first one's page back: both dates are exact.
    times = re.findall(r'<time datetime="([^"]+)">', page)
    assert len(times) >= 3 and "≤" not in page
    with Chromium() as browser:
        tab = _open(browser, f"{url}/dists/unstable/index.html")
        names = tab.evaluate("[...document.querySelectorAll('tbody')].map(g => g.dataset.package)")
        assert names == ["gz-first", "gz-second"]
