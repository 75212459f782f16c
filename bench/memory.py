"""Goal 6 of issue 11: peak RSS of one incremental publish as the suite grows.

For each store (a local directory and a bucket of one local SeaweedFS), one suite is
filled to N = 2,000, then 10,000, then 20,000 small .debs (setup: `debops-ci upload` of
the packages it lacks). At each N one more package is added with the CLI, as a user
runs it (`debops-ci upload ONE.deb`, key in DEB_GPG_KEY), and that process's own peak
resident set is read from `wait4` (ru_maxrss of that child alone). The baseline is
the peak RSS of `debops-ci --version` (the interpreter and the CLI's table, nothing
else). Printed per N: the uncompressed Packages index (bytes, entries), peak RSS,
RSS - baseline, and (RSS - baseline) / Packages bytes.

"Flat beyond the index" means RSS - baseline - k x Packages bytes is about the same at
every N: the script fits k and that constant (least squares over the sizes) per store
and prints the residuals.

`--trace` runs one more publish in this process, into the local suite at the largest
N, under `tracemalloc`, and prints the allocation sites live at the traced peak (a
sampler thread snapshots whenever the traced total passes the last snapshot by 5 %).
Usage:

    python -m bench.memory [--sizes 2000,10000,20000] [--stores local,s3] [--runs 1]
                           [--trace] [--json PATH]

A 20,000 corpus needs 10,000 more .debs than the other scenarios: generated once
(about 80 s) and cached like the others.
"""

from __future__ import annotations

import argparse
import lzma
import sys
import threading
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from tests.support.gpgkeys import GpgKey

SUITE = "unstable"
INDEX = f"dists/{SUITE}/main/binary-amd64/Packages.xz"
BASELINE_RUNS = 3
# What "flat beyond the index" allows: the fitted constant may move by this much
# between sizes once k x Packages is taken out, and k itself (bytes of peak RSS per
# byte of uncompressed index) at most K_MAX: the index read, parsed into entries
# (about twice its bytes as Python objects) and rendered once, with nothing else
# growing in N. Needs at least MIN_SIZES sizes (two points always fit a line).
FLAT_TOLERANCE = 8 * common.MIB
K_MAX = 4.0
MIN_SIZES = 3
JSON_SIZE = 10000  # the size issue 11 names


@dataclass(frozen=True)
class Point:
    """One measured incremental upload into a suite of `entries` packages."""

    store: str
    n: int
    entries: int
    packages_bytes: int
    max_rss: int
    wall: float
    cpu: float


@dataclass(frozen=True)
class Fit:
    """RSS - baseline ~ constant + k x Packages bytes, least squares over the sizes."""

    k: float
    constant: float
    residuals: tuple[float, ...]

    @property
    def spread(self) -> float:
        return max(self.residuals) - min(self.residuals) if self.residuals else 0.0


@dataclass
class Trace:
    peak: int = 0  # tracemalloc's peak of traced bytes
    at_snapshot: int = 0
    top: list[tuple[str, int, int]] = field(default_factory=list)  # site, bytes, blocks
    by_file: list[tuple[str, int]] = field(default_factory=list)
    # Per storage operation: the peak of traced bytes since the previous one, and the
    # traced bytes when it started: which step of the publish holds the most.
    steps: list[tuple[str, int, int]] = field(default_factory=list)  # op, peak, current


def fit(points: Sequence[Point], baseline: int) -> Fit:
    xs = [float(p.packages_bytes) for p in points]
    ys = [float(p.max_rss - baseline) for p in points]
    if len(points) < 2:
        return Fit(0.0, ys[0] if ys else 0.0, (0.0,) * len(ys))
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    c = my - k * mx
    return Fit(k, c, tuple(y - k * x - c for x, y in zip(xs, ys, strict=True)))


def baseline_rss() -> int:
    """Peak RSS of `debops-ci --version`: the smallest of a few runs."""
    return min(
        common.run_measured([common.debops_ci_exe(), "--version"]).max_rss
        for _ in range(BASELINE_RUNS)
    )


def _index_of(data: bytes) -> tuple[int, int]:
    plain = lzma.decompress(data)
    return len(plain), common.stanza_count(plain)


