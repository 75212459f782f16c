"""The archive's core promise, under stress, against both stores.

Many CI jobs publish at once, a publisher can die at any instant, clients update at
any moment: no update is lost and no apt client ever sees a broken archive.

- concurrency: ten publisher processes at once (real `debops-ci upload`), three
  architectures, two suites, one package in two versions from two jobs, one identical
  file from two jobs: every package is listed, verifies, and a real apt downloads it;
- locks: a wait names the holder; a holder that is provably gone (same host and boot,
  pid gone: a dead body, a SIGKILLed publisher) is taken over at once; a live holder
  that renews its lease is not; a stale lock of another host or of the original tool
  is taken over when its lease runs out; `unlock` says whose lock it broke;
  `--lock-timeout` fails in one line with exit code 5 and leaves the suite untouched;
- crash at any point: a publisher killed (`os._exit(137)`) after each of its K storage
  operations, k = 1..K, into an empty archive and into an existing suite; after each
  crash the archive verifies, apt updates cleanly and sees exactly the old packages
  before the commit point and the new ones from it on, and a rerun finishes the job
  without waiting out the lease (what a no-op rerun leaves, the next publish repairs);
- readers during writes: `apt-get update` in a loop (amd64 and arm64 clients) while 30
  publishes by three concurrent jobs land in two suites: not one warning, error or
  hash mismatch, and no reader ever sees the archive shrink.

The local store is a directory served over HTTP; the S3 store is a SeaweedFS bucket that
apt reads directly (each test archive under its own prefix). Crash runs and their
`verify` calls go through a fork server (`support.publisher.ForkServer`): real
processes, without paying interpreter start-up a few hundred times. Each test prints
what it measured (run with -s to see it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.aptclient import AptClient, AptClientFactory, AptResult
from support.cli import CliResult, key_env, run_cli
from support.debs import deb_filename, make_deb
from support.gpgkeys import GpgKey
from support.httpserve import StaticHttpServer
from support.publisher import (
    ForkServer,
    left_homes,
    publisher_command,
    publisher_env,
    remove_gnupg_homes,
    run_publisher,
)
from support.seaweed import S3Bucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e

SUITE = "unstable"
CLI = [sys.executable, "-m", "debops_ci"]
INRELEASE = f"dists/{SUITE}/InRelease"
LOCK = f"dists/{SUITE}/.debrepos3.lock"
NOLOCK = f"dists/{SUITE}/.debrepos3.nolock"
# What apt must never print while the archive changes under it.
APT_TROUBLE = re.compile(
    r"^(W: |E: |Err:|Ign:)|hash sum mismatch|not valid yet|mirror sync", re.MULTILINE | re.I
)


# -- where an archive lives ------------------------------------------------------------


@dataclass
class Place:
    """One archive: a directory served over HTTP, or a prefix of a SeaweedFS bucket."""

    kind: str
    location: str  # what --archive takes
    http_url: str  # what apt reads
    env: dict[str, str]
    root: Path | None = None
    bucket: S3Bucket | None = None
    prefix: str = ""
    client: S3Client | None = None  # shared by the places of a test (boto3 is thread-safe)

    def _s3(self) -> tuple[S3Client, str]:
        assert self.bucket is not None and self.client is not None
        return self.client, self.bucket.bucket

    def list_keys(self) -> list[str]:
        if self.root is not None:
            return sorted(
                p.relative_to(self.root).as_posix()
                for p in self.root.rglob("*")
                if p.is_file() and p.name != ".debops-store.lock"
            )
        client, bucket = self._s3()
        found: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=self.prefix
        ):
            found += [item["Key"][len(self.prefix) :] for item in page.get("Contents", [])]
        return sorted(found)

    def read(self, key: str) -> bytes:
        if self.root is not None:
            return (self.root / key).read_bytes()
        client, bucket = self._s3()
        return client.get_object(Bucket=bucket, Key=self.prefix + key)["Body"].read()

    def exists(self, key: str) -> bool:
        if self.root is not None:
            return (self.root / key).is_file()
        client, bucket = self._s3()
        listed = client.list_objects_v2(Bucket=bucket, Prefix=self.prefix + key)
        return any(item["Key"] == self.prefix + key for item in listed.get("Contents", []))

    def snapshot(self) -> dict[str, bytes]:
        return {key: self.read(key) for key in self.list_keys()}

    def write(self, key: str, data: bytes) -> None:
        if self.root is not None:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        client, bucket = self._s3()
        client.put_object(Bucket=bucket, Key=self.prefix + key, Body=data)

    def delete(self, key: str) -> None:
        if self.root is not None:
            (self.root / key).unlink(missing_ok=True)
            return
        client, bucket = self._s3()
        client.delete_object(Bucket=bucket, Key=self.prefix + key)

    def copy_from(self, other: Place) -> None:
        """Start as a copy of another archive of the same kind."""
        if self.root is not None:
            assert other.root is not None
            shutil.copytree(other.root, self.root, dirs_exist_ok=True)
            return
        client, bucket = self._s3()
        for key in other.list_keys():
            client.copy_object(
                Bucket=bucket,
                Key=self.prefix + key,
                CopySource={"Bucket": bucket, "Key": other.prefix + key},
            )


PlaceFactory = Callable[[str], Place]


@pytest.fixture(params=["local", "s3"])
def places(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    http_serve: Callable[[Path], StaticHttpServer],
) -> PlaceFactory:
    """make(name) -> a new empty archive of this test's kind, readable by apt."""
    if request.param == "local":
        served = tmp_path / "archives"
        served.mkdir()
        server = http_serve(served)

        def make_local(name: str) -> Place:
            root = served / name
            root.mkdir()
            return Place("local", str(root), f"{server.url}/{name}", {}, root=root)

        return make_local
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    client = bucket.client()

    def make_s3(name: str) -> Place:
        return Place(
            "s3",
            f"{bucket.archive_url}/{name}",
            f"{bucket.http_url}/{name}",
            bucket.env(),
            bucket=bucket,
            prefix=f"{name}/",
            client=client,
        )

    return make_s3


