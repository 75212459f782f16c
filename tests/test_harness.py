"""Self-tests of the end-to-end harness in tests/support, before the library uses it.

Each piece is proven against the real thing: SeaweedFS's S3 (including conditional
writes), GnuPG signatures, dpkg-deb, and apt reading a signed archive over HTTP from a
directory and from a bucket, then installing an exact version into a private root.
"""

from __future__ import annotations

import hashlib
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from support._proc import CommandError, run
from support.aptclient import AptClient, AptClientFactory, AptError
from support.debs import (
    deb_fields,
    make_deb,
    make_not_a_deb,
    make_raw_deb,
    parse_stanzas,
    truncate_file,
)
from support.gpgkeys import GpgKey, gnupg_home, import_public_key, verify_clearsigned
from support.httpserve import StaticHttpServer, serve_directory
from support.refarchive import build_reference_archive
from support.seaweed import S3Bucket, SeaweedServer, SeaweedStartError, upload_directory

pytestmark = pytest.mark.e2e

HOST_STATUS = Path("/var/lib/dpkg/status")


def _http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _error(exc: ClientError) -> tuple[int, str]:
    meta = exc.response.get("ResponseMetadata", {})
    return meta.get("HTTPStatusCode", 0), exc.response.get("Error", {}).get("Code", "")


# -- SeaweedFS ---------------------------------------------------------------------------


def test_seaweed_put_then_anonymous_get(s3_bucket: S3Bucket) -> None:
    assert s3_bucket.archive_url == f"s3://{s3_bucket.bucket}"
    assert s3_bucket.http_url.startswith("http://127.0.0.1:")
    client = s3_bucket.client()
    assert client.list_objects_v2(Bucket=s3_bucket.bucket).get("KeyCount", 0) == 0
    client.put_object(Bucket=s3_bucket.bucket, Key="dists/x/InRelease", Body=b"hello")
    assert _http_get(f"{s3_bucket.http_url}/dists/x/InRelease") == (200, b"hello")
    assert _http_get(f"{s3_bucket.http_url}/dists/x/missing")[0] == 404


def test_seaweed_buckets_are_fresh(seaweed: SeaweedServer, s3_bucket: S3Bucket) -> None:
    other = seaweed.new_bucket()
    try:
        assert other.bucket != s3_bucket.bucket
        assert seaweed.create_bucket("abc") == "abc"
        seaweed.delete_bucket("abc")
        with pytest.raises(ValueError):
            seaweed.create_bucket("ab")
    finally:
        seaweed.delete_bucket(other.bucket)


def test_seaweed_conditional_writes(s3_bucket: S3Bucket) -> None:
    """The exact answers the library's Store relies on (see the harness report)."""
    c, b = s3_bucket.client(), s3_bucket.bucket
    first = c.put_object(Bucket=b, Key="k", Body=b"one", IfNoneMatch="*")
    etag = first["ETag"]
    assert etag == '"' + hashlib.md5(b"one").hexdigest() + '"'

    with pytest.raises(ClientError) as create_again:
        c.put_object(Bucket=b, Key="k", Body=b"two", IfNoneMatch="*")
    assert _error(create_again.value) == (412, "PreconditionFailed")

    with pytest.raises(ClientError) as wrong_tag:
        c.put_object(Bucket=b, Key="k", Body=b"two", IfMatch='"0123456789abcdef"')
    assert _error(wrong_tag.value) == (412, "PreconditionFailed")

    second = c.put_object(Bucket=b, Key="k", Body=b"two", IfMatch=etag)
    assert second["ETag"] != etag
    assert c.get_object(Bucket=b, Key="k")["Body"].read() == b"two"

    # Stale tag after the update: refused too.
    with pytest.raises(ClientError) as stale:
        c.put_object(Bucket=b, Key="k", Body=b"three", IfMatch=etag)
    assert _error(stale.value) == (412, "PreconditionFailed")

    # If-Match on a key that does not exist: SeaweedFS says 412 (AWS says 404 NoSuchKey).
    with pytest.raises(ClientError) as absent:
        c.put_object(Bucket=b, Key="absent", Body=b"x", IfMatch=etag)
    assert _error(absent.value) == (412, "PreconditionFailed")


@pytest.mark.parametrize("mode", ["create", "cas"])
def test_seaweed_conditional_writes_are_atomic(s3_bucket: S3Bucket, mode: str) -> None:
    """Many writers race on one key: exactly one conditional write may win."""
    c, b = s3_bucket.client(), s3_bucket.bucket
    base = "" if mode == "create" else c.put_object(Bucket=b, Key="k", Body=b"base")["ETag"]
    n = 4
    barrier = threading.Barrier(n)
    results: list[str] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        barrier.wait()
        body = f"w{i}".encode()
        try:
            if mode == "create":
                c.put_object(Bucket=b, Key="k", Body=body, IfNoneMatch="*")
            else:
                c.put_object(Bucket=b, Key="k", Body=body, IfMatch=base)
            outcome = f"won:{i}"
        except ClientError as exc:
            outcome = str(_error(exc))
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [r for r in results if r.startswith("won:")]
    assert len(results) == n
    assert len(winners) == 1, results
    assert set(results) - set(winners) == {str((412, "PreconditionFailed"))}
    body = c.get_object(Bucket=b, Key="k")["Body"].read()
    assert body == f"w{winners[0].split(':')[1]}".encode()


