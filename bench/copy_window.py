"""How long clients that do not read what InRelease names by hash see a torn suite.

Issue 8 §1.1. After the `InRelease` commit a publish writes the copies for other
clients: `Release` + `Release.gpg` (clients that do not use InRelease) and the plain
index paths such as `main/binary-amd64/Packages.xz` (clients with by-hash off, mirror
tools). While those are being written, such a client can read a mixed suite.

For each source tree given (`--variant NAME=SRC`, e.g. the old code in a git worktree
and the current tree), the script makes a fresh archive, publishes one warm-up .deb,
then runs `--uploads` sequential one-package uploads with the real CLI
(`python -m debops_ci upload --archive DIR --distro unstable X.deb`, PYTHONPATH=SRC,
the private key in DEB_GPG_KEY) while reader threads in this process loop as fast as
they can, each acting as one kind of client:

- `Release+Release.gpg`: reads `Release`, then `Release.gpg` (apt's order); the pair
  is inconsistent when `gpgv` does not accept the detached signature (BADSIG);
- `Release -> plain Packages.xz`: reads `Release`, then the plain `Packages.xz`;
  inconsistent when the file's SHA256 is not the one Release lists for it;
- `InRelease -> plain Packages.xz` (apt with `Acquire::By-Hash "no"`, which still
  reads InRelease): the same against the hash InRelease lists;
- `InRelease -> by-hash` (control, should be 0): reads `InRelease` (checked with
  `gpgv`), then the by-hash object it names for `Packages.xz`.

A reader only records what it read (content hashes, with run-length compression of
identical consecutive observations); signatures and hashes are checked afterwards, so
checking never blinds a reader inside a window. Per client type the table gives the
observations, the inconsistent ones, the inconsistent episodes (maximal runs of
consecutive inconsistent observations), how many of the uploads had at least one, and
the longest episode: `seen` is from the start of its first inconsistent observation to
the end of its last one (what a client could observe), `bound` is from the end of the
last consistent observation before it to the start of the first one after it (the
window cannot be longer). The sampling period (median observation time) is printed
too. On a loaded machine a reader can be descheduled between its two reads: an
episode of one observation then lasts as long as that pause, which is what a real
client descheduled there would see too, but says little about the archive.

The archive's own window is therefore also timed from the writer's side: a
`sitecustomize` put before the source tree on the publisher's PYTHONPATH wraps
`os.replace` and notes the monotonic time before and after every rename (every write
of the local store is a rename into place). Per upload the table gives, e.g., the time
from the start of the first of the renames of `Release` and `Release.gpg` to the end
of the other: the longest a client reading both can get a mixed pair (BADSIG).
(Local store only.)

`--store seaweed` does the same against a bucket on a local SeaweedFS (the archive is
`s3://BUCKET --endpoint-url URL`; readers GET the objects anonymously over HTTP from
the S3 endpoint, as apt would from a public bucket).

Usage (from the repository root):

    git worktree add --detach /tmp/debops-old HEAD
    .venv/bin/python -m bench.copy_window --variant old=/tmp/debops-old/src \\
        --variant new=src [--uploads 30] [--repeat 2] [--store local|seaweed]
    git worktree remove --force /tmp/debops-old

Variants are interleaved (old, new, old, new, …) so that load from anything else on the
machine falls on both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from tests.support.debs import make_deb
from tests.support.gpgkeys import GpgKey

__all__ = ["CLIENTS", "ClientResult", "RunResult", "main", "measure"]

SUITE = "unstable"
INDEX = "main/binary-amd64/Packages.xz"
RELEASE = f"dists/{SUITE}/Release"
RELEASE_GPG = f"dists/{SUITE}/Release.gpg"
INRELEASE = f"dists/{SUITE}/InRelease"
PLAIN_INDEX = f"dists/{SUITE}/{INDEX}"

CLIENTS = (
    "Release+Release.gpg",
    "Release -> plain Packages.xz",
    "InRelease -> plain Packages.xz",
    "InRelease -> by-hash (control)",
)

# What a reader fetches: a key of the archive -> its bytes, None when it is missing.
Fetch = Callable[[str], bytes | None]


# -- observing ------------------------------------------------------------------------


@dataclass
class Segment:
    """Consecutive observations that read exactly the same bytes."""

    key: tuple[str, ...]  # content hashes of what was read, in order ("" = missing)
    first_start: float
    last_end: float
    count: int = 1


@dataclass
class Recorder:
    """One reader's observations, run-length compressed; blobs kept by their hash."""

    segments: list[Segment] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)  # a sample, for the period

    def note(self, start: float, end: float, parts: Sequence[bytes | None]) -> None:
        key = tuple(self._keep(p) for p in parts)
        if len(self.durations) < 20000:
            self.durations.append(end - start)
        last = self.segments[-1] if self.segments else None
        if last is not None and last.key == key:
            last.last_end = end
            last.count += 1
        else:
            self.segments.append(Segment(key, start, end))

    def _keep(self, data: bytes | None) -> str:
        if data is None:
            return ""
        digest = hashlib.sha256(data).hexdigest()
        self.blobs.setdefault(digest, data)
        return digest


