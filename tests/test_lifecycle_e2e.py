"""Promote, prune + gc and phased updates through the real CLI, checked by real apt.

Archives are a local directory (served over HTTP on 127.0.0.1) and a SeaweedFS bucket;
clients are sandboxed apt-get; `aptly mirror update` reads the promoted archive. gc's
safety while publishers run is proven with real threads on a LocalStore.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from support.aptclient import AptClientFactory
from support.cli import ArchiveTarget, key_env, run_cli
from support.debs import make_deb
from support.gpgkeys import GpgKey
from support.httpserve import StaticHttpServer
from support.seaweed import S3Bucket

from debops_ci import ArchiveOptions, SigningKey, list_packages, open_archive, publish, verify
from debops_ci.archive.gc import gc
from debops_ci.archive.prune import PrunePolicy, prune
from debops_ci.archive.settings import SuiteSettings

pytestmark = pytest.mark.e2e

AGE = 3 * 3600  # how far tests move files into the past to stand for time passing


def _local(root: Path, http_serve: Callable[[Path], StaticHttpServer]) -> ArchiveTarget:
    root.mkdir(parents=True, exist_ok=True)
    return ArchiveTarget("local", str(root), http_serve(root).url, {}, root=root)


def _s3(bucket: S3Bucket) -> ArchiveTarget:
    return ArchiveTarget("s3", bucket.archive_url, bucket.http_url, bucket.env(), bucket=bucket)


def _cli(target: ArchiveTarget, key: GpgKey, *args: str, env: dict[str, str] | None = None) -> str:
    result = run_cli(
        [*args, "--archive", target.location], {**target.env, **key_env(key), **(env or {})}
    )
    assert result.returncode == 0, result.output
    return result.stdout


def _age(root: Path, seconds: float) -> None:
    """Move every file of a local archive `seconds` into the past (time passing)."""
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- promote ----------------------------------------------------------------------------


def test_promote_from_a_pr_archive_into_a_release_archive_installs_the_same_bytes(
    tmp_path: Path,
    s3_bucket: S3Bucket,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
    http_serve: Callable[[Path], StaticHttpServer],
) -> None:
    pr_archive = _local(tmp_path / "pr-archive", http_serve)
    release = _s3(s3_bucket)
    debs = tmp_path / "debs"
    built = [make_deb(debs, "tool", v, payload_size=4096) for v in ("1.0~pr5-1", "1.0~pr5-2")]
    _cli(pr_archive, signing_key, "upload", "--distro", "pr", *map(str, built))

    out = _cli(
        pr_archive,
        signing_key,
        "promote",
        "tool",
        "--from",
        "pr",
        "--to",
        "stable",
        "--to-archive",
        release.location,
        env=release.env,
    )
    assert "promoted tool 1.0~pr5-2 amd64 pr -> stable/main" in out, out
    assert "1 file(s) copied" in out

    tested = built[1].read_bytes()
    pool = "pool/main/t/tool/tool_1.0~pr5-2_amd64.deb"
    assert _sha256(release.read(pool)) == _sha256(tested)

    client = apt_client_factory()
    client.add_source(release.http_url, "stable", "main", signing_key.public_armored)
    client.update()
    assert client.candidates("tool") == ["1.0~pr5-2"]
    assert _sha256(client.download("tool", "1.0~pr5-2").read_bytes()) == _sha256(tested)
    client.install(["tool"])
    assert client.installed_version("tool") == "1.0~pr5-2"

    # Again: nothing to do. Other bytes under that version in the target: refused, exit 3.
    again = _cli(pr_archive, signing_key, "promote", "tool=1.0~pr5-2", "--from", "pr", "--to",
                 "stable", "--to-archive", release.location, env=release.env)  # fmt: skip
    assert "0 promoted, 1 already present" in again
    other = make_deb(tmp_path / "other", "tool", "1.0~pr5-1", payload_size=10)
    _cli(release, signing_key, "upload", "--distro", "stable", str(other))
    refused = run_cli(
        ["promote", "tool=1.0~pr5-1", "--from", "pr", "--to", "stable", "--archive",
         pr_archive.location, "--to-archive", release.location],
        {**release.env, **key_env(signing_key)},
    )  # fmt: skip
    assert refused.returncode == 3, refused.output
    assert refused.stderr.count("\n") == 1 and "different bytes" in refused.stderr
    assert "OK:" in _cli(release, signing_key, "verify")


def test_promote_within_one_archive_and_aptly_mirrors_it(
    tmp_path: Path,
    s3_bucket: S3Bucket,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
) -> None:
    archive = _s3(s3_bucket)
    debs = tmp_path / "debs"
    built = [make_deb(debs, "tool", v) for v in ("1.0~pr5-1", "1.0~pr5-2", "0.9")]
    _cli(archive, signing_key, "upload", "--distro", "pr", *map(str, built))
    before = {k for k in archive.snapshot() if k.startswith("pool/")}
    out = _cli(archive, signing_key, "promote", "tool=1.0~pr5-1", "--from", "pr", "--to", "stable")
    assert "0 file(s) copied, 1 already in place" in out
    assert {k for k in archive.snapshot() if k.startswith("pool/")} == before

    client = apt_client_factory()
    client.add_source(archive.http_url, "stable", "main", signing_key.public_armored)
    client.update()
    assert client.candidates("tool") == ["1.0~pr5-1"]

    aptly_home = tmp_path / "aptly"
    config = tmp_path / "aptly.conf"
    config.write_text(f'{{"rootDir": "{aptly_home}", "gpgDisableVerify": false}}')
    keyring = tmp_path / "trusted.gpg"
    subprocess.run(
        ["gpg", "--batch", "--no-default-keyring", "--keyring", str(keyring), "--import"],
        input=signing_key.public_armored.encode(),
        check=True,
        capture_output=True,
    )
    aptly = ["aptly", f"-config={config}"]
    subprocess.run(
        [*aptly, "mirror", "create", f"-keyring={keyring}", "stable", archive.http_url, "stable",
         "main"],
        check=True, capture_output=True,
    )  # fmt: skip
    update = subprocess.run(
        [*aptly, "mirror", "update", f"-keyring={keyring}", "stable"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert update.returncode == 0, update.stdout + update.stderr
    shown = subprocess.run(
        [*aptly, "mirror", "show", "-with-packages", "stable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "tool_1.0~pr5-1_amd64" in shown


# -- prune + gc -------------------------------------------------------------------------


def test_thirty_pr_publishes_pruned_then_collected(
    tmp_path: Path,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
    http_serve: Callable[[Path], StaticHttpServer],
) -> None:
    archive = _local(tmp_path / "archive", http_serve)
    assert archive.root is not None
    debs = tmp_path / "debs"
    _cli(archive, signing_key, "upload", str(make_deb(debs, "tool", "1.0")))
    for n in range(30):  # 3 pull requests, 10 builds each, one publish per build
        pr, build = 100 + n % 3, n // 3 + 1
        deb = make_deb(debs, "tool", f"1.1~pr{pr}-{build}", payload_size=2048)
        _cli(archive, signing_key, "upload", str(deb))

    dry = _cli(archive, signing_key, "prune", "--keep-last", "2", "--dry-run")
    assert "would prune 24, kept 7 in unstable" in dry, dry
    before = archive.snapshot()
    assert _cli(archive, signing_key, "prune", "--keep-last", "2", "--dry-run", "--json")
    assert archive.snapshot() == before
    out = _cli(archive, signing_key, "prune", "--keep-last", "2")
    assert "pruned 24, kept 7" in out

    # Right after: everything is young or still readable by clients of the old roots.
    young = _cli(archive, signing_key, "gc", "--grace", "2h")
    assert "deleted 0 object(s)" in young, young
    _age(archive.root, AGE)
    objects_before = len(archive.snapshot())
    out = _cli(archive, signing_key, "gc", "--grace", "2h")
    removed = objects_before - len(archive.snapshot())
    pool_removed = out.count("deleted pool/")
    print(f"\ngc after 30 publishes and a prune: removed {removed} objects "
          f"({pool_removed} pool files, {removed - pool_removed} by-hash indexes)")  # fmt: skip
    assert pool_removed == 24
    assert f"deleted {removed} object(s)" in out
    verified = _cli(archive, signing_key, "verify")
    assert "0 error(s), 0 warning(s)" in verified, verified

    client = apt_client_factory()
    client.add_source(archive.http_url, "unstable", "main", signing_key.public_armored)
    client.update()
    assert client.candidates("tool") == [
        "1.1~pr102-10", "1.1~pr102-9", "1.1~pr101-10",
        "1.1~pr101-9", "1.1~pr100-10", "1.1~pr100-9", "1.0",
    ]  # fmt: skip
    client.install(["tool=1.1~pr100-10"])


def test_gc_while_publishers_run_loses_no_file(tmp_path: Path, signing_key: GpgKey) -> None:
    root = tmp_path / "archive"
    debs = tmp_path / "debs"
    options = ArchiveOptions(key=SigningKey(private_key=signing_key.private_armored.encode()))
    suite = SuiteSettings()
    garbage = [make_deb(debs / "old", "old", f"1.0~pr1-{b}") for b in range(1, 6)]
    with open_archive(str(root), options, writable=True) as archive:
        publish(archive, suite, garbage)
        prune(archive, suite, PrunePolicy(pr=1))
    _age(root, AGE)
    garbage_keys = {f"pool/main/o/old/{p.name}" for p in garbage}

    writers, per_writer = 4, 3
    batches = [
        [make_deb(debs / f"w{w}", f"pkg{w}-{i}", "1.0~pr9-1") for i in range(per_writer)]
        for w in range(writers)
    ]
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(files: list[Path]) -> None:
        try:
            with open_archive(str(root), options, writable=True) as opened:
                for deb in files:
                    publish(opened, suite, [deb])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    collected: list[str] = []
    first_pass = threading.Event()

    def collector() -> None:
        try:
            with open_archive(str(root), options, writable=True) as opened:
                while not done.is_set():
                    result = gc(opened, grace=timedelta(minutes=2))
                    collected.extend(c.key for c in result.deleted)
                    first_pass.set()
                    time.sleep(0.05)  # pacing only: nothing is asserted on time
        except BaseException as exc:
            errors.append(exc)
        finally:
            first_pass.set()

    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    # The garbage goes in the first pass: once a publisher commits, the suite's root is
    # younger than the grace and every index it superseded (and what those name) is
    # kept. The passes after it run while the publishers upload and commit.
    first_pass.wait(120)
    threads = [threading.Thread(target=writer, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    gc_thread.join()
    assert not errors, errors

    assert garbage_keys <= set(collected)
    with open_archive(str(root), options, writable=True) as archive:
        names = {p.package for p in list_packages(archive, ["unstable"])}
        assert names == {f"pkg{w}-{i}" for w in range(writers) for i in range(per_writer)}
        report = verify(archive)
        assert report.ok, [str(f) for f in report.errors]
        for entry in (e for _c, e in archive.read("unstable").all_entries()):
            assert (root / entry.filename).is_file(), entry.filename
        assert not any((root / key).exists() for key in garbage_keys)


# -- phased updates ---------------------------------------------------------------------


def test_phased_percentage_holds_back_then_releases_an_upgrade(
    tmp_path: Path,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
    http_serve: Callable[[Path], StaticHttpServer],
) -> None:
    archive = _local(tmp_path / "archive", http_serve)
    debs = tmp_path / "debs"
    _cli(archive, signing_key, "upload", str(make_deb(debs, "tool", "1.0-1")))
    client = apt_client_factory()
    # apt phases per machine from /etc/machine-id; the sandbox names one of its own.
    machine = client.workdir / "machine-id"
    machine.write_text("0123456789abcdef0123456789abcdef\n")
    with client.config_path.open("a") as fh:
        fh.write(f'APT::Machine-ID "{machine.read_text().strip()}";\n')
    client.add_source(archive.http_url, "unstable", "main", signing_key.public_armored)
    client.update()
    client.install(["tool"])
    assert client.installed_version("tool") == "1.0-1"

    new = make_deb(debs, "tool", "1.1-1")
    _cli(archive, signing_key, "upload", "--phased-percentage", "0", str(new))
    client.update()
    held = client.run("apt-get", "upgrade")
    assert held.returncode == 0, held.output
    # apt 2.6 says "kept back", newer apt "deferred due to phasing".
    assert "deferred due to phasing" in held.output or "kept back:\n  tool" in held.output, (
        held.output
    )
    assert "phased 0%" in client.policy("tool"), client.policy("tool")
    assert client.installed_version("tool") == "1.0-1"

    out = _cli(archive, signing_key, "phase", "tool=1.1-1", "100")
    assert "phased tool 1.1-1 amd64 in unstable/main: 100%" in out
    client.update()
    upgraded = client.run("apt-get", "upgrade")
    assert upgraded.returncode == 0, upgraded.output
    assert "deferred" not in upgraded.output
    assert client.installed_version("tool") == "1.1-1"
