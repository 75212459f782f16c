"""A whole build: find the files, render them in parallel through the cache, write the
site into a staging directory, check its links, swap it in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from debops_ci.docsite.cache import default_cache_dir
from debops_ci.docsite.config import DocsConfig
from debops_ci.docsite.diagrams import find_tools
from debops_ci.docsite.errors import DocsBuildError, DocsConfigError
from debops_ci.docsite.htmlpass import issue_linker_for
from debops_ci.docsite.linkcheck import BrokenLink, check_links
from debops_ci.docsite.markup import asciidoctor_path
from debops_ci.docsite.outdir import (
    check_replaceable,
    discard,
    new_staging_dir,
    staging_prefix,
    swap_in,
)
from debops_ci.docsite.render import FileResult, RenderSettings, render_file
from debops_ci.docsite.site import write_site

__all__ = [
    "BrokenLink",
    "BuildFailed",
    "BuildOptions",
    "BuildResult",
    "Report",
    "build_site",
    "find_sources",
]

# Below this many files a process pool costs more than it saves.
_PARALLEL_MIN = 24


@dataclass(frozen=True)
class BuildOptions:
    strict: bool = False
    jobs: int = 0  # 0: one per core
    use_cache: bool = True
    cache_dir: Path | None = None  # None: the config's cache_dir, else the user cache


@dataclass(frozen=True)
class Report:
    """A warning or a skipped file: `path:line: message`."""

    path: str
    lineno: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.lineno}: {self.message}"


@dataclass(frozen=True)
class BuildResult:
    outdir: Path
    pages: int
    blocks: int
    diagrams: int
    todos: int
    cached: int
    skipped: tuple[Report, ...]
    warnings: tuple[Report, ...]
    seconds: float

    @property
    def reports(self) -> tuple[Report, ...]:
        return self.skipped + self.warnings


class BuildFailed(DocsBuildError):
    """The build failed its checks; `reports` are printed before the one-line reason."""

    def __init__(self, message: str, reports: tuple[str, ...]) -> None:
        super().__init__(message)
        self.reports = reports


def _ignored(relpath: str, config: DocsConfig, skip_prefixes: tuple[str, ...]) -> bool:
    if any(relpath == p or relpath.startswith(p + "/") for p in skip_prefixes):
        return True
    return any(part in relpath for part in config.ignore_paths_substr)


def find_sources(config: DocsConfig) -> list[str]:
    """The `.py` and `.md` files to document, relative posix paths, sorted.

    The output directory, its staging directories and the cache are never sources.
    """
    root = config.root
    outname = Path(config.outdir).as_posix().rstrip("/")
    prefix = staging_prefix(Path(outname))
    parent = os.path.dirname(outname)
    skip = (outname,)
    found: set[str] = set()
    for entry in config.paths:
        start = root / entry
        if start.is_file():
            rel = Path(os.path.normpath(entry)).as_posix()
            if rel.endswith((".py", ".md")) and not _ignored(rel, config, skip):
                found.add(rel)
            continue
        if not start.is_dir():
            raise DocsConfigError(f"paths entry {entry!r} does not exist under {root}")
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = Path(os.path.relpath(dirpath, root)).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not (rel_dir == parent and d.startswith(prefix))
                and (os.path.join(rel_dir, d) if rel_dir else d) != outname
            )
            for name in filenames:
                if name.endswith((".py", ".md")):
                    rel = f"{rel_dir}/{name}" if rel_dir else name
                    if not _ignored(rel, config, skip):
                        found.add(rel)
    return sorted(found)


def _render_job(job: tuple[Path, str, RenderSettings, str]) -> FileResult:
    return render_file(*job)


def _render_all(
    jobs: list[tuple[Path, str, RenderSettings, str]], workers: int
) -> Iterator[FileResult]:
    if workers <= 1 or len(jobs) < _PARALLEL_MIN:
        yield from map(_render_job, jobs)
        return
    chunk = max(1, len(jobs) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_render_job, jobs, chunksize=chunk)


def build_site(
    config: DocsConfig,
    options: BuildOptions | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> BuildResult:
    """Build the site of `config` into `config.outdir`, replacing it only on success.

    Raises `DocsBuildError` (broken links, `--strict` with warnings, an outdir that is
    not ours) with the previous site left in place.
    """
    options = options or BuildOptions()
    started = clock()
    outdir = config.out_path
    check_replaceable(outdir)
    if config.markup_format == "asciidoc" and not asciidoctor_path():
        raise DocsConfigError(
            "markup_format = asciidoc needs asciidoctor: apt-get install asciidoctor"
        )
    sources = find_sources(config)
    settings = RenderSettings(
        markup_format=config.markup_format,
        author=config.author,
        tools=find_tools(config.kroki_url, config.diagram_timeout),
        linker=issue_linker_for(config.github_url_template, config.issues_url_template),
    )
    cache_dir = ""
    if options.use_cache:
        chosen = options.cache_dir or (
            config.root / config.cache_dir if config.cache_dir else default_cache_dir()
        )
        cache_dir = str(chosen)
    jobs = [(config.root / rel, rel, settings, cache_dir) for rel in sources]
    workers = options.jobs or os.cpu_count() or 1
    results: list[FileResult] = []
    skipped: list[Report] = []
    warnings: list[Report] = []
    for result in _render_all(jobs, workers):
        if result.problem is not None:
            skipped.append(Report(result.relpath, result.problem.lineno, result.problem.message))
            continue
        results.append(result)
        warnings.extend(Report(result.relpath, w.lineno, w.message) for w in result.warnings)
    staging = new_staging_dir(outdir)
    try:
        stats = write_site(staging, config, results)
        broken = check_links(staging)
        reports = tuple(str(r) for r in (*skipped, *warnings))
        if broken:
            raise BuildFailed(
                f"{len(broken)} broken link(s) in the site; fix them (the previous site is kept)",
                reports + tuple(str(b) for b in broken[:50]),
            )
        if options.strict and reports:
            raise BuildFailed(
                f"--strict: {len(reports)} warning(s); the previous site is kept", reports
            )
        swap_in(staging, outdir)
    except BaseException:
        discard(staging)
        raise
    return BuildResult(
        outdir=outdir,
        pages=stats.pages,
        blocks=sum(len(r.blocks) for r in results),
        diagrams=sum(r.diagrams for r in results),
        todos=stats.todos,
        cached=sum(1 for r in results if r.cached),
        skipped=tuple(skipped),
        warnings=tuple(warnings),
        seconds=clock() - started,
    )