def test_seaweed_start_failure_retries_then_shows_the_log(tmp_path: Path) -> None:
    """A stand-in `weed` that always hits a taken port: retried, then reported."""
    fake = tmp_path / "weed"
    fake.write_text(
        "#!/bin/sh\necho 'F master.go:212 listen tcp 127.0.0.1:1: bind: address already in use'"
        "\nexit 1\n"
    )
    fake.chmod(0o755)
    server = SeaweedServer(tmp_path / "sw", weed=str(fake), attempts=3)
    with pytest.raises(SeaweedStartError, match="address already in use"):
        server.start()
    assert server.log_path.read_text().count("=== attempt") == 3
    assert not server.running

    fake.write_text("#!/bin/sh\necho 'something else broke'\nexit 2\n")
    other = SeaweedServer(tmp_path / "sw2", weed=str(fake), attempts=3)
    with pytest.raises(SeaweedStartError, match="something else broke"):
        other.start()
    assert other.log_path.read_text().count("=== attempt") == 1  # not a port clash


# -- GnuPG -------------------------------------------------------------------------------


def test_keys_are_real_distinct_and_private(
    signing_key: GpgKey, other_signing_key: GpgKey, passphrase_key: GpgKey
) -> None:
    fprs = {signing_key.fingerprint, other_signing_key.fingerprint, passphrase_key.fingerprint}
    assert len(fprs) == 3
    for key in (signing_key, other_signing_key, passphrase_key):
        assert len(key.fingerprint) == 40
        assert key.public_armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        assert key.private_armored.startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
        assert key.home.stat().st_mode & 0o777 == 0o700
        assert key.private_armored not in repr(key)
    assert signing_key.passphrase is None
    assert passphrase_key.passphrase
    assert passphrase_key.passphrase not in repr(passphrase_key)


def test_clearsign_verifies_with_the_public_key_only(
    signing_key: GpgKey, other_signing_key: GpgKey
) -> None:
    signed = signing_key.clearsign(b"Origin: test\n")
    assert signed.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    with gnupg_home() as home:
        import_public_key(home, signing_key.public_armored)
        assert verify_clearsigned(home, signed) == signing_key.fingerprint
    with gnupg_home() as home:
        import_public_key(home, other_signing_key.public_armored)
        with pytest.raises(RuntimeError, match="no valid signature"):
            verify_clearsigned(home, signed)


def test_passphrase_key_needs_its_passphrase(passphrase_key: GpgKey) -> None:
    """Import the armored secret elsewhere, as the library will, and sign there."""
    assert passphrase_key.passphrase is not None
    with gnupg_home() as home:
        secret = passphrase_key.private_armored.encode()
        run(["gpg", "--homedir", str(home), "--batch", "--import"], input=secret)
        imported = replace(passphrase_key, home=home)
        with pytest.raises(CommandError):
            replace(imported, passphrase=None).clearsign(b"x\n")
        with pytest.raises(CommandError):
            replace(imported, passphrase="wrong").clearsign(b"x\n")
        signed = imported.clearsign(b"x\n")
        import_public_key(home, passphrase_key.public_armored)
        assert verify_clearsigned(home, signed) == passphrase_key.fingerprint
        with pytest.raises(CommandError):  # no cached passphrase to fall back on
            replace(imported, passphrase="wrong").clearsign(b"x\n")
    # Same in the key's own home, where it was generated and exported.
    passphrase_key.clearsign(b"y\n")
    with pytest.raises(CommandError):
        replace(passphrase_key, passphrase="wrong").clearsign(b"y\n")


# -- .deb files --------------------------------------------------------------------------


def test_make_deb_is_valid_and_reproducible(tmp_path: Path) -> None:
    def build(out: Path) -> Path:
        return make_deb(
            out,
            "hello-h",
            "1:2.0-1",
            depends=["libc6 (>= 2.30)", "foo"],
            source="hello-src",
            extra_fields={"Section": "utils", "X-Test": "yes"},
        )

    a, b = build(tmp_path / "a"), build(tmp_path / "b")
    assert a.name == "hello-h_2.0-1_amd64.deb"
    assert a.read_bytes() == b.read_bytes()
    fields = deb_fields(a)
    assert fields["Package"] == "hello-h"
    assert fields["Version"] == "1:2.0-1"
    assert fields["Architecture"] == "amd64"
    assert fields["Depends"] == "libc6 (>= 2.30), foo"
    assert fields["Source"] == "hello-src"
    assert fields["Section"] == "utils"
    assert fields["X-Test"] == "yes"
    contents = run(["dpkg-deb", "--contents", str(a)]).stdout.decode()
    assert "./usr/share/doc/hello-h/hello" in contents
    assert "root/root" in contents


