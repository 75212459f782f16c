"""Scenario 4: many publishers into one suite at once, against one publisher.

The same 200 small .debs go into a fresh bucket of one local SeaweedFS in three ways:

- concurrent: 8 publisher processes, each publishing its 25 packages one upload at a
  time, all into suite `unstable` at once (lock contention, compare-and-swap rebases);
- serial: one process publishing the 200 packages one upload at a time;
- batch: one upload of all 200.

Two modes (default: cli; `--mode both` takes about twice as long):

- `cli`: every upload is its own `debops-ci upload` process, as CI jobs run it
  (startup, key import and the storage probe are paid by every upload);
- `library`: each publisher is a Python process that opens its store and signer once
  and calls `publish()` once per upload (a fresh Archive each time). Setup happens
  before a common start barrier and is not timed. This mode also records when each
  publisher held the suite lock (SuiteLock.acquire/release are wrapped in the worker
  processes, the library is not changed), to show how much of the run the lock sat
  free while publishers were waiting.

After every arm, `debops-ci verify` (signatures, indexes, every file) must pass and the
suite must list exactly the 200 packages. Usage:

    python -m bench.contention [--publishers 8] [--per 25] [--mode cli|library|both]
                               [--latency-ms 0,30] [--concurrent-only] [--json PATH]

`--json PATH` writes the rows of bench/report.py (see bench.common.ReportRow): one per
concurrent arm and latency, wall time as "ours", no peer; the goal of issue 11 is
commits ≤ uploads / 2 and wall ≤ 1.3x the CPU floor.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from debops_ci.archive.lock import SuiteLock
from debops_ci.archive.publish import publish
from debops_ci.archive.session import Archive
from debops_ci.archive.settings import SuiteSettings
from debops_ci.signing import Signer
from debops_ci.storage import open_store
from tests.support.faultproxy import FaultProxy
from tests.support.gpgkeys import GpgKey

SUITE = "unstable"


@dataclass
class WorkerReport:
    """What one publisher did: per upload its wall time and commit attempts."""

    durations: list[float] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    lock_waits: int = 0  # uploads that printed "waiting for the lock"
    commits: int = 0  # InRelease writes (group commit: fewer than uploads)
    folded: int = 0  # uploads committed by the lock holder (group commit)
    rebases: int = 0  # commits that lost the compare-and-swap and went round again
    held: list[tuple[float, float]] = field(default_factory=list)  # lock held, monotonic
    end: float = 0.0


@dataclass
class Arm:
    mode: str
    name: str
    publishers: int
    uploads: int
    wall: float
    workers: list[WorkerReport]
    cpu: float = 0.0  # CPU seconds of every upload process (user + system)

    def all(self, attr: str) -> list[Any]:
        return [v for w in self.workers for v in getattr(w, attr)]


# -- library mode ------------------------------------------------------------------------


def _instrument_lock(report: WorkerReport) -> None:
    """Record when this process holds a suite lock (in the worker process only)."""
    acquire, release = SuiteLock.acquire, SuiteLock.release
    since: dict[int, float] = {}

    def timed_acquire(self: SuiteLock) -> None:
        acquire(self)
        since[id(self)] = time.monotonic()

    def timed_release(self: SuiteLock) -> None:
        release(self)
        report.held.append((since.pop(id(self), time.monotonic()), time.monotonic()))

    setattr(SuiteLock, "acquire", timed_acquire)  # noqa: B010
    setattr(SuiteLock, "release", timed_release)  # noqa: B010


def library_worker(
    batches: list[list[Path]],
    bucket: str,
    endpoint_url: str,
    key_armored: str,
    barrier: Barrier,
    results: multiprocessing.Queue[WorkerReport],
) -> None:
    common.use_bench_env_in_process()
    report = WorkerReport()
    _instrument_lock(report)
    waited = False

    def log(message: str) -> None:
        nonlocal waited
        if "waiting for the lock" in message:
            waited = True
        if "rebasing" in message:
            report.rebases += 1

    store = open_store(f"s3://{bucket}", endpoint_url=endpoint_url)
    settings = SuiteSettings(suite=SUITE)
    with Signer.open({"DEB_GPG_KEY": key_armored}) as signer:
        barrier.wait()
        for batch in batches:
            waited = False
            start = time.monotonic()
            with Archive(store, signer=signer, log=log) as archive:
                result = publish(archive, settings, batch)
            report.durations.append(time.monotonic() - start)
            report.attempts.append(result.attempts)
            report.commits += result.commits
            report.folded += result.by_other
            report.lock_waits += waited
        report.end = time.monotonic()
    results.put(report)


def run_library(
    endpoint_url: str, key: GpgKey, plan: list[list[list[Path]]], bucket: str
) -> tuple[float, list[WorkerReport]]:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(plan) + 1)
    results: multiprocessing.Queue[WorkerReport] = ctx.Queue()
    procs = [
        ctx.Process(
            target=library_worker,
            args=(batches, bucket, endpoint_url, key.private_armored, barrier, results),
        )
        for batches in plan
    ]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    start = time.monotonic()
    reports = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a publisher process failed (exit {p.exitcode})")
    for r in reports:
        r.held = [(a - start, b - start) for a, b in r.held]
    return max(r.end for r in reports) - start, reports


# -- CLI mode --------------------------------------------------------------------------------

_ATTEMPTS_RE = re.compile(r"(\d+) attempt\(s\)")
_COMMITS_RE = re.compile(r"(\d+) commit\(s\)")


def run_cli(
    endpoint_url: str, key: GpgKey, plan: list[list[list[Path]]], bucket: str
) -> tuple[float, list[WorkerReport]]:
    env = common.bench_env({"DEB_GPG_KEY": key.private_armored})
    reports = [WorkerReport() for _ in plan]
    errors: list[BaseException] = []

    def worker(batches: list[list[Path]], report: WorkerReport) -> None:
        try:
            for batch in batches:
                start = time.monotonic()
                proc = common.run(common.debops_upload_cmd(bucket, endpoint_url, batch), env=env)
                report.durations.append(time.monotonic() - start)
                out = proc.stdout.decode()
                found = _ATTEMPTS_RE.search(out)
                report.attempts.append(int(found.group(1)) if found else 0)
                commits = _COMMITS_RE.search(out)
                report.commits += int(commits.group(1)) if commits else 0
                report.folded += "group commit" in out
                stderr = proc.stderr.decode()
                report.lock_waits += "waiting for the lock" in stderr
                report.rebases += stderr.count("rebasing")
            report.end = time.monotonic()
        except BaseException as exc:
            errors.append(exc)

    start = time.monotonic()
    threads = [
        threading.Thread(target=worker, args=(b, r)) for b, r in zip(plan, reports, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return max(r.end for r in reports) - start, reports


# -- arms -------------------------------------------------------------------------------------


def check_archive(
    server: common.SeaweedServer, bucket: str, key: GpgKey, work: Path, n: int
) -> None:
    pub = work / "archive-key.asc"
    pub.write_text(key.public_armored)
    common.debops_verify(bucket, server.endpoint_url, pub)
    store = open_store(f"s3://{bucket}", endpoint_url=server.endpoint_url)
    with Archive(store, trusted_keys=[key.public_armored]) as archive:
        count = len(archive.read(SUITE).all_entries())
    if count != n:
        raise SystemExit(f"s3://{bucket}: the suite lists {count} packages, not {n}")


def lock_busy(held: list[tuple[float, float]], wall: float) -> float:
    """Fraction of the run during which some publisher held the lock."""
    busy = 0.0
    last_end = 0.0
    for a, b in sorted(held):
        a = max(a, last_end)
        if b > a:
            busy += b - a
            last_end = b
    return busy / wall if wall else 0.0


# Issue 11, goal 1: at most one commit per two uploads, wall within 1.3x the CPU floor.
COMMIT_SHARE_GOAL = 0.5
FLOOR_GOAL = 1.3


def json_rows(arms: Sequence[tuple[float, Arm]], cores: int) -> list[common.ReportRow]:
    """One report row per concurrent arm (the serial and batch arms are context)."""
    rows = []
    for latency, arm in arms:
        if arm.publishers < 2:
            continue
        commits = sum(w.commits for w in arm.workers)
        floor = arm.cpu / cores
        over = arm.wall / floor if floor else float("inf")
        per = arm.uploads // arm.publishers
        rows.append(
            common.ReportRow(
                work=(
                    f"{arm.publishers} jobs x {per} one-package uploads into one suite, "
                    f"+{latency:g} ms per request"
                ),
                ours=f"debops-ci upload ({arm.mode}), group commit",
                ours_seconds=arm.wall,
                goal=f"commits ≤ uploads / 2, wall ≤ {FLOOR_GOAL:g}x CPU floor",
                met=commits <= arm.uploads * COMMIT_SHARE_GOAL and over <= FLOOR_GOAL,
                detail=(
                    f"commits {commits} / {arm.uploads} uploads; CPU floor "
                    f"{common.secs(floor)} ({cores} cores); wall / floor {over:.2f}x; "
                    f"verify clean, {arm.uploads} packages listed"
                ),
                ours_command=(
                    f"{arm.publishers} x (for each of {per} .debs: DEB_GPG_KEY=… debops-ci "
                    "upload --archive s3://BUCKET --endpoint-url URL --distro unstable ONE.deb)"
                    if arm.mode == "cli"
                    else f"{arm.publishers} processes x {per} publish() calls "
                    "(python -m bench.contention --mode library)"
                ),
            )
        )
    return rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publishers", type=int, default=8)
    parser.add_argument("--per", type=int, default=25, help="packages per publisher")
    parser.add_argument("--mode", choices=("both", "cli", "library"), default="cli")
    parser.add_argument(
        "--latency-ms",
        default="0,30",
        help="comma-separated per-request latencies to emulate with a delaying proxy",
    )
    parser.add_argument(
        "--concurrent-only", action="store_true", help="skip the serial and batch arms"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the report rows (JSON) here")
    args = parser.parse_args(argv)
    total = args.publishers * args.per
    latencies = [float(x) for x in str(args.latency_ms).split(",") if x.strip()]
    cores = os.cpu_count() or 1

    common.print_facts()
    common.use_bench_env_in_process()
    files = common.debs_in(common.small_corpus(total))
    common.warm_cache(files)
    modes = ["cli", "library"] if args.mode == "both" else [args.mode]
    runners: dict[str, Callable[..., tuple[float, list[WorkerReport]]]] = {
        "cli": run_cli,
        "library": run_library,
    }
    arms: list[tuple[float, Arm]] = []
    with (
        common.workdir("contention") as work,
        common.signing_key() as key,
        common.seaweed(work) as server,
    ):
        for latency in latencies:
            proxy = FaultProxy(server.endpoint_url) if latency else None
            if proxy is not None:
                proxy.latency = latency / 1000
            endpoint = proxy.url if proxy is not None else server.endpoint_url
            for mode in modes:
                plans = [
                    (
                        f"{args.publishers} concurrent publishers x {args.per}, one upload each",
                        [
                            [[f] for f in files[i :: args.publishers]]
                            for i in range(args.publishers)
                        ],
                    ),
                    (f"1 publisher, {total} uploads one at a time", [[[f] for f in files]]),
                    (f"1 upload of all {total}", [[list(files)]]),
                ]
                if args.concurrent_only:
                    plans = plans[:1]
                for i, (name, plan) in enumerate(plans):
                    bucket = server.create_bucket(f"contention-{mode}-{i}-{int(latency)}")
                    common.say(f"[{mode}, +{latency:g} ms] {name} …")
                    cpu_before = _children_cpu()
                    wall, reports = runners[mode](endpoint, key, plan, bucket)
                    cpu = _children_cpu() - cpu_before
                    common.say(f"[{mode}] {name}: {common.secs(wall)}; verifying …")
                    check_archive(server, bucket, key, work, total)
                    uploads = sum(len(b) for b in plan)
                    arms.append((latency, Arm(mode, name, len(plan), uploads, wall, reports, cpu)))
            if proxy is not None:
                proxy.stop()

    print(f"## Scenario 4: {args.publishers} concurrent publishers vs one\n")
    print(
        f"{total} small .debs into one suite of a fresh bucket per arm, local SeaweedFS "
        "(optionally behind a proxy adding a per-request latency). Every arm ends with "
        f"`debops-ci verify` passing and exactly {total} packages listed. CPU floor = "
        f"the uploads' summed CPU time / {cores} cores.\n"
    )
    rows = []
    for latency, arm in arms:
        durations = sorted(arm.all("durations"))
        held = arm.all("held")
        commits = sum(w.commits for w in arm.workers)
        floor = arm.cpu / cores
        rows.append(
            [
                arm.mode,
                f"+{latency:g} ms",
                arm.name,
                common.secs(arm.wall),
                common.secs(durations[len(durations) // 2]),
                f"{commits} / {arm.uploads}",
                str(sum(w.folded for w in arm.workers)),
                str(sum(w.rebases for w in arm.workers)),
                common.secs(floor),
                f"{arm.wall / floor:.2f}x" if floor else "-",
                f"{lock_busy(held, arm.wall):.0%}" if held else "-",
            ]
        )
    print(
        common.table(
            [
                "mode",
                "latency",
                "arm",
                "total",
                "upload p50",
                "commits / uploads",
                "committed by the holder",
                "rebases",
                "CPU floor",
                "wall / floor",
                "lock held (share of run)",
            ],
            rows,
        )
    )

    print(
        "\nCommands: every upload is `DEB_GPG_KEY=… debops-ci upload --archive s3://BUCKET "
        "--endpoint-url URL --distro unstable ONE.deb` (cli mode); no peer (deb-s3 and aptly "
        "lose or corrupt concurrent updates, issue 11)."
    )
    common.print_load_footer()
    if args.json:
        common.write_json_rows(args.json, json_rows(arms, cores))


if __name__ == "__main__":
    main()
