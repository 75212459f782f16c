"""Reliability under faults: a misbehaving S3 server, a tampered archive, bad input, secrets.

Storage faults are injected for real by a proxy between debops-ci and SeaweedFS
(`support.faultproxy`): error answers, stalls past the client's read timeout, sockets
closed mid-answer, a server that ignores conditional headers. Transient faults must be
ridden out (and the proxy must have seen the retries); permanent ones must fail fast,
in one line, with exit 6 and the archive untouched.

Every run is the real CLI in a subprocess. S3 runs use a hermetic AWS environment (no
config files, no instance metadata) and a random secret key, so that the secrets scan
can tell a leak from a coincidence.
"""

from __future__ import annotations

import dataclasses
import itertools
import lzma
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.aptclient import AptClientFactory
from support.cli import ArchiveTarget, CliResult, key_env, run_cli
from support.debs import make_deb, make_not_a_deb, make_raw_deb, truncate_file
from support.faultproxy import Fault, FaultProxy
from support.gpgkeys import GpgKey
from support.httpserve import StaticHttpServer
from support.locks import hold_lock
from support.seaweed import ACCESS_KEY, REGION, S3Bucket, SeaweedServer
from support.secretscan import (
    Secrets,
    files_under,
    gnupg_homes_holding,
    new_tmp_files,
    wait_until_gone,
)

pytestmark = pytest.mark.e2e

# Small timeouts so that a stall costs seconds, not minutes; enough attempts to ride
# out the faults the tests inject (botocore's first backoffs are about a second).
FAST_S3 = {
    "DEBOPS_S3_READ_TIMEOUT": "2",
    "DEBOPS_S3_CONNECT_TIMEOUT": "2",
    "DEBOPS_S3_MAX_ATTEMPTS": "4",
}
PERMANENT_FAILURE_BUDGET = 10.0  # seconds: a refusal must not be retried for long
MODULE_STARTED = time.time()  # the last test scans every file /tmp gained since


def hermetic_aws(secret: str, endpoint: str | None = None) -> dict[str, str]:
    """Credentials from the environment only: no ~/.aws, no instance metadata."""
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed_cli(
    args: list[str], env: dict[str, str], *, cwd: Path | None = None
) -> tuple[CliResult, float]:
    start = time.monotonic()
    result = run_cli(args, env, cwd=cwd, timeout=180)
    return result, time.monotonic() - start


def error_line(result: CliResult) -> str:
    """The one line a failure prints on stderr (asserting there is exactly one)."""
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{result.stderr}"
    assert lines[0].startswith("debops-ci: error: "), lines[0]
    return lines[0]


def release_date(target: ArchiveTarget, suite: str = "unstable") -> str:
    text = target.read(f"dists/{suite}/Release").decode()
    match = re.search(r"^Date: (.+)$", text, re.MULTILINE)
    assert match, text
    return match.group(1)


def listed_index(target: ArchiveTarget, name: str, suite: str = "unstable") -> str:
    """The by-hash key of an index file as the current Release lists it."""
    text = target.read(f"dists/{suite}/Release").decode()
    sha256 = text.split("SHA256:", 1)[1]
    match = re.search(rf"^ ([0-9a-f]{{64}}) +\d+ {re.escape(name)}$", sha256, re.MULTILINE)
    assert match, text
    directory = name.rsplit("/", 1)[0]
    return f"dists/{suite}/{directory}/by-hash/SHA256/{match.group(1)}"


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def proxy(seaweed: SeaweedServer) -> Iterator[FaultProxy]:
    with FaultProxy(seaweed.endpoint_url) as running:
        yield running


@pytest.fixture(scope="module")
def aws_secret() -> str:
    return f"dci-secret-{secrets.token_hex(16)}"


@dataclasses.dataclass
class S3Setup:
    bucket: S3Bucket
    target: ArchiveTarget
    env: dict[str, str]  # hermetic AWS env pointing at SeaweedFS directly
    key: GpgKey

    def publish(self, debs: list[Path], *extra: str, via: str | None = None) -> CliResult:
        args = ["upload", "--archive", self.bucket.archive_url, *extra, *map(str, debs)]
        if via:
            args[1:1] = ["--endpoint-url", via]
        return run_cli(args, {**self.env, **FAST_S3, **key_env(self.key)})

    def verify(self) -> CliResult:
        return run_cli(
            ["verify", "--archive", self.bucket.archive_url], {**self.env, **key_env(self.key)}
        )


def _s3_setup(bucket: S3Bucket, key: GpgKey, secret: str, scratch: Path) -> S3Setup:
    """A bucket that already holds a published suite (so reads and CAS are exercised)."""
    target = ArchiveTarget("s3", bucket.archive_url, bucket.http_url, bucket=bucket)
    setup = S3Setup(bucket, target, hermetic_aws(secret, bucket.endpoint_url), key)
    first = setup.publish([make_deb(scratch / "base", "base", "1.0", "amd64")])
    assert first.returncode == 0, first.output
    return setup