def grow_and_measure(
    store: str,
    sizes: Sequence[int],
    key: GpgKey,
    target: Path | tuple[common.SeaweedServer, str],
    extras: list[Path],
    runs: int,
) -> list[Point]:
    """Fill one suite size by size; at each size measure `runs` one-package uploads."""
    env = common.bench_env({"DEB_GPG_KEY": key.private_armored})

    def upload_cmd(files: Sequence[Path]) -> list[str]:
        if isinstance(target, Path):
            return common.debops_local_upload_cmd(target, files)
        server, bucket = target
        return common.debops_upload_cmd(bucket, server.endpoint_url, files)

    def index() -> tuple[int, int]:
        if isinstance(target, Path):
            return _index_of((target / INDEX).read_bytes())
        server, bucket = target
        body = server.client().get_object(Bucket=bucket, Key=INDEX)["Body"].read()
        return _index_of(bytes(body))

    have: set[str] = set()
    points = []
    for n in sizes:
        files = common.debs_in(common.small_corpus(n))
        missing = [f for f in files if f.name not in have]
        common.say(f"[{store}] filling the suite to {n:,}: uploading {len(missing):,} .debs …")
        with common.stopwatch() as t:
            common.run(upload_cmd(missing), env=env)
        common.say(f"[{store}]   {common.secs(t[0].wall)}")
        have.update(f.name for f in missing)
        for _ in range(runs):
            time.sleep(1.05)  # untimed: the next commit gets a new Date second anyway
            child = common.run_measured(upload_cmd([extras.pop(0)]), env=env)
            size, entries = index()
            points.append(Point(store, n, entries, size, child.max_rss, child.wall, child.cpu))
            common.say(
                f"[{store}] N={n:,}: peak RSS {common.human_bytes(child.max_rss)}, "
                f"Packages {common.human_bytes(size)} ({entries:,} entries), "
                f"{common.secs(child.wall)}"
            )
    return points


def trace_publish(archive_dir: Path, key: GpgKey, deb: Path) -> Trace:
    """One library publish into `archive_dir` under tracemalloc; the sites live at the
    traced peak."""
    from debops_ci.archive.publish import publish
    from debops_ci.archive.session import Archive
    from debops_ci.archive.settings import SuiteSettings
    from debops_ci.signing import Signer
    from debops_ci.storage import open_store

    result = Trace()
    best: list[tracemalloc.Snapshot] = []
    done = threading.Event()

    def sampler() -> None:
        while not done.wait(0.002):
            current, _ = tracemalloc.get_traced_memory()
            if current > result.at_snapshot * 1.05:
                snap = tracemalloc.take_snapshot()
                result.at_snapshot = current
                best[:] = [snap]

    def observe(verb: str, key: str, detail: str) -> None:
        if tracemalloc.is_tracing():
            current, peak = tracemalloc.get_traced_memory()
            result.steps.append((f"{verb} {key}", peak, current))
            tracemalloc.reset_peak()

    time.sleep(1.05)
    with Signer.open({"DEB_GPG_KEY": key.private_armored}) as signer:
        store = open_store(str(archive_dir), observer=observe)
        tracemalloc.start(1)
        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        try:
            with Archive(store, signer=signer) as archive:
                publish(archive, SuiteSettings(suite=SUITE), [deb])
        finally:
            done.set()
            thread.join()
            current, peak = tracemalloc.get_traced_memory()
            result.steps.append(("(end of publish)", peak, current))
            result.peak = max(p for _, p, _ in result.steps)
            tracemalloc.stop()
    if best:
        ignore = [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, __file__),
        ]
        snap = best[0].filter_traces(ignore)
        for stat in snap.statistics("lineno")[:15]:
            frame = stat.traceback[0]
            result.top.append((f"{_short(frame.filename)}:{frame.lineno}", stat.size, stat.count))
        result.by_file = [
            (_short(s.traceback[0].filename), s.size) for s in snap.statistics("filename")[:8]
        ]
    return result


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def json_rows(
    points: Sequence[Point], fits: dict[str, Fit], baseline: int
) -> list[common.ReportRow]:
    """One row per store at the size issue 11 names (else the largest measured)."""
    rows = []
    for store, f in fits.items():
        mine = [p for p in points if p.store == store]
        at = [p for p in mine if p.n == JSON_SIZE] or [max(mine, key=lambda p: p.n)]
        p = max(at, key=lambda q: q.max_rss)
        where = "a local directory" if store == "local" else "S3"
        sizes = ", ".join(f"{q.n:,}" for q in mine)
        rows.append(
            common.ReportRow(
                work=f"peak RSS, incremental publish into {p.n:,} ({where})",
                ours=f"debops-ci upload, peak RSS {common.human_bytes(p.max_rss)}",
                ours_seconds=p.wall,
                goal=f"flat beyond the index: RSS - baseline ≈ c + k x Packages, k ≤ {K_MAX:g}",
                met=(
                    f.spread <= FLAT_TOLERANCE and f.k <= K_MAX if len(mine) >= MIN_SIZES else None
                ),
                detail=(
                    f"RSS - baseline {common.human_bytes(p.max_rss - baseline)} "
                    f"(baseline {common.human_bytes(baseline)}, `--version`); Packages "
                    f"{common.human_bytes(p.packages_bytes)}, {p.entries:,} entries; fit over "
                    f"N = {sizes}: k = {f.k:.2f} x Packages + "
                    f"{common.human_bytes(f.constant)}, residuals within "
                    f"{common.human_bytes(f.spread)} (tolerance "
                    f"{common.human_bytes(FLAT_TOLERANCE)})"
                ),
                ours_command="DEB_GPG_KEY=… debops-ci upload --archive DIR|s3://B ONE.deb",
            )
        )
    return rows