def _listed_sha256(release_text: bytes, path: str) -> str | None:
    """The SHA256 a Release or InRelease lists for `path` (None if not listed)."""
    in_sha256 = False
    for raw in release_text.decode("utf-8", errors="replace").splitlines():
        if not raw.startswith(" "):
            in_sha256 = raw.strip() == "SHA256:"
            continue
        if in_sha256:
            fields = raw.split()
            if len(fields) == 3 and fields[2] == path:
                return fields[0]
    return None


def _reader(
    fetch: Fetch,
    plan: Callable[[Fetch], list[bytes | None]],
    recorder: Recorder,
    stop: threading.Event,
) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        parts = plan(fetch)
        recorder.note(start, time.perf_counter(), parts)


def _plan_release_pair(fetch: Fetch) -> list[bytes | None]:
    return [fetch(RELEASE), fetch(RELEASE_GPG)]


def _plan_release_plain(fetch: Fetch) -> list[bytes | None]:
    return [fetch(RELEASE), fetch(PLAIN_INDEX)]


def _plan_inrelease_plain(fetch: Fetch) -> list[bytes | None]:
    return [fetch(INRELEASE), fetch(PLAIN_INDEX)]


def _plan_inrelease_by_hash(fetch: Fetch) -> list[bytes | None]:
    inrelease = fetch(INRELEASE)
    listed = _listed_sha256(inrelease, INDEX) if inrelease is not None else None
    if listed is None:
        return [inrelease, None]
    return [inrelease, fetch(f"dists/{SUITE}/main/binary-amd64/by-hash/SHA256/{listed}")]


_PLANS: dict[str, Callable[[Fetch], list[bytes | None]]] = {
    CLIENTS[0]: _plan_release_pair,
    CLIENTS[1]: _plan_release_plain,
    CLIENTS[2]: _plan_inrelease_plain,
    CLIENTS[3]: _plan_inrelease_by_hash,
}


# -- judging ----------------------------------------------------------------------------


class Gpgv:
    """`gpgv` against one public key, results cached by the bytes checked."""

    def __init__(self, keyring: Path, scratch: Path) -> None:
        self.keyring = keyring
        self.scratch = scratch
        self._cache: dict[tuple[str, ...], str] = {}

    def check(self, cache_key: tuple[str, ...], *files: bytes) -> str:
        """ "" when good, else the reason (BADSIG, NODATA, exit N)."""
        if cache_key not in self._cache:
            self._cache[cache_key] = self._run(files)
        return self._cache[cache_key]

    def _run(self, files: Sequence[bytes]) -> str:
        with tempfile.TemporaryDirectory(dir=self.scratch) as tmp:
            paths = []
            for i, data in enumerate(files):
                path = Path(tmp) / f"f{i}"
                path.write_bytes(data)
                paths.append(str(path))
            proc = subprocess.run(
                ["gpgv", "--status-fd", "1", "--keyring", str(self.keyring), *paths],
                capture_output=True,
                check=False,
                env=common.bench_env(),
            )
        if proc.returncode == 0 and b"[GNUPG:] GOODSIG" in proc.stdout:
            return ""
        for word in (b"BADSIG", b"NODATA", b"ERRSIG", b"NO_PUBKEY"):
            if b"[GNUPG:] " + word in proc.stdout:
                return word.decode()
        return f"gpgv exit {proc.returncode}"


def _judge(client: str, key: tuple[str, ...], blobs: dict[str, bytes], gpgv: Gpgv) -> str:
    """ "" when what the client read is consistent, else what was wrong."""
    if any(part == "" for part in key):
        return "missing"
    first, second = blobs[key[0]], blobs[key[1]]
    if client == CLIENTS[0]:
        return gpgv.check(key, second, first)  # gpgv SIG DATA
    if client == CLIENTS[3]:
        bad = gpgv.check(key[:1], first)
        if bad:
            return bad
    listed = _listed_sha256(first, INDEX)
    if listed is None:
        return "not listed"
    return "" if listed == key[1] else "hash mismatch"


