"""repair and resign end to end: the real CLI, both stores, real apt with by-hash off.

A publisher killed after its commit leaves the copies that by-hash-off clients and
mirrors read (plain indexes, Release, Release.gpg) torn; `verify` must fail on it, apt
with by-hash off must be seen to break, and `debops-ci repair` must make both clean.
`resign` must push Valid-Until forward without changing what apt sees.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from support.aptclient import AptClient, AptClientFactory
from support.cli import ArchiveTarget, key_env, run_cli
from support.debs import make_deb
from support.gpgkeys import GpgKey
from support.seaweed import S3Bucket

pytestmark = pytest.mark.e2e

PLAIN = "dists/unstable/main/binary-amd64/Packages.xz"
COPIES = (PLAIN, "dists/unstable/Release", "dists/unstable/Release.gpg")


def _cli(target: ArchiveTarget, key: GpgKey, *args: str) -> tuple[int, str]:
    result = run_cli([*args, "--archive", target.location], {**target.env, **key_env(key)})
    return result.returncode, result.output


def _by_hash_off(factory: AptClientFactory, target: ArchiveTarget, key: GpgKey) -> AptClient:
    client = factory()
    with client.config_path.open("a") as fh:
        fh.write('Acquire::By-Hash "no";\n')  # a mirror-like client: plain paths only
    client.add_source(target.http_url, "unstable", ["main"], key.public_armored)
    return client


def test_repair_makes_a_torn_suite_whole_for_by_hash_off_clients(
    target: ArchiveTarget,
    tmp_path: Path,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
) -> None:
    debs = tmp_path / "debs"
    rc, out = _cli(target, signing_key, "upload", str(make_deb(debs, "svc", "1.0")))
    assert rc == 0, out
    old = {key: target.read(key) for key in COPIES}
    rc, out = _cli(target, signing_key, "upload", str(make_deb(debs, "svc", "1.1")))
    assert rc == 0, out
    # What a publisher killed between its InRelease commit and its copies leaves behind
    # (a new file under the name: a local plain index is a hard link of its by-hash twin).
    for key, data in old.items():
        target.delete(key)
        target.write(key, data)

    rc, out = _cli(target, signing_key, "verify")
    assert rc == 4, out
    torn = {line.split(":")[1].strip() for line in out.splitlines() if line.startswith("error:")}
    # (Release.gpg signs the stale Release: verify names the Release.)
    assert torn == {PLAIN, "dists/unstable/Release"}, out
    client = _by_hash_off(apt_client_factory, target, signing_key)
    broken = client.run_update()
    assert any(
        re.search(r"unexpected size|Hash Sum mismatch|Mirror sync", p) for p in broken.problems()
    ), broken.output

    before = target.snapshot()
    rc, out = _cli(target, signing_key, "repair")
    assert rc == 0, out
    assert "repaired dists/unstable:" in out
    for key in COPIES:
        assert key in out
    after = target.snapshot()
    assert {k for k in after if after[k] != before.get(k)} == set(COPIES)
    rc, out = _cli(target, signing_key, "verify")
    assert rc == 0, out
    client.update()  # strict: any W:/E: line fails
    assert client.candidate("svc") == "1.1"
    rc, out = _cli(target, signing_key, "repair")
    assert rc == 0 and "nothing to repair" in out, out


def test_resign_moves_valid_until_and_apt_still_sees_the_same_suite(
    target: ArchiveTarget,
    tmp_path: Path,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
) -> None:
    deb = make_deb(tmp_path / "debs", "svc", "1.0")
    rc, out = _cli(target, signing_key, "upload", "--valid-days", "1", str(deb))
    assert rc == 0, out
    # Nothing is due yet: resign changes nothing at all.
    before = target.snapshot()
    rc, out = _cli(target, signing_key, "resign")
    assert rc == 0 and "nothing to re-sign" in out, out
    assert target.snapshot() == before

    # Due by --within (a scheduled job's horizon): re-signed, same packages.
    release = target.read("dists/unstable/Release").decode()
    until = re.search(r"^Valid-Until: (.+)$", release, re.M)
    assert until is not None
    rc, out = _cli(target, signing_key, "resign", "--within", "2d")
    assert rc == 0, out
    assert "re-signed dists/unstable: Valid-Until moved forward" in out
    after = target.read("dists/unstable/Release").decode()
    moved = re.search(r"^Valid-Until: (.+)$", after, re.M)
    assert moved is not None and moved.group(1) != until.group(1)
    packages = {k for k in target.snapshot() if k.startswith("pool/")}
    assert packages == {k for k in before if k.startswith("pool/")}
    rc, out = _cli(target, signing_key, "verify")
    assert rc == 0, out

    client = apt_client_factory()
    client.add_source(target.http_url, "unstable", ["main"], signing_key.public_armored)
    client.update()
    assert client.candidate("svc") == "1.0"
    rc, out = _cli(target, signing_key, "resign", "--within", "soon")
    assert rc == 2 and "use a number and a unit" in out, out


def test_prune_then_gc_on_s3_after_a_real_grace(
    s3_bucket: S3Bucket,
    tmp_path: Path,
    signing_key: GpgKey,
    apt_client_factory: AptClientFactory,
) -> None:
    """On SeaweedFS, with its own Last-Modified: the one test that waits out a grace (the
    shortest gc accepts is longer than the 60 s lock lease; time cannot be faked here)."""
    target = ArchiveTarget(
        "s3", s3_bucket.archive_url, s3_bucket.http_url, s3_bucket.env(), bucket=s3_bucket
    )
    debs = tmp_path / "debs"
    assert _cli(target, signing_key, "upload", str(make_deb(debs, "svc", "1.0")))[0] == 0
    for build in (1, 2, 3):
        deb = make_deb(debs, "svc", f"1.1~pr9-{build}", payload_size=1024)
        rc, out = _cli(target, signing_key, "upload", str(deb))
        assert rc == 0, out
    rc, out = _cli(target, signing_key, "prune", "--keep-last", "1")
    assert rc == 0 and "pruned 2, kept 2" in out, out
    # Nothing is old enough yet: gc deletes nothing and changes nothing.
    before = target.snapshot()
    rc, out = _cli(target, signing_key, "gc", "--grace", "61s")
    assert rc == 0 and "deleted 0 object(s)" in out, out
    assert target.snapshot() == before
    time.sleep(63)
    rc, out = _cli(target, signing_key, "gc", "--grace", "61s")
    assert rc == 0, out
    gone = set(before) - set(target.snapshot())
    assert {k for k in gone if k.startswith("pool/")} == {
        "pool/main/s/svc/svc_1.1~pr9-1_amd64.deb",
        "pool/main/s/svc/svc_1.1~pr9-2_amd64.deb",
    }, gone
    assert any("/by-hash/" in k for k in gone), gone  # indexes of the older roots
    rc, out = _cli(target, signing_key, "verify")
    assert rc == 0 and "0 warning(s)" in out, out
    client = apt_client_factory()
    client.add_source(target.http_url, "unstable", ["main"], signing_key.public_armored)
    client.update()
    assert client.candidates("svc") == ["1.1~pr9-3", "1.0"]
    client.install(["svc=1.1~pr9-3"])
