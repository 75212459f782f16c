"""The archive's web pages: a root page listing the suites, a page per suite, the key.

- `dists/<suite>/index.html`: every package of the suite, every version (newest first in
  Debian order), architecture, size and the date it first appeared; a filter box; the
  exact lines that add this suite to a machine, with copy buttons.
- `index.html`: the suites with a summary each, and the same setup lines.

Both are static HTML with relative links (they work from file://, an S3 website and
`debops-ci serve`), readable without JavaScript (the script only adds the filter and
the copy buttons), light and dark, with no external assets (a Content-Security-Policy
with the hashes of the one inline style and script forbids anything else).

Kept up to date without reading the archive, in two requests per commit: the suite
page is rendered from the new state the committing code already holds, plus what the
previous page remembers in a JSON data block (not a script: nothing runs it) — when
each package/version/arch first appeared, and which signing key's public files and
root page are written. So a commit GETs the suite page and PUTs the new one. The root
page shows what changes rarely (suites, their components and architectures, how to add
them) and is rewritten only when that changes or the key does: it then costs one
listing of `dists/` and one small GET per suite.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import hashlib
import html
import json
import re
import shlex
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from debops_ci.archive import layout
from debops_ci.archive.indexes import PackageEntry
from debops_ci.archive.release import parse_release
from debops_ci.archive.state import SuiteState
from debops_ci.debian.version import Version
from debops_ci.errors import DebopsError, UsageError
from debops_ci.signing import unverified_clearsigned_content
from debops_ci.storage import NotFound, PreconditionFailed, Store

if TYPE_CHECKING:
    from debops_ci.archive.session import Archive

__all__ = [
    "FirstSeen",
    "PageMemory",
    "RecentUpload",
    "SetupLines",
    "SuiteSummary",
    "archive_slug",
    "check_public_url",
    "page_data_block",
    "pages_data_key",
    "publish_archive_page",
    "publish_pages",
    "publish_suite_page",
    "read_page_memory",
    "render_archive_page",
    "render_suite_page",
    "resolve_public_url",
    "setup_lines",
    "suite_page_key",
]

_FORMAT = 2  # of the pages data; 1 was the separate .debops-pages.json
_RECENT = 8  # how many latest uploads a summary and a suite page show
_MAX_DATA_ATTEMPTS = 5  # compare-and-swap retries on the data file
_SLUG_MAX = 64
_JSON = "application/json"
_HTML = "text/html; charset=utf-8"


def suite_page_key(suite: str) -> str:
    return layout.in_suite(suite, "index.html")


def pages_data_key(suite: str) -> str:
    return layout.in_suite(suite, ".debops-pages.json")


def check_public_url(url: str) -> str:
    """A `--public-url` value without its trailing slash; UsageError when unusable."""
    parsed = urlsplit(url.strip())
    if parsed.scheme not in ("http", "https", "file") or (
        parsed.scheme != "file" and not parsed.hostname
    ):
        raise UsageError(
            f"invalid --public-url {url!r}: give the URL apt reads the archive from, "
            "e.g. https://apt.example.com/debian"
        )
    if any(c.isspace() or c in "\"'`$\\<>" for c in url.strip()):
        raise UsageError(f"invalid --public-url {url!r}: it must not contain spaces or quotes")
    return url.strip().rstrip("/")


def resolve_public_url(store: Store, public_url: str | None) -> str:
    """The URL clients use: the one given, else the store's own, else file://<root>."""
    if public_url:
        return check_public_url(public_url)
    root = store.capabilities.local_root
    if root is not None:
        return f"file://{quote(str(root))}"
    return (store.public_url() or store.describe()).rstrip("/")


_AWS_VIRTUAL_HOST = re.compile(r"^(?P<bucket>.+)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com$")
_AWS_PATH_HOST = re.compile(r"^s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com$")


def archive_slug(url: str) -> str:
    """A file-name-safe name for this archive on a client, unique per archive URL.

    From the host (an AWS bucket host gives just the bucket) and the path:
    `https://acme-deb.s3.eu-west-1.amazonaws.com` -> `acme-deb`,
    `file:///srv/apt/pr` -> `srv-apt-pr`. Only `[a-z0-9.-]`, because apt silently
    ignores a `sources.list.d` file whose name has other characters.
    """
    parsed = urlsplit(url)
    host = (parsed.hostname or "").lower()
    parts: list[str] = []
    virtual = _AWS_VIRTUAL_HOST.match(host)
    if virtual:
        parts.append(virtual["bucket"])
    elif host and not _AWS_PATH_HOST.match(host):
        parts.append(host)
        if parsed.port:
            parts.append(str(parsed.port))
    parts += [p for p in parsed.path.split("/") if p]
    slug = re.sub(r"[^a-z0-9.]+", "-", "-".join(parts).lower())
    slug = re.sub(r"\.{2,}", ".", slug).strip("-.")
    if len(slug) > _SLUG_MAX:
        # Keep it unique: two long URLs sharing a prefix still get different names.
        digest = hashlib.sha256(url.encode()).hexdigest()[:8]
        slug = f"{slug[: _SLUG_MAX - 9].rstrip('-.')}-{digest}"
    return slug or "debops-ci-archive"