def print_tables(points: Sequence[Point], fits: dict[str, Fit], baseline: int) -> None:
    print("## Memory: peak RSS of one incremental publish (goal 6)\n")
    print(
        f"Baseline: peak RSS of `debops-ci --version` = {common.human_bytes(baseline)} "
        f"(smallest of {BASELINE_RUNS}). Each row: one `debops-ci upload ONE.deb` into a "
        "suite of N packages; peak RSS is that process's ru_maxrss (wait4). Packages = "
        "the uncompressed index after the upload.\n"
    )
    rows = []
    for p in points:
        extra = p.max_rss - baseline
        f = fits[p.store]
        residual = f.residuals[[q for q in points if q.store == p.store].index(p)]
        rows.append(
            [
                p.store,
                f"{p.n:,}",
                f"{p.entries:,}",
                f"{p.packages_bytes:,}",
                common.human_bytes(p.max_rss),
                common.human_bytes(extra),
                f"{extra / p.packages_bytes:.2f}" if p.packages_bytes else "-",
                f"{residual / common.MIB:+.1f} MiB",
                common.secs(p.wall),
            ]
        )
    print(
        common.table(
            [
                "store",
                "N",
                "entries",
                "Packages bytes",
                "peak RSS",
                "RSS - baseline",
                "(RSS - baseline) / Packages",
                "residual of the fit",
                "wall",
            ],
            rows,
        )
    )
    print()
    for store, f in fits.items():
        print(
            f"- {store}: RSS ≈ baseline + {common.human_bytes(f.constant)} + {f.k:.2f} x "
            f"Packages bytes; residuals within {common.human_bytes(f.spread)}"
        )


def print_trace(trace: Trace, n: int) -> None:
    print(
        f"\n### Where the memory goes: one library publish into the local suite of {n:,} "
        f"(tracemalloc)\n\nTraced peak {common.human_bytes(trace.peak)}; the snapshot below "
        f"was taken at {common.human_bytes(trace.at_snapshot)} traced.\n"
    )
    print(
        common.table(
            ["allocation site (live at the snapshot)", "bytes", "blocks"],
            [[site, common.human_bytes(size), f"{count:,}"] for site, size, count in trace.top],
        )
    )
    print()
    print(
        common.table(
            ["file", "bytes"],
            [[name, common.human_bytes(size)] for name, size in trace.by_file],
        )
    )
    steps = sorted(trace.steps, key=lambda s: s[1], reverse=True)[:8]
    print(
        "\nThe steps with the highest traced peak (the peak between the previous storage "
        "operation and the start of this one):\n"
    )
    print(
        common.table(
            ["before storage operation", "traced peak", "traced at its start"],
            [
                [
                    op if len(op) < 80 else op[:77] + "…",
                    common.human_bytes(p),
                    common.human_bytes(c),
                ]
                for op, p, c in steps
            ],
        )
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,10000,20000", help="suite sizes, ascending")
    parser.add_argument("--stores", default="local,s3", help="local, s3 or both")
    parser.add_argument("--runs", type=int, default=1, help="measured uploads per size")
    parser.add_argument("--trace", action="store_true", help="tracemalloc one library publish")
    parser.add_argument("--json", metavar="PATH", help="also write the report rows (JSON) here")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    stores = [s for s in args.stores.split(",") if s]
    if not sizes or any(s not in ("local", "s3") for s in stores) or not stores:
        parser.error("--sizes needs at least one size; --stores is local, s3 or local,s3")

    common.print_facts()
    common.use_bench_env_in_process()
    extras = common.extra_debs("mem", len(stores) * len(sizes) * args.runs + 1)
    points: list[Point] = []
    trace: Trace | None = None
    with common.workdir("memory") as work, common.signing_key() as key:
        baseline = baseline_rss()
        common.say(f"baseline (debops-ci --version): {common.human_bytes(baseline)}")
        local_dir = work / "local-archive"
        if "local" in stores:
            points += grow_and_measure("local", sizes, key, local_dir, extras, args.runs)
        if "s3" in stores:
            with common.seaweed(work) as server:
                bucket = server.create_bucket("memory")
                points += grow_and_measure("s3", sizes, key, (server, bucket), extras, args.runs)
        if args.trace and "local" in stores:
            common.say("tracemalloc: one library publish into the local suite …")
            trace = trace_publish(local_dir, key, extras.pop(0))

    fits = {s: fit([p for p in points if p.store == s], baseline) for s in stores}
    print_tables(points, fits, baseline)
    if trace is not None:
        print_trace(trace, sizes[-1])
    print(
        "\nCommands: `DEB_GPG_KEY=… debops-ci upload --archive DIR --distro unstable ONE.deb` "
        "and `… --archive s3://BUCKET --endpoint-url URL …`; baseline `debops-ci --version`. "
        "No peer measured."
    )
    common.print_load_footer()
    if args.json:
        common.write_json_rows(args.json, json_rows(points, fits, baseline))


if __name__ == "__main__":
    main()
