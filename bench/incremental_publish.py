"""Scenario 3: publish one more .deb into an archive that already holds N packages.

For N = 2,000 and 10,000 (each its own bucket on one local SeaweedFS), after the archive
has been filled (setup, timed but not the point):

- debops-ci CLI, `debops-ci upload --archive s3://B --endpoint-url … ONE.deb` (real key
  in DEB_GPG_KEY): median wall time of `--runs` publishes, each adding a new package;
- debops-ci library, `publish(Archive(store, signer=…), SuiteSettings(), [ONE.deb])` in
  this process (store and signer opened once, a fresh Archive per publish, as the CLI
  makes): median wall time, and the storage operations counted by the store's observer;
- aptly, `aptly repo add bench ONE.deb` + `aptly publish update unstable s3:bench:`:
  median wall time of both steps.

Requests and bytes on the wire: one more publish of each peer goes through a counting
HTTP proxy on 127.0.0.1 (bench.common.CountingProxy) placed between the client and
SeaweedFS; it counts every request and the bytes of request and response (line,
headers, body), so debops-ci and aptly are measured the same way.

The same again into a local directory (an archive of N packages per peer, filled the
same way), runs interleaved: `debops-ci upload --archive DIR ONE.deb` against `aptly repo
add` + `aptly publish update … filesystem:bench:` (a FileSystemPublishEndpoints entry in
aptly.conf, aptly's default hard links). And the start-up of the console script:
`debops-ci --version`, best of 10. Usage:

    python -m bench.incremental_publish [--sizes 2000,10000] [--runs 3] [--timeline]
                                        [--profile] [--no-local] [--json PATH]

`--json PATH` writes the rows of bench/report.py (see bench.common.ReportRow).
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import lzma
import pstats
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from debops_ci.archive.publish import publish
from debops_ci.archive.session import Archive
from debops_ci.archive.settings import SuiteSettings
from debops_ci.signing import Signer
from debops_ci.storage import S3Store, open_store
from tests.support.gpgkeys import GpgKey

SUITE = "unstable"


@dataclass
class Measured:
    tool: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)  # this process + waited-for children
    steps: dict[str, list[float]] = field(default_factory=dict)
    observed: Counter[str] = field(default_factory=Counter)  # debops-ci library only
    traffic: common.Traffic | None = None
    proxied_wall: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return common.median(self.walls)


@dataclass
class SizeReport:
    n: int
    setup: dict[str, float]
    rows: list[Measured]
    budget: dict[str, int]
    timeline: list[tuple[float, str, str]]
    profile: str = ""
    local: LocalReport | None = None


@dataclass
class LocalReport:
    """The local-directory arm at one N: debops-ci's CLI against aptly's filesystem
    endpoint, runs interleaved."""

    setup: dict[str, float]
    ours: Measured
    aptly: Measured


# Goals of issue 11 for one package added to a suite on S3: ratio against aptly by size,
# at most this many requests.
S3_GOAL_RATIO = {2000: 2.0, 10000: 5.0}
REQUEST_GOAL = 15
VERSION_GOAL_SECONDS = 0.15
VERSION_RUNS = 10

APTLY_S3_COMMANDS = (
    "aptly -config=aptly.conf repo add bench ONE.deb && aptly -config=aptly.conf publish "
    "update -batch -skip-contents -skip-bz2 -gpg-key=FPR unstable s3:bench:"
)
APTLY_LOCAL_COMMANDS = (
    "aptly -config=aptly.conf repo add bench ONE.deb && aptly -config=aptly.conf publish "
    "update -batch -skip-contents -skip-bz2 -gpg-key=FPR unstable filesystem:bench:"
)
DEBOPS_S3_COMMAND = (
    "DEB_GPG_KEY=… debops-ci upload --archive s3://BUCKET --endpoint-url URL "
    "--distro unstable ONE.deb"
)
DEBOPS_LOCAL_COMMAND = "DEB_GPG_KEY=… debops-ci upload --archive DIR --distro unstable ONE.deb"
APTLY_CONF = """{"rootDir": "ROOT", "gpgProvider": "gpg2", "skipContentsPublishing": true,
 "S3PublishEndpoints": {"bench": {"region": "us-east-1", "bucket": "BUCKET",
   "endpoint": "URL", "awsAccessKeyID": "…", "awsSecretAccessKey": "…", "acl": "none"}},
 "FileSystemPublishEndpoints": {"bench": {"rootDir": "PUBLIC", "linkMethod": "hardlink",
   "verifyMethod": "md5"}}}"""


class Observer:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.timeline: list[tuple[float, str, str]] = []
        self.start = time.perf_counter()

    def reset(self) -> None:
        self.counts.clear()
        self.timeline.clear()
        self.start = time.perf_counter()

    def __call__(self, verb: str, key: str, detail: str) -> None:
        self.counts[verb] += 1
        self.timeline.append((time.perf_counter() - self.start, verb, key))


def pause(back_to_back: bool) -> None:
    """An untimed second between publishes, so the next Release Date is a new second.

    Versions of debops-ci before d5ccc20 slept until the clock had passed the previous
    Release's Date second, so publishes less than a second apart paid up to 1 s each;
    `--back-to-back` leaves the pause out to measure that case.
    """
    if not back_to_back:
        time.sleep(1.05)


def object_size(server: common.SeaweedServer, bucket: str, key: str) -> int:
    return int(server.client().head_object(Bucket=bucket, Key=key)["ContentLength"])


def bench_local(
    n: int, key: GpgKey, work: Path, corpus: Path, queue: list[Path], runs: int
) -> LocalReport:
    """One package into a local directory holding N: debops-ci against aptly's
    filesystem endpoint, interleaved run by run."""
    files = common.debs_in(corpus)
    env = common.bench_env({"DEB_GPG_KEY": key.private_armored})
    setup: dict[str, float] = {}
    archive = work / f"local-debops-{n}"
    common.say(f"[N={n}] setup: debops-ci upload --archive DIR of {n} files …")
    with common.stopwatch() as t:
        common.run(common.debops_local_upload_cmd(archive, files), env=env)
    setup["debops-ci upload of all"] = t[0].wall
    public = work / f"local-aptly-public-{n}"
    aptly = common.Aptly(
        work, f"local-{n}", "http://127.0.0.1:9", "unused", key, filesystem_dir=public
    )
    common.say(f"[N={n}] setup: aptly repo create/add/publish repo (filesystem) of {n} files …")
    setup["aptly repo add of all"] = aptly.create().wall + aptly.add(corpus).wall
    setup["aptly publish repo of all"] = aptly.publish_repo().wall

    ours = Measured("debops-ci upload --archive DIR (CLI)")
    theirs = Measured("aptly repo add + publish update (filesystem)")
    theirs.steps = {"repo add": [], "publish update": []}
    for _ in range(runs):
        pause(False)
        with common.stopwatch() as t:
            common.run(common.debops_local_upload_cmd(archive, [queue.pop(0)]), env=env)
        ours.walls.append(t[0].wall)
        ours.cpus.append(t[0].cpu)
        add = aptly.add(queue.pop(0))
        upd = aptly.publish_update()
        theirs.steps["repo add"].append(add.wall)
        theirs.steps["publish update"].append(upd.wall)
        theirs.walls.append(add.wall + upd.wall)
        theirs.cpus.append(add.cpu + upd.cpu)
        common.say(
            f"[N={n}] local: debops-ci {common.secs(t[0].wall)}; "
            f"aptly {common.secs(add.wall)} + {common.secs(upd.wall)}"
        )

    # Both directories must hold every package.
    pub = work / "archive-key.asc"
    pub.write_text(key.public_armored)
    common.run(
        [
            common.debops_ci_exe(),
            "verify",
            "--archive",
            str(archive),
            "--distro",
            SUITE,
            "--archive-key",
            str(pub),
            "--no-files",
        ],
        env=common.bench_env(),
    )
    for who, index in (
        ("debops-ci", archive / "dists" / SUITE / "main" / "binary-amd64" / "Packages.xz"),
        ("aptly", public / "dists" / SUITE / "main" / "binary-amd64" / "Packages.gz"),
    ):
        data = index.read_bytes()
        plain = lzma.decompress(data) if index.suffix == ".xz" else gzip.decompress(data)
        listed = common.stanza_count(plain)
        if listed != n + runs:
            raise SystemExit(f"{who}'s local archive lists {listed} packages, not {n + runs}")
    return LocalReport(setup, ours, theirs)


def bench_size(
    n: int,
    server: common.SeaweedServer,
    key: GpgKey,
    work: Path,
    extras: list[Path],
    runs: int,
    profile: bool,
    back_to_back: bool,
    local: bool = True,
) -> SizeReport:
    corpus = common.small_corpus(n)
    files = common.debs_in(corpus)
    common.warm_cache([*files, *extras])
    setup: dict[str, float] = {}
    env = common.bench_env({"DEB_GPG_KEY": key.private_armored})
    queue = list(extras)

    # -- fill both archives ------------------------------------------------------------
    bucket = server.create_bucket(f"incr-debops-{n}")
    common.say(f"[N={n}] setup: debops-ci upload of {n} files …")
    with common.stopwatch() as t:
        common.run(common.debops_upload_cmd(bucket, server.endpoint_url, files), env=env)
    setup["debops-ci upload of all"] = t[0].wall
    aptly_bucket = server.create_bucket(f"incr-aptly-{n}")
    aptly = common.Aptly(work, str(n), server.endpoint_url, aptly_bucket, key)
    common.say(f"[N={n}] setup: aptly repo create/add/publish repo of {n} files …")
    setup["aptly repo add of all"] = aptly.create().wall + aptly.add(corpus).wall
    setup["aptly publish repo of all"] = aptly.publish_repo().wall

    proxy = common.CountingProxy(server.s3_port)
    rows: list[Measured] = []

    # -- debops-ci, CLI ----------------------------------------------------------------
    cli = Measured("debops-ci upload (CLI)")
    for _ in range(runs):
        deb = queue.pop(0)
        pause(back_to_back)
        with common.stopwatch() as t:
            common.run(common.debops_upload_cmd(bucket, server.endpoint_url, [deb]), env=env)
        cli.walls.append(t[0].wall)
        cli.cpus.append(t[0].cpu)
        common.say(f"[N={n}] debops-ci CLI: {common.secs(t[0].wall)}")
    # The proxy is a new endpoint to debops-ci, which proves once (and then remembers
    # for a week) that an endpoint honours conditional writes: one untimed publish
    # through it first, so that the counted one is every publish after that.
    pause(back_to_back)
    common.run(common.debops_upload_cmd(bucket, proxy.url, [queue.pop(0)]), env=env)
    proxy.reset()
    pause(back_to_back)
    with common.stopwatch() as t:
        common.run(common.debops_upload_cmd(bucket, proxy.url, [queue.pop(0)]), env=env)
    cli.traffic, cli.proxied_wall = proxy.traffic(), t[0].wall
    if proxy.errors:
        cli.notes.append(f"proxy errors: {proxy.errors}")
    rows.append(cli)

    # -- debops-ci, library --------------------------------------------------------------
    lib = Measured("debops-ci publish() (library)")
    observer = Observer()
    timeline: list[tuple[float, str, str]] = []
    settings = SuiteSettings(suite=SUITE)
    profile_text = ""
    with Signer.open({"DEB_GPG_KEY": key.private_armored}) as signer:
        store = open_store(f"s3://{bucket}", endpoint_url=server.endpoint_url, observer=observer)
        # Untimed: back on the direct endpoint after the CLI's proxied runs (see above).
        with Archive(store, signer=signer) as archive:
            publish(archive, settings, [queue.pop(0)])
        for _ in range(runs):
            deb = queue.pop(0)
            pause(back_to_back)
            observer.reset()
            with common.stopwatch() as t, Archive(store, signer=signer) as archive:
                publish(archive, settings, [deb])
            lib.walls.append(t[0].wall)
            lib.cpus.append(t[0].cpu)
            lib.observed = Counter(observer.counts)
            timeline = list(observer.timeline)
            common.say(f"[N={n}] debops-ci library: {common.secs(t[0].wall)}")
        proxied = open_store(f"s3://{bucket}", endpoint_url=proxy.url, observer=observer)
        assert isinstance(proxied, S3Store)
        pause(back_to_back)
        with Archive(proxied, signer=signer) as archive:  # untimed, as for the CLI
            publish(archive, settings, [queue.pop(0)])
        pause(back_to_back)
        proxy.reset()
        observer.reset()
        with common.stopwatch() as t, Archive(proxied, signer=signer) as archive:
            publish(archive, settings, [queue.pop(0)])
        lib.traffic, lib.proxied_wall = proxy.traffic(), t[0].wall
        seen = sum(observer.counts.values())
        if seen != lib.traffic.requests or proxy.errors:
            common.say(
                f"WARNING: observer saw {seen} operations, the proxy {lib.traffic.requests} "
                f"requests; proxy errors: {proxy.errors}"
            )
            lib.notes.append(
                f"observer {seen} ops vs proxy {lib.traffic.requests} requests "
                f"(retries or proxy errors: {len(proxy.errors)})"
            )
        if profile:
            prof = cProfile.Profile()
            pause(back_to_back)
            with Archive(store, signer=signer) as archive:
                prof.enable()
                publish(archive, settings, [queue.pop(0)])
                prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
            profile_text = out.getvalue()
    rows.append(lib)

    # What the goal allows: the .deb, the compressed indexes, InRelease and Release.gpg.
    index_dir = f"dists/{SUITE}/main/binary-amd64"
    budget = {
        "the .deb": extras[0].stat().st_size,
        "Packages.gz": object_size(server, bucket, f"{index_dir}/Packages.gz"),
        "Packages.xz": object_size(server, bucket, f"{index_dir}/Packages.xz"),
        "InRelease": object_size(server, bucket, f"dists/{SUITE}/InRelease"),
        "Release.gpg": object_size(server, bucket, f"dists/{SUITE}/Release.gpg"),
    }

    # -- aptly --------------------------------------------------------------------------
    apt = Measured("aptly repo add + publish update")
    apt.steps = {"repo add": [], "publish update": []}
    for _ in range(runs):
        pause(back_to_back)
        add = aptly.add(queue.pop(0))
        upd = aptly.publish_update()
        apt.steps["repo add"].append(add.wall)
        apt.steps["publish update"].append(upd.wall)
        apt.walls.append(add.wall + upd.wall)
        apt.cpus.append(add.cpu + upd.cpu)
        common.say(f"[N={n}] aptly: {common.secs(add.wall)} + {common.secs(upd.wall)}")
    counted = aptly.config_for(proxy.url)
    proxy.reset()
    with common.stopwatch() as t:
        aptly.add(queue.pop(0), conf=counted)
        aptly.publish_update(conf=counted)
    apt.traffic, apt.proxied_wall = proxy.traffic(), t[0].wall
    if proxy.errors:
        apt.notes.append(f"proxy errors: {proxy.errors}")
    rows.append(apt)
    proxy.close()

    # -- both archives must now hold every package -----------------------------------------
    pub = work / "archive-key.asc"
    pub.write_text(key.public_armored)
    common.debops_verify(bucket, server.endpoint_url, pub, files=False)
    report = SizeReport(n, setup, rows, budget, timeline, profile_text)
    if local:
        report.local = bench_local(n, key, work, corpus, queue, runs)
    return report


def version_timing(runs: int = VERSION_RUNS) -> list[float]:
    """Wall times of `debops-ci --version` (the console script beside this Python)."""
    walls = []
    for _ in range(runs):
        with common.stopwatch() as t:
            common.run([common.debops_ci_exe(), "--version"])
        walls.append(t[0].wall)
    return walls


def print_local(report: SizeReport, runs: int) -> None:
    local = report.local
    if local is None:
        return
    print(f"\n#### Into a local directory, N = {report.n:,}\n")
    print(
        "Setup (not the measurement): "
        + "; ".join(f"{k} {common.secs(v)}" for k, v in local.setup.items())
        + "\n"
    )
    rows = []
    for m in (local.ours, local.aptly):
        steps = "; ".join(f"{k} {common.secs(common.median(v))}" for k, v in m.steps.items())
        rows.append(
            [
                m.tool,
                common.secs(m.wall),
                common.secs(common.median(m.cpus)),
                common.ratio(m.wall, local.ours.wall),
                steps,
            ]
        )
    print(
        common.table(
            ["peer", f"wall (median of {runs})", "client CPU", "÷ debops-ci CLI", "steps"], rows
        )
    )


def s3_goal_ratio(n: int) -> float:
    """Issue 11's goal at N (2x at 2,000, 5x at 10,000; other sizes: the nearer one)."""
    return S3_GOAL_RATIO.get(n, 5.0 if n >= 10000 else 2.0)


