"""Promote, prune, phase and gc, in-process against MemoryStore with a FakeClock.

Real .debs (dpkg-deb) and a real GnuPG key; no server, no sleep. Each operation is one
change of the commit engine; a dry run or a refusal must leave the store byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from support.clock import FakeClock
from support.debs import make_deb
from support.gpgkeys import GpgKey

from debops_ci import (
    ArchiveIntegrityError,
    ArchiveOptions,
    ConflictError,
    MemoryStore,
    PackageSpec,
    SigningKey,
    SuiteSettings,
    list_packages,
    open_archive,
    publish,
    remove,
    verify,
)
from debops_ci.archive.gc import gc
from debops_ci.archive.indexes import PHASED_FIELD, field_value
from debops_ci.archive.phase import phase
from debops_ci.archive.promote import promote
from debops_ci.archive.prune import PrBuild, PrunePolicy, parse_pr_build, prune
from debops_ci.archive.session import Archive
from debops_ci.errors import UsageError
from debops_ci.storage.memory import MemoryStore as _MemoryStore

PR = SuiteSettings(suite="pr")
STABLE = SuiteSettings(suite="stable")
HOUR = 3600.0

VERSIONS = {
    "alpha": ["1.0~pr5-1", "1.0~pr5-2", "1.0~pr5-3", "1.1~pr5-4", "1.0~pr6-1", "1.0~pr6-2", "0.9"],
    "beta": ["2.0-1~pr7.1", "2.0-1~pr7.2", "2.0-1~pr7.10", "2.0-1"],
}


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("debs")
    made = {
        f"{name}={version}": make_deb(out / "main", name, version)
        for name, versions in VERSIONS.items()
        for version in versions
    }
    made["alpha=1.0~pr5-1/other"] = make_deb(out / "other", "alpha", "1.0~pr5-1", payload_size=64)
    made["gamma=1.0~pr8-1"] = make_deb(out / "main", "gamma", "1.0~pr8-1", arch="all")
    return made


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _open(store: MemoryStore, key: GpgKey, clock: FakeClock) -> Iterator[Archive]:
    options = ArchiveOptions(key=SigningKey(private_key=key.private_armored.encode()), clock=clock)
    with open_archive(store, options, writable=True) as opened:
        yield opened


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return _MemoryStore(clock=clock.time, name="source")


@pytest.fixture
def archive(store: MemoryStore, signing_key: GpgKey, clock: FakeClock) -> Iterator[Archive]:
    yield from _open(store, signing_key, clock)


@pytest.fixture
def release_store(clock: FakeClock) -> MemoryStore:
    return _MemoryStore(clock=clock.time, name="release")


@pytest.fixture
def release(release_store: MemoryStore, signing_key: GpgKey, clock: FakeClock) -> Iterator[Archive]:
    yield from _open(release_store, signing_key, clock)


def _keys(store: MemoryStore) -> list[str]:
    return store.stored_keys()


def _snapshot(store: MemoryStore) -> dict[str, bytes]:
    return {key: store.get(key).data for key in _keys(store)}


def _versions(archive: Archive, suite: str, package: str | None = None) -> list[str]:
    return [p.version for p in list_packages(archive, [suite], package=package)]


def _entries(archive: Archive, suite: str) -> dict[tuple[str, str, str], str]:
    """(package, version, arch) -> stanza text, as the suite's signed indexes say."""
    return {e.key: e.text for _c, e in archive.read(suite).all_entries()}


def _publish(archive: Archive, debs: dict[str, Path], *names: str, suite: str = "pr") -> None:
    publish(archive, SuiteSettings(suite=suite), [debs[n] for n in names])


# -- promote ----------------------------------------------------------------------------


