"""Scenario 2: publish 2,000 .debs into an empty archive on SeaweedFS, end to end.

Peers, each into its own new bucket of the same local SeaweedFS, same .debs, same key:

- debops-ci: one `debops-ci upload --archive s3://BUCKET --endpoint-url … FILES…`,
  signing with a real ed25519 key given in DEB_GPG_KEY;
- aptly: `aptly repo create`, `aptly repo add REPO DIR`, `aptly publish repo
  -acquire-by-hash -skip-contents -skip-bz2 -gpg-key FPR REPO s3:bench:` with a private
  aptly.conf (its own rootDir, an S3 endpoint pointing at SeaweedFS) and the same key in
  a private GNUPGHOME. `-skip-contents -skip-bz2 -acquire-by-hash` make aptly's output
  comparable to debops-ci's (no Contents, no .bz2, by-hash indexes).

Afterwards each archive is checked: debops-ci's with `debops-ci verify` (pinned key),
aptly's by counting the stanzas of its Packages.gz. Usage:

    python -m bench.bulk_publish [--n 2000[,10000]] [--runs 3] [--phases] [--json PATH]

`--n` takes one size or a comma-separated list (each size gets its own SeaweedFS run
and section). `--phases` adds one in-process `publish()` of the same files into
another bucket, with the store's observer timing each request, and prints where the
time went: inspection and the first read, the pool uploads, the work under the suite
lock, the rest. `--json PATH` writes one report row per size (bench/report.py's
contract): "publish N to S3", aptly (create + add + publish repo) as the peer, goal
at least 2x as fast (issue 11, goal 4).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
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
from debops_ci.storage import open_store
from tests.support.gpgkeys import GpgKey


@dataclass
class Result:
    tool: str
    steps: dict[str, float] = field(default_factory=dict)
    cpu: float = 0.0
    objects: int = 0

    @property
    def total(self) -> float:
        return sum(self.steps.values())


def debops_upload(
    server: common.SeaweedServer, key: GpgKey, files: Sequence[Path], work: Path, run: int
) -> Result:
    bucket = server.create_bucket(f"bulk-debops-{run}")
    env = common.bench_env({"DEB_GPG_KEY": key.private_armored})
    cmd = common.debops_upload_cmd(bucket, server.endpoint_url, files)
    common.say(f"debops-ci upload of {len(files)} files into s3://{bucket} …")
    with common.stopwatch() as t:
        common.run(cmd, env=env)
    result = Result("debops-ci upload", {"upload": t[0].wall}, t[0].cpu)
    common.say(f"  {common.secs(t[0].wall)}; verifying …")
    pub = work / f"archive-key-{run}.asc"
    pub.write_text(key.public_armored)
    common.debops_verify(bucket, server.endpoint_url, pub)
    result.objects = common.count_objects(server, bucket)
    return result


def aptly_publish(
    server: common.SeaweedServer, key: GpgKey, corpus: Path, work: Path, run: int
) -> Result:
    bucket = server.create_bucket(f"bulk-aptly-{run}")
    aptly = common.Aptly(work, str(run), server.endpoint_url, bucket, key)
    result = Result("aptly repo create + add + publish repo")
    for name, step in (
        ("repo create", aptly.create),
        ("repo add", lambda: aptly.add(corpus)),
        ("publish repo", aptly.publish_repo),
    ):
        common.say(f"aptly {name} …")
        timing = step()
        result.steps[name] = timing.wall
        result.cpu += timing.cpu
        common.say(f"  {common.secs(timing.wall)}")
    index = (
        server.client()
        .get_object(Bucket=bucket, Key="dists/unstable/main/binary-amd64/Packages.gz")["Body"]
        .read()
    )
    n = common.stanza_count(gzip.decompress(index))
    if n != len(common.debs_in(corpus)):
        raise SystemExit(f"aptly published {n} packages, not {len(common.debs_in(corpus))}")
    result.objects = common.count_objects(server, bucket)
    return result


def phases(server: common.SeaweedServer, key: GpgKey, files: Sequence[Path]) -> tuple[float, str]:
    """One in-process publish, split into phases by the store observer's timestamps."""
    bucket = server.create_bucket("bulk-phases")
    log: list[tuple[float, str, str]] = []
    start = time.perf_counter()

    def observe(verb: str, key: str, detail: str) -> None:
        log.append((time.perf_counter() - start, verb, key))

    store = open_store(f"s3://{bucket}", endpoint_url=server.endpoint_url, observer=observe)
    with Signer.open({"DEB_GPG_KEY": key.private_armored}) as signer:
        start = time.perf_counter()
        cpu = time.process_time()
        with Archive(store, signer=signer) as archive:
            publish(archive, SuiteSettings(suite="unstable"), files)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
    pool = [t for t, verb, k in log if verb == "PUT" and k.startswith("pool/")]
    rate = len(pool) / (pool[-1] - pool[0])
    locked = next(t for t, verb, k in log if verb == "PUT" and k.endswith(".debrepos3.lock"))
    first_index = next(t for t, verb, k in log if verb == "PUT" and "/by-hash/" in k)
    return rate, common.table(
        ["phase (in-process publish, observer timestamps)", "wall"],
        [
            ["inspect every .deb, read the suite (start → first pool PUT)", common.secs(pool[0])],
            [
                f"{len(pool)} create-only pool PUTs ({rate:.0f}/s)",
                common.secs(pool[-1] - pool[0]),
            ],
            [
                "under the lock: re-read, merge, compose (lock PUT → first index PUT)",
                common.secs(first_index - locked),
            ],
            ["index PUTs, sign, commit, copies, unlock", common.secs(total - first_index)],
            [f"total ({len(log)} requests, process CPU {common.secs(cpu)})", common.secs(total)],
        ],
    )


