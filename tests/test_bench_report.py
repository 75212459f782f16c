"""bench/report.py: the combined benchmark table, rebuilt from saved JSON (no benchmark
runs here), the docs section it replaces, and failed scenarios shown as failed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import common, memory, report  # noqa: E402

HISTORY_BEFORE = "# Benchmarks\n\nIntro.\n\n"
HISTORY_AFTER = "\n\n## Scenario 1\n\nOld numbers | kept\n"


def _docs(tmp_path: Path, middle: str = "old summary") -> Path:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"{HISTORY_BEFORE}{report.START}\n{middle}\n{report.END}{HISTORY_AFTER}")
    return docs


def _saved(tmp_path: Path) -> Path:
    """A report directory as a full run leaves it, with three kinds of failure."""
    out = tmp_path / "run"
    out.mkdir()
    rows: dict[str, list[dict[str, Any]]] = {
        "index": [
            {
                "work": "index 10,000 small .debs",
                "peer": "apt-ftparchive packages",
                "peer_seconds": 1.10,
                "ours": "debops-ci inspect_all (2 processes)",
                "ours_seconds": 0.95,
                "goal": "at least as fast",
                "goal_ratio": 1.0,
                "detail": "CPU 1.7 s vs 1.1 s | load 0.8",
            }
        ],
        "bulk_publish-2000": [
            {
                "work": "publish 2,000 to S3",
                "peer": "aptly",
                "peer_seconds": 18.5,
                "ours": "debops-ci upload",
                "ours_seconds": 11.3,
                "goal": "2x faster",
                "goal_ratio": 2.0,
                "detail": "",
            }
        ],
    }
    for key, data in rows.items():
        (out / f"{key}.json").write_text(json.dumps(data))
    common.write_json_rows(
        out / "incremental_publish.json",
        [
            common.ReportRow(
                work="add 1 package, republish a local directory (2,000 packages)",
                peer="aptly repo add + publish update (filesystem endpoint)",
                peer_seconds=0.75,
                ours="debops-ci upload --archive DIR",
                ours_seconds=1.1,
                goal="at least as fast",
                goal_ratio=1.0,
                peer_command="aptly repo add bench ONE.deb && aptly publish update unstable "
                "filesystem:bench:",
            ),
            common.ReportRow(
                work="add 1 package, republish to S3 (10,000 packages)",
                peer="aptly repo add + publish update",
                peer_seconds=7.0,
                ours="debops-ci upload (CLI)",
                ours_seconds=1.0,
                goal="5x faster, 15 requests",
                goal_ratio=5.0,
                met=False,  # fast enough, but 34 requests
                detail="34 requests",
            ),
            common.ReportRow(
                work="`debops-ci --version`",
                ours="debops-ci --version",
                ours_seconds=0.05,
                goal="≤ 0.15 s",
                met=True,
            ),
        ],
    )
    (out / "memory.log").write_text("memory: wrote nothing\n")
    manifest = {
        "quick": False,
        "started": "2026-12-01 10:00 UTC",
        "finished": "2026-12-01 10:45 UTC",
        "facts": [["CPU", "test CPU"], ["cores usable", "2"]],
        "load_before": "0.50 0.40 0.30",
        "load_after": "1.50 1.00 0.70",
        "runs": [
            {"scenario": "index", "key": "index", "command": "python -m bench.index",
             "returncode": 0, "seconds": 480.0},
            {"scenario": "bulk_publish", "key": "bulk_publish-2000",
             "command": "python -m bench.bulk_publish --n 2000 --runs 3",
             "returncode": 0, "seconds": 120.0},
            {"scenario": "bulk_publish", "key": "bulk_publish-10000",
             "command": "python -m bench.bulk_publish --n 10000 --runs 1",
             "returncode": 1, "seconds": 61.0},
            {"scenario": "incremental_publish", "key": "incremental_publish",
             "command": "python -m bench.incremental_publish --sizes 2000,10000",
             "returncode": 0, "seconds": 400.0},
            {"scenario": "memory", "key": "memory",
             "command": "python -m bench.memory --sizes 2000,10000,20000 --trace",
             "returncode": 0, "seconds": 300.0},
        ],
    }  # fmt: skip
    (out / report.MANIFEST).write_text(json.dumps(manifest))
    return out


def _lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def test_from_json_builds_one_table_with_ratios_goals_and_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _saved(tmp_path)
    docs = _docs(tmp_path)
    code = report.main(["--from-json", str(out), "--write-docs", "--docs", str(docs)])
    text = capsys.readouterr().out
    assert code == 1  # some scenarios failed
    header = _lines_with(text, "| work")
    assert len(header) == 1
    assert [c.strip() for c in header[0].strip("|").split("|")] == [
        "work",
        "peer",
        "peer time",
        "debops-ci",
        "our time",
        "ratio",
        "goal",
        "met?",
        "detail",
    ]
    (index,) = _lines_with(text, "index 10,000 small .debs")
    assert "1.10 s" in index and "0.95 s" in index and "1.16\u00d7 faster" in index
    assert "| yes " in index and "CPU 1.7 s vs 1.1 s \\| load 0.8" in index
    (bulk,) = _lines_with(text, "publish 2,000 to S3")
    assert "1.64\u00d7 faster" in bulk and "**no**" in bulk  # goal 2x
    (local,) = _lines_with(text, "republish a local directory")
    assert "1.47\u00d7 slower" in local and "**no**" in local
    (s3,) = _lines_with(text, "republish to S3")
    assert "7.00\u00d7 faster" in s3 and "**no**" in s3  # the row's own verdict wins
    (version,) = _lines_with(text, "`debops-ci --version` ")
    assert "0.05 s" in version and "| yes " in version and "| — " in version
    # Failed scenarios are rows, not gaps.
    (bulk10k,) = _lines_with(text, "bulk_publish (`python -m bench.bulk_publish --n 10000")
    assert "**failed**" in bulk10k and "exit 1" in bulk10k
    (contention,) = _lines_with(text, "| contention (")
    assert "**failed**" in contention and "not run" in contention
    (memory,) = _lines_with(text, "| memory (")
    assert "**failed**" in memory and "no JSON written (memory.json)" in memory
    # Peers' commands: the rows' own and, for rows without one, the scenario's.
    assert "apt-ftparchive packages DIR > Packages" in text
    assert text.count("aptly repo add bench ONE.deb && aptly publish update") == 1
    assert "0.50 0.40 0.30 before and 1.50 1.00 0.70 after" in text
    assert "| CPU " in text and "test CPU" in text
    # The docs: only the marked section changed, and it holds the same report.
    written = docs.read_text()
    assert written.startswith(HISTORY_BEFORE + report.START + "\n")
    assert written.endswith(report.END + HISTORY_AFTER)
    assert "old summary" not in written
    assert text.strip() in written


def test_rewriting_the_docs_twice_gives_the_same_file(tmp_path: Path) -> None:
    out = _saved(tmp_path)
    docs = _docs(tmp_path)
    report.main(["--from-json", str(out), "--write-docs", "--docs", str(docs)])
    first = docs.read_text()
    report.main(["--from-json", str(out), "--write-docs", "--docs", str(docs)])
    assert docs.read_text() == first
    assert first.count(report.START) == 1 and first.count(report.END) == 1


def test_only_selects_scenarios_and_all_present_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _saved(tmp_path)
    assert report.main(["--from-json", str(out), "--only", "index,incremental_publish"]) == 0
    text = capsys.readouterr().out
    assert "index 10,000 small .debs" in text and "republish to S3" in text
    assert "publish 2,000 to S3" not in text and "**failed**" not in text
    assert "`python -m bench.report --only index,incremental_publish`" in text


def test_docs_without_markers_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nno markers\n")
    out = _saved(tmp_path)
    capsys.readouterr()
    code = report.main(["--from-json", str(out), "--write-docs", "--docs", str(docs)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and report.START in err and "add them" in err
    assert docs.read_text() == "# Benchmarks\n\nno markers\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "index,nosuch"], "unknown scenario nosuch"),
        (["--from-json", "DIR", "--out", "X"], "give one"),
    ],
)
def test_bad_options_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        report.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_results_directory_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report.main(["--from-json", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such directory" in err and "\n" not in err


def test_a_scenario_that_exits_non_zero_is_a_failed_run(tmp_path: Path) -> None:
    """A real subprocess: `python -m bench.<module>` for a module that does not exist."""
    inv = report.Invocation("ghost", "ghost", "no_such_scenario", ("--sizes", "1"))
    run = report.run_invocation(inv, tmp_path)
    assert run.returncode == 1 and not run.rows
    assert run.problem.startswith("exit 1 after") and "ghost.log" in run.problem
    assert "No module named bench.no_such_scenario" in (tmp_path / "ghost.log").read_text()
    (row,) = report.table_rows([run])
    assert row[7] == "**failed**"


def test_ratio_and_verdict() -> None:
    assert report.ratio_text(2.0, 1.0) == "2.00\u00d7 faster"
    assert report.ratio_text(1.0, 4.0) == "4.00\u00d7 slower"
    assert report.ratio_text(None, 1.0) == "—"
    assert report.met_text({"peer_seconds": 3.0, "ours_seconds": 1.0, "goal_ratio": 2.0}) == "yes"
    assert report.met_text({"peer_seconds": 1.9, "ours_seconds": 1.0, "goal_ratio": 2.0}) == (
        "**no**"
    )
    assert report.met_text({"peer_seconds": None, "ours_seconds": 1.0}) == "—"
    assert report.met_text({"met": False, "peer_seconds": 9.0, "ours_seconds": 1.0}) == "**no**"


# -- the scenarios' own rows ---------------------------------------------------------------


def test_child_rss_is_the_childs_own_not_this_processs() -> None:
    """A child forked from a big process starts with that process's RSS as its
    high-water mark; run_measured's launcher keeps it out of the figure."""
    ballast = bytearray(160 * common.MIB)  # touched: resident in this process
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    small = common.run_measured([sys.executable, "-S", "-c", "pass"])
    big = common.run_measured([sys.executable, "-S", "-c", "b = bytearray(96 << 20)"])
    del ballast
    assert small.max_rss < 60 * common.MIB
    assert 96 * common.MIB < big.max_rss < 160 * common.MIB
    with pytest.raises(common.BenchCommandError, match="exit 3"):
        common.run_measured([sys.executable, "-S", "-c", "raise SystemExit(3)"])


