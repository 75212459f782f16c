"""Search without a server: a prebuilt index as a script file and a small script.

The index is a `.js` file (not `.json`) because browsers refuse `fetch()` of
`file://` URLs; a `<script src>` loads from `file://`, GitHub Pages and any static
server alike.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = ["SEARCH_SCRIPT", "SearchEntry", "index_script", "search_body"]

_WORD = re.compile(r"[\w][\w.-]*")


@dataclass(frozen=True)
class SearchEntry:
    url: str  # relative to the site root
    title: str
    summary: str
    text: str


def _words(text: str) -> str:
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        seen.setdefault(word.strip(".-"), None)
    return " ".join(w for w in seen if w)


def index_script(entries: list[SearchEntry]) -> str:
    """`_static/search-index.js`: each page's URL, title, summary and distinct words."""
    rows = [[e.url, e.title, e.summary, _words(f"{e.title} {e.text}")] for e in entries]
    data = json.dumps(rows, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return f"window.BUILD_DOCS_INDEX = {data};\n"


def search_body() -> str:
    return (
        '<h1>Search</h1>\n<div id="search-page">'
        '<form action="search.html" method="get" role="search">'
        '<input id="search-input" type="search" name="q" aria-label="Search" autofocus>'
        "</form>"
        '<p id="search-status" class="empty">Type a word to search every page.</p>'
        '<ul id="search-results" class="listing"></ul></div>\n'
        '<script src="_static/search-index.js"></script>\n'
        '<script src="_static/search.js"></script>\n'
    )


SEARCH_SCRIPT = r"""// build-docs search: a page matches when it holds every word typed.
(function () {
  "use strict";
  var index = window.BUILD_DOCS_INDEX || [];
  var input = document.getElementById("search-input");
  var status = document.getElementById("search-status");
  var list = document.getElementById("search-results");
  if (!input || !list) { return; }

  function search(query) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    list.textContent = "";
    if (!words.length) { status.textContent = "Type a word to search every page."; return; }
    var hits = [];
    index.forEach(function (entry) {
      var title = entry[1].toLowerCase(), text = " " + entry[3];
      var score = 0;
      for (var i = 0; i < words.length; i++) {
        var w = words[i];
        if (title.indexOf(w) >= 0) { score += 3; }
        else if (text.indexOf(" " + w) >= 0) { score += 2; }
        else if (text.indexOf(w) >= 0) { score += 1; }
        else { return; }
      }
      hits.push([score, entry]);
    });
    hits.sort(function (a, b) { return b[0] - a[0] || (a[1][1] < b[1][1] ? -1 : 1); });
    status.textContent = hits.length + (hits.length === 1 ? " page" : " pages") +
      " match \u201c" + query + "\u201d";
    hits.slice(0, 200).forEach(function (hit) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = hit[1][0];
      a.textContent = hit[1][1];
      li.appendChild(a);
      if (hit[1][2]) {
        var s = document.createElement("span");
        s.className = "summary";
        s.textContent = hit[1][2];
        li.appendChild(s);
      }
      list.appendChild(li);
    });
  }

  var query = new URLSearchParams(window.location.search).get("q") || "";
  input.value = query;
  search(query);
  input.addEventListener("input", function () { search(input.value); });
})();
"""