def sizes(text: str) -> list[int]:
    """`2000` or `2000,10000`."""
    try:
        found = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size or a list of sizes: {text!r}") from None
    if not found or min(found) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive: {text!r}")
    return found


@dataclass
class SizeRun:
    """Everything measured for one corpus size."""

    n: int
    files: list[Path]
    results: list[Result]
    pool_rate: float | None = None  # pool PUTs/s of the --phases publish
    split: str = ""

    def group(self, tool: str) -> list[Result]:
        return [r for r in self.results if r.tool == tool]


DEBOPS = "debops-ci upload"
APTLY = "aptly repo create + add + publish repo"


def measure(n: int, runs: int, with_phases: bool) -> SizeRun:
    corpus = common.small_corpus(n)
    files = common.debs_in(corpus)
    common.warm_cache(files)
    run = SizeRun(n, files, [])
    with (
        common.workdir("bulk") as work,
        common.signing_key() as key,
        common.seaweed(work) as server,
    ):
        for i in range(runs):
            run.results.append(debops_upload(server, key, files, work, i))
            run.results.append(aptly_publish(server, key, corpus, work, i))
        if with_phases:
            common.use_bench_env_in_process()
            common.say("in-process publish for --phases …")
            run.pool_rate, run.split = phases(server, key, files)
    return run


def peer_commands() -> list[str]:
    flags = " ".join(common.APTLY_PUBLISH_FLAGS)
    return [
        "DEB_GPG_KEY=… debops-ci upload --archive s3://BUCKET --endpoint-url "
        "http://127.0.0.1:PORT --distro unstable DIR/*.deb",
        "aptly -config=aptly.conf repo create -distribution=unstable -component=main bench",
        "aptly -config=aptly.conf repo add bench DIR",
        f"aptly -config=aptly.conf publish repo {flags} -acquire-by-hash -gpg-key=FPR "
        "bench s3:bench:",
    ]


def render(run: SizeRun, runs: int) -> None:
    print(f"## Scenario 2: bulk publish of {run.n:,} .debs into an empty archive\n")
    print(
        f"{len(run.files):,} small .debs ({common.human_bytes(common.total_size(run.files))}), "
        f"local SeaweedFS, {runs} run(s) of each; times are end to end (processes "
        "started, key loaded, everything uploaded and signed).\n"
    )
    debops_best = common.median([r.total for r in run.group(DEBOPS)])
    rows = []
    for tool in (DEBOPS, APTLY):
        group = run.group(tool)
        total = common.median([r.total for r in group])
        steps = "; ".join(
            f"{name} {common.secs(common.median([r.steps[name] for r in group]))}"
            for name in group[0].steps
        )
        rows.append(
            [
                tool,
                common.secs(total),
                common.secs(common.median([r.cpu for r in group])),
                f"{len(run.files) / total:,.0f}",
                common.ratio(total, debops_best),
                str(group[0].objects),
                steps,
            ]
        )
    print(
        common.table(
            ["tool", "wall", "CPU", ".debs/s", "÷ debops-ci", "objects in bucket", "steps"], rows
        )
    )
    if run.split:
        print("\nWhere debops-ci's time goes:\n")
        print(run.split)
    print()


def report_row(run: SizeRun) -> common.ReportRow:
    ours, peer = run.group(DEBOPS), run.group(APTLY)
    ours_s = common.median([r.total for r in ours])
    peer_s = common.median([r.total for r in peer])
    detail = (
        f"CPU {common.secs(common.median([r.cpu for r in ours]))} vs "
        f"{common.secs(common.median([r.cpu for r in peer]))}; median of {len(ours)}"
    )
    if run.pool_rate is not None:
        detail += f"; pool PUTs {run.pool_rate:,.0f}/s"
    detail += f"; load {common.load_average()}"
    commands = peer_commands()
    return common.ReportRow(
        work=f"publish {run.n:,} to S3",
        ours="debops-ci upload (CLI)",
        ours_seconds=round(ours_s, 3),
        goal="at least 2x as fast as aptly",
        detail=detail,
        peer=APTLY,
        peer_seconds=round(peer_s, 3),
        goal_ratio=2.0,
        peer_command=" && ".join(commands[1:]),
        ours_command=commands[0],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--n", type=sizes, default=[2000], help="number of .debs, or a list: 2000,10000"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each peer (interleaved)")
    parser.add_argument("--phases", action="store_true", help="split one publish into phases")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the report rows here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    common.print_facts()
    measured = [measure(n, args.runs, args.phases) for n in args.n]
    for run in measured:
        render(run, args.runs)
    print("Commands (each peer into its own new bucket of the same SeaweedFS):\n")
    print("```sh")
    print("\n".join(peer_commands()))
    print("```")
    common.print_load_footer()
    if args.json:
        common.write_json_rows(args.json, [report_row(run) for run in measured])


if __name__ == "__main__":
    main()