def test_make_deb_payload_is_incompressible(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "big", "1.0", arch="all", payload_size=2 * 1024 * 1024)
    assert deb.name == "big_1.0_all.deb"
    assert deb.stat().st_size > 2 * 1024 * 1024
    assert int(deb_fields(deb)["Installed-Size"]) >= 2048


def test_raw_control_and_hand_made_debs(tmp_path: Path) -> None:
    bad_version = make_deb(
        tmp_path,
        "badver",
        "1.0",
        raw_control="Package: badver\nVersion: not a version!\nArchitecture: all\n"
        "Maintainer: x <x@example.invalid>\nDescription: bad\n",
    )
    assert deb_fields(bad_version)["Version"] == "not a version!"

    control = "Package: handmade\nVersion: 1.0\nArchitecture: all\nDescription: ok\n"
    hand = make_raw_deb(tmp_path / "handmade_1.0_all.deb", control, {"usr/share/x": b"x\n"})
    assert deb_fields(hand)["Package"] == "handmade"
    contents = run(["dpkg-deb", "--contents", str(hand)]).stdout.decode()
    assert "./usr/share/x" in contents

    no_package = make_raw_deb(tmp_path / "nopkg.deb", "Version: 1.0\nArchitecture: all\n")
    assert "Package" not in deb_fields(no_package)

    injected = make_raw_deb(
        tmp_path / "inject.deb",
        "Package: inj\nVersion: 1.0\nArchitecture: all\nDescription: x\nFilename: ../evil\n",
    )
    assert deb_fields(injected)["Filename"] == "../evil"

    truncate_file(hand, 100)
    assert hand.stat().st_size == 100
    with pytest.raises(CommandError):
        deb_fields(hand)
    not_deb = make_not_a_deb(tmp_path / "junk_1.0_all.deb")
    with pytest.raises(CommandError):
        deb_fields(not_deb)


# -- HTTP --------------------------------------------------------------------------------


def test_serve_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.txt").write_bytes(b"data")
    with serve_directory(tmp_path) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        assert _http_get(f"{srv.url}/sub/f.txt") == (200, b"data")
        assert _http_get(f"{srv.url}/nope")[0] == 404
        assert [(r.path, r.status) for r in srv.requests] == [("/sub/f.txt", 200), ("/nope", 404)]
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{srv.url}/sub/f.txt", timeout=2)


def test_apt_sandbox_reads_no_host_configuration(apt_client: AptClient) -> None:
    dump = apt_client.run("apt-config", "dump").output
    for host_path in ("/etc/apt", "/var/lib/apt", "/var/cache/apt", "/var/log/apt"):
        assert host_path not in dump
    assert f'Dir::State::status "{apt_client.status_file}";' in dump
    assert 'APT::Architecture "amd64";' in dump
    assert apt_client.candidates("bash") == []  # the host's lists are invisible


# -- apt end to end ----------------------------------------------------------------------


@dataclass(frozen=True)
class RefArchive:
    root: Path
    debs: dict[str, Path]  # "name=version/arch" -> the .deb that was published


@pytest.fixture(scope="module")
def ref_archive(tmp_path_factory: pytest.TempPathFactory, signing_key: GpgKey) -> RefArchive:
    """apt-ftparchive archive: a lib (all), an app (amd64, two versions), a tool (arm64)."""
    build = tmp_path_factory.mktemp("debs")
    specs = [
        ("harness-lib", "1.0-1", "all", None),
        ("harness-app", "1.0-1", "amd64", ["harness-lib (>= 1.0)", "libc6 (>= 2.30)"]),
        ("harness-app", "1:2.0-1", "amd64", ["harness-lib (>= 1.0)", "libc6 (>= 2.30)"]),
        ("harness-tool", "0.5", "arm64", ["libc6 (>= 2.30)"]),
    ]
    debs = {f"{n}={v}/{a}": make_deb(build, n, v, arch=a, depends=d) for n, v, a, d in specs}
    root = build_reference_archive(
        tmp_path_factory.mktemp("archive"), list(debs.values()), signing_key
    )
    return RefArchive(root, debs)


