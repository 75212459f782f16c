"""Bulk pool uploads (`storage.bulk`, `S3Store.put_new_file`) keep create-only semantics.

The S3 bulk path signs each PUT itself (botocore's SigV4 signer, the file's known
SHA-256 as payload hash) and sends it on the client's connection pool. So the
end-to-end tests run against a SeaweedFS that *checks signatures* (identities in an
`-s3.config`; anonymous reads stay allowed for apt), through the fault proxy, with the
real CLI: other bytes under a pool key are a conflict naming the key, the same bytes
are reused, one upload that fails fails the publish in one line with nothing
published, transient faults are retried, and the secret is never in the output or on
the wire. The unit tests pin the fan-out's logic on MemoryStore.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.aptclient import AptClientFactory
from support.cli import ArchiveTarget, CliResult, key_env, run_cli
from support.debs import make_deb
from support.faultproxy import Fault, FaultProxy
from support.gpgkeys import GpgKey
from support.seaweed import ACCESS_KEY, REGION, SECRET_KEY, S3Bucket, SeaweedServer

from debops_ci.archive.inspect import inspect_all
from debops_ci.archive.pool import upload_pool_files
from debops_ci.archive.session import Archive
from debops_ci.errors import ConflictError, StorageError
from debops_ci.storage import Fault as StoreFault
from debops_ci.storage import MemoryStore, open_store
from debops_ci.storage.bulk import BulkSettings, NewFile, Outcome, put_new_files

N_DEBS = 24
BULK_ACCESS = "debops-ci-bulk-access"
FAST_S3 = {
    "DEBOPS_S3_READ_TIMEOUT": "2",
    "DEBOPS_S3_CONNECT_TIMEOUT": "2",
    "DEBOPS_S3_MAX_ATTEMPTS": "4",
}


# -- a SeaweedFS that checks signatures ----------------------------------------------


class SigningSeaweed(SeaweedServer):
    """SeaweedFS with identities: every write must carry a valid SigV4 signature."""

    def __init__(self, workdir: Path, secret: str) -> None:
        super().__init__(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "s3.json"
        admin = ["Admin", "Read", "Write", "List", "Tagging"]
        identities = [
            {"name": "anonymous", "actions": ["Read"]},  # apt reads anonymously
            {  # the harness's own client (bucket creation, the readiness probe)
                "name": "harness",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": admin,
            },
            {
                "name": "bulk",
                "credentials": [{"accessKey": BULK_ACCESS, "secretKey": secret}],
                "actions": admin,
            },
        ]
        self.config.write_text(json.dumps({"identities": identities}))

    def _server_command(self, datadir: Path) -> list[str]:
        return [*super()._server_command(datadir), f"-s3.config={self.config}"]


@pytest.fixture(scope="module")
def aws_secret() -> str:
    return f"dci-bulk-secret-{secrets.token_hex(16)}"


@pytest.fixture(scope="module")
def signing_seaweed(
    tmp_path_factory: pytest.TempPathFactory, aws_secret: str
) -> Iterator[SeaweedServer]:
    server = SigningSeaweed(tmp_path_factory.mktemp("seaweed-sigv4"), aws_secret)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(signing_seaweed: SeaweedServer) -> Iterator[S3Bucket]:
    made = signing_seaweed.new_bucket()
    yield made
    if signing_seaweed.running:
        signing_seaweed.delete_bucket(made.bucket)


@pytest.fixture
def proxy(signing_seaweed: SeaweedServer) -> Iterator[FaultProxy]:
    with FaultProxy(signing_seaweed.endpoint_url) as running:
        yield running


def aws_env(secret: str) -> dict[str, str]:
    """Credentials from the environment only: no ~/.aws, no instance metadata."""
    return {
        "AWS_ACCESS_KEY_ID": BULK_ACCESS,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """N_DEBS small packages (built once, in parallel: dpkg-deb is a subprocess)."""
    out = tmp_path_factory.mktemp("bulk-debs")
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(
            pool.map(
                lambda i: make_deb(out, f"bulk{i:02d}", "1.0-1", payload_size=500 + 37 * i),
                range(N_DEBS),
            )
        )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pool_key(deb: Path) -> str:
    """Where debops-ci puts it: pool/main/<prefix>/<source>/<file>."""
    name = deb.name.split("_", 1)[0]
    return f"pool/main/{name[0]}/{name}/{deb.name}"


@dataclasses.dataclass
class Setup:
    bucket: S3Bucket
    target: ArchiveTarget
    key: GpgKey
    secret: str

    def upload(self, files: list[Path], via: str, **extra_env: str) -> CliResult:
        env = {**aws_env(self.secret), **FAST_S3, **key_env(self.key), **extra_env}
        args = ["upload", "--archive", self.bucket.archive_url, "--endpoint-url", via]
        return run_cli([*args, *map(str, files)], env)

    def verify(self) -> CliResult:
        env = {**aws_env(self.secret), **key_env(self.key)}
        args = ["verify", "--archive", self.bucket.archive_url]
        return run_cli([*args, "--endpoint-url", self.bucket.endpoint_url], env)


@pytest.fixture
def setup(bucket: S3Bucket, signing_key: GpgKey, aws_secret: str) -> Setup:
    target = ArchiveTarget("s3", bucket.archive_url, bucket.http_url, bucket=bucket)
    return Setup(bucket, target, signing_key, aws_secret)


@pytest.fixture
def published(setup: Setup, tmp_path: Path) -> Setup:
    """The bucket already holds a signed suite (so "nothing published" is visible)."""
    first = setup.upload(
        [make_deb(tmp_path / "base", "base", "1.0", "amd64")], via=setup.bucket.endpoint_url
    )
    assert first.returncode == 0, first.output
    return setup


def error_line(result: CliResult) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def dists(target: ArchiveTarget) -> dict[str, bytes]:
    return {k: v for k, v in target.snapshot().items() if k.startswith("dists/")}


def assert_no_secret(secret: str, result: CliResult, proxy: FaultProxy) -> None:
    assert secret not in result.output
    for request in proxy.requests:
        assert all(secret not in value for value in request.headers.values()), request


# -- end to end ------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_bulk_publish_signs_its_pool_puts_itself_and_apt_installs_from_it(
    setup: Setup,
    debs: list[Path],
    proxy: FaultProxy,
    apt_client_factory: AptClientFactory,
) -> None:
    result = setup.upload(debs, via=proxy.url)
    assert result.returncode == 0, result.output
    for deb in debs:
        assert f"published {deb.name.split('_')[0]} 1.0-1 amd64" in result.stdout
    assert_no_secret(setup.secret, result, proxy)

    pool_puts = proxy.matching("PUT", r"^pool/")
    assert sorted(r.key for r in pool_puts) == sorted(pool_key(d) for d in debs)
    # One PutObject went through botocore (it shows the way); the rest were signed by
    # the bulk path, and the signature-checking server accepted every one.
    by_botocore = [r for r in pool_puts if "botocore" in r.headers.get("user-agent", "").lower()]
    assert len(by_botocore) == 1, [r.headers.get("user-agent") for r in pool_puts]
    digests = {pool_key(d): sha256_of(d) for d in debs}
    for request in pool_puts:
        assert request.headers["if-none-match"] == "*"
        assert request.headers["x-amz-meta-sha256"] == digests[request.key]
        if request not in by_botocore:
            assert request.headers["x-amz-content-sha256"] == digests[request.key]

    stored = setup.target.snapshot()
    for deb in debs:
        assert stored[pool_key(deb)] == deb.read_bytes()
    head = setup.bucket.client().head_object(Bucket=setup.bucket.bucket, Key=pool_key(debs[5]))
    assert head["Metadata"] == {"sha256": sha256_of(debs[5])}
    assert head["ContentType"] == "application/vnd.debian.binary-package"

    verified = setup.verify()
    assert verified.returncode == 0, verified.output
    apt = apt_client_factory("amd64")
    apt.add_source(setup.bucket.http_url, "unstable", "main", setup.key.public_armored)
    apt.update()
    assert apt.candidates("bulk00") == ["1.0-1"]
    assert apt.candidates(f"bulk{N_DEBS - 1:02d}") == ["1.0-1"]


@pytest.mark.e2e
def test_other_bytes_under_a_pool_key_is_a_conflict_naming_it(
    published: Setup, debs: list[Path], proxy: FaultProxy
) -> None:
    taken = pool_key(debs[9])
    published.bucket.client().put_object(
        Bucket=published.bucket.bucket,
        Key=taken,
        Body=b"not the package",
        Metadata={"sha256": hashlib.sha256(b"not the package").hexdigest()},
    )
    before = dists(published.target)
    result = published.upload(debs, via=proxy.url)
    assert result.returncode == 3, result.output
    line = error_line(result)
    assert taken in line and "already exists with different bytes" in line, line
    assert dists(published.target) == before  # InRelease and every index unchanged
    assert published.target.read(taken) == b"not the package"
    assert_no_secret(published.secret, result, proxy)


@pytest.mark.e2e
def test_the_same_bytes_already_there_are_reused_and_reported_as_already_there(
    setup: Setup, debs: list[Path], proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An interrupted publish left three of the pool files behind, as it writes them.
    client = setup.bucket.client()
    left = debs[3:6]
    for deb in left:
        client.put_object(
            Bucket=setup.bucket.bucket,
            Key=pool_key(deb),
            Body=deb.read_bytes(),
            Metadata={"sha256": sha256_of(deb)},
        )
    for name, value in aws_env(setup.secret).items():
        monkeypatch.setenv(name, value)
    store = open_store(setup.bucket.archive_url, endpoint_url=proxy.url)
    with Archive(store) as archive:
        found = upload_pool_files(archive, inspect_all(debs), "main")
    assert found == {pkg.key for pkg in inspect_all(left)}
    # Every PUT was tried create-only once: three were refused (412), none replaced.
    assert len(proxy.matching("PUT", r"^pool/")) == N_DEBS
    for deb in debs:
        assert setup.target.read(pool_key(deb)) == deb.read_bytes()

    # And the CLI publishes over them.
    result = setup.upload(debs, via=proxy.url)
    assert result.returncode == 0, result.output
    assert setup.verify().returncode == 0


FAILURES = {
    "403 AccessDenied on one pool PUT (not retried)": (
        Fault("status", status=403, code="AccessDenied", method="PUT", key=r"bulk17_"),
        "access denied to write",
        1,
    ),
    "500 on every try of one pool PUT": (
        Fault("status", status=500, code="InternalError", method="PUT", key=r"bulk17_"),
        "InternalError",
        3,  # DEBOPS_S3_MAX_ATTEMPTS below
    ),
    "connection reset on every try of one pool PUT": (
        Fault("reset", method="PUT", key=r"bulk17_"),
        "failed",
        3,
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize(("fault", "message", "tries"), list(FAILURES.values()), ids=list(FAILURES))
def test_one_failed_upload_fails_the_publish_in_one_line_and_publishes_nothing(
    fault: Fault,
    message: str,
    tries: int,
    published: Setup,
    debs: list[Path],
    proxy: FaultProxy,
) -> None:
    before = dists(published.target)
    proxy.add(dataclasses.replace(fault))
    result = published.upload(debs, via=proxy.url, DEBOPS_S3_MAX_ATTEMPTS="3")
    assert result.returncode == 6, result.output
    line = error_line(result)
    assert message in line and pool_key(debs[17]) in line, line
    assert proxy.faults[0].fired == tries, [(r.method, r.key, r.fault) for r in proxy.requests]
    after = published.target.snapshot()
    assert {k: v for k, v in after.items() if k.startswith("dists/")} == before
    assert pool_key(debs[17]) not in after
    assert "dists/unstable/.debrepos3.lock" not in after
    assert_no_secret(published.secret, result, proxy)
    assert published.verify().returncode == 0


TRANSIENT = {
    "500 on the first two tries of a signed PUT": Fault(
        "status", status=500, code="InternalError", method="PUT", key=r"bulk13_", first=2
    ),
    "503 SlowDown on the first two tries of a signed PUT": Fault(
        "status", status=503, code="SlowDown", method="PUT", key=r"bulk14_", first=2
    ),
    "answer lost after a signed PUT landed": Fault("drop", method="PUT", key=r"bulk15_", first=1),
}


@pytest.mark.e2e
@pytest.mark.parametrize("fault", list(TRANSIENT.values()), ids=list(TRANSIENT))
def test_transient_faults_on_signed_puts_are_retried(
    fault: Fault, setup: Setup, debs: list[Path], proxy: FaultProxy
) -> None:
    proxy.add(dataclasses.replace(fault))
    result = setup.upload(debs, via=proxy.url)
    assert result.returncode == 0, result.output
    injected = proxy.faults[0]
    assert injected.fired == injected.first
    assert injected.matched > injected.fired, proxy.requests  # tried again
    stored = setup.target.snapshot()
    for deb in debs:
        assert stored[pool_key(deb)] == deb.read_bytes()
    assert setup.verify().returncode == 0


@pytest.mark.e2e
def test_keys_with_plus_and_tilde_under_a_prefix_are_signed_as_botocore_would(
    bucket: S3Bucket,
    aws_secret: str,
    proxy: FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CI versions carry "~" and "+"; the canonical path of a signature must quote them
    # as the URL does, or the signature-checking server answers SignatureDoesNotMatch.
    versions = ["1.0~pr751-14", "2.0+dfsg-1", "3.0~rc1+b2", "4.0-1", "5.0+really4.0"]
    made = [make_deb(tmp_path / str(i), f"odd{i}", v) for i, v in enumerate(versions)]
    for name, value in aws_env(aws_secret).items():
        monkeypatch.setenv(name, value)
    store = open_store(f"{bucket.archive_url}/apt/debian", endpoint_url=proxy.url)
    files = [NewFile(pool_key(p), p, sha256_of(p)) for p in made]
    assert put_new_files(store, files) == [Outcome.CREATED] * len(files)
    signed = [
        r
        for r in proxy.matching("PUT", r"^apt/debian/pool/")
        if "botocore" not in r.headers.get("user-agent", "").lower()
    ]
    assert len(signed) == len(files) - 1, proxy.requests
    client = bucket.client()
    for item in files:
        body = client.get_object(Bucket=bucket.bucket, Key=f"apt/debian/{item.key}")["Body"]
        assert body.read() == item.path.read_bytes()
    # Created once: a second round finds each one there, with its bytes.
    assert put_new_files(store, files) == [Outcome.SAME] * len(files)


# -- the fan-out, in-process -------------------------------------------------------------


def _files(paths: list[Path]) -> list[NewFile]:
    return [NewFile(pool_key(p), p, sha256_of(p)) for p in paths]


def test_outcomes_tell_created_same_and_other_bytes_apart(debs: list[Path]) -> None:
    store = MemoryStore()
    files = _files(debs[:6])
    store.put(files[1].key, debs[1].read_bytes(), metadata={"sha256": files[1].sha256})
    store.put(files[2].key, b"other bytes", metadata={"sha256": "0" * 64})
    store.put(files[3].key, debs[3].read_bytes())  # no metadata: its bytes are hashed
    assert put_new_files(store, files) == [
        Outcome.CREATED,
        Outcome.SAME,
        Outcome.OTHER,
        Outcome.SAME,
        Outcome.CREATED,
        Outcome.CREATED,
    ]
    assert store.get(files[2].key).data == b"other bytes"  # never overwritten
    assert store.head(files[4].key) is not None
    info = store.head(files[0].key)
    assert info is not None and info.metadata == {"sha256": files[0].sha256}


def test_the_first_failure_is_raised_and_stops_the_uploads_not_yet_started(
    debs: list[Path],
) -> None:
    store = MemoryStore()
    files = _files(debs[:10])
    store.inject(StoreFault("PUT", files[3].key, error=StorageError("injected: disk full")))
    with pytest.raises(StorageError, match="injected: disk full"):
        put_new_files(store, files, BulkSettings(other_threads=1))
    # One thread: the three before it were written, none after it was started.
    assert store.stored_keys() == sorted(f.key for f in files[:3])


def test_a_conflict_names_the_key_and_that_no_suite_holds_it(debs: list[Path]) -> None:
    store = MemoryStore()
    taken = pool_key(debs[2])
    store.put(taken, b"other bytes", metadata={"sha256": "0" * 64})
    with Archive(store) as archive, pytest.raises(ConflictError) as caught:
        upload_pool_files(archive, inspect_all(debs[:4]), "main")
    assert taken in str(caught.value) and "no suite now" in str(caught.value)
    # Every other file was still uploaded (a rerun with a bumped version reuses them).
    assert sorted(store.stored_keys()) == sorted(pool_key(d) for d in debs[:4])


def test_no_files_no_requests() -> None:
    store = MemoryStore()
    assert put_new_files(store, []) == []
    assert store.count("PUT") == 0