@dataclass(frozen=True)
class SetupLines:
    """The shell lines that add one suite of this archive to a Debian/Ubuntu machine."""

    keyring: str
    list_file: str
    sources_line: str  # the `deb ...` line itself
    commands: tuple[str, ...]  # what to paste, in order


def setup_lines(url: str, suite: str, components: Sequence[str]) -> SetupLines:
    slug = archive_slug(url)
    keyring = f"/etc/apt/keyrings/{slug}.asc"
    list_file = f"/etc/apt/sources.list.d/{slug}.list"
    deb = f"deb [signed-by={keyring}] {url} {suite} {' '.join(components or ['main'])}"
    return SetupLines(
        keyring=keyring,
        list_file=list_file,
        sources_line=deb,
        commands=(
            "sudo install -d -m 0755 /etc/apt/keyrings",
            f"sudo curl -fsSL {shlex.quote(f'{url}/{layout.PUBLIC_KEY_ASC}')} -o {keyring}",
            f"echo {shlex.quote(deb)} | sudo tee {list_file}",
            "sudo apt-get update",
        ),
    )


# -- the data behind the pages -----------------------------------------------------------


@dataclass(frozen=True)
class FirstSeen:
    """When a package/version/arch first appeared in a suite.

    `exact` is False for entries that were already there when the suite got its first
    page: they appeared on or before `date`.
    """

    date: datetime
    exact: bool = True


@dataclass(frozen=True)
class RecentUpload:
    component: str
    package: str
    version: str
    architecture: str
    first_seen: FirstSeen


@dataclass(frozen=True)
class SuiteSummary:
    """What the root page shows of one suite: only what changes rarely (the root page
    is not rewritten by every commit; the suite page has the rest)."""

    suite: str
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    has_page: bool = True


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: Any) -> datetime:
    # fromisoformat is C and 20x faster than strptime; it reads the Z (3.11+).
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _version_key(version: str) -> tuple[int, Any]:
    """Debian order; a version dpkg would refuse (an adopted archive) sorts lowest.
    (One parsed Version per entry: comparing strings would parse both every time.)"""
    try:
        return (1, Version(version))
    except ValueError:
        return (0, version)


def _entry_id(component: str, entry: PackageEntry) -> str:
    # Names, versions, architectures and components cannot hold "/".
    return f"{component}/{entry.package}/{entry.version}/{entry.architecture}"


Shown = tuple[tuple[str, ...], tuple[str, ...]]  # components, architectures


@dataclass(frozen=True)
class _PagesData:
    """What a suite page remembers for the next commit (its JSON data block)."""

    date: datetime
    first_seen: dict[str, FirstSeen]
    landing: str = ""  # the key whose public files and root page are written
    shown: Shown = ((), ())  # what the root page shows of this suite
    root: str = ""  # the tag of the InRelease whose copies were all written before this
    url: str = ""  # the public URL the pages were written with

    def to_json(self, suite: str) -> str:
        body = {
            "format": _FORMAT,
            "suite": suite,
            "date": _iso(self.date),
            "landing": self.landing,
            "root": self.root,
            "url": self.url,
            "shown": [list(self.shown[0]), list(self.shown[1])],
            # [date] or [date, false] when only known to be on or before `date`.
            "first_seen": {
                k: [_iso(v.date)] + ([] if v.exact else [False])
                for k, v in sorted(self.first_seen.items())
            },
        }
        # Inside <script>, only "</" could end the block early: escape every "<".
        return json.dumps(body, separators=(",", ":")).replace("<", "\\u003c")

    @classmethod
    def from_json(cls, data: str | bytes, suite: str) -> _PagesData:
        """Raises ValueError (and its kin) on anything malformed. Reads the data file
        of format 1 (`.debops-pages.json`) too."""
        body = json.loads(data)
        if body.get("format") not in (1, _FORMAT) or body.get("suite") != suite:
            raise ValueError("not the pages data of this suite")
        shown = body.get("shown") or [[], []]
        return cls(
            _parse_iso(body["date"]),
            {
                str(k): FirstSeen(_parse_iso(v[0]), len(v) < 2)
                for k, v in body["first_seen"].items()
            },
            str(body.get("landing", "")),
            (tuple(str(c) for c in shown[0]), tuple(str(a) for a in shown[1])),
            str(body.get("root", "")),
            str(body.get("url", "")),
        )