def _prove_apt(apt: AptClient, url: str, archive: RefArchive, key: GpgKey) -> None:
    apt.add_source(url, "stable", ["main"], key.public_armored)
    out = apt.update(forbid_ign=True)
    assert set(re.findall(r"https?://([^/\s]+)", out)) == {url.split("/")[2]}
    assert apt.candidates("harness-app") == ["1:2.0-1", "1.0-1"]
    assert apt.candidate("harness-app") == "1:2.0-1"
    assert apt.candidates("harness-tool") == []  # arm64 only

    deb = apt.download("harness-app", "1.0-1")
    assert deb.read_bytes() == archive.debs["harness-app=1.0-1/amd64"].read_bytes()

    apt.seed_status(["libc6"])
    apt.install(["harness-app=1.0-1"])
    assert apt.installed_version("harness-app") == "1.0-1"
    assert apt.installed_version("harness-lib") == "1.0-1"
    hello = apt.root / "usr/share/doc/harness-app/hello"
    assert hello.read_text() == "hello from harness-app 1.0-1 amd64\n"

    apt.install(["harness-app=1:2.0-1"])
    assert apt.installed_version("harness-app") == "1:2.0-1"

    # The host was never touched.
    assert not Path("/usr/share/doc/harness-app").exists()
    assert "harness-app" not in {s.get("Package") for s in parse_stanzas(HOST_STATUS.read_text())}


def test_apt_reads_signed_archive_over_http(
    ref_archive: RefArchive,
    signing_key: GpgKey,
    apt_client: AptClient,
    http_serve: Callable[[Path], StaticHttpServer],
) -> None:
    srv = http_serve(ref_archive.root)
    _prove_apt(apt_client, srv.url, ref_archive, signing_key)
    assert "/dists/stable/InRelease" in srv.paths()


def test_apt_reads_signed_archive_from_s3(
    ref_archive: RefArchive, signing_key: GpgKey, apt_client: AptClient, s3_bucket: S3Bucket
) -> None:
    keys = upload_directory(s3_bucket.client(), s3_bucket.bucket, ref_archive.root)
    assert "dists/stable/InRelease" in keys
    _prove_apt(apt_client, s3_bucket.http_url, ref_archive, signing_key)


def test_apt_refuses_wrong_key(
    ref_archive: RefArchive,
    signing_key: GpgKey,
    other_signing_key: GpgKey,
    apt_client: AptClient,
    http_serve: Callable[[Path], StaticHttpServer],
) -> None:
    srv = http_serve(ref_archive.root)
    key_path = apt_client.add_source(srv.url, "stable", ["main"], other_signing_key.public_armored)
    # gpgv (apt <= 2.x) says NO_PUBKEY; sqv (apt 3, Debian 13) "Missing key".
    wrong_key = re.compile(r"NO_PUBKEY|Missing key")
    first = apt_client.run_update()
    assert first.returncode == 100  # no lists yet: an error
    assert any(wrong_key.search(p) for p in first.problems())

    key_path.write_text(signing_key.public_armored)
    apt_client.update()
    key_path.write_text(other_signing_key.public_armored)
    again = apt_client.run_update()
    assert again.returncode == 0  # old lists kept: apt only warns ...
    assert any(wrong_key.search(p) for p in again.problems())
    with pytest.raises(AptError, match=wrong_key):  # ... and update() catches it
        apt_client.update()


def test_apt_binary_keyring_and_missing_component(
    ref_archive: RefArchive,
    signing_key: GpgKey,
    apt_client: AptClient,
    http_serve: Callable[[Path], StaticHttpServer],
) -> None:
    srv = http_serve(ref_archive.root)
    key_path = apt_client.add_source(srv.url, "stable", ["main"], signing_key.public_binary())
    assert key_path.suffix == ".gpg"
    apt_client.update()
    # A component the archive does not have: apt only warns (exit 0); update() raises.
    apt_client.clear_sources()
    apt_client.add_source(srv.url, "stable", ["main", "contrib"], signing_key.public_armored)
    assert apt_client.run_update().returncode == 0
    with pytest.raises(AptError, match="doesn't have the component 'contrib'"):
        apt_client.update()


def test_apt_pretending_arm64(
    ref_archive: RefArchive,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
    http_serve: Callable[[Path], StaticHttpServer],
) -> None:
    apt = apt_client_factory("arm64")
    srv = http_serve(ref_archive.root)
    apt.add_source(srv.url, "stable", ["main"], signing_key.public_armored)
    apt.update()
    assert "/dists/stable/main/binary-arm64/Packages.gz" in srv.paths()
    assert apt.candidates("harness-app") == []  # amd64 only
    assert apt.candidates("harness-lib") == ["1.0-1"]  # arch all
    apt.seed_status(["libc6"])
    apt.install(["harness-tool=0.5", "harness-lib"])
    assert apt.installed() == {
        "libc6": apt.installed()["libc6"],
        "harness-tool": "0.5",
        "harness-lib": "1.0-1",
    }
    assert (apt.root / "usr/share/doc/harness-tool/hello").exists()