@pytest.fixture
def fork_servers() -> Iterator[Callable[[dict[str, str]], ForkServer]]:
    """start(env) -> a ForkServer with that environment; all closed after the test."""
    started: list[ForkServer] = []

    def start(env: dict[str, str]) -> ForkServer:
        server = ForkServer(env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def env_for(place: Place, key: GpgKey) -> dict[str, str]:
    return {**place.env, **key_env(key)}


def upload(place: Place, key: GpgKey, debs: Sequence[Path], *extra: str) -> CliResult:
    return run_cli(
        ["upload", "--archive", place.location, *extra, *map(str, debs)], env_for(place, key)
    )


def ok(result: CliResult) -> CliResult:
    assert result.returncode == 0, result.output
    return result


def strings_in(result: dict[str, object], name: str) -> list[str]:
    """A list of strings in a publisher's RESULT."""
    value = result[name]
    assert isinstance(value, list), result
    return [str(item) for item in value]


def keys_in(result: dict[str, object], name: str) -> set[str]:
    return set(strings_in(result, name))


# -- apt -------------------------------------------------------------------------------


def apt_view(client: AptClient, names: Sequence[str]) -> dict[str, list[str]]:
    """Every version apt knows of each package, highest first (one apt-cache call)."""
    result = client.run("apt-cache", "madison", *names)
    assert result.returncode == 0, result.output
    view: dict[str, list[str]] = {name: [] for name in names}
    for line in result.output.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[0] in view and parts[1] not in view[parts[0]]:
            view[parts[0]].append(parts[1])
    return view


def apt_trouble(result: AptResult) -> list[str]:
    found = [m.group(0) for m in APT_TROUBLE.finditer(result.output)]
    if result.returncode != 0:
        found.append(f"exit {result.returncode}")
    return found


def clean_update(client: AptClient) -> str:
    result = client.run_update()
    assert not apt_trouble(result), result.output
    return result.output


def subscribed(
    factory: AptClientFactory, place: Place, key: GpgKey, arch: str = "amd64", suite: str = SUITE
) -> AptClient:
    client = factory(arch)
    client.add_source(place.http_url, suite, "main", key.public_armored)
    return client


# -- lock bodies -----------------------------------------------------------------------


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def lock_body(
    *, owner: str, host: str, pid: int, boot: str, acquired: float, expires: float, run: str
) -> bytes:
    """A lock as debops-ci writes it (lock.py `_body`)."""
    body = {
        "tool": "debops-ci",
        "owner": owner,
        "host": host,
        "boot_id": boot,
        "pid": pid,
        "run": run,
        "acquired": acquired,
        "expires": expires,
        "token": "0123456789abcdef0123456789abcdef",
    }
    return json.dumps(body, sort_keys=True).encode() + b"\n"


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped) just now."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def one_error_line(stderr: str) -> str:
    """The one `debops-ci: error:` line; progress lines may precede it, nothing follows."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert lines and lines[-1].startswith("debops-ci: error: "), stderr
    assert sum(line.startswith("debops-ci:") for line in lines) == 1, stderr
    return lines[-1]


# -- 1. concurrency ----------------------------------------------------------------------


def test_ten_concurrent_publishers_lose_no_update(
    places: PlaceFactory,
    tmp_path: Path,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
) -> None:
    place = places("archive")
    env = env_for(place, signing_key)
    jobs: list[tuple[str, list[Path]]] = []
    for i in range(6):  # one package family per job, three architectures
        out = tmp_path / f"job{i}"
        version = f"1.{i}-1"
        jobs.append(
            (
                SUITE,
                [
                    make_deb(out, f"app{i}", version, "amd64", depends=f"app{i}-data"),
                    make_deb(out, f"app{i}", version, "arm64", depends=f"app{i}-data"),
                    make_deb(out, f"app{i}-data", version, "all"),
                ],
            )
        )
    for i, version in ((6, "1.0"), (7, "2.0")):  # one package, two versions, two jobs
        out = tmp_path / f"job{i}"
        jobs.append(
            (
                SUITE,
                [
                    make_deb(out, "shared-tool", version, "amd64"),
                    make_deb(out, "shared-tool", version, "arm64"),
                    make_deb(out, "shared-doc", "1.0", "all"),  # the same bytes in both jobs
                ],
            )
        )
    for i in (8, 9):  # another suite at the same time
        out = tmp_path / f"job{i}"
        jobs.append(("testing", [make_deb(out, f"beta{i}", "0.1", a) for a in ("amd64", "arm64")]))
    expected: set[tuple[str, str, str, str]] = set()
    files: dict[tuple[str, str, str, str], Path] = {}
    for suite, debs in jobs:
        for deb in debs:
            name, version, arch = deb.name.removesuffix(".deb").split("_")
            expected.add((suite, name, version, arch))
            files[(suite, name, version, arch)] = deb
    assert len(expected) == 27

    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                *CLI,
                "upload",
                "--archive",
                place.location,
                "--distro",
                suite,
                "--lock-timeout",
                "120",
                *map(str, debs),
            ],
            env=publisher_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for suite, debs in jobs
    ]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    elapsed = time.monotonic() - started
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stdout + stderr
    waits = [
        line for _out, err in outputs for line in err.splitlines() if "waiting for the lock" in line
    ]
    waited = sum("waiting for the lock" in stderr for _stdout, stderr in outputs)
    assert waited >= 1, outputs  # ten jobs and one lock per suite: someone waited
    for line in waits:  # ...and was told who held the lock, and since when
        assert re.fullmatch(
            r"waiting for the lock on dists/(unstable|testing), held by \S+ on \S+ "
            r"\(pid \d+\) since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
            line,
        ), line
    attempts = [int(m) for stdout, _ in outputs for m in re.findall(r"(\d+) attempt", stdout)]
    print(
        f"\n[{place.kind}] {len(jobs)} concurrent publishers, {len(expected)} packages: "
        f"{elapsed:.1f} s, {waited} waited for a lock, commit attempts {attempts}"
    )

    listed = run_cli(["list", "--archive", place.location, "--all-suites", "--json"], env)
    assert listed.returncode == 0, listed.output
    rows = {
        (r["suite"], r["package"], r["version"], r["architecture"])
        for r in json.loads(listed.stdout)
    }
    assert rows == expected
    verified = run_cli(["verify", "--archive", place.location], env)
    assert verified.returncode == 0, verified.output
    assert "0 error(s), 0 warning(s)" in verified.stdout, verified.stdout  # plain copies too

    for suite in (SUITE, "testing"):
        for arch in ("amd64", "arm64"):
            client = subscribed(apt_client_factory, place, signing_key, arch, suite)
            clean_update(client)
            mine = sorted((n, v, a) for s, n, v, a in expected if s == suite and a in (arch, "all"))
            names = sorted({n for n, _v, _a in mine})
            view = apt_view(client, names)
            for name in names:
                versions = sorted((v for n, v, _a in mine if n == name), reverse=True)
                assert view[name] == versions, (suite, arch, name, view)
            # apt downloads every one of them, each the very file that job published.
            dest = client.downloads / f"{suite}-{arch}"
            dest.mkdir()
            got = client.run("apt-get", "download", *(f"{n}={v}" for n, v, _a in mine), cwd=dest)
            assert not apt_trouble(got), got.output
            for name, version, a in mine:
                fetched = dest / deb_filename(name, version, a)
                assert fetched.read_bytes() == files[(suite, name, version, a)].read_bytes()


# -- 2. locks ------------------------------------------------------------------------------


def test_lock_wait_names_the_holder_timeout_is_exit_5_and_a_gone_holder_is_taken_over(
    places: PlaceFactory, tmp_path: Path, signing_key: GpgKey
) -> None:
    place = places("archive")
    ok(upload(place, signing_key, [make_deb(tmp_path, "base-pkg", "1.0", "amd64")]))
    host = socket.gethostname()
    sleeper = subprocess.Popen(["sleep", "120"])  # a live holder on this machine
    try:
        now = time.time()
        place.write(
            LOCK,
            lock_body(
                owner=f"ci@{host}",
                host=host,
                pid=sleeper.pid,
                boot=boot_id(),
                acquired=now - 30,
                expires=now + 600,
                run="https://ci.example/jobs/41",
            ),
        )
        place.delete(NOLOCK)
        before = place.snapshot()
        new = make_deb(tmp_path / "new", "late-pkg", "1.0", "amd64")
        started = time.monotonic()
        timed_out = upload(place, signing_key, [new], "--lock-timeout", "2")
        assert timed_out.returncode == 5, timed_out.output
        assert time.monotonic() - started < 30
        holder = (
            f"ci@{host} on {host} (pid {sleeper.pid}), CI run https://ci.example/jobs/41 since "
        )
        assert f"waiting for the lock on dists/{SUITE}, held by {holder}" in timed_out.stderr
        error = one_error_line(timed_out.stderr)
        assert f"dists/{SUITE} is locked by {holder}" in error
        assert "debops-ci unlock" in error
        # The suite is untouched. Only the new pool file is there: pool files are
        # uploaded create-only before the lock (publish.py step 3), referenced by nothing.
        after = place.snapshot()
        assert {k: v for k, v in after.items() if k in before} == before
        assert set(after) - set(before) == {"pool/main/l/late-pkg/late-pkg_1.0_amd64.deb"}
    finally:
        sleeper.kill()
        sleeper.wait()

    # Its process is gone now (same host, same boot): taken over at once, although the
    # lease it wrote still has ten minutes to run.
    started = time.monotonic()
    took = ok(upload(place, signing_key, [new], "--lock-timeout", "60"))
    elapsed = time.monotonic() - started
    assert f"took over the lock of ci@{host} on {host} (pid {sleeper.pid})" in took.stderr
    assert "its process is gone" in took.stderr
    assert elapsed < 20, elapsed
    # A suite debops-ci made has no original-tool marker, and none is made up.
    assert not place.exists(LOCK) and not place.exists(NOLOCK)

    # The same for a lock body exactly as a process that died holding it leaves it.
    place.write(
        LOCK,
        lock_body(
            owner=f"ci@{host}",
            host=host,
            pid=dead_pid(),
            boot=boot_id(),
            acquired=time.time() - 5,
            expires=time.time() + 600,
            run="",
        ),
    )
    started = time.monotonic()
    again = ok(upload(place, signing_key, [make_deb(tmp_path / "n2", "later-pkg", "1.0", "all")]))
    assert "its process is gone" in again.stderr
    assert time.monotonic() - started < 20
    verified = run_cli(["verify", "--archive", place.location], env_for(place, signing_key))
    assert verified.returncode == 0, verified.output


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read a child's stderr lines until one contains `marker`; return them all."""
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} from the publisher:\n{''.join(seen)}")


