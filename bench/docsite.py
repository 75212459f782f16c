"""build-docs on a large generated tree, cold and after touching one file, against pdoc
and pydoctor on the same tree.

The tree is a package of N modules (default 2,000) in sub-packages of 50, each with a
Markdown module docstring (heading, table, fenced Python), a class with methods, two
functions, free-standing blocks and a TODO comment. The code is harmless, because
pdoc imports every module (build-docs and pydoctor only parse).

    python -m bench.docsite [--modules 2000] [--runs 1] [--jobs 0]

pdoc and pydoctor come from the `bench` extra (`pip install -e '.[bench]'`); a peer
that is not installed is left out of the table. Neither has a cache, so for them
"after touching one file" is another full build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

_MODULE = '''"""
# Module {n}

Module {n} of the generated tree: it keeps *records* of kind {n} and talks to #{n}.

| field | meaning |
|-------|---------|
| key   | the record's name |
| value | its payload |

```python
from genpkg.p{p}.m{n} import Store{n}
Store{n}().put("k", {n})
```
"""

import json  # TODO: replace json by something faster {n}

"""
## Notes

A free-standing block between statements, as the team writes them.
"""


class Store{n}:
    """A store of records."""

    """
    ### Store{n} internals

    Records live in a dict; `put` replaces.
    """

    def __init__(self) -> None:
        """Make an empty store."""
        self.items: dict[str, object] = {{}}

    def put(self, key: str, value: object) -> None:
        """Put one record."""
        """Writing twice keeps the last value."""
        self.items[key] = value

    async def aget(self, key: str) -> object:
        """Read one record."""
        return self.items.get(key)


def helper_{n}(x: int) -> int:
    """Double x."""
    return 2 * x


def other_{n}(s: str) -> str:
    """Upper-case s."""
    """Note: ASCII only."""
    return json.dumps(s.upper())
'''


def make_tree(root: Path, modules: int) -> Path:
    """`root/genpkg/p<i>/m<n>.py`; returns the path of one module to touch."""
    pkg = root / "genpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""The generated package."""\n')
    for n in range(modules):
        p = n // 50
        sub = pkg / f"p{p}"
        if not sub.is_dir():
            sub.mkdir()
            (sub / "__init__.py").write_text(f'"""Sub-package {p}."""\n')
        (sub / f"m{n}.py").write_text(_MODULE.format(n=n, p=p))
    (root / "build_docs.ini").write_text(
        "[DEFAULT]\nmarkup_format = markdown\npaths = genpkg\n"
        "github_url_template = https://github.com/acme/gen/{action}/main/{path}#L{lineno}\n"
    )
    return pkg / "p0" / "m0.py"


def _timed(cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 and "pydoctor" not in cmd[2]:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def _have(module: str) -> bool:
    probe = [sys.executable, "-c", f"import {module}"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=0, help="build-docs workers (0: per core)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-docsite-"))
    try:
        common.say(f"generating {args.modules} modules in {work}")
        touched = make_tree(work, args.modules)
        env = {**os.environ, "PYTHONPATH": str(work)}
        cache = work / ".cache"
        build_docs = [
            sys.executable, "-c", "from debops_ci.cli.build_docs import main; main()",
            "--jobs", str(args.jobs), "--cache-dir", str(cache), "--quiet",
        ]  # fmt: skip

        def touch() -> None:
            with touched.open("a") as handle:
                handle.write(f"# touched {time.time_ns()}\n")

        def fresh_cache() -> None:
            shutil.rmtree(cache, ignore_errors=True)

        tools: list[tuple[str, Sequence[str], Callable[[], None]]] = [
            ("build-docs", build_docs, fresh_cache)
        ]
        if _have("pdoc"):
            pdoc_out = work / "pdoc_out"
            tools.append(
                (
                    "pdoc",
                    [sys.executable, "-m", "pdoc", "-o", str(pdoc_out), "genpkg"],
                    lambda: shutil.rmtree(pdoc_out, ignore_errors=True),
                )
            )
        if _have("pydoctor"):
            pyd_out = work / "pydoctor_out"
            tools.append(
                (
                    "pydoctor",
                    [sys.executable, "-m", "pydoctor", "-q", "-q", "--html-output",
                     str(pyd_out), "genpkg"],
                    lambda: shutil.rmtree(pyd_out, ignore_errors=True),
                )
            )  # fmt: skip
        results: dict[str, tuple[float, float]] = {}
        for name, cmd, reset in tools:
            cold, warm = [], []
            for _ in range(args.runs):
                reset()
                common.say(f"{name}: cold build")
                cold.append(_timed(cmd, work, env))
                touch()
                common.say(f"{name}: after touching one file")
                warm.append(_timed(cmd, work, env))
            results[name] = (statistics.median(cold), statistics.median(warm))
        base_cold, base_warm = results["build-docs"]
        rows = [
            [
                name,
                common.secs(cold),
                f"{cold / base_cold:.1f}x",
                common.secs(warm),
                f"{warm / base_warm:.1f}x",
            ]
            for name, (cold, warm) in results.items()
        ]
        print(f"{args.modules} generated modules, {os.cpu_count()} cores, median of {args.runs}")
        print(
            common.table(
                ["tool", "cold", "vs build-docs", "one file touched", "vs build-docs"], rows
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