def test_promote_within_one_archive_shares_the_pool_file_and_keeps_the_stanza(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1", "alpha=1.0~pr5-2", "alpha=0.9")
    store.operations.clear()
    result = promote(archive, archive, "pr", STABLE, [PackageSpec("alpha")])
    # Default version: the newest in Debian order (1.0~pr5-2 > 1.0~pr5-1 > 0.9).
    assert [e.version for e in result.promoted] == ["1.0~pr5-2"]
    assert (result.shared, result.streamed) == (1, 0)
    assert store.count("PUT", "pool/*") == 0 and store.count("COPY", "pool/*") == 0
    source = _entries(archive, "pr")
    target = _entries(archive, "stable")
    key = ("alpha", "1.0~pr5-2", "amd64")
    assert list(target) == [key]
    assert target[key] == source[key]  # same stanza text: same Filename, same SHA256
    assert verify(archive).ok


def test_promote_into_another_archive_streams_the_exact_bytes(
    archive: Archive,
    store: MemoryStore,
    release: Archive,
    release_store: MemoryStore,
    debs: dict[str, Path],
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1", "alpha=1.0~pr5-2", "gamma=1.0~pr8-1")
    result = promote(
        archive,
        release,
        "pr",
        STABLE,
        [PackageSpec.parse("alpha=1.0~pr5-1"), PackageSpec("gamma")],
    )
    assert sorted(e.package for e in result.promoted) == ["alpha", "gamma"]
    assert result.streamed == 2
    for entry in result.promoted:
        assert release_store.get(entry.filename).data == store.get(entry.filename).data
    assert _versions(release, "stable") == ["1.0~pr5-1", "1.0~pr8-1"]
    report = verify(release)
    assert report.ok and not report.warnings, [str(f) for f in report.warnings]

    # Promoting again is a no-op: nothing written at all.
    before = _snapshot(release_store)
    again = promote(archive, release, "pr", STABLE, [PackageSpec.parse("alpha=1.0~pr5-1")])
    assert not again.promoted and len(again.already_present) == 1
    assert _snapshot(release_store) == before


def test_promote_with_a_phased_percentage_sets_it_on_the_target_only(
    archive: Archive, release: Archive, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-2")
    promote(archive, release, "pr", STABLE, [PackageSpec("alpha")], phased_percentage=10)
    [(_c, target)] = release.read("stable").all_entries()
    [(_c, source)] = archive.read("pr").all_entries()
    assert field_value(target, PHASED_FIELD) == "10"
    assert field_value(source, PHASED_FIELD) is None
    assert (target.sha256, target.filename) == (source.sha256, source.filename)


def test_promote_refuses_other_bytes_in_the_target_and_changes_nothing(
    archive: Archive, release: Archive, release_store: MemoryStore, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1")
    _publish(release, debs, "alpha=1.0~pr5-1/other", suite="stable")
    before = _snapshot(release_store)
    with pytest.raises(ConflictError, match="different bytes"):
        promote(archive, release, "pr", STABLE, [PackageSpec("alpha")])
    assert _snapshot(release_store) == before


def test_promote_refuses_a_pool_file_with_other_bytes_in_the_target_store(
    archive: Archive, release: Archive, release_store: MemoryStore, debs: dict[str, Path]
) -> None:
    # The target suite does not list it, but its pool holds other bytes at that name.
    _publish(release, debs, "alpha=1.0~pr5-1/other", suite="stable")
    remove(release, STABLE, [PackageSpec("alpha")])
    _publish(archive, debs, "alpha=1.0~pr5-1")
    before = _snapshot(release_store)
    with pytest.raises(ConflictError, match="other bytes"):
        promote(archive, release, "pr", STABLE, [PackageSpec("alpha")])
    assert _snapshot(release_store) == before


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("alpha=9.9", r"alpha 9\.9 is not in suite pr; it has 1\.0~pr5-2, 1\.0~pr5-1"),
        ("nosuch", "nosuch is not in suite pr"),
    ],
)
def test_promote_of_what_the_source_lacks_is_a_usage_error(
    archive: Archive,
    release: Archive,
    release_store: MemoryStore,
    debs: dict[str, Path],
    spec: str,
    message: str,
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1", "alpha=1.0~pr5-2")
    with pytest.raises(UsageError, match=message):
        promote(archive, release, "pr", STABLE, [PackageSpec.parse(spec)])
    assert release_store.stored_keys() == []


def test_promote_bad_input_is_refused_before_any_write(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1")
    before = _snapshot(store)
    with pytest.raises(UsageError, match="both pr"):
        promote(archive, archive, "pr", PR, [PackageSpec("alpha")])
    with pytest.raises(UsageError, match="0 to 100"):
        promote(archive, archive, "pr", STABLE, [PackageSpec("alpha")], phased_percentage=101)
    with pytest.raises(UsageError, match="does not exist"):
        promote(archive, archive, "nosuite", STABLE, [PackageSpec("alpha")])
    with pytest.raises(UsageError, match="at least one"):
        promote(archive, archive, "pr", STABLE, [])
    assert _snapshot(store) == before


# -- phase ------------------------------------------------------------------------------


def test_phase_sets_changes_and_removes_the_field(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1", "alpha=1.0~pr5-2")
    spec = PackageSpec.parse("alpha=1.0~pr5-2")
    result = phase(archive, PR, spec, 0)
    assert [e.version for _c, e in result.changed] == ["1.0~pr5-2"]
    phased = {p.version: p.phased_percentage for p in list_packages(archive, ["pr"])}
    assert phased == {"1.0~pr5-1": None, "1.0~pr5-2": 0}

    # The same value again commits nothing.
    before = _snapshot(store)
    again = phase(archive, PR, spec, 0)
    assert not again.changed and len(again.unchanged) == 1
    assert _snapshot(store) == before

    phase(archive, PR, spec, 50)
    assert {p.version: p.phased_percentage for p in list_packages(archive, ["pr"])}[
        "1.0~pr5-2"
    ] == 50
    phase(archive, PR, spec, None)
    entries = archive.read("pr").all_entries()
    assert all(field_value(e, PHASED_FIELD) is None for _c, e in entries)
    assert PHASED_FIELD not in "".join(e.text for _c, e in entries)
    assert verify(archive).ok


@pytest.mark.parametrize(
    ("spec", "percentage", "message"),
    [
        ("alpha", 10, "name the version"),
        ("alpha=7.0", 10, r"alpha=7\.0 is not in suite pr: it has 1\.0~pr5-1"),
        ("nosuch=1.0", 10, "no such package"),
        ("alpha=1.0~pr5-1", 101, "0 to 100"),
        ("alpha=1.0~pr5-1", -1, "0 to 100"),
    ],
)
def test_phase_bad_input_changes_nothing(
    archive: Archive,
    store: MemoryStore,
    debs: dict[str, Path],
    spec: str,
    percentage: int,
    message: str,
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1")
    before = _snapshot(store)
    with pytest.raises(UsageError, match=message):
        phase(archive, PR, PackageSpec.parse(spec), percentage)
    assert _snapshot(store) == before


# -- prune ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.0.79~pr751-14", PrBuild(751, 14)),
        ("1.0.0-1~pr751.14", PrBuild(751, 14)),
        ("2:1.0~pr3-2", PrBuild(3, 2)),
        ("1.0-1", None),
        ("1.0~feature.x-3", None),
        ("1.0~pr5", None),
    ],
)
def test_pr_build_versions_are_recognised(version: str, expected: PrBuild | None) -> None:
    assert parse_pr_build(version) == expected


def _all(debs: dict[str, Path]) -> list[str]:
    return [f"{n}={v}" for n, vs in VERSIONS.items() for v in vs]


def test_keep_last_keeps_the_newest_builds_per_package_per_pr_and_every_mainline(
    archive: Archive, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, *_all(debs))
    result = prune(archive, PR, PrunePolicy(keep_last=1))
    gone = sorted((p.entry.package, p.entry.version) for p in result.pruned)
    assert gone == [
        ("alpha", "1.0~pr5-1"),
        ("alpha", "1.0~pr5-2"),
        ("alpha", "1.0~pr5-3"),
        ("alpha", "1.0~pr6-1"),
        ("beta", "2.0-1~pr7.1"),
        ("beta", "2.0-1~pr7.2"),  # 7.10 is newer than 7.2: Debian order, not text
    ]
    assert _versions(archive, "pr", "alpha") == ["0.9", "1.0~pr6-2", "1.1~pr5-4"]
    assert _versions(archive, "pr", "beta") == ["2.0-1~pr7.10", "2.0-1"]
    assert verify(archive).ok


def test_pr_alone_prunes_every_build_of_that_pr(archive: Archive, debs: dict[str, Path]) -> None:
    _publish(archive, debs, *_all(debs))
    prune(archive, PR, PrunePolicy(pr=5))
    assert _versions(archive, "pr", "alpha") == ["0.9", "1.0~pr6-1", "1.0~pr6-2"]
    assert len(_versions(archive, "pr", "beta")) == 4


def test_package_scope_and_named_versions(archive: Archive, debs: dict[str, Path]) -> None:
    _publish(archive, debs, *_all(debs))
    # PKG limits the policy; PKG=VER removes exactly that version, mainline included.
    prune(
        archive,
        PR,
        PrunePolicy(
            keep_last=0,
            packages=(PackageSpec("beta"), PackageSpec.parse("alpha=0.9")),
        ),
    )
    assert _versions(archive, "pr", "beta") == ["2.0-1"]
    assert "0.9" not in _versions(archive, "pr", "alpha")
    assert len(_versions(archive, "pr", "alpha")) == 6


def test_older_than_uses_when_the_build_reached_the_archive(
    archive: Archive, clock: FakeClock, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1", "alpha=0.9", "beta=2.0-1~pr7.1")
    clock.advance(40 * 86400)
    _publish(archive, debs, "alpha=1.0~pr5-2")
    result = prune(archive, PR, PrunePolicy(older_than=timedelta(days=30)))
    assert sorted(p.entry.version for p in result.pruned) == ["1.0~pr5-1", "2.0-1~pr7.1"]
    assert all("30d" in p.reason for p in result.pruned)
    assert _versions(archive, "pr") == ["0.9", "1.0~pr5-2"]


def test_criteria_combine_as_and(archive: Archive, clock: FakeClock, debs: dict[str, Path]) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1", "alpha=1.0~pr5-2")
    clock.advance(40 * 86400)
    _publish(archive, debs, "alpha=1.0~pr5-3", "alpha=1.1~pr5-4")
    # Beyond the newest one AND older than 30 days: pr5-3 is beyond, but young.
    prune(archive, PR, PrunePolicy(keep_last=1, older_than=timedelta(days=30)))
    assert _versions(archive, "pr") == ["1.0~pr5-3", "1.1~pr5-4"]


def test_dry_run_lists_and_changes_nothing(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, *_all(debs))
    before = _snapshot(store)
    result = prune(archive, PR, PrunePolicy(pr=6), dry_run=True)
    assert result.dry_run
    assert sorted(p.entry.version for p in result.pruned) == ["1.0~pr6-1", "1.0~pr6-2"]
    assert _snapshot(store) == before


def test_nothing_to_prune_commits_nothing(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=0.9", "alpha=1.0~pr5-1")
    before = _snapshot(store)
    assert prune(archive, PR, PrunePolicy(pr=99)).pruned == []
    assert prune(archive, PR, PrunePolicy(keep_last=3)).pruned == []
    assert _snapshot(store) == before


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (PrunePolicy(), "say what to prune"),
        (PrunePolicy(keep_last=-1), "--keep-last"),
        (PrunePolicy(pr=0), "--pr"),
        (PrunePolicy(older_than=timedelta(0)), "--older-than"),
    ],
)
def test_bad_policies_are_refused(
    archive: Archive, store: MemoryStore, debs: dict[str, Path], policy: PrunePolicy, message: str
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1")
    before = _snapshot(store)
    with pytest.raises(UsageError, match=message):
        prune(archive, PR, policy)
    with pytest.raises(UsageError, match="does not exist"):
        prune(archive, SuiteSettings(suite="nosuite"), PrunePolicy(pr=1))
    assert _snapshot(store) == before


# -- gc ---------------------------------------------------------------------------------


def _pool(store: MemoryStore) -> list[str]:
    return [k for k in _keys(store) if k.startswith("pool/")]


def _by_hash(store: MemoryStore) -> list[str]:
    return [k for k in _keys(store) if "/by-hash/" in k]


def test_gc_collects_only_unreferenced_files_older_than_the_grace(
    archive: Archive, store: MemoryStore, clock: FakeClock, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1", "alpha=1.0~pr5-2", "alpha=0.9")
    _publish(archive, debs, "alpha=1.0~pr5-1", suite="stable")  # shares a pool file
    prune(archive, PR, PrunePolicy(pr=5))
    assert len(_pool(store)) == 3

    # Right after the prune: everything is young, and old indexes may still be read.
    assert gc(archive, grace=timedelta(hours=2)).deleted == []
    clock.advance(3 * HOUR)

    before = _snapshot(store)
    dry = gc(archive, grace=timedelta(hours=2), dry_run=True)
    assert _snapshot(store) == before
    pool_gone = [c.key for c in dry.deleted if c.kind == "pool"]
    assert pool_gone == ["pool/main/a/alpha/alpha_1.0~pr5-2_amd64.deb"]
    assert any(c.kind == "by-hash" for c in dry.deleted)
    assert dry.bytes_freed == sum(len(before[c.key]) for c in dry.deleted)

    real = gc(archive, grace=timedelta(hours=2))
    assert [c.key for c in real.deleted] == [c.key for c in dry.deleted]
    assert _pool(store) == [
        "pool/main/a/alpha/alpha_0.9_amd64.deb",
        "pool/main/a/alpha/alpha_1.0~pr5-1_amd64.deb",  # still in stable
    ]
    report = verify(archive)
    assert report.ok and not report.warnings, [str(f) for f in report.warnings]
    # Current roots keep exactly what they name: a second run finds nothing.
    assert gc(archive, grace=timedelta(hours=2)).deleted == []


def test_gc_keeps_old_indexes_of_a_recently_changed_suite_and_their_files(
    archive: Archive, store: MemoryStore, clock: FakeClock, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=1.0~pr5-1")
    clock.advance(3 * HOUR)
    old_indexes = set(_by_hash(store))
    remove(archive, PR, [PackageSpec("alpha")])
    # The previous root was superseded just now: a client holding it may fetch its
    # (old) indexes and the file they name, so both stay although they are old.
    result = gc(archive, grace=timedelta(hours=2))
    assert result.deleted == []
    assert old_indexes <= set(_by_hash(store))
    assert _pool(store) == ["pool/main/a/alpha/alpha_1.0~pr5-1_amd64.deb"]

    clock.advance(3 * HOUR)
    result = gc(archive, grace=timedelta(hours=2))
    assert {c.key for c in result.deleted} >= old_indexes
    assert _pool(store) == []
    assert verify(archive).ok


def test_gc_spares_a_pool_file_of_a_publish_in_flight_and_takes_legacy_orphans(
    archive: Archive, store: MemoryStore, clock: FakeClock, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=0.9")
    store.put("dists/pr/main/binary-amd64/old_1.0_amd64.deb", b"legacy orphan")
    store.put("pool/main/o/old/old_1.0_amd64.deb", b"old orphan")
    clock.advance(3 * HOUR)
    # Uploaded just now by a publisher that has not committed yet.
    store.put("pool/main/n/new/new_1.0_amd64.deb", b"in flight", create_only=True)
    result = gc(archive, grace=timedelta(hours=2))
    assert sorted(c.key for c in result.deleted) == [
        "dists/pr/main/binary-amd64/old_1.0_amd64.deb",
        "pool/main/o/old/old_1.0_amd64.deb",
    ]
    assert "pool/main/n/new/new_1.0_amd64.deb" in _keys(store)
    assert result.kept_young == 1
    assert verify(archive).ok


def test_gc_refuses_a_grace_within_the_lock_lease(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=0.9")
    before = _snapshot(store)
    with pytest.raises(UsageError, match="longer than the lock lease"):
        gc(archive, grace=timedelta(seconds=60))
    assert _snapshot(store) == before


def test_gc_refuses_when_a_suite_does_not_read_cleanly(
    archive: Archive, store: MemoryStore, clock: FakeClock, debs: dict[str, Path]
) -> None:
    _publish(archive, debs, "alpha=0.9")
    store.put("pool/main/o/old/old_1.0_amd64.deb", b"old orphan")
    for index in _by_hash(store):
        store.put(index, b"tampered")
    clock.advance(3 * HOUR)
    before = _snapshot(store)
    with pytest.raises(ArchiveIntegrityError, match="gc needs every suite"):
        gc(archive, grace=timedelta(hours=2))
    assert _snapshot(store) == before


def test_gc_on_a_store_also_holding_another_prefix_is_not_confused(
    signing_key: GpgKey, clock: FakeClock, debs: dict[str, Path]
) -> None:
    # Sanity: gc of an empty archive does nothing and says so.
    store = _MemoryStore(clock=clock.time)
    for opened in _open(store, signing_key, clock):
        result = gc(opened, grace=timedelta(hours=2))
        assert result.deleted == [] and result.suites == []
