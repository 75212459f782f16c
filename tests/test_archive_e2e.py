"""The archive core end to end: the real CLI, real GnuPG, a real S3 server, real apt.

Every test runs against both stores: a local directory served over HTTP, and a
SeaweedFS bucket that apt reads directly.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from legacy_archive import write_legacy_archive
from support.aptclient import AptClientFactory
from support.cli import ArchiveTarget, key_env, run_cli
from support.debs import make_deb
from support.gpgkeys import GpgKey
from support.seaweed import upload_directory

pytestmark = pytest.mark.e2e


def publish(target: ArchiveTarget, key: GpgKey, files: list[Path], *extra: str) -> tuple[int, str]:
    result = run_cli(
        ["upload", "--archive", target.location, *extra, *map(str, files)],
        {**target.env, **key_env(key)},
    )
    return result.returncode, result.output


def test_two_suites_two_arches_and_all_install_with_stock_apt(
    target: ArchiveTarget,
    tmp_path: Path,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
) -> None:
    debs = tmp_path / "debs"
    tool_amd64 = make_deb(debs, "tool", "1.0-1", "amd64", depends="tool-data")
    tool_arm64 = make_deb(debs, "tool", "1.0-1", "arm64", depends="tool-data")
    data_all = make_deb(debs, "tool-data", "1.0-1", "all")
    rc, out = publish(target, signing_key, [tool_amd64, tool_arm64, data_all])
    assert rc == 0, out
    assert "published tool 1.0-1 amd64" in out
    # A second suite in the same archive, with a newer PR build.
    pr_build = make_deb(debs / "pr", "tool", "1.1~pr7-3", "amd64", depends="tool-data")
    rc, out = publish(target, signing_key, [pr_build, data_all], "--distro", "pr-builds")
    assert rc == 0, out

    files = target.snapshot()
    assert "pool/main/t/tool/tool_1.0-1_amd64.deb" in files
    assert "pool/main/t/tool-data/tool-data_1.0-1_all.deb" in files
    assert "archive-key.asc" in files and "index.html" in files
    assert b"pr-builds" in files["index.html"]
    release = files["dists/unstable/Release"].decode()
    assert "Acquire-By-Hash: yes" in release
    assert "Architectures: all amd64 arm64" in release
    for name in ("InRelease", "Release.gpg"):
        assert f"dists/unstable/{name}" in files
    # The all package sits in both architectures' indexes.
    for arch in ("amd64", "arm64"):
        index = gzip.decompress(files[f"dists/unstable/main/binary-{arch}/Packages.gz"])
        assert b"Package: tool-data\n" in index
        digest = hashlib.sha256(files[f"dists/unstable/main/binary-{arch}/Packages.gz"]).hexdigest()
        assert f"dists/unstable/main/binary-{arch}/by-hash/SHA256/{digest}" in files

    amd64 = apt_client_factory("amd64")
    amd64.add_source(target.http_url, "unstable", "main", signing_key.public_armored)
    amd64.add_source(target.http_url, "pr-builds", "main", signing_key.public_armored)
    amd64.update()  # raises on any W:, E: or Err: line
    assert amd64.candidates("tool") == ["1.1~pr7-3", "1.0-1"]
    amd64.install(["tool=1.0-1"])
    assert amd64.installed_version("tool") == "1.0-1"
    assert amd64.installed_version("tool-data") == "1.0-1"

    arm64 = apt_client_factory("arm64")
    arm64.add_source(target.http_url, "unstable", "main", signing_key.public_armored)
    arm64.update()
    assert arm64.candidates("tool") == ["1.0-1"]
    assert arm64.candidates("tool-data") == ["1.0-1"]
    downloaded = arm64.download("tool", "1.0-1")
    assert downloaded.read_bytes() == tool_arm64.read_bytes()


def test_reupload_identical_is_a_noop_and_different_bytes_are_refused(
    target: ArchiveTarget, tmp_path: Path, signing_key: GpgKey
) -> None:
    original = make_deb(tmp_path / "a", "svc", "2.0", "amd64")
    assert publish(target, signing_key, [original])[0] == 0
    before = target.snapshot()

    rc, out = publish(target, signing_key, [original])
    assert rc == 0, out
    assert "nothing to do" in out
    assert target.snapshot() == before

    rebuilt = make_deb(tmp_path / "b", "svc", "2.0", "amd64", payload_size=100)
    rc, out = publish(target, signing_key, [rebuilt])
    assert rc == 3, out
    assert "refusing to overwrite" in out
    assert out.count("\n") <= 2, out  # one line, no traceback
    assert target.snapshot() == before


def test_same_pool_file_with_other_bytes_in_another_suite_names_its_holder(
    target: ArchiveTarget, tmp_path: Path, signing_key: GpgKey
) -> None:
    first = make_deb(tmp_path / "a", "shared", "1.0", "all")
    assert publish(target, signing_key, [first], "--distro", "stable")[0] == 0
    before = target.snapshot()
    other = make_deb(tmp_path / "b", "shared", "1.0", "all", payload_size=10)
    rc, out = publish(target, signing_key, [other], "--distro", "testing")
    assert rc == 3, out
    assert "shared 1.0 in stable/main" in out
    after = target.snapshot()
    assert {k: v for k, v in after.items() if "testing" not in k} == before


def test_remove_drops_the_package_for_apt(
    target: ArchiveTarget,
    tmp_path: Path,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
) -> None:
    debs = [
        make_deb(tmp_path, "keep", "1.0", "amd64"),
        make_deb(tmp_path, "drop", "1.0", "amd64"),
        make_deb(tmp_path, "drop", "2.0", "amd64"),
    ]
    assert publish(target, signing_key, debs)[0] == 0
    env = {**target.env, **key_env(signing_key)}
    result = run_cli(["remove", "--archive", target.location, "drop=1.0"], env)
    assert result.returncode == 0, result.output
    assert "removed drop 1.0 amd64" in result.stdout
    listed = run_cli(["list", "--archive", target.location, "--json"], env)
    rows = {(r["package"], r["version"]) for r in json.loads(listed.stdout)}
    assert rows == {("keep", "1.0"), ("drop", "2.0")}

    before = target.snapshot()
    missing = run_cli(["delete_from_archive", "--archive", target.location, "drop=9.9"], env)
    assert missing.returncode != 0 and "nothing removed" in missing.stderr
    assert target.snapshot() == before

    apt = apt_client_factory("amd64")
    apt.add_source(target.http_url, "unstable", "main", signing_key.public_armored)
    apt.update()
    assert apt.candidates("drop") == ["2.0"]
    assert apt.candidates("keep") == ["1.0"]

    verify = run_cli(["verify", "--archive", target.location], env)
    assert verify.returncode == 0, verify.output


def test_adopts_an_archive_of_the_original_tool(
    target: ArchiveTarget,
    tmp_path: Path,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
) -> None:
    old_deb = make_deb(tmp_path / "old", "legacy-app", "0.9", "amd64")
    staging = tmp_path / "legacy"
    [old_filename] = write_legacy_archive(
        staging, "unstable", "amd64", [old_deb], signing_key.private_armored
    )
    if target.root is not None:
        for path in staging.rglob("*"):
            if path.is_file():
                target.write(path.relative_to(staging).as_posix(), path.read_bytes())
    else:
        assert target.bucket is not None
        upload_directory(target.bucket.client(), target.bucket.bucket, staging)

    new_deb = make_deb(tmp_path / "new", "legacy-app", "1.0", "amd64")
    rc, out = publish(target, signing_key, [new_deb])
    assert rc == 0, out
    files = target.snapshot()
    assert files[old_filename] == old_deb.read_bytes()  # stays where it was
    assert "pool/main/l/legacy-app/legacy-app_1.0_amd64.deb" in files
    plain = files["dists/unstable/main/binary-amd64/Packages"].decode()
    assert f"Filename: {old_filename}" in plain  # the old tool can still read it
    assert "dists/unstable/.debrepos3.nolock" in files
    assert "dists/unstable/.debrepos3.lock" not in files

    apt = apt_client_factory("amd64")
    apt.add_source(target.http_url, "unstable", "main", signing_key.public_armored)
    apt.update()
    assert apt.candidates("legacy-app") == ["1.0", "0.9"]
    assert apt.download("legacy-app", "0.9").read_bytes() == old_deb.read_bytes()
    apt.install(["legacy-app=1.0"])
    assert apt.installed_version("legacy-app") == "1.0"


def test_archive_signed_by_another_key_is_refused_then_rotated_deliberately(
    target: ArchiveTarget,
    tmp_path: Path,
    signing_key: GpgKey,
    other_signing_key: GpgKey,
) -> None:
    first = make_deb(tmp_path, "app", "1.0", "amd64")
    assert publish(target, signing_key, [first])[0] == 0
    before = target.snapshot()
    second = make_deb(tmp_path, "app", "1.1", "amd64")

    rc, out = publish(target, other_signing_key, [second])
    assert rc == 4, out
    assert "not signed by the archive key" in out
    assert target.snapshot() == before

    # Rotation: verify with the old key pinned, sign with the new one.
    old_key = tmp_path / "old.asc"
    old_key.write_text(signing_key.public_armored)
    rc, out = publish(target, other_signing_key, [second], "--archive-key", str(old_key))
    assert rc == 0, out
    assert target.read("archive-key.asc").decode() == other_signing_key.public_armored
    env = {**target.env, **key_env(other_signing_key)}
    assert run_cli(["verify", "--archive", target.location], env).returncode == 0


def test_passphrase_and_keyring_keys(
    tmp_path: Path, passphrase_key: GpgKey, signing_key: GpgKey
) -> None:
    root = tmp_path / "archive"
    deb = make_deb(tmp_path, "pp", "1.0", "all")
    wrong = run_cli(
        ["upload", "--archive", str(root), str(deb)],
        {"DEB_GPG_KEY": passphrase_key.private_armored, "DEB_GPG_PASSPHRASE": "not-it"},
    )
    assert wrong.returncode == 7, wrong.output
    assert "passphrase" in wrong.stderr
    assert not (root / "dists").exists()
    assert passphrase_key.passphrase and passphrase_key.passphrase not in wrong.output

    right = run_cli(["upload", "--archive", str(root), str(deb)], key_env(passphrase_key))
    assert right.returncode == 0, right.output

    # --gpg-key-fp: a key from the user's own keyring, used in place.
    other_root = tmp_path / "archive2"
    keyring = run_cli(
        ["upload", "--archive", str(other_root), "--gpg-key-fp", signing_key.fingerprint, str(deb)],
        {"GNUPGHOME": str(signing_key.home)},
    )
    assert keyring.returncode == 0, keyring.output
    missing = run_cli(
        ["upload", "--archive", str(other_root), "--gpg-key-fp", "DEADBEEF" * 5, str(deb)],
        {"GNUPGHOME": str(signing_key.home)},
    )
    assert missing.returncode == 7 and "no private key" in missing.stderr


def test_show_commands_lists_operations_and_never_a_secret(
    target: ArchiveTarget, tmp_path: Path, passphrase_key: GpgKey
) -> None:
    deb = make_deb(tmp_path, "loud", "1.0", "amd64")
    result = run_cli(
        ["--show-commands", "upload", "--archive", target.location, "-v", str(deb)],
        {**target.env, **key_env(passphrase_key)},
    )
    assert result.returncode == 0, result.output
    assert "PUT    dists/unstable/InRelease  [if-none-match: *]" in result.stderr
    assert "PUT    pool/main/l/loud/loud_1.0_amd64.deb  [if-none-match: *]" in result.stderr
    secrets = [passphrase_key.private_armored.splitlines()[3], passphrase_key.passphrase or ""]
    secrets += [v for k, v in target.env.items() if k == "AWS_SECRET_ACCESS_KEY"]
    for secret in secrets:
        assert secret and secret not in result.output


def test_verify_names_a_tampered_index_and_a_replaced_deb(
    target: ArchiveTarget, tmp_path: Path, signing_key: GpgKey
) -> None:
    deb = make_deb(tmp_path, "victim", "1.0", "amd64")
    assert publish(target, signing_key, [deb])[0] == 0
    env = {**target.env, **key_env(signing_key)}
    pool = "pool/main/v/victim/victim_1.0_amd64.deb"
    target.write(
        pool, make_deb(tmp_path / "evil", "victim", "1.0", "amd64", payload_size=1).read_bytes()
    )
    result = run_cli(["verify", "--archive", target.location], env)
    assert result.returncode == 4
    assert f"error: {pool}:" in result.stdout

    files = target.snapshot()
    [by_hash] = [
        k
        for k in files
        if "binary-amd64/by-hash" in k
        and k.endswith(
            hashlib.sha256(files["dists/unstable/main/binary-amd64/Packages.xz"]).hexdigest()
        )
    ]
    target.write(by_hash, b"garbage")
    result = run_cli(["verify", "--archive", target.location], env)
    assert result.returncode == 4
    assert f"{by_hash}: does not match its hash" in result.stdout
    # And a publish refuses to build on it.
    before = target.snapshot()
    rc, out = publish(target, signing_key, [make_deb(tmp_path / "n", "next", "1.0", "amd64")])
    assert rc == 4 and "tampered" in out
    assert target.snapshot() == before


def test_keygen_then_publish_with_the_base64_secret_and_serve_to_apt(
    tmp_path: Path, apt_client_factory: AptClientFactory
) -> None:
    public = tmp_path / "archive-key.asc"
    secret = tmp_path / "deb-gpg-key.b64"
    made = run_cli(["keygen", "--public-key", str(public), "--secret-file", str(secret)], {})
    assert made.returncode == 0, made.output
    assert secret.stat().st_mode & 0o777 == 0o600
    encoded = secret.read_text().strip()
    assert encoded not in made.output  # the secret goes to the file only
    again = run_cli(["keygen", "--public-key", str(public), "--secret-file", str(secret)], {})
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr

    root = tmp_path / "archive"
    deb = make_deb(tmp_path / "debs", "served", "3.0", "all")
    env = {"DEB_GPG_KEY_BASE64": encoded}
    result = run_cli(["upload", "--archive", f"file://{root}", str(deb)], env)
    assert result.returncode == 0, result.output
    assert f"deb [signed-by={root}/archive-key.asc] file://{root} unstable main" in result.stdout
    pinned = run_cli(["verify", "--archive", str(root), "--archive-key", str(public)], {})
    assert pinned.returncode == 0, pinned.output

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "debops_ci", "serve", "--archive", str(root), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first, first
        apt = apt_client_factory("arm64")
        apt.add_source(f"http://127.0.0.1:{port}", "unstable", "main", public.read_text())
        apt.update()
        assert apt.candidates("served") == ["3.0"]
    finally:
        server.terminate()
        server.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
