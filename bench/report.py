"""Every benchmark of issue 11 in one table: each scenario runs as a subprocess with
`--json PATH`, and its rows (bench.common.ReportRow) become one Markdown table with
the peer beside debops-ci, the ratio, the goal and whether it is met.

    python -m bench.report [--quick] [--only index,memory] [--out DIR] [--write-docs]
    python -m bench.report --from-json DIR [--write-docs]

Each scenario's Markdown (stdout) and progress (stderr) are kept in DIR beside its JSON,
and DIR/manifest.json records what ran (command, exit code, duration), the machine
facts and the load average before and after, so `--from-json DIR` rebuilds the same
report without rerunning anything. `--only NAME --out DIR` into an earlier report's
DIR reruns that scenario and keeps the others' results. A scenario that fails, or
writes no JSON, shows as a failed row. `--write-docs` replaces the part of
docs/benchmarks.md between `<!-- report:start -->` and `<!-- report:end -->`; the rest
of the file is history.

`--quick` runs every scenario at small sizes, to check that the machinery works: its
numbers say nothing about the goals.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

__all__ = [
    "SCENARIOS",
    "Invocation",
    "ReportError",
    "Run",
    "build_report",
    "load_runs",
    "main",
    "render",
    "replace_section",
]

START = "<!-- report:start -->"
END = "<!-- report:end -->"
DOCS = common.REPO_ROOT / "docs" / "benchmarks.md"
TIMES = "\u00d7"  # the multiplication sign, as the docs write ratios
MANIFEST = "manifest.json"


class ReportError(Exception):
    """Bad input to the report (a missing directory, a docs file without markers)."""

    exit_code = 2


@dataclass(frozen=True)
class Invocation:
    """One subprocess of a scenario: `python -m bench.<module> ARGS --json <key>.json`."""

    scenario: str
    key: str  # file stem in the output directory
    module: str
    args: tuple[str, ...]

    def argv(self, out: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            f"bench.{self.module}",
            *self.args,
            "--json",
            str(out / f"{self.key}.json"),
        ]

    def shown(self) -> str:
        return " ".join(["python", "-m", f"bench.{self.module}", *self.args])


def _inv(scenario: str, key: str, *args: str, module: str | None = None) -> Invocation:
    return Invocation(scenario, key, module or scenario, args)


# Full runs measure the sizes issue 11 names; quick runs only prove the plumbing.
SCENARIOS: dict[str, dict[str, tuple[Invocation, ...]]] = {
    "full": {
        # dpkg-scanpackages (minutes at 10,000) is not a goal's peer: `bench.index` alone
        # still runs it.
        "index": (_inv("index", "index", "--sizes", "2000,10000", "--runs", "3", "--no-scan"),),
        "bulk_publish": (
            _inv("bulk_publish", "bulk_publish-2000", "--n", "2000", "--runs", "3"),
            _inv("bulk_publish", "bulk_publish-10000", "--n", "10000", "--runs", "1"),
        ),
        "incremental_publish": (
            _inv("incremental_publish", "incremental_publish", "--sizes", "2000,10000"),
        ),
        "contention": (
            _inv("contention", "contention", "--concurrent-only", "--latency-ms", "0,30"),
        ),
        "memory": (_inv("memory", "memory", "--sizes", "2000,10000,20000", "--trace"),),
    },
    "quick": {
        "index": (
            _inv("index", "index", "--sizes", "200", "--runs", "1", "--quick", "--no-large"),
        ),
        "bulk_publish": (_inv("bulk_publish", "bulk_publish-200", "--n", "200", "--runs", "1"),),
        "incremental_publish": (
            _inv("incremental_publish", "incremental_publish", "--sizes", "200", "--runs", "1"),
        ),
        "contention": (
            _inv(
                "contention",
                "contention",
                "--publishers",
                "2",
                "--per",
                "3",
                "--concurrent-only",
                "--latency-ms",
                "0,30",
            ),
        ),
        "memory": (_inv("memory", "memory", "--sizes", "200,2000", "--runs", "1"),),
    },
}

# Peers' commands for scenarios whose rows do not carry `peer_command`.
FALLBACK_COMMANDS = {
    "index": [
        "apt-ftparchive packages DIR > Packages",
        "dpkg-scanpackages DIR /dev/null > Packages",
    ],
    "bulk_publish": [
        "aptly -config=aptly.conf repo create -distribution=unstable -component=main bench",
        "aptly -config=aptly.conf repo add bench DIR",
        "aptly -config=aptly.conf publish repo -batch -skip-contents -skip-bz2 "
        "-acquire-by-hash -gpg-key=FPR bench s3:bench:",
    ],
}


@dataclass
class Run:
    """What one invocation did, and the rows it wrote (none if it failed)."""

    scenario: str
    key: str
    command: str
    returncode: int | None
    seconds: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    problem: str = ""  # why there are no rows


# -- running -------------------------------------------------------------------------------


def _use_venv_path() -> None:
    """This interpreter's bin directory (weed, the debops-ci console script) first on
    PATH, for the scenarios and for the machine facts."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = bindir + os.pathsep + path