@dataclass(frozen=True)
class ClientResult:
    client: str
    observations: int
    inconsistent: int
    episodes: int
    uploads_hit: int
    longest_seen_ms: float
    longest_bound_ms: float
    period_ms: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class WriterGap:
    """Time between two renames of one publish, as the publisher itself timed them."""

    pair: str
    median_ms: float
    max_ms: float


# (label, first path, second path): the archive is inconsistent for a client reading
# both from the moment the first is renamed into place until the second is.
GAP_PAIRS = (
    ("Release -> Release.gpg", RELEASE, RELEASE_GPG),
    ("Release -> plain Packages.xz", RELEASE, PLAIN_INDEX),
    ("InRelease -> plain Packages.xz", INRELEASE, PLAIN_INDEX),
    ("InRelease -> last copy", INRELEASE, ""),
)
COPIES = (RELEASE, RELEASE_GPG, PLAIN_INDEX)
WATCHED = (INRELEASE, *COPIES)
RENAME_LOG_VAR = "DEBOPS_BENCH_RENAME_LOG"

# Put on the publisher's PYTHONPATH (before its source tree), so that `python -m
# debops_ci` runs unchanged: it wraps `os.replace` to note the CLOCK_MONOTONIC time
# (the clock of time.perf_counter here, shared by all processes) before and after
# every rename, and writes the list when the process exits. Every write of the local
# store is such a rename; a rename can block on the journal under load, so both ends.
_SITECUSTOMIZE = f"""
import atexit, os, time
_log = os.environ.get({RENAME_LOG_VAR!r})
if _log:
    _seen = []
    _replace = os.replace
    def _timed_replace(src, dst, *args, **kwargs):
        start = time.monotonic_ns()
        try:
            return _replace(src, dst, *args, **kwargs)
        finally:
            _seen.append((start, time.monotonic_ns(), os.fsdecode(dst)))
    def _write():
        with open(_log, "w") as fh:
            fh.writelines(f"{{a}} {{b}} {{p}}\\n" for a, b, p in _seen)
    os.replace = _timed_replace
    atexit.register(_write)
"""


def _renames(log: Path, root: Path) -> dict[str, tuple[float, float]]:
    """The last rename (start, end; perf_counter seconds) of each watched key."""
    found: dict[str, tuple[float, float]] = {}
    for line in log.read_text().splitlines():
        start, end, path = line.split(" ", 2)
        with contextlib.suppress(ValueError):
            key = Path(path).resolve().relative_to(root.resolve()).as_posix()
            if key in WATCHED:
                found[key] = (int(start) / 1e9, int(end) / 1e9)
    return found


def _gaps(per_upload: Sequence[dict[str, tuple[float, float]]]) -> tuple[WriterGap, ...]:
    """Per pair, the longest the two can disagree: first rename's start to the last's end."""
    complete = [found for found in per_upload if all(k in found for k in WATCHED)]
    out = []
    for label, first, second in GAP_PAIRS:
        keys = [first, second] if second else [first, *COPIES]
        values = [
            (max(found[k][1] for k in keys) - min(found[k][0] for k in keys)) * 1000
            for found in complete
        ]
        if values:
            out.append(WriterGap(label, statistics.median(values), max(values)))
    return tuple(out)


@dataclass(frozen=True)
class RunResult:
    variant: str
    run: int
    store: str
    uploads: int
    upload_median_s: float
    clients: tuple[ClientResult, ...]
    load: str
    gaps: tuple[WriterGap, ...] = ()  # local archives only