_DATA_OPEN = '<script type="application/json" id="debops-ci-data">'


@dataclass(frozen=True)
class PageMemory:
    """What the current suite page remembers, and its tag (for the compare-and-swap)."""

    data: _PagesData | None
    etag: str | None
    legacy: bool = False  # the data came from the format-1 `.debops-pages.json`

    def copies_done_for(self, root_tag: str) -> bool:
        """The page was written after every copy of the root with this tag."""
        return self.data is not None and bool(self.data.root) and self.data.root == root_tag


def page_data_block(page: str | bytes) -> str | None:
    """The JSON data block of a suite page, or None (only the block is decoded)."""
    raw = page.encode() if isinstance(page, str) else page
    start = raw.rfind(_DATA_OPEN.encode())  # the last: it follows every row
    if start < 0:
        return None
    start += len(_DATA_OPEN)
    end = raw.find(b"</script>", start)
    return raw[start:end].decode("utf-8", "replace") if end >= 0 else None


def _updated_first_seen(
    previous: _PagesData | None,
    components: Mapping[str, Sequence[PackageEntry]],
    date: datetime,
    first_commit: bool,
) -> dict[str, FirstSeen]:
    known = previous.first_seen if previous else {}
    # Without a record, entries new to us are new in this commit only if the record
    # exists (or the suite is new); otherwise they were there before pages existed.
    exact = previous is not None or first_commit
    return {
        ident: known.get(ident) or FirstSeen(date, exact)
        for component, entries in components.items()
        for ident in (_entry_id(component, e) for e in entries)
    }


def _recent(
    everything: Sequence[tuple[str, PackageEntry]], first_seen: Mapping[str, FirstSeen]
) -> tuple[RecentUpload, ...]:
    dated = [
        (first_seen[_entry_id(c, e)], c, e) for c, e in everything if _entry_id(c, e) in first_seen
    ]
    # Newest first, then by name; versions compared only within one package of one
    # commit (a Debian version comparison costs microseconds: not for 10,000 entries).
    dated.sort(key=lambda t: (-t[0].date.timestamp(), t[2].package))
    cut = _RECENT
    while cut < len(dated) and _same_group(dated[cut - 1], dated[cut]):
        cut += 1
    head = dated[:cut]
    head.sort(key=lambda t: _version_key(t[2].version), reverse=True)
    head.sort(key=lambda t: (-t[0].date.timestamp(), t[2].package))
    return tuple(
        RecentUpload(c, e.package, e.version, e.architecture, seen) for seen, c, e in head[:_RECENT]
    )


def _same_group(
    a: tuple[FirstSeen, str, PackageEntry], b: tuple[FirstSeen, str, PackageEntry]
) -> bool:
    return a[0].date == b[0].date and a[2].package == b[2].package


# -- publishing --------------------------------------------------------------------------


def _shown(components: Mapping[str, Sequence[PackageEntry]]) -> Shown:
    return (
        tuple(sorted(c for c, entries in components.items() if entries))
        or tuple(sorted(components))
        or ("main",),
        tuple(sorted({e.architecture for entries in components.values() for e in entries})),
    )