def _load_rows(path: Path) -> tuple[list[dict[str, Any]], str]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return [], f"no JSON written ({path.name})"
    except (OSError, ValueError) as exc:
        return [], f"unreadable JSON {path.name}: {exc}"
    if not isinstance(data, list) or not all(isinstance(r, dict) and "work" in r for r in data):
        return [], f"{path.name} is not a list of rows with a 'work' field"
    if not data:
        return [], f"{path.name} holds no rows"
    return data, ""


def run_invocation(inv: Invocation, out: Path) -> Run:
    """Run one scenario subprocess; its stdout goes to <key>.md, stderr to <key>.log
    and, as progress, to ours."""
    common.say(f"== {inv.shown()} (log: {out / (inv.key + '.log')})")
    (out / f"{inv.key}.json").unlink(missing_ok=True)
    start = time.perf_counter()
    with open(out / f"{inv.key}.md", "wb") as stdout, open(out / f"{inv.key}.log", "wb") as log:
        proc = subprocess.Popen(
            inv.argv(out),
            cwd=common.REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            log.write(line)
            sys.stderr.buffer.write(b"   " + line)
            sys.stderr.flush()
        rc = proc.wait()
    seconds = time.perf_counter() - start
    run = Run(inv.scenario, inv.key, inv.shown(), rc, seconds)
    if rc != 0:
        run.problem = f"exit {rc} after {common.secs(seconds)}; see {inv.key}.log"
    else:
        run.rows, run.problem = _load_rows(out / f"{inv.key}.json")
    common.say(f"== {inv.key}: exit {rc} in {common.secs(seconds)}")
    return run


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _previous_runs(out: Path, quick: bool) -> list[dict[str, Any]]:
    """Runs an earlier report left in `out` (same --quick), so that rerunning one
    scenario into the same directory keeps the others."""
    try:
        old = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return []
    return list(old.get("runs", [])) if bool(old.get("quick")) == quick else []


def run_all(invocations: Sequence[Invocation], out: Path, quick: bool) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "quick": quick,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "facts": [list(f) for f in common.machine_facts()],
        "load_before": common.load_average(),
        "runs": _previous_runs(out, quick),
    }
    for inv in invocations:
        run = run_invocation(inv, out)
        manifest["runs"] = [r for r in manifest["runs"] if r.get("key") != run.key]
        manifest["runs"].append(
            {
                "scenario": run.scenario,
                "key": run.key,
                "command": run.command,
                "returncode": run.returncode,
                "seconds": run.seconds,
            }
        )
        _write_manifest(out, manifest)  # a killed report keeps what finished
    manifest["load_after"] = common.load_average()
    manifest["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    _write_manifest(out, manifest)
    return manifest


def load_runs(
    directory: Path, invocations: Sequence[Invocation]
) -> tuple[dict[str, Any], list[Run]]:
    """The manifest and runs saved in `directory`; an invocation it lacks is a failed run."""
    if not directory.is_dir():
        raise ReportError(f"--from-json {directory}: no such directory; give a report's --out")
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        manifest = {"runs": []}
    except ValueError as exc:
        raise ReportError(f"{directory / MANIFEST}: not JSON ({exc}); rerun the report") from exc
    recorded = {r["key"]: r for r in manifest.get("runs", [])}
    runs = []
    for inv in invocations:
        rec = recorded.get(inv.key)
        rc = rec.get("returncode") if rec else None
        run = Run(
            inv.scenario,
            inv.key,
            rec["command"] if rec else inv.shown(),
            rc,
            float(rec["seconds"]) if rec else 0.0,
        )
        if rec is None and not (directory / f"{inv.key}.json").exists():
            run.problem = f"not run (no {inv.key}.json in {directory})"
        elif rc not in (0, None):
            run.problem = f"exit {rc} after {common.secs(run.seconds)}; see {inv.key}.log"
        else:
            run.rows, run.problem = _load_rows(directory / f"{inv.key}.json")
        runs.append(run)
    return manifest, runs


# -- rendering ---------------------------------------------------------------------------


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _seconds(value: object) -> str:
    return common.secs(float(value)) if isinstance(value, int | float) else "—"


def ratio_text(peer: object, ours: object) -> str:
    """peer / ours as "N\\u00d7 faster" (ours quicker) or "N\\u00d7 slower"."""
    if not isinstance(peer, int | float) or not isinstance(ours, int | float):
        return "—"
    if peer <= 0 or ours <= 0:
        return "n/a"
    r = peer / ours
    return f"{r:.2f}{TIMES} faster" if r >= 1 else f"{1 / r:.2f}{TIMES} slower"


def met_text(row: dict[str, Any]) -> str:
    """A row's own verdict if it gives one, else the ratio against goal_ratio."""
    if isinstance(row.get("met"), bool):
        return "yes" if row["met"] else "**no**"
    peer, ours, goal = row.get("peer_seconds"), row.get("ours_seconds"), row.get("goal_ratio")
    if all(isinstance(v, int | float) for v in (peer, ours, goal)) and ours:
        return "yes" if peer / ours >= goal else "**no**"
    return "—"


def table_rows(runs: Sequence[Run]) -> list[list[str]]:
    rows = []
    for run in runs:
        if not run.rows:
            rows.append(
                [
                    f"{run.scenario} (`{run.command}`)",
                    "—",
                    "—",
                    "—",
                    "—",
                    "—",
                    "—",
                    "**failed**",
                    _cell(run.problem),
                ]
            )
            continue
        for row in run.rows:
            rows.append(
                [
                    _cell(row["work"]),
                    _cell(row.get("peer") or "—"),
                    _seconds(row.get("peer_seconds")),
                    _cell(row.get("ours") or "—"),
                    _seconds(row.get("ours_seconds")),
                    ratio_text(row.get("peer_seconds"), row.get("ours_seconds")),
                    _cell(row.get("goal") or "—"),
                    met_text(row),
                    _cell(row.get("detail") or ""),
                ]
            )
    return rows


def commands(runs: Sequence[Run]) -> list[str]:
    """Every peer's command (and ours) once, in the order of the table."""
    seen: list[str] = []
    for run in runs:
        found = [
            str(row[k]) for row in run.rows for k in ("peer_command", "ours_command") if row.get(k)
        ]
        if not any(row.get("peer_command") for row in run.rows):
            found = [*FALLBACK_COMMANDS.get(run.scenario, []), *found]
        for cmd in found:
            if cmd not in seen:
                seen.append(cmd)
    return seen


def _cores(manifest: dict[str, Any]) -> str:
    facts = {str(k): str(v) for k, v in manifest.get("facts", [])}
    return facts.get("cores usable", "?").split(" ", 1)[0]


def render(manifest: dict[str, Any], runs: Sequence[Run], rerun: str) -> str:
    """The report as Markdown: the table, the commands, the runs, the machine."""
    lines = ["## Summary: every goal of issue 11 in one run", ""]
    if manifest.get("quick"):
        lines += [
            "**Quick run (small sizes): it checks the machinery, its numbers do not "
            "measure the goals.**",
            "",
        ]
    lines += [
        f"Generated by `{rerun}` (started {manifest.get('started', 'unknown')}, finished "
        f"{manifest.get('finished', 'unknown')}); load average "
        f"{manifest.get('load_before', 'unknown')} before and "
        f"{manifest.get('load_after', 'unknown')} after, on {_cores(manifest)} cores. Ratio = peer "
        "time / debops-ci time; each scenario's own output (below the summary in its "
        "section) has the details. Do not edit this section by hand: `python -m "
        "bench.report --from-json DIR --write-docs` rebuilds it from saved results.",
        "",
        common.table(
            [
                "work",
                "peer",
                "peer time",
                "debops-ci",
                "our time",
                "ratio",
                "goal",
                "met?",
                "detail",
            ],
            table_rows(runs),
        ),
        "",
        "Commands (peers and debops-ci; `FPR` is the bench key, `aptly.conf` as printed by "
        "`python -m bench.incremental_publish`):",
        "",
        "```sh",
        *commands(runs),
        "```",
        "",
        "Scenario runs:",
        "",
        common.table(
            ["scenario", "command (+ `--json FILE`)", "exit", "duration"],
            [
                [
                    r.scenario,
                    f"`{r.command}`",
                    "—" if r.returncode is None else str(r.returncode),
                    common.secs(r.seconds) if r.seconds else "—",
                ]
                for r in runs
            ],
        ),
        "",
        "Machine:",
        "",
        common.table(
            ["fact", "value"],
            [[_cell(k), _cell(v)] for k, v in manifest.get("facts", [])] or [["—", "unknown"]],
        ),
    ]
    return "\n".join(lines) + "\n"


def replace_section(document: str, section: str) -> str:
    """`document` with the text between the report markers replaced by `section`."""
    start, end = document.find(START), document.find(END)
    if start < 0 or end < 0 or end < start or document.count(START) != 1:
        raise ReportError(
            f"the docs file needs exactly one {START} … {END} pair, in that order; add them"
        )
    return document[: start + len(START)] + "\n" + section + document[end:]


def build_report(
    manifest: dict[str, Any], runs: Sequence[Run], rerun: str, docs: Path | None
) -> str:
    """Render, and with `docs` replace its report section (checked before any write)."""
    text = render(manifest, runs, rerun)
    if docs is not None:
        try:
            document = docs.read_text()
        except OSError as exc:
            raise ReportError(f"cannot read {docs}: {exc.strerror}") from exc
        docs.write_text(replace_section(document, text))
        common.say(f"replaced the report section of {docs}")
    return text


# -- command line ------------------------------------------------------------------------


def _selected(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Invocation]:
    table = SCENARIOS["quick" if args.quick else "full"]
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(table)
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        parser.error(
            f"--only: unknown scenario {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(table)}"
        )
    return [inv for name in names for inv in table[name]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (checks the plumbing)")
    parser.add_argument("--only", metavar="NAME,...", help="run these scenarios only")
    parser.add_argument("--from-json", metavar="DIR", type=Path, help="rebuild from saved runs")
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        help="where the runs are kept (default: a new directory under the bench work root)",
    )
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _use_venv_path()
    if args.from_json is not None and args.out is not None:
        parser.error("--from-json DIR reads saved runs; --out is for a new run: give one")
    try:
        if args.write_docs:  # refuse before hours of work, not after
            replace_section(args.docs.read_text(), "")
        if args.from_json is not None:
            saved = (
                json.loads((args.from_json / MANIFEST).read_text())
                if (args.from_json / MANIFEST).is_file()
                else {}
            )
            args.quick = args.quick or bool(saved.get("quick"))
            invocations = _selected(args, parser)
            manifest, runs = load_runs(args.from_json, invocations)
        else:
            invocations = _selected(args, parser)
            out = args.out or common.WORK_ROOT / time.strftime(
                "report-%Y%m%d-%H%M%S", time.gmtime()
            )
            manifest = run_all(invocations, out, args.quick)
            _, runs = load_runs(out, invocations)
            common.say(f"results kept in {out} (rebuild: --from-json {out})")
        rerun = "python -m bench.report" + (" --quick" if args.quick else "")
        if args.only:
            rerun += f" --only {args.only}"
        text = build_report(manifest, runs, rerun, args.docs if args.write_docs else None)
    except (ReportError, OSError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, ReportError) else f"{type(exc).__name__}: {exc}"
        print(f"bench.report: {message}", file=sys.stderr)
        return 2
    print(text)
    return 1 if any(not r.rows for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