def _summarise(
    client: str,
    recorder: Recorder,
    gpgv: Gpgv,
    uploads: Sequence[tuple[float, float]],
) -> ClientResult:
    segs = recorder.segments
    verdicts = [_judge(client, s.key, recorder.blobs, gpgv) for s in segs]
    observations = sum(s.count for s in segs)
    inconsistent = sum(s.count for s, v in zip(segs, verdicts, strict=True) if v)
    episodes = 0
    longest_seen = longest_bound = 0.0
    hit: set[int] = set()
    i = 0
    while i < len(segs):
        if not verdicts[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(segs) and verdicts[j + 1]:
            j += 1
        episodes += 1
        start, end = segs[i].first_start, segs[j].last_end
        longest_seen = max(longest_seen, end - start)
        before = segs[i - 1].last_end if i > 0 else start
        after = segs[j + 1].first_start if j + 1 < len(segs) else end
        longest_bound = max(longest_bound, after - before)
        for n, (u_start, u_end) in enumerate(uploads):
            if u_start <= end and start <= u_end:
                hit.add(n)
        i = j + 1
    reasons = sorted({v for v in verdicts if v})
    period = statistics.median(recorder.durations) if recorder.durations else 0.0
    return ClientResult(
        client,
        observations,
        inconsistent,
        episodes,
        len(hit),
        longest_seen * 1000,
        longest_bound * 1000,
        period * 1000,
        tuple(reasons),
    )


# -- stores -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where the uploads go (CLI arguments) and how a reader fetches."""

    name: str
    store: str
    archive_args: tuple[str, ...]
    fetch_factory: Callable[[], Fetch]  # one per reader thread (HTTP connections)
    root: Path | None = None  # a local archive: its directory (for the rename times)


def _local_fetch(root: Path) -> Fetch:
    def fetch(key: str) -> bytes | None:
        try:
            return (root / key).read_bytes()
        except FileNotFoundError:
            return None

    return fetch


def _http_fetch(port: int, bucket: str) -> Fetch:
    """GET over one keep-alive connection, reconnecting when the server drops it."""
    conn: list[http.client.HTTPConnection] = [http.client.HTTPConnection("127.0.0.1", port)]

    def fetch(key: str) -> bytes | None:
        for attempt in range(3):
            try:
                conn[0].request("GET", f"/{bucket}/{key}")
                resp = conn[0].getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException):
                conn[0].close()
                conn[0] = http.client.HTTPConnection("127.0.0.1", port)
                if attempt == 2:
                    raise
                continue
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise RuntimeError(f"GET /{bucket}/{key}: HTTP {resp.status}")
            return body
        return None

    return fetch


@contextlib.contextmanager
def _targets(store: str, work: Path) -> Iterator[Callable[[str], Target]]:
    """A factory of fresh, empty archives of the chosen kind."""
    if store == "local":

        def local(name: str) -> Target:
            root = work / f"archive-{name}"
            return Target(name, "local", ("--archive", str(root)), lambda: _local_fetch(root), root)

        yield local
        return
    with common.seaweed(work) as server:

        def s3(name: str) -> Target:
            bucket = server.create_bucket(f"cw-{name}".lower().replace("_", "-"))
            return Target(
                name,
                "seaweed",
                ("--archive", f"s3://{bucket}", "--endpoint-url", server.endpoint_url),
                lambda: _http_fetch(server.s3_port, bucket),
            )

        yield s3


# -- one run ------------------------------------------------------------------------------


def _upload_env(src: Path, key: GpgKey, hooks: Path) -> dict[str, str]:
    """The source tree under test on PYTHONPATH, after the rename-timing hook."""
    hooks.mkdir(parents=True, exist_ok=True)
    (hooks / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    return common.bench_env(
        {"PYTHONPATH": f"{hooks}{os.pathsep}{src}", "DEB_GPG_KEY": key.private_armored}
    )


def _upload(python: str, target: Target, env: dict[str, str], deb: Path, cwd: Path) -> None:
    common.run(
        [python, "-m", "debops_ci", "upload", *target.archive_args, "--distro", SUITE, str(deb)],
        env=env,
        cwd=cwd,
        timeout=600,
    )


def _which_package(python: str, env: dict[str, str], cwd: Path) -> str:
    """Where `debops_ci` is imported from under this PYTHONPATH (a guard against the venv's)."""
    proc = common.run(
        [python, "-c", "import debops_ci, os; print(os.path.dirname(debops_ci.__file__))"],
        env=env,
        cwd=cwd,
    )
    return proc.stdout.decode().strip()


def measure(
    variant: str,
    src: Path,
    run_no: int,
    *,
    python: str,
    key: GpgKey,
    keyring: Path,
    debs: Sequence[Path],
    make_target: Callable[[str], Target],
    work: Path,
) -> RunResult:
    """Warm-up upload of `debs[0]`, then the others one by one with the readers on."""
    target = make_target(f"{variant}-{run_no}")
    env = _upload_env(src, key, work / "hooks")
    package_dir = _which_package(python, env, work)
    expected = (src / "debops_ci").resolve()
    if Path(package_dir).resolve() != expected:
        raise SystemExit(f"{variant}: debops_ci imported from {package_dir}, not {expected}")
    _upload(python, target, env, debs[0], work)
    recorders = {client: Recorder() for client in CLIENTS}
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_reader,
            args=(target.fetch_factory(), _PLANS[client], recorders[client], stop),
            daemon=True,
        )
        for client in CLIENTS
    ]
    renames: list[dict[str, tuple[float, float]]] = []
    for thread in threads:
        thread.start()
    uploads: list[tuple[float, float]] = []
    try:
        for n, deb in enumerate(debs[1:], 1):
            log = work / f"renames-{target.name}-{n}.log"
            start = time.perf_counter()
            _upload(python, target, {**env, RENAME_LOG_VAR: str(log)}, deb, work)
            uploads.append((start, time.perf_counter()))
            if target.root is not None:
                renames.append(_renames(log, target.root))
            if n % 10 == 0:
                common.say(f"  {variant} run {run_no}: {n}/{len(debs) - 1} uploads")
        time.sleep(0.2)  # let the readers see the final state
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    gpgv = Gpgv(keyring, work)
    results = tuple(_summarise(c, recorders[c], gpgv, uploads) for c in CLIENTS)
    return RunResult(
        variant,
        run_no,
        target.store,
        len(uploads),
        statistics.median(e - s for s, e in uploads),
        results,
        common.load_average(),
        _gaps(renames),
    )