def publish_suite_page(
    store: Store,
    suite: str,
    components: Mapping[str, Sequence[PackageEntry]],
    *,
    date: datetime,
    public_url: str | None,
    first_commit: bool = False,
    landing: Callable[[_PagesData | None, Shown], str] | None = None,
    memory: PageMemory | None = None,
    root_tag: str = "",
) -> None:
    """Write `dists/<suite>/index.html` after a commit: one GET, one PUT.

    `components` is the suite's new state, `date` the commit's Release Date;
    `first_commit` says this commit created the suite (every entry is new). Call it
    under the suite lock. A page already written for a later commit is left alone.
    `landing(previous data, shown)` runs before the page is written and returns the
    key whose public files and root page are now in place. `memory`: the page as read
    already (else it is read); `root_tag`: the InRelease whose copies are all written.
    """
    url = resolve_public_url(store, public_url)
    key = suite_page_key(suite)
    for _attempt in range(_MAX_DATA_ATTEMPTS):
        memory = memory or read_page_memory(store, suite)
        previous, etag, legacy = memory.data, memory.etag, memory.legacy
        memory = None  # a retry reads the page again
        if previous is not None and previous.date > date:
            return  # a later commit has written its page: ours would be older
        shown = _shown(components)
        landed = landing(previous, shown) if landing is not None else ""
        first_seen = _updated_first_seen(previous, components, date, first_commit)
        data = _PagesData(date, first_seen, landed, shown, root_tag, url)
        # Encoded part by part: a big suite's page is never held as text and bytes at once.
        page = b"".join(
            part.encode()
            for part in _suite_page_parts(
                suite, components, public_url=url, first_seen=first_seen, date=date, data=data
            )
        )
        encoding = None
        if store.capabilities.serves_content_encoding:
            # A page of 10,000 packages is ~4 MB of HTML and ~0.3 MB gzipped: browsers
            # read it either way, and the next commit downloads it again.
            page, encoding = gzip.compress(page, 6, mtime=0), "gzip"
        try:
            store.put(
                key,
                page,
                create_only=etag is None,
                if_match=etag,
                content_type=_HTML,
                content_encoding=encoding,
            )
        except PreconditionFailed:
            continue  # another writer moved it (a broken lock): merge with theirs
        if legacy:
            with contextlib.suppress(NotFound):
                store.delete(pages_data_key(suite))  # its dates now live in the page
        return
    raise DebopsError(f"{key} kept changing under us: another writer is not taking the suite lock")


_MAX_PAGE_BYTES = 256 << 20  # a page this big would be no page we wrote


