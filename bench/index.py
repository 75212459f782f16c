"""Scenario 1: index a directory of .debs into a Packages file.

Peers, on the same generated .debs, warm page cache, one after the other:

- `sha256sum` of every file: the floor (one process, and the files split over two);
- `dpkg-scanpackages DIR` (runs `dpkg-deb` per file);
- `apt-ftparchive packages DIR` (no cache database);
- debops-ci: `inspect_deb` on every file, then `render_packages`:
  * "inspect_all": `archive.inspect.inspect_all`, what `debops-ci upload` runs (a
    forked process per core from 64 files on);
  * "threads": a thread pool over `inspect_deb` (one thread per core);
  * "1 thread": a plain loop, for reference;
  * with `--variant REV` (repeatable): `inspect_all` of another revision's `src/`
    (`git archive REV src`, into a temp dir), run in a subprocess that times itself
    the same way, interleaved with the others: before/after in one run.

Corpora: N = 200, 2,000, 10,000 small .debs (metadata-bound) and 200 .debs of 1-5 MiB
of random payload (hash-bound). Usage:

    python -m bench.index [--quick] [--runs 3] [--sizes 200,2000,10000] [--no-large]
                          [--no-scan] [--variant f43c0cb] [--profile] [--json PATH]

`--quick` skips dpkg-scanpackages above 2,000 packages and extrapolates it linearly
from the 2,000 run (labelled "extrapolated"); `--no-scan` skips it altogether.
`--json PATH` writes the report rows (bench/report.py's contract): apt-ftparchive
against `inspect_all` per corpus, goal "at least as fast".
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from debops_ci.archive.indexes import build_packages_files, render_packages
from debops_ci.archive.inspect import inspect_all
from debops_ci.archive.publish import entry_for
from debops_ci.debian.package import DebPackage, inspect_deb, inspect_debs

COMPONENT = "main"


@dataclass
class Row:
    corpus: str
    tool: str
    wall: float
    cpu: float
    note: str = ""


# -- the peers ------------------------------------------------------------------------


def sha256sum_one(directory: Path, files: Sequence[Path]) -> None:
    with open(os.devnull, "wb") as null:
        common.run(["sha256sum", "--", *(p.name for p in files)], cwd=directory, stdout=null)


def _split_by_size(files: Sequence[Path], parts: int) -> list[list[Path]]:
    bins: list[list[Path]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for path in sorted(files, key=lambda p: p.stat().st_size, reverse=True):
        i = loads.index(min(loads))
        bins[i].append(path)
        loads[i] += path.stat().st_size
    return bins


def sha256sum_parallel(directory: Path, files: Sequence[Path], parts: int) -> None:
    env = common.bench_env()
    with open(os.devnull, "wb") as null:
        procs = [
            subprocess.Popen(
                ["sha256sum", "--", *(p.name for p in chunk)],
                cwd=directory,
                stdout=null,
                env=env,
            )
            for chunk in _split_by_size(files, parts)
        ]
        codes = [p.wait() for p in procs]
    if any(codes):
        raise common.BenchCommandError(f"sha256sum failed: {codes}")


def dpkg_scanpackages(directory: Path, out: Path) -> bytes:
    with open(out, "wb") as fh:
        common.run(["dpkg-scanpackages", directory.name], cwd=directory.parent, stdout=fh)
    return out.read_bytes()


def apt_ftparchive(directory: Path, out: Path) -> bytes:
    with open(out, "wb") as fh:
        common.run(["apt-ftparchive", "packages", directory.name], cwd=directory.parent, stdout=fh)
    return out.read_bytes()


def render(packages: Sequence[DebPackage]) -> bytes:
    return render_packages(entry_for(pkg, COMPONENT) for pkg in packages)


def debops_inspect_all(files: Sequence[Path]) -> bytes:
    """What `debops-ci upload` runs: publish.inspect_all."""
    return render(inspect_all(files))


def debops_threads(files: Sequence[Path]) -> bytes:
    """A thread pool over inspect_deb, one thread per usable core."""
    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        return render(list(pool.map(inspect_deb, files)))


def debops_serial(files: Sequence[Path]) -> bytes:
    return render([inspect_deb(p) for p in files])


# Run in a subprocess with another tree's src/ first on sys.path: times inspect_all and
# the rendering exactly as the in-process arm does (after the imports), CPU of the
# process and of its waited-for workers included.
_VARIANT_SCRIPT = """
import json, os, sys, time
from pathlib import Path
from debops_ci.archive.indexes import render_packages
from debops_ci.archive.publish import entry_for
try:
    from debops_ci.archive.inspect import inspect_all