# -- output ---------------------------------------------------------------------------------


def _rows(results: Sequence[RunResult]) -> list[list[object]]:
    rows: list[list[object]] = []
    for client in CLIENTS:
        for r in results:
            c = next(x for x in r.clients if x.client == client)
            rows.append(
                [
                    client,
                    f"{r.variant} #{r.run}",
                    c.observations,
                    c.inconsistent,
                    c.episodes,
                    f"{c.uploads_hit}/{r.uploads}",
                    f"{c.longest_seen_ms:.2f}",
                    f"{c.longest_bound_ms:.2f}",
                    f"{c.period_ms * 1000:.0f} µs",
                    ", ".join(c.reasons) or "-",
                ]
            )
    return rows


def _report(results: Sequence[RunResult], variants: dict[str, Path], store: str) -> None:
    print(f"Store: {store}; {results[0].uploads} uploads per run after one warm-up upload.\n")
    print(
        common.table(
            ["variant", "source tree", "median upload", "load average after"],
            [
                [
                    f"{r.variant} #{r.run}",
                    variants[r.variant],
                    common.secs(r.upload_median_s),
                    r.load,
                ]
                for r in results
            ],
        )
    )
    print()
    print(
        common.table(
            [
                "client",
                "variant",
                "observations",
                "inconsistent",
                "episodes",
                "uploads hit",
                "longest seen (ms)",
                "longest bound (ms)",
                "period",
                "what was wrong",
            ],
            _rows(results),
        )
    )
    gap_rows = [
        [
            g.pair,
            f"{r.variant} #{r.run}",
            f"{g.median_ms:.2f}",
            f"{g.max_ms:.2f}",
        ]
        for label, _, _ in GAP_PAIRS
        for r in results
        for g in r.gaps
        if g.pair == label
    ]
    if gap_rows:
        print(
            "\nWriter side, per upload: from the start of the first of the renames to the "
            "end of the last, timed inside the publisher around os.replace (the longest "
            "the files can disagree; a client reading both within it can see a mix):\n"
        )
        print(common.table(["writes", "variant", "median (ms)", "max (ms)"], gap_rows))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--variant",
        action="append",
        required=True,
        metavar="NAME=SRC",
        help="a source tree to run (its src/ directory, put on PYTHONPATH); repeatable",
    )
    parser.add_argument("--uploads", type=int, default=30, help="measured uploads per run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant (interleaved)")
    parser.add_argument("--store", choices=("local", "seaweed"), default="local")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the CLI")
    args = parser.parse_args(argv)
    variants: dict[str, Path] = {}
    for spec in args.variant:
        name, sep, src = spec.partition("=")
        path = Path(src).resolve()
        if not sep or not name or not (path / "debops_ci" / "__init__.py").is_file():
            parser.error(f"--variant {spec!r}: want NAME=SRC where SRC/debops_ci/ is a package")
        variants[name] = path
    if args.uploads < 1 or args.repeat < 1:
        parser.error("--uploads and --repeat must be at least 1")

    common.print_facts()
    results: list[RunResult] = []
    with (
        common.workdir("copy-window") as work,
        common.signing_key() as key,
        _targets(args.store, work) as make_target,
    ):
        keyring = work / "archive-key.gpg"
        keyring.write_bytes(key.public_binary())
        total = 1 + args.uploads
        debs = [
            make_deb(work / "debs", f"cwbench{i:03d}", "1.0-1", "amd64", payload_size=1024)
            for i in range(total)
        ]
        for run_no in range(1, args.repeat + 1):
            for name, src in variants.items():
                common.say(f"{name} run {run_no}: {args.uploads} uploads into {args.store} …")
                results.append(
                    measure(
                        name,
                        src,
                        run_no,
                        python=args.python,
                        key=key,
                        keyring=keyring,
                        debs=debs,
                        make_target=make_target,
                        work=work,
                    )
                )
    _report(results, variants, args.store)
    common.print_load_footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