def json_rows(
    reports: Sequence[SizeReport], version_walls: Sequence[float]
) -> list[common.ReportRow]:
    rows: list[common.ReportRow] = []
    for report in reports:
        cli, _, apt = report.rows
        assert cli.traffic is not None and apt.traffic is not None
        budget = sum(report.budget.values())
        goal = s3_goal_ratio(report.n)
        ratio = apt.wall / cli.wall if cli.wall else 0.0
        requests, uploaded = cli.traffic.requests, cli.traffic.up_body
        rows.append(
            common.ReportRow(
                work=f"add 1 package, republish to S3 ({report.n:,} packages)",
                peer="aptly repo add + publish update",
                peer_seconds=apt.wall,
                ours="debops-ci upload (CLI)",
                ours_seconds=cli.wall,
                goal=f"≥ {goal:g}x faster, ≤ {REQUEST_GOAL} requests, uploads ≤ budget",
                goal_ratio=goal,
                met=ratio >= goal and requests <= REQUEST_GOAL and uploaded <= budget,
                detail=(
                    f"{requests} requests (goal ≤ {REQUEST_GOAL}; aptly {apt.traffic.requests}); "
                    f"uploaded {common.human_bytes(uploaded)} vs budget "
                    f"{common.human_bytes(budget)} (.deb + Packages.gz/.xz + InRelease + "
                    f"Release.gpg); CPU {common.secs(common.median(cli.cpus))} vs "
                    f"{common.secs(common.median(apt.cpus))}"
                ),
                peer_command=APTLY_S3_COMMANDS,
                ours_command=DEBOPS_S3_COMMAND,
            )
        )
        if report.local is not None:
            ours, theirs = report.local.ours, report.local.aptly
            rows.append(
                common.ReportRow(
                    work=f"add 1 package, republish a local directory ({report.n:,} packages)",
                    peer="aptly repo add + publish update (filesystem endpoint)",
                    peer_seconds=theirs.wall,
                    ours="debops-ci upload --archive DIR",
                    ours_seconds=ours.wall,
                    goal="at least as fast",
                    goal_ratio=1.0,
                    detail=(
                        f"CPU {common.secs(common.median(ours.cpus))} vs "
                        f"{common.secs(common.median(theirs.cpus))}; aptly repo add "
                        f"{common.secs(common.median(theirs.steps['repo add']))} + publish update "
                        f"{common.secs(common.median(theirs.steps['publish update']))}"
                    ),
                    peer_command=APTLY_LOCAL_COMMANDS,
                    ours_command=DEBOPS_LOCAL_COMMAND,
                )
            )
    if version_walls:
        best = min(version_walls)
        rows.append(
            common.ReportRow(
                work="`debops-ci --version`",
                ours=f"debops-ci --version (console script, best of {len(version_walls)})",
                ours_seconds=best,
                goal=f"≤ {VERSION_GOAL_SECONDS} s",
                met=best <= VERSION_GOAL_SECONDS,
                detail=f"median {common.secs(common.median(version_walls))}",
                ours_command=f"{common.debops_ci_exe()} --version",
            )
        )
    return rows