except ImportError:
    from debops_ci.archive.publish import inspect_all
directory, out = Path(sys.argv[1]), Path(sys.argv[2])
files = sorted(directory.glob("*.deb"))
def cpu():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
wall, start = time.perf_counter(), cpu()
data = render_packages(entry_for(p, "main") for p in inspect_all(files))
wall, used = time.perf_counter() - wall, cpu() - start
out.write_bytes(data)
print(json.dumps({"wall": wall, "cpu": used}))
"""


@dataclass(frozen=True)
class Variant:
    """Another revision of the library, exported to `src`."""

    label: str
    src: Path


def export_variant(revision: str, into: Path) -> Variant:
    """`git archive REV src` into a directory (nothing in the working tree changes)."""
    common.run(
        ["git", "-C", str(common.REPO_ROOT), "rev-parse", "--verify", revision + "^{commit}"]
    )
    target = into / f"variant-{revision}"
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(
        ["git", "-C", str(common.REPO_ROOT), "archive", revision, "src"], stdout=subprocess.PIPE
    )
    subprocess.run(["tar", "-x", "-C", str(target)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {revision} failed")
    return Variant(revision, target / "src")


def debops_variant(variant: Variant, directory: Path, out: Path) -> tuple[bytes, common.Timing]:
    env = common.bench_env({"PYTHONPATH": str(variant.src)})
    proc = common.run([sys.executable, "-c", _VARIANT_SCRIPT, str(directory), str(out)], env=env)
    reported = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return out.read_bytes(), common.Timing(reported["wall"], reported["cpu"])


# -- checks ---------------------------------------------------------------------------------


def sha256_by_package(packages_file: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    for block in packages_file.decode("utf-8").split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line[:1] not in (" ", "\t", "")
        )
        if "Package" in fields:
            found[fields["Package"]] = fields.get("SHA256", "")
    return found


def check_same(name: str, ours: bytes, reference: bytes, n: int) -> None:
    got, want = sha256_by_package(ours), sha256_by_package(reference)
    if len(got) != n or got != want:
        raise SystemExit(f"{name}: {len(got)} stanzas, differs from apt-ftparchive's ({n})")


# -- one corpus ------------------------------------------------------------------------------


Arm = Callable[[], "bytes | tuple[bytes, common.Timing] | None"]

INSPECT_ALL = "debops-ci, inspect_all (upload)"
FTP = "apt-ftparchive packages"


def bench_corpus(
    label: str,
    directory: Path,
    runs: int,
    scan: str,
    extrapolate_from: tuple[int, float] | None,
    work: Path,
    variants: Sequence[Variant] = (),
) -> list[Row]:
    files = common.debs_in(directory)
    n = len(files)
    common.say(f"[{label}] {n} files, {common.human_bytes(common.total_size(files))}")
    common.warm_cache(files)
    cores = len(os.sched_getaffinity(0))
    arms: list[tuple[str, Arm, int]] = [
        ("sha256sum (1 process)", lambda: sha256sum_one(directory, files), runs),
        (
            f"sha256sum ({cores} processes)",
            lambda: sha256sum_parallel(directory, files, cores),
            runs,
        ),
    ]
    if scan == "run":  # slow, and steady: one run
        arms.append(("dpkg-scanpackages", lambda: dpkg_scanpackages(directory, work / "scan"), 1))
    arms += [
        (FTP, lambda: apt_ftparchive(directory, work / "ftp"), runs),
        (INSPECT_ALL, lambda: debops_inspect_all(files), runs),
    ]
    for variant in variants:
        arms.append(
            (
                f"debops-ci, inspect_all at {variant.label} (subprocess)",
                functools.partial(
                    debops_variant, variant, directory, work / f"variant-{variant.label}"
                ),
                runs,
            )
        )
    if variants:  # the same subprocess harness for this tree, for a like-for-like pair
        this = Variant("this tree", common.REPO_ROOT / "src")
        arms.append(
            (
                "debops-ci, inspect_all at this tree (subprocess)",
                lambda: debops_variant(this, directory, work / "variant-this"),
                runs,
            )
        )
    arms += [
        (f"debops-ci, {cores} threads", lambda: debops_threads(files), runs),
        ("debops-ci, 1 thread", lambda: debops_serial(files), runs),
    ]
    # Rounds: every peer once per round, so load from elsewhere hits them all alike.
    timings: dict[str, list[common.Timing]] = {name: [] for name, _, _ in arms}
    outputs: dict[str, bytes] = {}
    for round_ in range(runs):
        for name, fn, repeat in arms:
            if round_ >= repeat:
                continue
            common.say(f"[{label}] round {round_ + 1}: {name} …")
            with common.stopwatch() as t:
                result = fn()
            timing = t[0]
            if isinstance(result, tuple):  # the arm timed itself (a subprocess)
                result, timing = result
            timings[name].append(timing)
            common.say(f"[{label}]   {common.secs(timing.wall)} (CPU {common.secs(timing.cpu)})")
            if result is not None and round_ == 0:
                outputs[name] = result
    reference = outputs[FTP]
    for name, out in outputs.items():
        if name.startswith("debops-ci"):
            check_same(name, out, reference, n)
        elif common.stanza_count(out) != n:
            raise SystemExit(f"{name} did not index every file")

    rows: list[Row] = []
    for name, _, _ in arms:
        walls = sorted(timings[name], key=lambda x: x.wall)
        mid = walls[len(walls) // 2]
        rows.append(Row(label, name, mid.wall, mid.cpu))
        if name == FTP and scan == "extrapolate" and extrapolate_from:
            base_n, base_wall = extrapolate_from
            rows.append(
                Row(
                    label,
                    "dpkg-scanpackages",
                    base_wall * n / base_n,
                    0.0,
                    f"EXTRAPOLATED linearly from {base_n:,} (--quick)",
                )
            )
    return rows


def compression_cost(directory: Path) -> tuple[int, float, int, int]:
    """Rendering is not the end of a publish: Packages.gz and .xz are. Time them once."""
    packages = inspect_all(common.debs_in(directory))
    entries = [entry_for(pkg, COMPONENT) for pkg in packages]
    raw = render_packages(entries)
    with common.stopwatch() as t:
        files = build_packages_files(f"{COMPONENT}/binary-amd64", entries)
    sizes = {f.path.rsplit("/", 1)[1]: f.size for f in files}
    return len(raw), t[0].wall, sizes["Packages.gz"], sizes["Packages.xz"]


def profile_inspect(directory: Path, limit: int = 2000) -> str:
    files = common.debs_in(directory)[:limit]
    prof = cProfile.Profile(time.process_time)  # CPU: the machine may be shared
    prof.enable()
    render(inspect_debs(files))  # what each inspect_all process runs, then the rendering
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
    return out.getvalue()


# -- report -----------------------------------------------------------------------------------


def report(rows: list[Row], counts: dict[str, int]) -> None:
    by_corpus: dict[str, list[Row]] = {}
    for row in rows:
        by_corpus.setdefault(row.corpus, []).append(row)
    for label, group in by_corpus.items():
        n = counts[label]
        best = min(r.wall for r in group if _ours(r))
        floor = min(r.wall for r in group if r.tool.startswith("sha256sum"))
        print(f"\n### {label}\n")
        print(
            common.table(
                ["tool", "wall", "CPU", ".debs/s", "÷ best debops-ci", "÷ sha256sum floor", "note"],
                [
                    [
                        r.tool,
                        common.secs(r.wall),
                        common.secs(r.cpu) if r.cpu else "-",
                        f"{n / r.wall:,.0f}",
                        common.ratio(r.wall, best),
                        common.ratio(r.wall, floor),
                        r.note,
                    ]
                    for r in group
                ],
            )
        )
    print("\n### Goals\n")
    goal_rows: list[list[str]] = []
    for label, group in by_corpus.items():
        tools = {r.tool: r for r in group}
        top = tools[INSPECT_ALL]
        ftp = tools[FTP]
        goal_rows.append(
            [
                label,
                f"vs apt-ftparchive: {common.ratio(ftp.wall, top.wall)} as fast "
                f"(CPU {common.secs(top.cpu)} vs {common.secs(ftp.cpu)})",
                "≥ 1x",
                "met" if top.wall <= ftp.wall else "MISSED",
            ]
        )
        scan = tools.get("dpkg-scanpackages")
        if scan is not None:
            goal_rows.append(
                [
                    label,
                    f"vs dpkg-scanpackages: {common.ratio(scan.wall, top.wall)} as fast"
                    + (" (extrapolated)" if scan.note else ""),
                    "≥ 20x",
                    "met" if scan.wall >= 20 * top.wall else "MISSED",
                ]
            )
        if label.startswith("large"):
            for name, sha in tools.items():
                if not name.startswith("sha256sum"):
                    continue
                goal_rows.append(
                    [
                        label,
                        f"vs {name}: {common.ratio(top.wall, sha.wall)} its time",
                        "≤ 1.5x",
                        "met" if top.wall <= 1.5 * sha.wall else "MISSED",
                    ]
                )
    print(
        common.table(["corpus", "measured (inspect_all, as upload)", "goal", "verdict"], goal_rows)
    )


def _ours(row: Row) -> bool:
    """An arm of this tree (not another revision's)."""
    return row.tool.startswith("debops-ci") and " at " not in row.tool


PEER_COMMANDS = (
    "sha256sum -- DIR/*.deb  (and the files split in two, one sha256sum each)",
    "dpkg-scanpackages DIR > Packages   (run from DIR's parent)",
    "apt-ftparchive packages DIR > Packages   (run from DIR's parent; no cache database)",
)


def print_commands(variants: Sequence[Variant]) -> None:
    print("\nPeers, as run (warm page cache, one after the other, interleaved by round):\n")
    for command in PEER_COMMANDS:
        print(f"    {command}")
    print(
        "\ndebops-ci, in this process: `render_packages(entry_for(p, 'main') for p in "
        "inspect_all(files))` (`debops_ci.archive.inspect.inspect_all`, what `debops-ci upload` "
        "runs); the output is checked to carry apt-ftparchive's SHA256 for every package."
    )
    for variant in variants:
        print(
            f"Revision {variant.label}: the same call in a subprocess, "
            f"`PYTHONPATH=<git archive {variant.label} src> python -c …` (bench/index.py)."
        )


def _work_label(label: str, n: int, size: int) -> str:
    if label.startswith("small"):
        return f"index {n:,} small .debs"
    return f"index {n:,} large .debs ({size / (1 << 20):.0f} MiB)"


def json_rows(
    rows: list[Row], counts: dict[str, int], sizes: dict[str, int], load: str
) -> list[common.ReportRow]:
    out: list[common.ReportRow] = []
    cores = len(os.sched_getaffinity(0))
    for label in counts:
        tools = {r.tool: r for r in rows if r.corpus == label}
        ours, ftp = tools[INSPECT_ALL], tools[FTP]
        out.append(
            common.ReportRow(
                work=_work_label(label, counts[label], sizes[label]),
                peer="apt-ftparchive packages",
                peer_seconds=round(ftp.wall, 3),
                ours=f"debops-ci inspect_all ({cores} processes)",
                ours_seconds=round(ours.wall, 3),
                goal="at least as fast",
                goal_ratio=1.0,
                detail=(
                    f"CPU {ours.cpu:.2f} s vs {ftp.cpu:.2f} s; median of the interleaved "
                    f"rounds; load {load}"
                ),
                peer_command="apt-ftparchive packages DIR > Packages",
                ours_command="python -m bench.index (inspect_all + render_packages, in process)",
            )
        )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,2000,10000", help="small-corpus sizes")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--quick", action="store_true", help="skip dpkg-scanpackages > 2,000")
    parser.add_argument("--no-scan", action="store_true", help="skip dpkg-scanpackages")
    parser.add_argument("--no-large", action="store_true", help="skip the 1-5 MiB corpus")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="REV",
        help="also time inspect_all of this git revision's src/ (repeatable)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile inspect_deb at 2,000")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the report rows here")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        parser.error(f"--sizes takes numbers separated by commas, not {args.sizes!r}")
    if args.runs < 1 or any(n < 1 for n in sizes):
        parser.error("--runs and --sizes must be at least 1")

    common.print_facts()
    load_start = common.load_average()
    corpora: list[tuple[str, Path]] = [(f"small, N = {n:,}", common.small_corpus(n)) for n in sizes]
    if not args.no_large:
        corpora.append(("large, N = 200 (1-5 MiB each)", common.large_corpus(200)))
    counts = {label: len(common.debs_in(d)) for label, d in corpora}
    total = {label: common.total_size(common.debs_in(d)) for label, d in corpora}

    rows: list[Row] = []
    scan_base: tuple[int, float] | None = None
    with common.workdir("index") as work, tempfile.TemporaryDirectory() as exported:
        variants = [export_variant(rev, Path(exported)) for rev in args.variant]
        for label, directory in corpora:
            n = counts[label]
            if args.no_scan:
                scan = "skip"
            else:
                scan = "run" if not args.quick or n <= 2000 else "extrapolate"
            rows += bench_corpus(label, directory, args.runs, scan, scan_base, work, variants)
            if label.startswith("small") and scan == "run":
                measured = [r for r in rows if r.corpus == label and r.tool == "dpkg-scanpackages"]
                scan_base = (n, measured[0].wall)

    print("## Scenario 1: indexing .debs into a Packages file\n")
    print(f"Median of {args.runs} runs (dpkg-scanpackages: 1 run); warm page cache.")
    print_commands(variants)
    report(rows, counts)

    biggest = max(sizes) if sizes else 0
    if biggest:
        raw, wall, gz, xz = compression_cost(common.small_corpus(biggest))
        print(
            f"\nCompressing the {biggest:,}-package index (not part of the race above; "
            "`build_packages_files`: gzip -9 and xz, as the library sets them): "
            f"{common.human_bytes(raw)} → "
            f".gz {common.human_bytes(gz)} + .xz {common.human_bytes(xz)} in {common.secs(wall)}"
        )
    if args.profile:
        print(
            "\ncProfile (CPU time), `inspect_debs` (what each inspect_all process runs) and "
            "the rendering, in one process, first 2,000 small .debs:\n"
        )
        print(profile_inspect(common.small_corpus(2000)))

    common.print_load_footer()
    if args.json:
        load = f"{load_start} → {common.load_average()}"
        common.write_json_rows(args.json, json_rows(rows, counts, total, load))


if __name__ == "__main__":
    main()
