"""`build-docs`: a project's documentation blocks as a static site, from its source.

Parsing only (`ast`, `tokenize`): the documented code is never imported, so a docs
job needs none of the project's dependencies. The pieces, one job each:

| module | job |
|---|---|
| `config` | `build_docs.ini` (the original tool's keys and defaults) |
| `extract` | blocks and TODOs of a Python file |
| `markup` | Markdown (markdown-it-py) and AsciiDoc (asciidoctor) to HTML |
| `htmlpass` | code highlighting, diagrams, issue links, plain text |
| `diagrams` | dot / blockdiag / kroki to inline SVG |
| `render` | one file to rendered blocks (parallel unit, cached by content) |
| `cache` | the on-disk content cache |
| `site`, `theme`, `search` | pages, look, search index and script |
| `linkcheck` | every internal link and fragment of the built site |
| `outdir` | staging directory and atomic swap |
| `build` | the whole build |
"""

from __future__ import annotations

from debops_ci.docsite.build import (
    BuildFailed,
    BuildOptions,
    BuildResult,
    Report,
    build_site,
    find_sources,
)
from debops_ci.docsite.config import CONFIG_NAME, DocsConfig, load_config
from debops_ci.docsite.errors import DocsBuildError, DocsConfigError

__all__ = [
    "CONFIG_NAME",
    "BuildFailed",
    "BuildOptions",
    "BuildResult",
    "DocsBuildError",
    "DocsConfig",
    "DocsConfigError",
    "Report",
    "build_site",
    "find_sources",
    "load_config",
]