def print_report(report: SizeReport, runs: int) -> None:
    n = report.n
    print(f"\n### N = {n:,} packages already published\n")
    print(
        "Setup (not the measurement): "
        + "; ".join(f"{k} {common.secs(v)}" for k, v in report.setup.items())
        + "\n"
    )
    debops = report.rows[0].wall
    rows = []
    for m in report.rows:
        tr = m.traffic
        assert tr is not None
        steps = "; ".join(
            [*(f"{k} {common.secs(common.median(v))}" for k, v in m.steps.items()), *m.notes]
        )
        rows.append(
            [
                m.tool,
                common.secs(m.wall),
                common.secs(common.median(m.cpus)),
                common.ratio(m.wall, debops),
                str(tr.requests),
                tr.methods(),
                f"{common.human_bytes(tr.up)} ({common.human_bytes(tr.up_body)})",
                f"{common.human_bytes(tr.down)} ({common.human_bytes(tr.down_body)})",
                common.secs(m.proxied_wall),
                steps,
            ]
        )
    print(
        common.table(
            [
                "peer",
                f"wall (median of {runs})",
                "client CPU",
                "÷ debops-ci CLI",
                "requests",
                "by method",
                "uploaded: wire (bodies)",
                "downloaded: wire (bodies)",
                "wall via proxy",
                "steps",
            ],
            rows,
        )
    )
    lib = report.rows[1]
    print(
        "\nStorage operations seen by the debops-ci observer (library run): "
        f"{sum(lib.observed.values())} — "
        + ", ".join(f"{verb} {count}" for verb, count in sorted(lib.observed.items()))
    )
    budget = sum(report.budget.values())
    cli = report.rows[0].traffic
    assert cli is not None and lib.traffic is not None
    print(
        f"\nUpload budget (the .deb + compressed indexes + InRelease + Release.gpg): "
        f"{common.human_bytes(budget)} = "
        + " + ".join(f"{k} {common.human_bytes(v)}" for k, v in report.budget.items())
        + f". debops-ci CLI uploaded {common.human_bytes(cli.up_body)} of bodies "
        f"({common.ratio(cli.up_body, budget)} the budget), "
        f"{common.human_bytes(cli.up)} on the wire."
    )