def _plain_page(data: bytes) -> bytes:
    """A page as written: gzipped where the store serves encodings (bounded, so a
    planted bomb costs nothing); what is not gzip is taken as is."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    inflate = zlib.decompressobj(wbits=31)
    try:
        plain = inflate.decompress(data, _MAX_PAGE_BYTES)
    except zlib.error:
        return b""
    return b"" if inflate.unconsumed_tail else plain


def read_page_memory(store: Store, suite: str) -> PageMemory:
    """The current page's data and tag (one GET). A malformed block counts as absent
    (the page is rewritten)."""
    try:
        blob = store.get(suite_page_key(suite))
    except NotFound:
        return PageMemory(None, None)  # no page yet (the format-1 data came with one)
    block = page_data_block(_plain_page(blob.data))
    if block is not None:
        try:
            return PageMemory(_PagesData.from_json(block, suite), blob.etag)
        except (ValueError, KeyError, TypeError, IndexError):
            return PageMemory(None, blob.etag)
    try:  # a page written before the data moved into it
        legacy = store.get(pages_data_key(suite)).data
        return PageMemory(_PagesData.from_json(legacy, suite), blob.etag, legacy=True)
    except NotFound:
        return PageMemory(None, blob.etag)
    except (ValueError, KeyError, TypeError, IndexError):
        return PageMemory(None, blob.etag, legacy=True)


def publish_archive_page(
    store: Store,
    *,
    public_url: str | None,
    known: Mapping[str, Shown] | None = None,
) -> None:
    """Write the root `index.html` from the list of suites and their roots.

    `known`: suites whose page is being written now, with what they show (a suite
    committed for the first time has no page yet, nor a root another reader sees).
    """
    url = resolve_public_url(store, public_url)
    known = known or {}
    suites = sorted(
        {s for s in store.list_dirs("dists/") if s and not s.startswith(".")} | set(known)
    )
    summaries = [SuiteSummary(s, *known[s]) if s in known else _describe(store, s) for s in suites]
    page = render_archive_page(summaries, public_url=url)
    store.put(layout.INDEX_HTML, page.encode(), content_type=_HTML)


def _describe(store: Store, suite: str) -> SuiteSummary:
    """A suite as its root names it (for display only: its signature is not checked)."""
    has_page = store.head(suite_page_key(suite)) is not None
    try:
        signed = store.get(layout.inrelease_key(suite)).data
        release = parse_release(unverified_clearsigned_content(signed, suite), suite)
        return SuiteSummary(
            suite,
            tuple(release.components or ["main"]),
            tuple(release.architectures),
            has_page=has_page,
        )
    except (NotFound, DebopsError):
        return SuiteSummary(suite, ("main",), (), has_page=has_page)


def publish_pages(
    archive: Archive,
    state: SuiteState,
    components: Mapping[str, Sequence[PackageEntry]],
    date: datetime,
    *,
    memory: PageMemory | None = None,
    root_tag: str = "",
) -> None:
    """Every page a commit of `state.suite` changes (call it under the suite lock).

    The public key files and the root page are written before the suite page when the
    suite is new, its key changed, or the previous page does not say they are in place
    (an adopted archive, or a crash amid them); the root page alone when what it shows
    of this suite, or the public URL, changed. (So the root page shows the URL of the
    commit that last rewrote it.)
    """
    signer = archive.require_signer()
    store = archive.store
    fingerprint = signer.fingerprint.upper()
    suite = state.suite

    def landing(previous: _PagesData | None, shown: Shown) -> str:
        due = (
            not state.exists
            or state.signed_by.upper() != fingerprint
            or previous is None
            or previous.landing != fingerprint
        )
        if due:
            store.put(layout.PUBLIC_KEY_ASC, signer.public_key_armored.encode())
            store.put(layout.PUBLIC_KEY_GPG, signer.export_public_binary())
        url = resolve_public_url(store, archive.public_url)
        if due or previous is None or previous.shown != shown or previous.url != url:
            publish_archive_page(store, public_url=archive.public_url, known={suite: shown})
        return fingerprint

    publish_suite_page(
        store,
        suite,
        components,
        date=date,
        public_url=archive.public_url,
        first_commit=not state.exists,
        landing=landing,
        memory=memory,
        root_tag=root_tag,
    )


_STYLE = """
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1d2330;--muted:#5b6475;--card:#fff;
--line:#dfe3ea;--accent:#0b5cad;--accent-bg:#e8f1fb;--code:#f0f2f5;--badge:#1f7a4d;
--badge-bg:#e3f4ea;--mark:#fff3c4}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--fg:#e4e7ec;--muted:#9aa3b2;
--card:#1a1e24;--line:#2d333c;--accent:#7ab7ff;--accent-bg:#1b2a3d;--code:#232830;
--badge:#7fd6a6;--badge-bg:#173326;--mark:#4a3f12}}
*{box-sizing:border-box}
[hidden]{display:none!important}
html{background:var(--bg);color:var(--fg)}
body{margin:0 auto;max-width:72rem;padding:1.5rem 1.25rem 3rem;
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;
overflow-wrap:anywhere}
a{color:var(--accent)}
header{margin-bottom:1.5rem}
nav{font-size:.9rem;color:var(--muted)}
h1{font-size:1.7rem;margin:.2rem 0 .3rem;line-height:1.25}
h2{font-size:1.2rem;margin:2rem 0 .6rem}
h3{font-size:1rem;margin:.9rem 0 .4rem}
.card>h3:first-child,.toolbar h3{margin:0}
p{margin:.4rem 0}
.muted{color:var(--muted)}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:1rem 1.1rem;margin:.8rem 0}
.stats{display:flex;flex-wrap:wrap;gap:.4rem 1.4rem;margin:.5rem 0 0;padding:0;list-style:none;
color:var(--muted)}
.stats b{color:var(--fg);font-weight:600}
code,pre,kbd{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;
font-size:.88em}
.step{display:flex;gap:.6rem;align-items:flex-start;margin:.45rem 0}
.step pre{flex:1;min-width:0;margin:0;background:var(--code);border:1px solid var(--line);
border-radius:6px;padding:.5rem .7rem;white-space:pre-wrap;overflow-wrap:anywhere}
button{font:inherit;font-size:.85rem;cursor:pointer;color:var(--accent);
background:var(--accent-bg);border:1px solid var(--line);border-radius:6px;padding:.35rem .7rem;
white-space:nowrap}
button:hover{border-color:var(--accent)}
.toolbar{display:flex;flex-wrap:wrap;gap:.6rem 1rem;align-items:center;margin:1rem 0}
.toolbar input{font:inherit;flex:1 1 18rem;max-width:28rem;padding:.45rem .7rem;
color:var(--fg);background:var(--card);border:1px solid var(--line);border-radius:6px}
.toolbar input:focus{outline:2px solid var(--accent);outline-offset:1px}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);
border-radius:10px;overflow:hidden}
th,td{padding:.4rem .7rem;text-align:left;vertical-align:top}
td{white-space:nowrap;overflow-wrap:normal}
td.ver{white-space:normal;overflow-wrap:anywhere;width:40%}
thead th{overflow-wrap:normal;white-space:nowrap;font-size:.8rem;
text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
border-bottom:1px solid var(--line);background:var(--code)}
tbody{border-top:1px solid var(--line)}
tbody th{font-weight:600;width:34%}
.desc{display:block;font-weight:400;color:var(--muted);font-size:.9rem}
td.num{text-align:right;white-space:nowrap}
td.ver a{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.9em}
.badge{display:inline-block;margin-left:.4rem;padding:0 .4rem;border-radius:999px;
font-size:.72rem;color:var(--badge);background:var(--badge-bg);vertical-align:1px}
.suites{display:grid;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));gap:.8rem}
.suites .card{margin:0}
ul.recent{margin:.5rem 0 0;padding-left:1.1rem}
footer{margin-top:2.5rem;font-size:.85rem;color:var(--muted)}
@media (max-width:40rem){tbody th{width:auto}.step{flex-direction:column}}
"""

_SCRIPT = """
(function () {
  "use strict";
  function copy(text, button) {
    function done(ok) {
      var label = button.textContent;
      button.textContent = ok ? "Copied" : "Select and copy";
      setTimeout(function () { button.textContent = label; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); },
        function () { done(fallback(text)); });
    } else {
      done(fallback(text));
    }
  }
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var ids = button.getAttribute("data-copy").split(" ");
      var text = ids.map(function (id) {
        return document.getElementById(id).textContent;
      }).join("\\n");
      copy(text + "\\n", button);
    });
  });
  var box = document.getElementById("filter");
  if (!box) { return; }
  var groups = Array.prototype.slice.call(document.querySelectorAll("tbody[data-package]"));
  var sections = Array.prototype.slice.call(document.querySelectorAll("section[data-component]"));
  var count = document.getElementById("filter-count");
  function apply() {
    var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var shown = 0;
    groups.forEach(function (group) {
      var name = group.getAttribute("data-package");
      var match = words.every(function (w) { return name.indexOf(w) !== -1; });
      group.hidden = !match;
      if (match) { shown += 1; }
    });
    sections.forEach(function (section) {
      section.hidden = !section.querySelector("tbody[data-package]:not([hidden])");
    });
    count.textContent = words.length ? shown + " of " + groups.length + " packages" : "";
  }
  document.getElementById("filter-bar").hidden = false;
  box.addEventListener("input", apply);
  if (box.value) { apply(); }
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Nothing but the page's own inline style and script: no external asset can load.
_CSP = (
    f"default-src 'none'; style-src {_csp_hash(_STYLE)}; script-src {_csp_hash(_SCRIPT)}; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _href(path: str) -> str:
    """A relative link: percent-encoded (no scheme can sneak in), then HTML-escaped."""
    return _e(quote(path, safe="/"))


def _page(title: str, body: str, *, root: str) -> str:
    """`root`: the relative way up to the archive root from this page."""
    return "".join(_page_parts(title, [body], root=root))


def _page_parts(title: str, body: Sequence[str], *, root: str) -> list[str]:
    """The page around `body`, as parts (a big page is joined once, when encoded)."""
    head = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">
<link rel="icon" href="data:,">
<title>{_e(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
"""
    foot = f"""
<footer>Published by debops-ci. Signing key:
<a href="{root}{layout.PUBLIC_KEY_ASC}">{layout.PUBLIC_KEY_ASC}</a>
(binary: <a href="{root}{layout.PUBLIC_KEY_GPG}">{layout.PUBLIC_KEY_GPG}</a>).</footer>
<script>{_SCRIPT}</script>
</body>
</html>
"""
    return [head, *body, foot]


def _display_url(url: str) -> str:
    parsed = urlsplit(url)
    return (parsed.netloc + parsed.path) if parsed.netloc else parsed.path or url


@functools.lru_cache(maxsize=4096)  # a page repeats the few dates of its commits
def _date_html(moment: datetime | None, *, approximate: bool = False) -> str:
    if moment is None:
        return '<span class="muted">unknown</span>'
    moment = moment.astimezone(UTC)
    shown = moment.strftime("%Y-%m-%d %H:%M")
    if approximate:
        return (
            f'<time datetime="{_iso(moment)}" title="already there when this page began; '
            f'on or before this date">≤ {moment.strftime("%Y-%m-%d")}</time>'
        )
    return f'<time datetime="{_iso(moment)}">{shown}</time>'


def _size(size: int | None) -> str:
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _synopsis(entry: PackageEntry) -> str:
    """The Description's first line, from the stanza text."""
    for line in entry.text.split("\n"):
        name, sep, value = line.partition(":")
        if sep and name.lower() == "description":
            return value.strip()
    return ""


def _step(ident: str, command: str) -> str:
    return (
        f'<div class="step"><pre id="{_e(ident)}">{_e(command)}</pre>'
        f'<button type="button" data-copy="{_e(ident)}" hidden>Copy</button></div>'
    )


def _names_note(setup: SetupLines) -> str:
    return f"""<p class="muted">Key saved as <code>{_e(setup.keyring)}</code>, source in
<code>{_e(setup.list_file)}</code>: both named after this archive, so another debops-ci
archive on the same machine keeps files of its own.</p>"""


def _setup_block(setup: SetupLines) -> str:
    ids = [f"setup-{i}" for i in range(len(setup.commands))]
    steps = "\n".join(_step(i, cmd) for i, cmd in zip(ids, setup.commands, strict=True))
    return f"""<div class="card">
<div class="toolbar"><h3>Add this suite to a machine</h3>
<button type="button" data-copy="{" ".join(ids)}" hidden>Copy all</button></div>
{steps}
{_names_note(setup)}
</div>"""


def _archive_setup_block(setups: Sequence[tuple[str, SetupLines]], url: str) -> str:
    """The key lines once, then one source line per suite to choose from."""
    key_setup = setups[0][1] if setups else setup_lines(url, "unstable", ["main"])
    install, fetch_key, _, update = key_setup.commands
    parts = [
        '<div class="card">',
        "<h3>1. Install the archive's signing key</h3>",
        _step("key-0", install),
        _step("key-1", fetch_key),
    ]
    if setups:
        parts.append("<h3>2. Add one suite</h3>")
        for i, (suite, setup) in enumerate(setups):
            parts.append(f'<p class="muted">{_e(suite)}:</p>')
            parts.append(_step(f"suite-{i}", setup.commands[2]))
        parts += ["<h3>3. Read it</h3>", _step("update", update)]
    parts += [_names_note(key_setup), "</div>"]
    return "\n".join(parts)


def render_suite_page(
    suite: str,
    components: Mapping[str, Sequence[PackageEntry]],
    *,
    public_url: str,
    first_seen: Mapping[str, FirstSeen],
    date: datetime,
    data: _PagesData | None = None,
) -> str:
    """The page of one suite. `first_seen` is keyed `component/package/version/arch`;
    `data` is what the page remembers for the next commit."""
    return "".join(
        _suite_page_parts(
            suite, components, public_url=public_url, first_seen=first_seen, date=date, data=data
        )
    )


def _suite_page_parts(
    suite: str,
    components: Mapping[str, Sequence[PackageEntry]],
    *,
    public_url: str,
    first_seen: Mapping[str, FirstSeen],
    date: datetime,
    data: _PagesData | None = None,
) -> list[str]:
    everything = [(c, e) for c, entries in components.items() for e in entries]
    shown_components = [c for c in sorted(components) if components[c]]
    setup = setup_lines(public_url, suite, shown_components or sorted(components) or ["main"])
    names = {e.package for _, e in everything}
    arches = sorted({e.architecture for _, e in everything})
    total = sum(e.size for _, e in everything)
    stats = (
        f"<li>updated <b>{_date_html(date)}</b> UTC</li>"
        f"<li><b>{_plural(len(names), 'package')}</b></li>"
        f"<li><b>{_plural(len(everything), 'file')}</b>, {_e(_size(total))}</li>"
        f"<li>components <b>{_e(' '.join(shown_components) or '—')}</b></li>"
        f"<li>architectures <b>{_e(' '.join(arches) or '—')}</b></li>"
    )
    recent = _recent(everything, first_seen)
    recent_html = ""
    if recent:
        items = "\n".join(
            f'<li><a href="#{_e(_anchor(r.component, r.package))}">{_e(r.package)}</a> '
            f"<code>{_e(r.version)}</code> ({_e(r.architecture)}), "
            f"{_date_html(r.first_seen.date, approximate=not r.first_seen.exact)}</li>"
            for r in recent
        )
        recent_html = f'<h2>Latest uploads</h2>\n<ul class="recent">\n{items}\n</ul>'
    sections: list[str] = []
    for c in sorted(components):
        sections += [*_component_table(c, components[c], first_seen), "\n"]
    top = f"""<header>
<nav><a href="../../index.html">{_e(_display_url(public_url))}</a> / {_e(suite)}</nav>
<h1>Suite {_e(suite)}</h1>
<ul class="stats">{stats}</ul>
</header>
{_setup_block(setup)}
{recent_html}
<h2>Packages</h2>
<div class="toolbar" id="filter-bar" hidden>
<input type="search" id="filter" placeholder="Filter packages by name"
 aria-label="Filter packages by name" autocomplete="off">
<span id="filter-count" class="muted" aria-live="polite"></span></div>
"""
    bottom = """<p class="muted">Signed index: <a href="InRelease">InRelease</a> ·
<a href="Release">Release</a> · <a href="Release.gpg">Release.gpg</a></p>"""
    body = [top, *(sections or ['<p class="muted">This suite holds no packages.</p>']), bottom]
    if data is not None:
        body.append(f"{_DATA_OPEN}{data.to_json(suite)}</script>\n")
    return _page_parts(f"{suite} · {_display_url(public_url)}", body, root="../../")


def _anchor(component: str, package: str) -> str:
    return f"{component}-{package}"


def _component_table(
    component: str, entries: Sequence[PackageEntry], first_seen: Mapping[str, FirstSeen]
) -> list[str]:
    by_name: dict[str, list[PackageEntry]] = {}
    for entry in entries:
        by_name.setdefault(entry.package, []).append(entry)
    groups = []
    for name in sorted(by_name):
        # Newest first by dpkg's rules; architectures alphabetically within a version.
        rows = by_name[name]
        if len(rows) > 1:
            rows = sorted(rows, key=lambda e: e.architecture)
            rows.sort(key=lambda e: _version_key(e.version), reverse=True)
        newest = rows[0].version
        synopsis = _synopsis(rows[0])
        cells = []
        for i, entry in enumerate(rows):
            seen = first_seen.get(_entry_id(component, entry))
            added = _date_html(
                seen.date if seen else None, approximate=bool(seen and not seen.exact)
            )
            head = ""
            if i == 0:
                head = (
                    f'<th scope="rowgroup" rowspan="{len(rows)}" '
                    f'id="{_e(_anchor(component, name))}">'
                    f"{_e(name)}"
                    + (f'<span class="desc">{_e(synopsis)}</span>' if synopsis else "")
                    + "</th>"
                )
            badge = '<span class="badge">newest</span>' if entry.version == newest else ""
            cells.append(
                f"<tr>{head}"
                f'<td class="ver"><a href="../../{_href(entry.filename)}" '
                f'title="{_e(entry.filename)}">{_e(entry.version)}</a>{badge}</td>'
                f"<td>{_e(entry.architecture)}</td>"
                f'<td class="num" title="{entry.size:,} bytes">{_e(_size(entry.size))}</td>'
                f'<td class="num">{added}</td></tr>'
            )
        groups.append(
            f'<tbody data-package="{_e(name.lower())}">\n' + "\n".join(cells) + "\n</tbody>"
        )
    head = f"""<section data-component="{_e(component)}">
<h3>Component {_e(component)} <span class="muted">· {_plural(len(by_name), "package")}</span></h3>
<table>
<thead><tr><th scope="col">Package</th><th scope="col">Version</th><th scope="col">Arch</th>
<th scope="col" class="num">Size</th><th scope="col" class="num">Added (UTC)</th></tr></thead>
"""
    return [head, *groups, "\n</table>\n</section>"]


def render_archive_page(summaries: Sequence[SuiteSummary], *, public_url: str) -> str:
    """The archive's root page: every suite with its summary, and how to add it."""
    cards = []
    setups: list[tuple[str, SetupLines]] = []
    for s in summaries:
        title = (
            f'<a href="dists/{_href(s.suite)}/index.html">{_e(s.suite)}</a>'
            if s.has_page
            else _e(s.suite)
        )
        stats = [f"<li>components <b>{_e(' '.join(s.components))}</b></li>"]
        if s.architectures:
            stats.append(f"<li>architectures <b>{_e(' '.join(s.architectures))}</b></li>")
        note = (
            ""
            if s.has_page
            else '<p class="muted">No package list yet: the next upload to it writes one.</p>'
        )
        cards.append(
            f'<div class="card"><h3>{title}</h3><ul class="stats">{"".join(stats)}</ul>{note}</div>'
        )
        setups.append((s.suite, setup_lines(public_url, s.suite, s.components)))
    listing = (
        f'<div class="suites">{"".join(cards)}</div>'
        if cards
        else '<p class="muted">No suites yet.</p>'
    )
    body = f"""<header>
<nav>APT archive</nav>
<h1>{_e(_display_url(public_url))}</h1>
<p class="muted">A signed Debian package archive. Any stock <code>apt</code> installs from it.</p>
</header>
<h2>Suites</h2>
{listing}
<h2>Use it</h2>
<p>Paste the key lines, then the line of the suite you want: every suite of this archive
writes the same list file, so the suite added last is the one apt uses.</p>
{_archive_setup_block(setups, public_url)}"""
    return _page(f"APT archive · {_display_url(public_url)}", body, root="")