def test_sigkilled_holder_is_taken_over_at_once_a_live_renewing_one_never(
    places: PlaceFactory, tmp_path: Path, signing_key: GpgKey
) -> None:
    place = places("archive")
    env = env_for(place, signing_key)
    debs = {
        name: make_deb(tmp_path / name, name, "1.0", "amd64")
        for name in ("first-pkg", "second-pkg", "third-pkg")
    }
    waiter_log = tmp_path / "waiter.err"

    def hold(deb: Path, lease: float) -> tuple[subprocess.Popen[str], str]:
        # A real publisher, paused under the lock: at its first operation after looking
        # for waiting publishers' intents, its lease renewer already running.
        holder = subprocess.Popen(
            publisher_command(
                place.location, [deb], lease=lease, hold_after=f"LIST:dists/{SUITE}/.intents/#1"
            ),
            env=publisher_env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        return holder, read_until(holder, "HOLDING", 60)

    def wait_for_lock(deb: Path) -> subprocess.Popen[str]:
        with waiter_log.open("w") as log:
            return subprocess.Popen(
                [*CLI, "upload", "--archive", place.location, "--lock-timeout", "120", str(deb)],
                env=publisher_env(env),
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )

    # A live holder with a 2.4 s lease renews it every 0.8 s: a waiter (whose own lease
    # is 60 s) waits for more than two of those leases and never takes it over.
    holder, said = hold(debs["first-pkg"], lease=2.4)
    first_body = json.loads(place.read(LOCK))
    assert first_body["pid"] == holder.pid
    waiter = wait_for_lock(debs["second-pkg"])
    time.sleep(5.5)
    assert waiter.poll() is None, waiter_log.read_text()
    renewed = json.loads(place.read(LOCK))
    assert renewed["token"] == first_body["token"]
    assert renewed["expires"] > first_body["expires"] + 3, (first_body, renewed)
    waiting = waiter_log.read_text()
    assert f"held by {first_body['owner']} on {socket.gethostname()} (pid {holder.pid}) since" in (
        waiting
    )
    holder.kill()
    holder.wait()
    remove_gnupg_homes(left_homes(said))
    assert waiter.wait(timeout=60) == 0, waiter_log.read_text()
    assert f"took over the lock of {first_body['owner']}" in waiter_log.read_text()

    # A holder with the default 60 s lease, SIGKILLed: its lease has most of a minute to
    # run, but its pid is gone on this very machine, so the waiter takes over at once.
    holder, said = hold(debs["third-pkg"], lease=60.0)
    waiter = wait_for_lock(debs["first-pkg"])
    time.sleep(1.5)
    assert waiter.poll() is None
    holder.kill()
    holder.wait()
    remove_gnupg_homes(left_homes(said))
    killed = time.monotonic()
    assert waiter.wait(timeout=60) == 0, waiter_log.read_text()
    assert time.monotonic() - killed < 15  # its lease had ~60 s to run
    log = waiter_log.read_text()
    assert f"took over the lock of {first_body['owner']} on" in log
    assert f"(pid {holder.pid})" in log and "its process is gone" in log

    # What the killed holders never committed, a rerun publishes.
    rerun = run_publisher(place.location, [debs["third-pkg"]], env, verify_after=True)
    assert rerun.returncode == 0, rerun.output
    assert rerun.result["verify_errors"] == []
    listed = run_cli(["list", "--archive", place.location, "--json"], env)
    assert {r["package"] for r in json.loads(listed.stdout)} == set(debs)


def test_stale_locks_of_other_hosts_and_the_original_tool_wait_for_their_lease(
    places: PlaceFactory, tmp_path: Path, signing_key: GpgKey
) -> None:
    place = places("archive")
    env = env_for(place, signing_key)
    ok(upload(place, signing_key, [make_deb(tmp_path, "base-pkg", "1.0", "amd64")]))

    # Another host: its pid means nothing here, so only its lease can free the lock.
    now = time.time()
    place.write(
        LOCK,
        lock_body(
            owner="ci@runner-elsewhere",
            host="runner-elsewhere",
            pid=os.getpid(),  # alive here, and still irrelevant
            boot="00000000-0000-0000-0000-000000000000",
            acquired=now - 300,
            expires=now + 4,
            run="https://ci.example/runs/7",
        ),
    )
    started = time.monotonic()
    result = ok(
        upload(place, signing_key, [make_deb(tmp_path / "a", "after-foreign", "1.0", "all")])
    )
    elapsed = time.monotonic() - started
    holder = "ci@runner-elsewhere on runner-elsewhere (pid %d), CI run https://ci.example/runs/7"
    assert f"held by {holder % os.getpid()} since " in result.stderr
    assert f"took over the lock of {holder % os.getpid()}" in result.stderr
    assert "its lease expired" in result.stderr
    assert 2.5 < elapsed < 30, elapsed

    # The original tool's lock: an empty object, and no .nolock while it is held. Its
    # age stands for the lease (2 s here, through the library API).
    place.write(LOCK, b"")
    place.delete(NOLOCK)
    started = time.monotonic()
    legacy = run_publisher(
        place.location, [make_deb(tmp_path / "b", "after-legacy", "1.0", "amd64")], env, lease=3.0
    )
    elapsed = time.monotonic() - started
    assert legacy.returncode == 0, legacy.output
    assert "held by the original debops-ci tool since " in legacy.stderr
    assert "took over the lock of the original debops-ci tool" in legacy.stderr
    assert "its lease expired" in legacy.stderr
    assert 1.5 < elapsed < 30, elapsed
    assert not place.exists(LOCK) and place.exists(NOLOCK)

    # `unlock` breaks any lock by hand after saying whose it was.
    place.write(
        LOCK,
        lock_body(
            owner="ci@runner-9",
            host="runner-9",
            pid=4242,
            boot="",
            acquired=time.time() - 60,
            expires=time.time() + 600,
            run="https://ci.example/runs/9",
        ),
    )
    place.delete(NOLOCK)
    broke = run_cli(["unlock", "--archive", place.location], env)
    assert broke.returncode == 0, broke.output
    assert re.fullmatch(
        rf"broke the lock on dists/{SUITE} held by ci@runner-9 on runner-9 \(pid 4242\), "
        r"CI run https://ci\.example/runs/9 since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n",
        broke.stdout,
    ), broke.stdout
    # Our own lock broken: no original-tool marker is made up (it is, for its lock).
    assert not place.exists(LOCK) and not place.exists(NOLOCK)
    none = run_cli(["unlock", "--archive", place.location], env)
    assert none.stdout == f"dists/{SUITE} is not locked\n", none.output
    started = time.monotonic()
    ok(upload(place, signing_key, [make_deb(tmp_path / "c", "after-unlock", "1.0", "all")]))
    assert time.monotonic() - started < 20
    verified = run_cli(["verify", "--archive", place.location], env)
    assert verified.returncode == 0, verified.output


# -- 3. crash at any point -----------------------------------------------------------------


@dataclass
class CrashScenario:
    name: str
    base: list[Path]  # published first (nothing: an empty archive)
    new: list[Path]  # the publish that crashes
    names: list[str]  # what apt is asked about
    old: dict[str, list[str]] | None  # apt's view before (None: no suite at all)
    new_view: dict[str, list[str]] = field(default_factory=dict)
    follow_up: list[Path] = field(default_factory=list)  # a later, unrelated publish


@dataclass
class CrashOutcome:
    k: int
    died_at: str
    committed: bool
    verify_warnings: list[str]  # right after the crash
    lock_left: bool
    rerun_seconds: float
    rerun_warnings: list[str]  # after the rerun of the same publish
    leftovers: list[str]  # what the rerun left for the next publish to repair


def warning_kind(line: str) -> str:
    """A verify warning without its file names, to count them by kind."""
    text = line.removeprefix("warning: ")
    return re.sub(r"^\S+: ", "", text).split(" (")[0]


def crash_scenario(name: str, out: Path) -> CrashScenario:
    if name == "empty":
        return CrashScenario(
            name,
            base=[],
            new=[
                make_deb(out, "fresh-tool", "1.0", "amd64", depends="fresh-data"),
                make_deb(out, "fresh-data", "1.0", "all"),
            ],
            names=["fresh-tool", "fresh-data"],
            old=None,
            new_view={"fresh-tool": ["1.0"], "fresh-data": ["1.0"]},
            follow_up=[make_deb(out / "next", "next-pkg", "1.0", "amd64")],
        )
    return CrashScenario(
        name,
        base=[
            make_deb(out / "base", "keep-tool", "1.0", "amd64", depends="keep-data"),
            make_deb(out / "base", "keep-data", "1.0", "all"),
        ],
        new=[
            make_deb(out, "keep-tool", "1.1", "amd64", depends="keep-data"),
            make_deb(out, "extra-data", "2.0", "all"),
        ],
        names=["keep-tool", "keep-data", "extra-data"],
        old={"keep-tool": ["1.0"], "keep-data": ["1.0"], "extra-data": []},
        new_view={"keep-tool": ["1.1", "1.0"], "keep-data": ["1.0"], "extra-data": ["2.0"]},
        follow_up=[make_deb(out / "next", "next-pkg", "1.0", "amd64")],
    )


@pytest.mark.parametrize("scenario_name", ["empty", "incremental"])
def test_a_publisher_killed_after_any_storage_operation_breaks_nothing(
    scenario_name: str,
    places: PlaceFactory,
    tmp_path: Path,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
    fork_servers: Callable[[dict[str, str]], ForkServer],
) -> None:
    scenario = crash_scenario(scenario_name, tmp_path / "debs")
    base = places("base")
    env = env_for(base, signing_key)
    server = fork_servers(env)
    if scenario.base:
        made = server.publish(base.location, scenario.base)
        assert made.returncode == 0, made.output

    # The dry run: which operations does this publish make, and which one commits?
    dry = places("dry")
    dry.copy_from(base)
    ops_file = tmp_path / "ops.jsonl"
    counted = server.publish(dry.location, scenario.new, ops_out=ops_file)
    assert counted.returncode == 0, counted.output
    ops = [json.loads(line) for line in ops_file.read_text().splitlines()]
    total = len(ops)
    # The 1-based number of the conditional PUT of InRelease: the commit point.
    commit = 1 + ops.index(
        ["PUT", INRELEASE, "if-none-match: *" if not scenario.base else "if-match"]
    )
    old_root = base.read(INRELEASE) if scenario.base else None
    new_keys = {" ".join(deb.name.removesuffix(".deb").split("_")) for deb in scenario.new}

    guard = threading.Lock()
    repaired: set[tuple[str, ...]] = set()

    def crash_and_recover(k: int) -> CrashOutcome:
        place = places(f"k{k:02d}")
        place.copy_from(base)
        crash = server.publish(place.location, scenario.new, crash_at=k + 1)
        assert crash.returncode == 137, crash.output
        died_at = crash.stderr.split("CRASH ", 1)[1].split(" homes=")[0]
        # Did the new root land? Checked below against the commit point of the dry run.
        committed = place.exists(INRELEASE) and place.read(INRELEASE) != old_root

        verify = server.cli("verify", "--archive", place.location)
        errors = [line for line in verify.stdout.splitlines() if line.startswith("error:")]
        if committed:
            # Killed amid the copies for non-InRelease / by-hash-off clients: verify fails
            # on exactly those (exit 4), and the rerun below repairs them.
            assert verify.returncode in (0, 4), f"k={k} ({died_at}):\n{verify.output}"
            assert all("debops-ci repair" in line for line in errors), (k, died_at, errors)
        else:
            assert verify.returncode == 0, f"k={k} ({died_at}):\n{verify.output}"
        warnings = [line for line in verify.stdout.splitlines() if line.startswith("warning:")]

        client: AptClient | None = None
        if place.exists(INRELEASE):
            client = subscribed(apt_client_factory, place, signing_key)
            clean_update(client)
            seen = apt_view(client, scenario.names)
            assert seen == (scenario.new_view if committed else scenario.old), (k, died_at)
        else:
            assert scenario.old is None, (k, died_at)  # only a new archive has no root

        lock_left = place.exists(LOCK)
        rerun = server.publish(place.location, scenario.new, verify_after=True)
        assert rerun.returncode == 0, f"k={k} ({died_at}):\n{rerun.output}"
        result = rerun.result
        assert result["verify_errors"] == [], (k, died_at, result)
        assert keys_in(result, "added") | keys_in(result, "present") == new_keys
        assert keys_in(result, "added") == (set() if committed else new_keys), (k, result)
        # The lease is 60 s: the rerun must not have waited it out.
        assert rerun.seconds < 20, (k, died_at, rerun.seconds, rerun.stderr)
        if lock_left and not committed:
            assert "took over the lock" in rerun.stderr, rerun.stderr
            assert "its process is gone" in rerun.stderr, rerun.stderr
        if not committed:  # (after a commit, apt saw the new set above and nothing changed)
            client = client or subscribed(apt_client_factory, place, signing_key)
            clean_update(client)
            assert apt_view(client, scenario.names) == scenario.new_view, (k, died_at)

        # A crash after the commit leaves the rerun nothing to add: it repairs torn copies
        # first (verify_errors is empty above); what it leaves (a lock, landing files) is
        # finished by the next publish that changes the suite.
        rerun_warnings = strings_in(result, "verify_warnings")
        leftovers = [f"verify: {warning_kind(w)}" for w in rerun_warnings]
        if place.exists(LOCK):
            leftovers.append("lock file")
        for landing in ("archive-key.asc", "index.html"):
            if not place.exists(landing):
                leftovers.append(f"no {landing}")
        assert committed or not leftovers, (k, died_at, leftovers)
        with guard:  # one follow-up per kind of leftovers is proof enough
            fresh = bool(leftovers) and tuple(leftovers) not in repaired
            repaired.add(tuple(leftovers))
        if fresh:
            after = server.publish(place.location, scenario.follow_up, verify_after=True)
            assert after.returncode == 0, after.output
            assert after.result["verify_errors"] == after.result["verify_warnings"] == []
            assert after.seconds < 20 and not place.exists(LOCK), after.output
            if "lock file" in leftovers:  # the dead publisher's, taken over at once
                assert "its process is gone" in after.stderr, after.stderr
            assert place.exists("archive-key.asc") and place.exists("index.html")
        return CrashOutcome(
            k, died_at, committed, warnings, lock_left, rerun.seconds, rerun_warnings, leftovers
        )

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(crash_and_recover, range(1, total + 1)))
    elapsed = time.monotonic() - started

    # Exactly the crashes after the commit point see the new root. The local store's
    # compare-and-swap PUT reads the tag (a HEAD, which the observer counts) before its
    # rename, so there the commit lands with the operation after the PUT starts.
    first_new = min(o.k for o in outcomes if o.committed)
    assert [o.k for o in outcomes if o.committed] == list(range(first_new, total + 1))
    assert first_new - commit in ((0, 1) if base.kind == "local" else (0,)), (first_new, ops)

    kinds: dict[str, list[int]] = {}
    for outcome in outcomes:
        for kind in sorted({warning_kind(w) for w in outcome.verify_warnings}):
            kinds.setdefault(kind, []).append(outcome.k)
    lock_left = [o.k for o in outcomes if o.lock_left]
    print(
        f"\n[{base.kind}/{scenario.name}] K={total} operations, new InRelease seen from "
        f"k={first_new} (PUT is operation {commit}); {len(outcomes)} crashes in {elapsed:.1f} s; "
        f"slowest rerun {max(o.rerun_seconds for o in outcomes):.2f} s"
    )
    print(f"  lock left behind after k in {lock_left}")
    for kind, ks in kinds.items():
        print(f"  verify warning {kind!r} after k in {ks}")
    leftover_kinds: dict[str, list[int]] = {}
    for outcome in outcomes:
        for item in sorted(set(outcome.leftovers)):
            leftover_kinds.setdefault(item, []).append(outcome.k)
    for item, ks in leftover_kinds.items():
        print(f"  after the (no-op) rerun, {item!r} until the next publish, k in {ks}")
    print(f"  {len(repaired - {()})} kinds of leftovers, each repaired by a later publish")