@pytest.fixture(scope="module")
def s3(
    seaweed: SeaweedServer,
    signing_key: GpgKey,
    aws_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[S3Setup]:
    """One bucket shared by the fault tests: each publishes packages of its own."""
    bucket = seaweed.new_bucket()
    yield _s3_setup(bucket, signing_key, aws_secret, tmp_path_factory.mktemp("s3"))
    seaweed.delete_bucket(bucket.bucket)


@pytest.fixture
def fresh_s3(s3_bucket: S3Bucket, signing_key: GpgKey, aws_secret: str, tmp_path: Path) -> S3Setup:
    """A bucket of its own, for tests that change whose key signs it."""
    return _s3_setup(s3_bucket, signing_key, aws_secret, tmp_path)


_names = itertools.count(1)


def new_deb(directory: Path, **kwargs: Any) -> tuple[Path, str]:
    """A .deb of a package name no other test of the module publishes."""
    name = f"svc{next(_names)}"
    return make_deb(directory / name, name, "2.0", "amd64", **kwargs), name


@pytest.fixture(params=["local", "s3"])
def target(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    http_serve: Callable[[Path], StaticHttpServer],
    aws_secret: str,
) -> Iterator[ArchiveTarget]:
    if request.param == "local":
        root = tmp_path / "archive"
        root.mkdir()
        yield ArchiveTarget("local", str(root), http_serve(root).url, {}, root=root)
    else:
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        env = hermetic_aws(aws_secret, bucket.endpoint_url)
        yield ArchiveTarget("s3", bucket.archive_url, bucket.http_url, env, bucket=bucket)


def upload(
    target: ArchiveTarget, key: GpgKey, debs: list[Path], *extra: str
) -> tuple[CliResult, float]:
    return timed_cli(
        ["upload", "--archive", target.location, *extra, *map(str, debs)],
        {**target.env, **key_env(key)},
    )


# == 1. storage faults, injected on the wire ==========================================

TRANSIENT = {
    "500 on the first two pool PUTs": Fault(
        "status", status=500, code="InternalError", method="PUT", key=r"^pool/", first=2
    ),
    "503 SlowDown on the first two by-hash PUTs": Fault(
        "status", status=503, code="SlowDown", method="PUT", key=r"/by-hash/", first=2
    ),
    "500 on every 6th request": Fault("status", status=500, every=6),
    "500 on the InRelease compare-and-swap": Fault(
        "status", status=500, method="PUT", key=r"/InRelease$", first=1
    ),
    "stall past the read timeout on the InRelease GET": Fault(
        "hang", method="GET", key=r"/InRelease$", first=1
    ),
    "stall halfway through an index body": Fault(
        "hang", cut="body", method="GET", key=r"/by-hash/", first=1
    ),
    "connection reset on the probe": Fault("reset", method="PUT", key=r"probe-", first=1),
    "connection dropped halfway through an index body": Fault(
        "drop", cut="body", method="GET", key=r"/by-hash/", first=2
    ),
    "answer lost after the probe's create landed": Fault(
        "drop", method="PUT", key=r"probe-", first=1
    ),
    "answer lost after a pool PUT landed": Fault("drop", method="PUT", key=r"^pool/", first=1),
    "answer lost after the lock was created": Fault(
        "drop", method="PUT", key=r"\.debrepos3\.lock$", first=1
    ),
    "stall after the InRelease write landed": Fault(
        "hang", forward=True, method="PUT", key=r"/InRelease$", first=1
    ),
}


@pytest.mark.parametrize("fault", list(TRANSIENT.values()), ids=list(TRANSIENT))
def test_transient_faults_are_retried_and_the_archive_stays_good(
    fault: Fault,
    s3: S3Setup,
    proxy: FaultProxy,
    tmp_path: Path,
    apt_client_factory: AptClientFactory,
) -> None:
    proxy.add(dataclasses.replace(fault))
    deb, name = new_deb(tmp_path, payload_size=3000)
    start = time.monotonic()
    result = s3.publish([deb], via=proxy.url)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.output
    assert f"published {name} 2.0 amd64" in result.stdout
    injected = proxy.faults[0]
    assert injected.fired >= 1, f"the fault never fired: {proxy.requests}"
    if injected.first is not None:
        assert injected.fired == injected.first
        # Every failed request was followed by another try of the same operation.
        assert injected.matched > injected.fired, proxy.requests
    assert elapsed < 30, f"took {elapsed:.1f}s"

    verified = s3.verify()
    assert verified.returncode == 0, verified.output
    apt = apt_client_factory("amd64")
    apt.add_source(s3.bucket.http_url, "unstable", "main", s3.key.public_armored)
    apt.update()
    assert apt.candidates(name) == ["2.0"]
    assert apt.candidates("base") == ["1.0"]


PERMANENT = {
    "403 AccessDenied on everything": (
        Fault("status", status=403, code="AccessDenied", message="Access Denied"),
        "access denied to read",
    ),
    "404 NoSuchBucket on everything": (
        Fault("status", status=404, code="NoSuchBucket", message="The bucket does not exist"),
        "does not exist",
    ),
    "403 AccessDenied on writes (read-only credentials)": (
        Fault("status", status=403, code="AccessDenied", method="PUT"),
        "access denied to write",
    ),
    "403 AccessDenied on pool uploads": (
        Fault("status", status=403, code="AccessDenied", method="PUT", key=r"^pool/"),
        "access denied to write",
    ),
}


@pytest.mark.parametrize(("fault", "message"), list(PERMANENT.values()), ids=list(PERMANENT))
def test_permanent_faults_fail_fast_in_one_line_and_leave_the_archive_untouched(
    fault: Fault, message: str, s3: S3Setup, proxy: FaultProxy, tmp_path: Path
) -> None:
    before = s3.target.snapshot()
    proxy.add(dataclasses.replace(fault))
    deb, _name = new_deb(tmp_path)
    start = time.monotonic()
    result = s3.publish([deb], via=proxy.url)
    elapsed = time.monotonic() - start
    assert result.returncode == 6, result.output
    assert message in error_line(result)
    assert elapsed < PERMANENT_FAILURE_BUDGET, f"took {elapsed:.1f}s"
    # A refusal is not retried.
    assert proxy.faults[0].fired == 1, proxy.requests
    assert s3.target.snapshot() == before


def test_a_refused_commit_keeps_the_old_root_and_releases_the_lock(
    s3: S3Setup, proxy: FaultProxy, tmp_path: Path
) -> None:
    old_root = s3.target.read("dists/unstable/InRelease")
    proxy.add(Fault("status", status=403, code="AccessDenied", method="PUT", key="/InRelease$"))
    deb, name = new_deb(tmp_path)
    result = s3.publish([deb], via=proxy.url)
    assert result.returncode == 6, result.output
    assert "access denied to write" in error_line(result)
    after = s3.target.snapshot()
    assert after["dists/unstable/InRelease"] == old_root
    assert "dists/unstable/.debrepos3.lock" not in after
    assert "dists/unstable/.debrepos3.nolock" not in after  # a suite of ours has none
    verified = s3.verify()
    assert verified.returncode == 0, verified.output
    # Once the server accepts writes again, the same publish finishes the job.
    proxy.clear()
    again = s3.publish([deb], via=proxy.url)
    assert again.returncode == 0, again.output
    assert f"published {name} 2.0 amd64" in again.stdout


def test_a_server_that_keeps_failing_gives_up_in_bounded_time(
    s3: S3Setup, proxy: FaultProxy, tmp_path: Path
) -> None:
    before = s3.target.snapshot()
    proxy.add(Fault("status", status=503, code="SlowDown", message="Please reduce your rate"))
    deb, _name = new_deb(tmp_path)
    env = {**s3.env, **key_env(s3.key), **FAST_S3, "DEBOPS_S3_MAX_ATTEMPTS": "3"}
    result, elapsed = timed_cli(
        ["upload", "--archive", s3.bucket.archive_url, "--endpoint-url", proxy.url, str(deb)],
        env,
    )
    assert result.returncode == 6, result.output
    assert "SlowDown" in error_line(result)
    # DEBOPS_S3_MAX_ATTEMPTS counts every try of the one request that kept failing.
    assert proxy.faults[0].fired == 3, [(r.method, r.key) for r in proxy.requests]
    assert elapsed < 15, f"took {elapsed:.1f}s"
    assert s3.target.snapshot() == before


def test_a_server_ignoring_conditional_headers_is_refused(
    s3: S3Setup, proxy: FaultProxy, tmp_path: Path
) -> None:
    before = s3.target.snapshot()
    proxy.strip_conditions = True
    deb, name = new_deb(tmp_path)
    result = s3.publish([deb], via=proxy.url)
    assert result.returncode == 6, result.output
    line = error_line(result)
    assert "ignores conditional writes" in line and "--unsafe-no-conditional-writes" in line
    # debops-ci did ask: the client sent the headers, the "server" dropped them.
    probes = proxy.matching("PUT", r"probe-")
    assert any("if-none-match" in r.headers for r in probes), probes
    assert not proxy.matching("PUT", r"^(pool|dists)/")
    # Nothing written but the probe, which cleaned up after itself.
    assert s3.target.snapshot() == before

    unsafe = s3.publish([deb], "--unsafe-no-conditional-writes", via=proxy.url)
    assert unsafe.returncode == 0, unsafe.output
    assert f"published {name} 2.0 amd64" in unsafe.stdout
    assert s3.verify().returncode == 0


def test_an_unreachable_endpoint_fails_in_bounded_time(
    signing_key: GpgKey, aws_secret: str, tmp_path: Path
) -> None:
    port = closed_port()
    env = {**hermetic_aws(aws_secret), **FAST_S3, **key_env(signing_key)}
    deb = make_deb(tmp_path, "svc", "1.0")
    result, elapsed = timed_cli(
        [
            "upload",
            "--archive",
            "s3://some-bucket",
            "--endpoint-url",
            f"http://127.0.0.1:{port}",
            str(deb),
        ],
        env,
    )
    assert result.returncode == 6, result.output
    line = error_line(result)
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in line
    assert elapsed < 15, f"took {elapsed:.1f}s"


# == 2. tampering =====================================================================


@pytest.fixture
def published(target: ArchiveTarget, signing_key: GpgKey, tmp_path: Path) -> dict[str, Path]:
    debs = {
        "alpha": make_deb(tmp_path / "debs", "alpha", "1.0", "amd64", payload_size=2000),
        "beta": make_deb(tmp_path / "debs", "beta", "1.0", "all"),
    }
    result, _ = upload(target, signing_key, list(debs.values()))
    assert result.returncode == 0, result.output
    return debs


def verify_cli(target: ArchiveTarget, key: GpgKey, tmp_path: Path, *extra: str) -> CliResult:
    pinned = tmp_path / "pinned-key.asc"
    pinned.write_text(key.public_armored)
    return run_cli(
        ["verify", "--archive", target.location, "--archive-key", str(pinned), *extra],
        target.env,
    )


def tamper_index(target: ArchiveTarget, other_key: GpgKey, scratch: Path) -> str:
    key = listed_index(target, "main/binary-amd64/Packages.xz")
    text = lzma.decompress(target.read(key)).decode()
    forged = text.replace("Package: alpha", "Package: alpha-evil")
    target.write(key, lzma.compress(forged.encode()))
    return key


def replace_deb(target: ArchiveTarget, other_key: GpgKey, scratch: Path) -> str:
    key = "pool/main/a/alpha/alpha_1.0_amd64.deb"
    impostor = make_deb(
        scratch / "impostor", "alpha", "1.0", "amd64", files={"/usr/bin/x": b"#!/bin/sh\n"}
    )
    target.write(key, impostor.read_bytes())
    return key


def resign_with_other_key(target: ArchiveTarget, other_key: GpgKey, scratch: Path) -> str:
    release = target.read("dists/unstable/Release")
    target.write("dists/unstable/InRelease", other_key.clearsign(release))
    return "dists/unstable/InRelease"


TAMPERING = {
    "index changed under its by-hash name": (tamper_index, "does not match"),
    "pool .deb replaced": (replace_deb, "pool/main/a/alpha/alpha_1.0_amd64.deb"),
    "InRelease re-signed by another key": (resign_with_other_key, "not signed by the archive key"),
}


@pytest.mark.parametrize(("tamper", "needle"), list(TAMPERING.values()), ids=list(TAMPERING))
def test_tampering_is_named_by_verify_and_refused_by_publish(
    tamper: Callable[[ArchiveTarget, GpgKey, Path], str],
    needle: str,
    target: ArchiveTarget,
    published: dict[str, Path],
    signing_key: GpgKey,
    other_signing_key: GpgKey,
    tmp_path: Path,
) -> None:
    where = tamper(target, other_signing_key, tmp_path)
    before = target.snapshot()

    verified = verify_cli(target, signing_key, tmp_path)
    assert verified.returncode == 4, verified.output
    errors = [line for line in verified.stdout.splitlines() if line.startswith("error: ")]
    assert any(where in line and needle in line for line in errors), verified.output
    assert "Traceback" not in verified.output

    # Publishing on top of it: the re-upload of alpha must not be taken as "present".
    new = make_deb(tmp_path / "new", "gamma", "1.0", "amd64")
    result, _ = upload(target, signing_key, [published["alpha"], new])
    assert result.returncode == 4, result.output
    line = error_line(result)
    assert where in line, line
    assert target.snapshot() == before


def test_a_rolled_back_suite_is_named_by_verify_and_refused_by_publish(
    target: ArchiveTarget,
    published: dict[str, Path],
    signing_key: GpgKey,
    tmp_path: Path,
) -> None:
    older = target.snapshot()
    older_date = release_date(target)
    # Release Dates have one-second granularity and never go backwards, but two commits
    # in the same second share a Date: let the clock move on so the roots differ by it.
    time.sleep(1.1)
    newer_deb = make_deb(tmp_path / "newer", "delta", "1.0", "amd64")
    result, _ = upload(target, signing_key, [newer_deb])
    assert result.returncode == 0, result.output
    newer_date = release_date(target)
    assert newer_date != older_date
    # An attacker (or a bad restore) puts the older root and its indexes back.
    for key, data in older.items():
        if key.startswith("dists/unstable/") and "/by-hash/" not in key:
            target.write(key, data)
    before = target.snapshot()

    # A consistent old archive looks fine (an old floor, in ISO 8601, changes nothing)...
    plain = verify_cli(target, signing_key, tmp_path, "--not-older-than", "2001-01-01")
    assert plain.returncode == 0, plain.output
    floor = verify_cli(target, signing_key, tmp_path, "--not-older-than", newer_date)
    assert floor.returncode == 4, floor.output  # ...unless you know the last Date
    assert f"error: dists/unstable/InRelease: Date {older_date} is older than" in floor.stdout
    assert "rolled back" in floor.stdout

    gamma = make_deb(tmp_path / "new", "gamma", "1.0", "amd64")
    refused, _ = upload(target, signing_key, [gamma], "--not-older-than", newer_date)
    assert refused.returncode == 4, refused.output
    line = error_line(refused)
    assert "dists/unstable/InRelease" in line and "rolled back" in line
    assert target.snapshot() == before

    # The Date it has is not older than itself.
    accepted, _ = upload(target, signing_key, [gamma], "--not-older-than", older_date)
    assert accepted.returncode == 0, accepted.output
    assert release_date(target) != older_date


# == 3. bad input ======================================================================


@dataclasses.dataclass
class Corpus:
    """Everything the bad-input cases point at, made once for the module."""

    dir: Path
    archive: ArchiveTarget  # a good local archive with one package
    broken: ArchiveTarget  # a local archive whose InRelease does not verify
    bucket: S3Bucket
    s3: ArchiveTarget  # a good S3 archive with one package
    key: GpgKey
    passphrase_key: GpgKey
    other_key: GpgKey
    aws_secret: str
    debs: dict[str, Path]
    secrets: Secrets

    def key_env(self) -> dict[str, str]:
        return key_env(self.key)

    def s3_env(self) -> dict[str, str]:
        return {**hermetic_aws(self.aws_secret, self.bucket.endpoint_url), **self.key_env()}


def _control(**fields: str | None) -> str:
    base: dict[str, str | None] = {
        "Package": "bad",
        "Version": "1.0",
        "Architecture": "amd64",
        "Maintainer": "tests <t@example.invalid>",
        "Description": "a test package",
    }
    base.update(fields)
    return "".join(f"{k}: {v}\n" for k, v in base.items() if v is not None)


def make_bad_inputs(d: Path) -> dict[str, Path]:
    raw = d / "raw"
    debs = {
        "not-a-deb": make_not_a_deb(d / "notes_1.0_amd64.deb"),
        "truncated": truncate_file(make_deb(d / "t", "trunc", "1.0", payload_size=4000), -500),
        "truncated-header": truncate_file(make_deb(d / "t2", "trunc2", "1.0"), 40),
        "no-package": make_raw_deb(raw / "a.deb", _control(Package=None)),
        "no-version": make_raw_deb(raw / "b.deb", _control(Version=None)),
        "no-architecture": make_raw_deb(raw / "c.deb", _control(Architecture=None)),
        "bad-version": make_raw_deb(raw / "d.deb", _control(Version="v1.0 beta")),
        "path-name": make_raw_deb(raw / "e.deb", _control(Package="../x")),
        "blank-line-injection": make_raw_deb(
            raw / "f.deb",
            _control(Description="x\n\nPackage: evil\nVersion: 9\nArchitecture: amd64"),
        ),
        "continued-version": make_raw_deb(raw / "g.deb", _control(Version="1.0\n 2.0")),
        "carriage-return": make_raw_deb(raw / "h.deb", _control(Depends="libc6\r")),
        "reserved-filename": make_raw_deb(
            raw / "i.deb", _control(Filename="pool/main/e/evil/evil_1.0_amd64.deb")
        ),
        "reserved-sha256": make_raw_deb(raw / "j.deb", _control(SHA256="0" * 64)),
        "not-utf8": make_raw_deb(raw / "k.deb", _control().encode() + b"X-Bad: \xff\xfe\n"),
        "twin-a": make_deb(d / "twin-a", "twin", "1.0", "amd64"),
        "twin-b": make_deb(d / "twin-b", "twin", "1.0", "amd64", payload_size=10),
        "good": make_deb(d / "good", "fresh", "1.0", "amd64"),
        "present-other-bytes": make_deb(d / "other", "keep", "1.0", "amd64", payload_size=5),
    }
    (d / "a-directory.deb").mkdir()
    debs["directory"] = d / "a-directory.deb"
    debs["missing"] = d / "missing_1.0_amd64.deb"
    (d / "not-a-key.asc").write_text("this is not a key\n")
    return debs


@pytest.fixture(scope="module")
def corpus(
    tmp_path_factory: pytest.TempPathFactory,
    seaweed: SeaweedServer,
    signing_key: GpgKey,
    passphrase_key: GpgKey,
    other_signing_key: GpgKey,
    aws_secret: str,
) -> Iterator[Corpus]:
    d = tmp_path_factory.mktemp("corpus")
    debs = make_bad_inputs(d / "inputs")
    keep = make_deb(d / "keep", "keep", "1.0", "amd64")

    local = ArchiveTarget("local", str(d / "archive"), "", {}, root=d / "archive")
    broken = ArchiveTarget("local", str(d / "broken"), "", {}, root=d / "broken")
    bucket = seaweed.new_bucket()
    s3 = ArchiveTarget("s3", bucket.archive_url, bucket.http_url, bucket=bucket)
    for tgt in (local, broken):
        result = run_cli(["upload", "--archive", tgt.location, str(keep)], key_env(signing_key))
        assert result.returncode == 0, result.output
    result = run_cli(
        ["upload", "--archive", s3.location, str(keep)],
        {**hermetic_aws(aws_secret, bucket.endpoint_url), **key_env(signing_key)},
    )
    assert result.returncode == 0, result.output
    resign_with_other_key(broken, other_signing_key, d)

    found = Secrets()
    found.add("AWS secret key", aws_secret)
    for key in (signing_key, passphrase_key, other_signing_key):
        found.add_key(key)
    yield Corpus(
        d,
        local,
        broken,
        bucket,
        s3,
        signing_key,
        passphrase_key,
        other_signing_key,
        aws_secret,
        debs,
        found,
    )
    seaweed.delete_bucket(bucket.bucket)


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: the command, its environment, and the one error line expected."""

    rc: int
    needle: str
    args: Callable[[Corpus], list[str]]
    env: Callable[[Corpus], dict[str, str]] = Corpus.key_env
    store: str = "local"  # which archive must stay byte-identical
    config: str | None = None  # debops-ci.toml written in the working directory


def up(*names: str, extra: tuple[str, ...] = ()) -> Callable[[Corpus], list[str]]:
    """`upload --archive <local archive> FILES...` of the named corpus inputs."""
    return lambda c: [
        "upload",
        "--archive",
        c.archive.location,
        *extra,
        *(str(c.debs[n]) for n in names),
    ]


def up_s3(*names: str, extra: tuple[str, ...] = ()) -> Callable[[Corpus], list[str]]:
    return lambda c: [
        "upload",
        "--archive",
        c.s3.location,
        *extra,
        *(str(c.debs[n]) for n in names),
    ]


def with_key(**env: str) -> Callable[[Corpus], dict[str, str]]:
    return lambda c: {**c.key_env(), **env}


def no_key(**env: str) -> Callable[[Corpus], dict[str, str]]:
    return lambda _c: dict(env)


_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

CASES: dict[str, Case] = {
    # -- files --------------------------------------------------------------------
    "not a .deb": Case(8, "not a Debian package", up("not-a-deb")),
    "truncated .deb": Case(8, "truncated", up("truncated")),
    "truncated inside the ar header": Case(8, "truncated", up("truncated-header")),
    "control lacks Package": Case(8, "lacks the Package field", up("no-package")),
    "control lacks Version": Case(8, "lacks the Version field", up("no-version")),
    "control lacks Architecture": Case(8, "lacks the Architecture field", up("no-architecture")),
    "invalid version": Case(8, "not a valid Debian version", up("bad-version")),
    "package name ../x": Case(8, "not a valid Debian package name", up("path-name")),
    "blank-line injection in a field": Case(
        8, "more than one paragraph", up("blank-line-injection")
    ),
    "newline in Version": Case(8, "spans several lines", up("continued-version")),
    "carriage return in a field": Case(8, "carriage returns", up("carriage-return")),
    "reserved field Filename": Case(8, "Filename is reserved", up("reserved-filename")),
    "reserved field SHA256": Case(8, "SHA256 is reserved", up("reserved-sha256")),
    "control not UTF-8": Case(8, "not valid UTF-8", up("not-utf8")),
    "a good file with a bad one": Case(8, "not a Debian package", up("good", "not-a-deb")),
    "missing file": Case(8, "no such file", up("missing")),
    "directory instead of a file": Case(2, "is a directory", up("directory")),
    "empty file list": Case(2, "name at least one .deb", up()),
    "same package twice, different bytes": Case(3, "different bytes", up("twin-a", "twin-b")),
    "already published with other bytes": Case(
        3, "refusing to overwrite", up("present-other-bytes")
    ),
    # -- keys ---------------------------------------------------------------------
    "no signing key": Case(2, "no signing key", up("good"), env=no_key()),
    "malformed DEB_GPG_KEY": Case(
        7,
        "holds no private key",
        up("good"),
        env=no_key(
            DEB_GPG_KEY="-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nbm90IGEga2V5\n"
            "-----END PGP PRIVATE KEY BLOCK-----\n"
        ),
    ),
    "DEB_GPG_KEY_BASE64 not base64": Case(
        2, "not valid base64", up("good"), env=no_key(DEB_GPG_KEY_BASE64="%%%not*base64%%%")
    ),
    "DEB_GPG_KEY_BASE64 of garbage": Case(
        7, "holds no private key", up("good"), env=no_key(DEB_GPG_KEY_BASE64="Z2FyYmFnZQ==")
    ),
    "a public key instead of a private key": Case(
        7,
        "holds no private key",
        up("good"),
        env=lambda c: {"DEB_GPG_KEY": c.key.public_armored},
    ),
    "wrong passphrase": Case(
        7,
        "wrong or missing passphrase",
        up("good"),
        env=lambda c: {
            "DEB_GPG_KEY": c.passphrase_key.private_armored,
            "DEB_GPG_PASSPHRASE": "not-the-passphrase",
        },
    ),
    "missing passphrase": Case(
        7,
        "needs a passphrase: set DEB_GPG_PASSPHRASE",
        up("good"),
        env=lambda c: {"DEB_GPG_KEY": c.passphrase_key.private_armored},
    ),
    "--gpg-key-fp of a key not given": Case(
        7, "no private key DEADBEEF", up("good", extra=("--gpg-key-fp", "DEADBEEF"))
    ),
    "--archive-key not a key": Case(
        2,
        "not an armored OpenPGP public key",
        lambda c: [
            "upload",
            "--archive",
            c.archive.location,
            "--archive-key",
            str(c.dir / "inputs/not-a-key.asc"),
            str(c.debs["good"]),
        ],
    ),
    "--archive-key missing": Case(
        2,
        "cannot read --archive-key",
        lambda c: [
            "upload",
            "--archive",
            c.archive.location,
            "--archive-key",
            str(c.dir / "inputs/none.asc"),
            str(c.debs["good"]),
        ],
    ),
    "InRelease signed by another key": Case(
        4,
        "not signed by the archive key",
        lambda c: ["upload", "--archive", c.broken.location, str(c.debs["good"])],
        store="broken",
    ),
    # -- storage ------------------------------------------------------------------
    "no AWS credentials at all": Case(
        6,
        "no AWS credentials found",
        up_s3("good"),
        env=lambda c: {
            **{k: v for k, v in c.s3_env().items() if k not in _CREDENTIALS},
            "HOME": str(c.dir / "empty-home"),
        },
        store="s3",
    ),
    "AWS profile that does not exist": Case(
        6,
        "AWS profile 'nobody' not found",
        up_s3("good"),
        env=lambda c: {**c.s3_env(), "AWS_PROFILE": "nobody"},
        store="s3",
    ),
    "unreachable endpoint": Case(
        6,
        "cannot reach the S3 endpoint",
        lambda c: [
            "upload",
            "--archive",
            c.s3.location,
            "--endpoint-url",
            f"http://127.0.0.1:{closed_port()}",
            str(c.debs["good"]),
        ],
        env=lambda c: {**c.s3_env(), "DEBOPS_S3_MAX_ATTEMPTS": "2"},
        store="s3",
    ),
    "bucket that does not exist": Case(
        6,
        "does not exist",
        lambda c: ["upload", "--archive", f"s3://nope-{c.bucket.bucket}", str(c.debs["good"])],
        env=Corpus.s3_env,
        store="s3",
    ),
    "invalid bucket name": Case(
        2, "invalid bucket name", lambda c: ["upload", "--archive", "s3://a", str(c.debs["good"])]
    ),
    "DEBOPS_S3_MAX_ATTEMPTS not a number": Case(
        2,
        "DEBOPS_S3_MAX_ATTEMPTS must be a number",
        up_s3("good"),
        env=lambda c: {**c.s3_env(), "DEBOPS_S3_MAX_ATTEMPTS": "many"},
        store="s3",
    ),
    # -- flags --------------------------------------------------------------------
    "--distro ../etc": Case(2, "invalid distro", up("good", extra=("--distro", "../etc"))),
    "--distro with a slash": Case(2, "invalid distro", up("good", extra=("--distro", "a/b"))),
    "--component invalid": Case(
        2, "invalid component", up("good", extra=("--component", "Main Stuff"))
    ),
    "--origin with a newline": Case(
        2, "--origin must be one line", up("good", extra=("--origin", "acme\nSuite: evil"))
    ),
    "--label with a newline": Case(
        2, "--label must be one line", up("good", extra=("--label", "x\r\nOrigin: y"))
    ),
    "negative --valid-days": Case(
        2, "--valid-days must be a positive", up("good", extra=("--valid-days", "-3"))
    ),
    "--valid-days not a number": Case(
        2, "--valid-days", up("good", extra=("--valid-days", "soon"))
    ),
    "DEBOPS_VALID_DAYS not a number": Case(
        2, "DEBOPS_VALID_DAYS", up("good"), env=with_key(DEBOPS_VALID_DAYS="soon")
    ),
    "--arch invalid": Case(2, "invalid --arch", up("good", extra=("--arch", "AMD 64"))),
    "--not-older-than not a date": Case(
        2, "--not-older-than", up("good", extra=("--not-older-than", "last tuesday"))
    ),
    "verify --not-older-than not a date": Case(
        2,
        "--not-older-than",
        lambda c: ["verify", "--archive", c.archive.location, "--not-older-than", "yesterday"],
    ),
    "--archive with an unsupported scheme": Case(
        2,
        "unsupported archive location",
        lambda c: ["upload", "--archive", "ftp://example.invalid/x", str(c.debs["good"])],
    ),
    "both --archive and --bucket-name": Case(
        2,
        "either --archive or --bucket-name",
        lambda c: [
            "upload",
            "--archive",
            c.archive.location,
            "--bucket-name",
            "b-b-b",
            str(c.debs["good"]),
        ],
    ),
    "no archive at all": Case(2, "no archive given", lambda c: ["upload", str(c.debs["good"])]),
    "unknown option": Case(2, "--frobnicate", up("good", extra=("--frobnicate",))),
    "unknown command": Case(2, "No such command", lambda c: ["uplaod", str(c.debs["good"])]),
    # -- configuration ------------------------------------------------------------
    "unknown key in debops-ci.toml": Case(
        2, "unknown setting 'bucket'", up("good"), config='bucket = "x"\n'
    ),
    "unknown key in an event table": Case(
        2,
        "unknown setting 'distribution' in [mainline]",
        up("good"),
        config='[mainline]\ndistribution = "x"\n',
    ),
    "invalid TOML": Case(2, "is not valid TOML", up("good"), config="archive = \n"),
    "wrong type in debops-ci.toml": Case(
        2, "valid-days must be a number", up("good"), config='valid-days = "many"\n'
    ),
    "--config that does not exist": Case(
        2, "does not exist", up("good", extra=("--config", "/nonexistent/debops-ci.toml"))
    ),
}


def _snapshot(corpus: Corpus, store: str) -> dict[str, bytes]:
    return {"local": corpus.archive, "broken": corpus.broken, "s3": corpus.s3}[store].snapshot()


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_gives_one_line_the_right_code_and_changes_nothing(
    case: Case, corpus: Corpus, tmp_path: Path
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    if case.config is not None:
        (cwd / "debops-ci.toml").write_text(case.config)
    (corpus.dir / "empty-home").mkdir(exist_ok=True)
    before = _snapshot(corpus, case.store)
    args, env = case.args(corpus), case.env(corpus)
    started = time.time()

    # Quietly and at full verbosity, side by side (both must fail and write nothing).
    with ThreadPoolExecutor(max_workers=2) as pool:
        quiet_run = pool.submit(run_cli, args, env, cwd=cwd, timeout=120)
        loud_run = pool.submit(run_cli, ["--show-commands", "-v", *args], env, cwd=cwd)
        quiet, loud = quiet_run.result(), loud_run.result()
    assert quiet.returncode == case.rc, quiet.output
    line = error_line(quiet)
    assert case.needle.lower() in line.lower(), line
    assert not quiet.stdout.strip(), quiet.stdout

    # At full verbosity: same outcome, no traceback, and no secret either way.
    assert loud.returncode == case.rc, loud.output
    assert "Traceback" not in loud.output
    assert loud.stderr.count("debops-ci: error: ") == 1, loud.stderr
    for result in (quiet, loud):
        assert not corpus.secrets.found_in(result.output), corpus.secrets.found_in(result.output)

    after = _snapshot(corpus, case.store)
    assert after == before
    assert not [key for key, data in after.items() if corpus.secrets.found_in(data)]
    left = [*files_under(cwd), *files_under(corpus.dir), *new_tmp_files(started)]
    assert not corpus.secrets.found_in_files(left)
    assert not gnupg_homes_holding(corpus.key) and not gnupg_homes_holding(corpus.passphrase_key)


def test_a_zstd_compressed_deb_is_published_and_installs(
    target: ArchiveTarget,
    signing_key: GpgKey,
    tmp_path: Path,
    apt_client_factory: AptClientFactory,
) -> None:
    deb = make_deb(tmp_path, "zesty", "1.0-1", "amd64", compression="zstd")
    result, _ = upload(target, signing_key, [deb])
    assert result.returncode == 0, result.output
    assert "published zesty 1.0-1 amd64" in result.stdout
    assert verify_cli(target, signing_key, tmp_path).returncode == 0
    apt = apt_client_factory("amd64")
    apt.add_source(target.http_url, "unstable", "main", signing_key.public_armored)
    apt.update()
    apt.install(["zesty=1.0-1"])
    assert apt.installed_version("zesty") == "1.0-1"


# == 4. secrets =======================================================================


def test_full_verbosity_leaks_no_secret_anywhere(
    fresh_s3: S3Setup,
    passphrase_key: GpgKey,
    signing_key: GpgKey,
    aws_secret: str,
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    """A publish with retries, a verify, a conflict, at --show-commands -v: nothing leaks."""
    s3 = fresh_s3
    planted = Secrets()
    planted.add("AWS secret key", aws_secret)
    planted.add_key(passphrase_key)
    planted.add_key(signing_key)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    started = time.time()
    env = {**s3.env, **FAST_S3, **key_env(passphrase_key), "DEBOPS_DEBUG": "1"}
    pinned = tmp_path / "old-key.asc"
    pinned.write_text(signing_key.public_armored)
    proxy.add(Fault("status", status=500, method="PUT", key=r"^pool/", first=1))
    deb = make_deb(tmp_path / "debs", "svc", "1.0", "amd64")
    loud = ["--show-commands", "-v"]
    where = ["--archive", s3.bucket.archive_url, "--endpoint-url", proxy.url]
    # Rotation to the passphrase key (the old key pinned), then a conflict, then verify.
    runs = [
        run_cli([*loud, "upload", *where, "--archive-key", str(pinned), str(deb)], env, cwd=cwd),
        run_cli(
            [*loud, "upload", *where, str(make_deb(tmp_path / "x", "svc", "1.0", payload_size=9))],
            env,
            cwd=cwd,
        ),
        run_cli([*loud, "verify", *where], env, cwd=cwd),
    ]
    assert [r.returncode for r in runs] == [0, 3, 0], [r.output for r in runs]
    assert "PUT    pool/main/s/svc/svc_1.0_amd64.deb" in runs[0].stderr  # it was verbose
    for result in runs:
        assert not planted.found_in(result.output), planted.found_in(result.output)
    archive_files = s3.target.snapshot()
    for key, data in archive_files.items():
        assert not planted.found_in(data), key
    assert not planted.found_in_files([*files_under(cwd), *new_tmp_files(started)])
    assert not gnupg_homes_holding(passphrase_key)


def _start_publisher(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEB_GPG", "DEBOPS_"))}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "debops_ci", *args],
            env={**base, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigterm_while_waiting_for_a_lock_removes_the_key(
    passphrase_key: GpgKey, signing_key: GpgKey, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    first = run_cli(
        ["upload", "--archive", str(root), str(make_deb(tmp_path / "a", "base", "1.0"))],
        key_env(passphrase_key),
    )
    assert first.returncode == 0, first.output
    held = hold_lock(root)
    before = ArchiveTarget("local", str(root), "", root=root).snapshot()
    log = tmp_path / "publisher.log"
    started = time.time()
    proc = _start_publisher(
        ["-v", "upload", "--archive", str(root), str(make_deb(tmp_path / "b", "svc", "1.0"))],
        key_env(passphrase_key),
        log,
    )
    try:
        _wait_for(lambda: b"waiting for the lock" in log.read_bytes(), 30, "the lock wait")
        homes = gnupg_homes_holding(passphrase_key)
        assert homes, "the publisher's GnuPG home was not found"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not wait_until_gone(homes, 2)
    assert not gnupg_homes_holding(passphrase_key)
    output = log.read_bytes()
    assert b"Traceback" not in output
    planted = Secrets()
    planted.add_key(passphrase_key)
    assert not planted.found_in(output)
    assert not planted.found_in_files(new_tmp_files(started))
    assert (root / "dists/unstable/.debrepos3.lock").read_bytes() == held
    after = ArchiveTarget("local", str(root), "", root=root).snapshot()
    # Pool files go up before the lock (immutable, unreferenced until a commit names
    # them): that is all that may have changed.
    assert {k: v for k, v in after.items() if k != "pool/main/s/svc/svc_1.0_amd64.deb"} == before


@pytest.mark.parametrize(
    "fault",
    [
        Fault("hang", method="GET", key=r"/InRelease$", hang_seconds=120),
        Fault("hang", method="PUT", key=r"^pool/", hang_seconds=120),
    ],
    ids=["stalled in the main thread", "stalled in an upload thread"],
)
def test_sigterm_while_the_server_stalls_removes_the_key_at_once(
    fault: Fault,
    fresh_s3: S3Setup,
    proxy: FaultProxy,
    passphrase_key: GpgKey,
    tmp_path: Path,
) -> None:
    s3 = fresh_s3
    before = s3.target.snapshot()
    proxy.add(dataclasses.replace(fault))
    env = {
        **s3.env,
        **key_env(passphrase_key),
        "DEBOPS_S3_READ_TIMEOUT": "120",
        "DEBOPS_S3_MAX_ATTEMPTS": "2",
    }
    log = tmp_path / "publisher.log"
    started = time.time()
    deb = make_deb(tmp_path / "b", "svc", "1.0")
    proc = _start_publisher(
        [
            "upload",
            "--archive",
            s3.bucket.archive_url,
            "--endpoint-url",
            proxy.url,
            "--archive-key",
            str(_public_key_file(tmp_path, s3.key)),
            str(deb),
        ],
        env,
        log,
    )
    try:
        _wait_for(lambda: bool(proxy.faulted()), 30, "the stalled request")
        homes = gnupg_homes_holding(passphrase_key)
        assert homes, "the publisher's GnuPG home was not found"
        proc.send_signal(signal.SIGTERM)
        # The key material goes at once, even while a thread still waits on the network.
        assert not wait_until_gone(homes, 5), "GnuPG home still there 5 s after SIGTERM"
        proxy.release()  # the stalled connection closes; the process can finish exiting
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not gnupg_homes_holding(passphrase_key)
    output = log.read_bytes()
    assert b"Traceback" not in output
    planted = Secrets()
    planted.add_key(passphrase_key)
    assert not planted.found_in(output)
    assert not planted.found_in_files(new_tmp_files(started))
    after = s3.target.snapshot()
    assert after["dists/unstable/InRelease"] == before["dists/unstable/InRelease"]
    assert "dists/unstable/.debrepos3.lock" not in after


def _public_key_file(tmp_path: Path, key: GpgKey) -> Path:
    path = tmp_path / "archive-key.asc"
    path.write_text(key.public_armored)
    return path


def test_nothing_this_module_ran_left_a_secret_in_tmp(
    aws_secret: str, signing_key: GpgKey, passphrase_key: GpgKey, other_signing_key: GpgKey
) -> None:
    """Runs last: every file /tmp gained during this module, walked in full."""
    planted = Secrets()
    planted.add("AWS secret key", aws_secret)
    for key in (signing_key, passphrase_key, other_signing_key):
        planted.add_key(key)
    assert not planted.found_in_files(new_tmp_files(MODULE_STARTED, deep=True))
    for key in (signing_key, passphrase_key):
        assert not gnupg_homes_holding(key)