def _point(n: int, packages: int, rss: int) -> memory.Point:
    return memory.Point("local", n, n, packages, rss, 1.0, 1.0)


def test_memory_goal_needs_three_sizes_a_small_k_and_a_flat_rest() -> None:
    mib = common.MIB
    base = 14 * mib
    flat = [_point(n, n * 540, base + 30 * mib + 2 * n * 540) for n in (2000, 10000, 20000)]
    steep = [_point(n, n * 540, base + 30 * mib + 10 * n * 540) for n in (2000, 10000, 20000)]
    bumpy = [*flat[:2], _point(20000, 20000 * 540, flat[2].max_rss + 40 * mib)]
    for points, k, met in ((flat, 2.0, True), (steep, 10.0, False), (bumpy, None, False)):
        f = memory.fit(points, base)
        if k is not None:
            assert f.k == pytest.approx(k) and f.spread < 1024
        (row,) = memory.json_rows(points, {"local": f}, base)
        assert row.met is met and row.work.startswith("peak RSS, incremental publish into 10,000")
    two = flat[:2]
    (row,) = memory.json_rows(two, {"local": memory.fit(two, base)}, base)
    assert row.met is None  # two points always fit a line: no verdict


def test_rerunning_one_scenario_into_a_report_directory_keeps_the_others(
    tmp_path: Path,
) -> None:
    out = _saved(tmp_path)
    ghost = report.Invocation("ghost", "ghost", "no_such_scenario", ())
    manifest = report.run_all([ghost], out, quick=False)
    keys = [r["key"] for r in manifest["runs"]]
    assert keys[-1] == "ghost" and "index" in keys and "incremental_publish" in keys
    saved = json.loads((out / report.MANIFEST).read_text())
    assert saved["runs"] == manifest["runs"] and saved["load_after"]
    _, runs = report.load_runs(out, [*report.SCENARIOS["full"]["index"], ghost])
    assert runs[0].rows and not runs[1].rows and runs[1].problem.startswith("exit 1")
