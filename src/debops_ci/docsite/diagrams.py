"""Diagrams to inline SVG: Graphviz `dot` locally, blockdiag where installed, kroki if asked.

Each renderer runs with a timeout. A failure raises `DiagramError`; the caller shows
the source as code and reports the reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BLOCKDIAG_KINDS",
    "DOT_KINDS",
    "DiagramError",
    "DiagramTools",
    "find_tools",
    "render_diagram",
]

DOT_KINDS = frozenset({"dot", "graphviz"})
BLOCKDIAG_KINDS = frozenset({"blockdiag", "seqdiag", "actdiag", "nwdiag"})
_SVG_START = re.compile(r"<svg\b")


class DiagramError(Exception):
    """A diagram could not be rendered; the message says why and what to do."""


@dataclass(frozen=True)
class DiagramTools:
    """Where the renderers are: programs found on PATH, a kroki base URL, the timeout."""

    dot: str = ""
    blockdiag: dict[str, str] | None = None
    kroki_url: str = ""
    timeout: float = 20.0

    def fingerprint(self) -> str:
        """What changes rendered output: part of the cache key."""
        kinds = sorted((self.blockdiag or {}).items())
        return f"dot={self.dot};blockdiag={kinds};kroki={self.kroki_url}"


def find_tools(kroki_url: str = "", timeout: float = 20.0) -> DiagramTools:
    """Look the programs up once per build (`blockdiag3` is Debian's name of old)."""
    found: dict[str, str] = {}
    for kind in sorted(BLOCKDIAG_KINDS):
        program = shutil.which(kind) or shutil.which(f"{kind}3")
        if program:
            found[kind] = program
    return DiagramTools(shutil.which("dot") or "", found, kroki_url.rstrip("/"), timeout)


def _only_svg(text: str) -> str:
    match = _SVG_START.search(text)
    if match is None:
        raise DiagramError("the renderer returned no <svg>")
    return text[match.start() :].strip()


def _run(cmd: list[str], source: str, timeout: float, what: str) -> str:
    try:
        proc = subprocess.run(
            cmd, input=source.encode(), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise DiagramError(f"{what} took longer than {timeout:g} s (diagram_timeout)") from None
    except OSError as exc:
        raise DiagramError(f"cannot run {what}: {exc.strerror}") from None
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise DiagramError(f"{what} failed: {reason[0] if reason else f'exit {proc.returncode}'}")
    return proc.stdout.decode(errors="replace")


def _blockdiag(program: str, kind: str, source: str, timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="build-docs-diag-") as tmp:
        src = Path(tmp) / "in.diag"
        out = Path(tmp) / "out.svg"
        src.write_text(source, encoding="utf-8")
        _run([program, "-Tsvg", "-o", str(out), str(src)], "", timeout, kind)
        if not out.is_file():
            raise DiagramError(f"{kind} wrote no SVG")
        return out.read_text(encoding="utf-8", errors="replace")


def _kroki(base: str, kind: str, source: str, timeout: float) -> str:
    request = urllib.request.Request(
        f"{base}/{kind}/svg",
        data=source.encode(),
        headers={"Content-Type": "text/plain", "Accept": "image/svg+xml"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read()).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        raise DiagramError(f"kroki refused the {kind} diagram (HTTP {exc.code})") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DiagramError(f"kroki at {base} is unreachable: {reason}") from None


def render_diagram(kind: str, source: str, tools: DiagramTools) -> str:
    """The SVG of one diagram (`kind`: dot, graphviz, blockdiag, seqdiag...)."""
    if kind in DOT_KINDS:
        if tools.dot:
            return _only_svg(_run([tools.dot, "-Tsvg"], source, tools.timeout, "dot"))
        if tools.kroki_url:
            return _only_svg(_kroki(tools.kroki_url, "graphviz", source, tools.timeout))
        raise DiagramError("dot not found: apt-get install graphviz (or set kroki_url)")
    if kind in BLOCKDIAG_KINDS:
        program = (tools.blockdiag or {}).get(kind)
        if program:
            return _only_svg(_blockdiag(program, kind, source, tools.timeout))
        if tools.kroki_url:
            return _only_svg(_kroki(tools.kroki_url, kind, source, tools.timeout))
        raise DiagramError(
            f"{kind} is not installed, shown as code: pip install blockdiag (or set kroki_url)"
        )
    raise DiagramError(f"unknown diagram kind {kind!r}")