def print_timeline(report: SizeReport) -> None:
    print(f"\nTimeline of the last library publish at N = {report.n:,} (request start times):\n")
    print("```")
    for at, verb, key in report.timeline:
        print(f"{at * 1000:8.1f} ms  {verb:<6} {key}")
    print("```")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,10000", help="packages already published")
    parser.add_argument("--runs", type=int, default=3, help="timed publishes per peer (median)")
    parser.add_argument("--timeline", action="store_true", help="print the requests over time")
    parser.add_argument("--profile", action="store_true", help="cProfile one library publish")
    parser.add_argument(
        "--back-to-back", action="store_true", help="no 1 s pause between publishes"
    )
    parser.add_argument("--no-local", action="store_true", help="skip the local-directory arm")
    parser.add_argument("--json", metavar="PATH", help="also write the report rows (JSON) here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]

    common.print_facts()
    common.use_bench_env_in_process()
    version_walls = version_timing()
    # Per size: runs + 1 (CLI), runs + 1 (library), 1 (profile), runs + 1 (aptly),
    # 2 x runs (local directory).
    extras = common.extra_debs("incr", 5 * args.runs + 7)
    reports: list[SizeReport] = []
    with (
        common.workdir("incremental") as work,
        common.signing_key() as key,
        common.seaweed(work) as server,
    ):
        for n in sizes:
            reports.append(
                bench_size(
                    n,
                    server,
                    key,
                    work,
                    extras,
                    args.runs,
                    args.profile,
                    args.back_to_back,
                    local=not args.no_local,
                )
            )

    print("## Scenario 3: incremental publish of one .deb\n")
    print(
        "Local SeaweedFS. Wall times are direct (no proxy); requests and bytes come from "
        "one more publish of each peer through the counting proxy. Bytes: the whole "
        "request or response on the wire, bodies alone in parentheses. "
        + (
            "Publishes run back to back."
            if args.back_to_back
            else "Publishes are spaced 1 s apart (untimed), so each writes a new Release "
            "Date second; see --back-to-back."
        )
    )
    for report in reports:
        print_report(report, args.runs)
        print_local(report, args.runs)
        if args.timeline:
            print_timeline(report)
        if report.profile:
            print(f"\ncProfile of one library publish at N = {report.n:,}:\n")
            print("```\n" + report.profile + "\n```")

    print(
        f"\n`debops-ci --version` ({common.debops_ci_exe()}): best of {len(version_walls)} "
        f"{common.secs(min(version_walls))}, median {common.secs(common.median(version_walls))} "
        f"(goal ≤ {VERSION_GOAL_SECONDS} s)."
    )
    print("\nCommands (each peer's, to rerun by hand):\n")
    print("```sh")
    for line in (
        DEBOPS_S3_COMMAND,
        APTLY_S3_COMMANDS,
        DEBOPS_LOCAL_COMMAND,
        APTLY_LOCAL_COMMANDS,
        "debops-ci --version",
    ):
        print(line)
    print("```\n\naptly.conf (one per peer installation; bench.common.write_aptly_config):\n")
    print("```json\n" + APTLY_CONF + "\n```")
    common.print_load_footer()
    if args.json:
        common.write_json_rows(args.json, json_rows(reports, version_walls))


if __name__ == "__main__":
    main()