# -- 4. readers during writes ---------------------------------------------------------------


def lists_packages(client: AptClient) -> set[str]:
    """The package names in every Packages list apt holds right now."""
    names: set[str] = set()
    for path in (client.workdir / "state/lists").glob("*_Packages"):
        names |= set(re.findall(r"^Package: (\S+)$", path.read_text(), re.MULTILINE))
    return names


def test_apt_update_loop_sees_no_error_while_thirty_publishes_land(
    places: PlaceFactory,
    tmp_path: Path,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
) -> None:
    place = places("archive")
    suites = (SUITE, "testing")  # commits to one suite are at most one a second
    seed = [make_deb(tmp_path / "seed", "reader-base", "1.0", a) for a in ("amd64", "arm64")]
    for suite in suites:
        ok(upload(place, signing_key, seed, "--distro", suite))
    jobs, per_job = 3, 10
    arches = ("amd64", "arm64", "all")
    batches = [
        [
            [make_deb(tmp_path / f"w{w}", f"burst{w}-{i:02d}", "1.0", arches[i % 3])]
            + (
                [make_deb(tmp_path / f"w{w}", "reader-base", f"2.{w}.{i}", "amd64")]
                if i % 4 == 0
                else []
            )
            for i in range(per_job)
        ]
        for w in range(jobs)
    ]

    def reader(arch: str) -> AptClient:
        client = subscribed(apt_client_factory, place, signing_key, arch, SUITE)
        client.add_source(place.http_url, "testing", "main", signing_key.public_armored)
        return client

    readers = [reader("amd64"), reader("arm64")]
    done = threading.Event()
    results: list[tuple[str, int, AptResult]] = []
    counts: dict[str, list[int]] = {c.arch: [] for c in readers}

    def read_loop(client: AptClient) -> None:
        deadline = time.monotonic() + 180
        for iteration in range(500):
            final = done.is_set()
            result = client.run_update()
            results.append((client.arch, iteration, result))
            counts[client.arch].append(len(lists_packages(client)))
            if final or time.monotonic() > deadline:
                return

    def write_loop(w: int) -> list[CliResult]:
        # Job w alternates between the two suites.
        return [
            upload(place, signing_key, debs, "--distro", suites[(w + i) % 2])
            for i, debs in enumerate(batches[w])
        ]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(readers) + jobs) as pool:
        reading = [pool.submit(read_loop, client) for client in readers]
        writing = [pool.submit(write_loop, w) for w in range(jobs)]
        published = [r for future in writing for r in future.result()]
        done.set()
        for future in reading:
            future.result()
    elapsed = time.monotonic() - started

    assert len(published) == jobs * per_job
    for result in published:
        assert result.returncode == 0, result.output
    troubled = [(arch, i, r) for arch, i, r in results if apt_trouble(r)]
    print(
        f"\n[{place.kind}] {len(published)} publishes by {jobs} jobs into {len(suites)} suites, "
        f"{len(results)} apt-get updates meanwhile "
        f"({', '.join(f'{a}: {len(c)}' for a, c in counts.items())}) in {elapsed:.1f} s; "
        f"{len(troubled)} with trouble"
    )
    assert not troubled, "\n\n".join(
        f"{arch} update #{i}: {apt_trouble(r)}\n{r.output}" for arch, i, r in troubled[:3]
    )
    # Each reader saw the archive only grow. A new client sees every package at the end (a
    # looping one may still hold a same-second InRelease: see stale_after below).
    everything = [deb for batch in batches for debs in batch for deb in debs] + seed
    stale_after: dict[str, int] = {}
    for client in readers:
        seen = counts[client.arch]
        assert seen == sorted(seen), (client.arch, seen)
        visible = {
            d.name.split("_")[0]
            for d in everything
            if d.name.endswith((f"_{client.arch}.deb", "_all.deb"))
        }
        fresh = reader(client.arch)
        clean_update(fresh)
        assert lists_packages(fresh) == visible
        stale_after[client.arch] = len(visible) - seen[-1]
    print(f"  packages a looping reader still missed after its last update: {stale_after}")
    verified = run_cli(["verify", "--archive", place.location], env_for(place, signing_key))
    assert verified.returncode == 0, verified.output
    assert "0 warning(s)" in verified.stdout, verified.stdout
