"""Every internal link, image and `#fragment` of a built site, checked on disk.

Links with a scheme (`https:`, `mailto:`...) or protocol-relative ones are external
and not checked. A link that leaves the site's directory is broken: the site must
work wherever it is copied.
"""

from __future__ import annotations

import html
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

__all__ = ["BrokenLink", "check_links"]

_ATTR = re.compile(r"""\s(?:xlink:)?(href|src)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ID = re.compile(r"""\s(?:id|name)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_EXTERNAL = re.compile(r"^(?:[a-zA-Z][\w+.-]*:|//)")


@dataclass(frozen=True)
class BrokenLink:
    page: str  # relative to the site root
    target: str
    reason: str

    def __str__(self) -> str:
        return f"{self.page}: broken link {self.target!r}: {self.reason}"


def _ids(text: str) -> set[str]:
    return {
        html.unescape(m.group(1) if m.group(1) is not None else m.group(2))
        for m in _ID.finditer(text)
    }


def check_links(root: Path) -> list[BrokenLink]:
    """The broken links of the site in `root` (empty: all good)."""
    pages = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.html"))}
    texts = {rel: p.read_text(encoding="utf-8", errors="replace") for rel, p in pages.items()}
    ids: dict[str, set[str]] = {}
    broken: list[BrokenLink] = []
    for rel, text in texts.items():
        for match in _ATTR.finditer(text):
            raw = match.group(2) if match.group(2) is not None else match.group(3)
            target = html.unescape(raw).strip()
            if not target or _EXTERNAL.match(target):
                continue
            path, _, fragment = target.partition("#")
            path = unquote(path.partition("?")[0])
            if path:
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), path))
                if resolved == ".." or resolved.startswith("../") or path.startswith("/"):
                    broken.append(BrokenLink(rel, target, "leaves the site"))
                    continue
                on_disk = root / resolved
                if on_disk.is_dir():
                    resolved = posixpath.join(resolved, "index.html")
                    on_disk = root / resolved
                if not on_disk.is_file():
                    broken.append(BrokenLink(rel, target, "no such file"))
                    continue
            else:
                resolved = rel
            if fragment:
                if resolved not in texts:
                    continue  # a fragment into a non-HTML file: nothing to check
                if resolved not in ids:
                    ids[resolved] = _ids(texts[resolved])
                if unquote(fragment) not in ids[resolved]:
                    broken.append(BrokenLink(rel, target, f"no #{fragment} in {resolved}"))
    return broken
