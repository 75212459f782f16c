"""The commit engine, the lock and the copies, in-process against MemoryStore.

No subprocess, no server, no sleep: faults are injected into the store and time is a
FakeClock. The end-to-end suites prove the same properties against SeaweedFS and apt;
these pin down the engine's logic fast and deterministically.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
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
    StorageError,
    SuiteSettings,
    list_packages,
    open_archive,
    publish,
    remove,
    verify,
)
from debops_ci.archive.inspect import inspect_all
from debops_ci.archive.intents import Intent, IntentWaiter, pending_intents
from debops_ci.archive.lock import SuiteLock
from debops_ci.archive.maintenance import repair, resign
from debops_ci.archive.pool import upload_pool_files
from debops_ci.archive.publish import PublishResult, entry_for
from debops_ci.archive.session import Archive
from debops_ci.archive.transaction import _run_locked
from debops_ci.clock import Clock, SystemClock
from debops_ci.errors import LockTimeoutError
from debops_ci.storage import Fault, LocalStore
from debops_ci.storage.memory import MemoryStore as _MemoryStore

SUITE = SuiteSettings()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return _MemoryStore(clock=clock.time)


def _options(key: GpgKey, clock: Clock, **extra: object) -> ArchiveOptions:
    options = ArchiveOptions(key=SigningKey(private_key=key.private_armored.encode()), clock=clock)
    return dataclasses.replace(options, **extra)  # type: ignore[arg-type]


@pytest.fixture
def archive(store: MemoryStore, signing_key: GpgKey, clock: FakeClock) -> Iterator[Archive]:
    with open_archive(store, _options(signing_key, clock), writable=True) as opened:
        yield opened


@pytest.fixture
def debs(tmp_path: Path) -> dict[str, Path]:
    return {
        "a1": make_deb(tmp_path / "a1", "alpha", "1.0-1"),
        "a2": make_deb(tmp_path / "a2", "alpha", "1.1-1"),
        "b1": make_deb(tmp_path / "b1", "beta", "2.0-1", arch="all"),
        "a1-other": make_deb(tmp_path / "a1x", "alpha", "1.0-1", payload_size=100),
    }


def _snapshot(store: MemoryStore) -> dict[str, bytes]:
    return {key: store.get(key).data for key in store.stored_keys()}


def _names(archive: Archive) -> set[tuple[str, str]]:
    return {(p.package, p.version) for p in list_packages(archive, ["unstable"])}


# -- publish and remove are changes ---------------------------------------------------


def test_publish_then_remove_through_the_engine(archive: Archive, debs: dict[str, Path]) -> None:
    result = publish(archive, SUITE, [debs["a1"], debs["b1"]])
    assert {p.package for p in result.added} == {"alpha", "beta"}
    assert result.attempts == 1
    assert _names(archive) == {("alpha", "1.0-1"), ("beta", "2.0-1")}
    assert verify(archive).ok

    removed = remove(archive, SUITE, [PackageSpec("beta")])
    assert [e.package for _c, e in removed.removed] == ["beta"]
    assert _names(archive) == {("alpha", "1.0-1")}
    report = verify(archive)
    assert report.ok
    # The removed package's pool file stays for gc, and verify says so as a warning.
    assert [f.kind for f in report.warnings] == ["unreferenced"]


def test_adding_one_package_costs_fifteen_requests_at_most(
    archive: Archive, store: MemoryStore, debs: dict[str, Path], clock: FakeClock
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    clock.advance(5)
    store.operations.clear()
    publish(archive, SUITE, [debs["a2"]])
    ops = [f"{op} {key}" for op, key in store.operations]
    # Read (root, one index), the .deb, lock, intents, 2 indexes, the commit, 4 copies,
    # the suite page (GET + PUT), unlock: the root's note saves the probe and the HEADs
    # of the plain index and of the original tool's .nolock.
    assert len(ops) <= 15, "\n".join(ops)
    assert not any(op.startswith("HEAD") for op in ops), ops
    assert "PUT index.html" not in ops  # the root page changes only with the suites
    assert verify(archive).ok


def test_identical_republish_is_a_no_op_without_the_lock(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    before = _snapshot(store)
    store.operations.clear()
    result = publish(archive, SUITE, [debs["a1"]])
    assert not result.added and len(result.already_present) == 1
    assert store.count("PUT") == 0, store.operations
    assert _snapshot(store) == before


def test_other_bytes_under_the_same_name_are_refused_and_change_nothing(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    before = _snapshot(store)
    with pytest.raises(ConflictError, match="different bytes"):
        publish(archive, SUITE, [debs["a1-other"]])
    assert _snapshot(store) == before


# -- rebase, lost answers, the lock ----------------------------------------------------


def test_a_commit_made_meanwhile_is_rebased_on_not_lost(
    archive: Archive, store: MemoryStore, debs: dict[str, Path], signing_key: GpgKey
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    other_done: list[bool] = []

    def another_writer(_op: str, _key: str) -> None:
        # A writer that ignores the lock commits beta just before our InRelease write.
        if other_done:
            return
        other_done.append(True)
        with open_archive(store, _options(signing_key, FakeClock()), writable=True) as other:
            lock_free = dataclasses.replace(SUITE)
            from debops_ci.archive.transaction import _commit

            state = other.read("unstable")
            components = {c: list(e) for c, e in state.components.items()}
            from debops_ci.archive.inspect import inspect_all
            from debops_ci.archive.pool import upload_pool_files
            from debops_ci.archive.publish import entry_for

            (beta,) = inspect_all([debs["b1"]])
            upload_pool_files(other, [beta], "main")
            components["main"].append(entry_for(beta, "main"))
            _commit(other, state, lock_free, components, legacy_nolock=False)

    store.inject(Fault("PUT", "dists/unstable/InRelease", action="call", callback=another_writer))
    result = publish(archive, SUITE, [debs["a2"]])
    assert result.attempts == 2  # rebased once
    assert _names(archive) == {("alpha", "1.0-1"), ("alpha", "1.1-1"), ("beta", "2.0-1")}
    assert verify(archive).ok


def test_a_root_that_moved_before_we_took_the_free_lock_is_not_repaired_backwards(
    archive: Archive, store: MemoryStore, debs: dict[str, Path], signing_key: GpgKey
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    moved: list[bool] = []

    def another_publisher(_op: str, _key: str) -> None:
        # Commits beta (and lets the lock go) after we read the suite, before we lock.
        if moved:
            return
        moved.append(True)
        with open_archive(store, _options(signing_key, FakeClock()), writable=True) as other:
            publish(other, SUITE, [debs["b1"]])

    store.inject(
        Fault("PUT", "dists/unstable/.debrepos3.lock", action="call", callback=another_publisher)
    )
    store.operations.clear()
    result = publish(archive, SUITE, [debs["a2"]])
    assert moved and result.repaired == ()  # the copies of beta's root were whole
    ours = [k for op, k in store.operations if op == "PUT" and k == "dists/unstable/Release"]
    assert len(ours) == 2  # beta's commit and ours: no stale Release written between
    assert _names(archive) == {("alpha", "1.0-1"), ("alpha", "1.1-1"), ("beta", "2.0-1")}
    assert verify(archive).ok


def test_a_lost_answer_to_our_own_commit_is_recognised(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    publish(archive, SUITE, [debs["a1"]])

    # The write lands, the answer is lost as a precondition failure of the retry.
    from debops_ci.storage import PreconditionFailed

    store.inject(
        Fault(
            "PUT",
            "dists/unstable/InRelease",
            action="lose_answer",
            error=PreconditionFailed("retry after a landed write"),
        )
    )
    result = publish(archive, SUITE, [debs["a2"]])
    assert result.attempts == 1
    assert ("alpha", "1.1-1") in _names(archive)
    assert verify(archive).ok


def test_an_expired_lease_is_taken_over_without_waiting_it_out(
    store: MemoryStore, clock: FakeClock
) -> None:
    dead = SuiteLock(store, "unstable", lease_seconds=60, clock=clock)
    dead.acquire()
    dead._stop.set()  # its process died: no more renewals
    waiter = SuiteLock(store, "unstable", lease_seconds=60, timeout_seconds=600, clock=clock)
    waiter.acquire()  # backs off on the fake clock until the lease has expired
    assert 60 <= sum(clock.slept) < 70
    assert waiter.token in store.get("dists/unstable/.debrepos3.lock").data.decode()
    waiter.release()
    assert store.head("dists/unstable/.debrepos3.lock") is None
    # No original-tool marker was there to hide, so none is made up.
    assert store.head("dists/unstable/.debrepos3.nolock") is None


def test_a_held_lock_times_out_with_who_holds_it(store: MemoryStore, clock: FakeClock) -> None:
    holder = SuiteLock(store, "unstable", lease_seconds=10_000, run="https://ci/run/7", clock=clock)
    holder.acquire()
    try:
        waiter = SuiteLock(store, "unstable", timeout_seconds=30, clock=clock)
        with pytest.raises(LockTimeoutError, match=r"CI run https://ci/run/7.*unlock"):
            waiter.acquire()
    finally:
        holder.release()


def test_a_lost_answer_to_our_lock_create_is_recognised(
    store: MemoryStore, clock: FakeClock
) -> None:
    from debops_ci.storage import PreconditionFailed

    store.inject(
        Fault(
            "PUT",
            "dists/unstable/.debrepos3.lock",
            action="lose_answer",
            error=PreconditionFailed("the retry found our own lock"),
        )
    )
    lock = SuiteLock(store, "unstable", clock=clock)
    lock.acquire()  # recognises its own token instead of waiting for itself
    assert clock.slept == []
    lock.release()


def test_renewal_that_finds_the_lock_taken_stops(store: MemoryStore, clock: FakeClock) -> None:
    lock = SuiteLock(store, "unstable", lease_seconds=60, clock=clock)
    lock.acquire()
    lock._stop.set()
    store.put("dists/unstable/.debrepos3.lock", b"{}")  # someone broke it
    assert lock.renew() is False
    lock.release()  # not ours any more: left alone
    assert store.head("dists/unstable/.debrepos3.lock") is not None


# -- torn copies: issue 8 §1.1 ------------------------------------------------------------


def _crash_on(store: MemoryStore, key: str) -> Fault:
    return store.inject(Fault("PUT", key, error=StorageError(f"killed before {key}")))


@pytest.mark.parametrize(
    "victim",
    ["dists/unstable/Release", "dists/unstable/Release.gpg"],
)
def test_a_publisher_dying_after_its_commit_leaves_copies_the_rerun_repairs(
    archive: Archive, store: MemoryStore, debs: dict[str, Path], victim: str
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    _crash_on(store, victim)
    with pytest.raises(StorageError, match="killed"):
        publish(archive, SUITE, [debs["a2"]])
    # Committed (InRelease names a2), but a copy is stale: verify fails on it.
    report = verify(archive)
    assert not report.ok
    assert {f.kind for f in report.errors} == {"torn-copy"}
    # A no-op re-upload (the CI job's retry) repairs first.
    result = publish(archive, SUITE, [debs["a2"]])
    assert not result.added
    assert victim in result.repaired
    assert verify(archive).ok


def test_a_stale_plain_index_fails_verify_and_repair_fixes_it(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    plain = "dists/unstable/main/binary-amd64/Packages.xz"
    old = store.get(plain).data
    publish(archive, SUITE, [debs["a2"]])
    store.put(plain, old)  # as if the copy never happened
    report = verify(archive)
    assert [(f.kind, f.path) for f in report.errors] == [("torn-copy", plain)]
    done = repair(archive, SUITE)
    assert done[0].repaired == (plain,)
    assert verify(archive).ok
    assert repair(archive, SUITE)[0].repaired == ()


def test_verify_and_repair_judge_release_and_its_signature_alike(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    release, signature = "dists/unstable/Release", "dists/unstable/Release.gpg"
    good = store.get(signature).data
    tears: list[tuple[Callable[[], object], str, str]] = [
        (lambda: store.put(release, b"Origin: old\n"), release, "stale copy"),
        (lambda: store.put(signature, good[:40]), signature, "does not verify"),
        (lambda: store.delete(signature), release, "Release.gpg missing"),
    ]
    for tear, shown, said in tears:
        tear()
        report = verify(archive)
        assert [(f.kind, f.path) for f in report.errors] == [("torn-copy", shown)]
        assert said in report.errors[0].message
        done = repair(archive, SUITE)
        assert signature in done[0].repaired
        assert verify(archive).ok


def test_every_signature_is_made_before_the_first_write(
    archive: Archive, store: MemoryStore, debs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    writes_at_sign: list[int] = []
    signer = archive.require_signer()
    for name in ("clearsign", "detach_sign"):
        real = getattr(signer, name)

        def spy(data: bytes, real: object = real) -> bytes:
            writes_at_sign.append(store.count("PUT", "dists/*") + store.count("COPY"))
            return real(data)  # type: ignore[operator, no-any-return]

        monkeypatch.setattr(signer, name, spy)
    before = store.count("PUT", "dists/*") + store.count("COPY")
    publish(archive, SUITE, [debs["a2"]])
    # Only the lock was written before both signatures.
    assert writes_at_sign == [before + 1, before + 1]


# -- Valid-Until ------------------------------------------------------------------------------


def test_valid_until_is_refreshed_by_any_write_and_by_resign(
    archive: Archive, store: MemoryStore, clock: FakeClock, debs: dict[str, Path]
) -> None:
    weekly = dataclasses.replace(SUITE, valid_days=7)
    publish(archive, weekly, [debs["a1"]])
    root = store.get("dists/unstable/InRelease").data
    clock.advance(2 * 86400)
    assert resign(archive, SUITE)[0].resigned is False  # 5 of 7 days left
    assert store.get("dists/unstable/InRelease").data == root
    clock.advance(2 * 86400)  # 3 of 7 days left: under half
    (care,) = resign(archive, SUITE)
    assert care.resigned
    report = verify(archive)
    assert report.ok
    # The period is kept without --valid-days: a no-op upload later refreshes it too.
    clock.advance(5 * 86400)
    result = publish(archive, SUITE, [debs["a1"]])
    assert not result.added
    clock.advance(4 * 86400)  # would be expired had the upload not re-signed
    assert verify(archive).ok


def test_an_expired_suite_fails_verify(
    archive: Archive, clock: FakeClock, debs: dict[str, Path]
) -> None:
    publish(archive, dataclasses.replace(SUITE, valid_days=1), [debs["a1"]])
    clock.advance(2 * 86400)
    with pytest.MonkeyPatch.context() as mp:
        # verify reads the wall clock for expiry, like apt: move it too.
        import debops_ci.archive.verify as verify_module

        class _Later:
            @staticmethod
            def now(tz: object = None) -> object:
                from datetime import UTC, datetime

                return datetime.fromtimestamp(clock.time(), UTC)

        mp.setattr(verify_module, "datetime", _Later)
        report = verify(archive)
    assert [f.kind for f in report.errors] == ["expired"]


# -- bad input changes nothing -------------------------------------------------------------------


def test_rolled_back_root_is_refused_before_any_write(
    archive: Archive, store: MemoryStore, clock: FakeClock, debs: dict[str, Path]
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    old_root = store.get("dists/unstable/InRelease").data
    clock.advance(10)
    publish(archive, SUITE, [debs["b1"]])
    seen = archive.read("unstable").date
    store.put("dists/unstable/InRelease", old_root)  # an attacker restores an old root
    before = _snapshot(store)
    with pytest.raises(ArchiveIntegrityError, match="rolled back"):
        publish(archive, dataclasses.replace(SUITE, not_older_than=seen), [debs["a2"]])
    assert _snapshot(store) == before


# -- local store: issue 8 §1.5 ----------------------------------------------------------------


def test_local_copy_onto_the_same_file_leaves_no_temp_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("dists/x/by-hash/SHA256/abc", b"index")
    store.copy("dists/x/by-hash/SHA256/abc", "dists/x/Packages")
    store.copy("dists/x/by-hash/SHA256/abc", "dists/x/Packages")  # same file already
    leftovers = [p for p in (tmp_path / "dists/x").iterdir() if p.name.startswith(".debops-tmp")]
    assert leftovers == []
    assert (tmp_path / "dists/x/Packages").read_bytes() == b"index"
    assert os.stat(tmp_path / "dists/x/Packages").st_nlink == 2


# -- group commit: issue 11 §1 ------------------------------------------------------------------


def _intent_for(archive: Archive, deb: Path, *, upload: bool = True) -> Intent:
    (pkg,) = inspect_all([deb])
    if upload:
        upload_pool_files(archive, [pkg], "main")
    return Intent.new("main", [entry_for(pkg, "main")])


def test_a_waiter_leaves_an_intent_and_the_holder_commits_it(
    store: MemoryStore, signing_key: GpgKey, debs: dict[str, Path]
) -> None:
    clock = SystemClock()
    options = _options(signing_key, clock)
    with open_archive(store, options, writable=True) as holder_side:
        publish(holder_side, SUITE, [debs["a1"]])
        lock = holder_side.lock("unstable")
        lock.acquire()
        results: list[object] = []

        def waiter() -> None:
            with open_archive(store, options, writable=True) as mine:
                results.append(publish(mine, SUITE, [debs["b1"]]))

        thread = threading.Thread(target=waiter)
        thread.start()
        deadline = time.monotonic() + 30
        while not pending_intents(store, "unstable"):
            assert time.monotonic() < deadline, "the waiter never wrote its intent"
            time.sleep(0.01)
        outcome = _run_locked(holder_side, SUITE, lambda _s: None, None, None, lock, trusted=False)
        lock.release()
        thread.join(30)
        assert outcome.commits == 1
        (result,) = results
        assert isinstance(result, PublishResult)
        assert result.by_other and [p.package for p in result.added] == ["beta"]
        assert _names(holder_side) == {("alpha", "1.0-1"), ("beta", "2.0-1")}
        assert pending_intents(store, "unstable") == []
        assert verify(holder_side).ok


def test_a_conflicting_intent_is_rejected_with_the_publish_error(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    # Same name/version, other bytes (its pool file could not even be uploaded).
    intent = _intent_for(archive, debs["a1-other"], upload=False)
    store.put(intent.key_in("unstable"), intent.to_json())
    publish(archive, SUITE, [debs["b1"]])  # the holder folds and rejects it
    waiter = IntentWaiter(store, "unstable", intent, archive.read)
    waiter._written = True
    with pytest.raises(ConflictError, match="different bytes"):
        waiter._check_rejected()
    assert _names(archive) == {("alpha", "1.0-1"), ("beta", "2.0-1")}


def test_intents_left_by_a_dead_holder_are_committed_by_the_next(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    orphan = _intent_for(archive, debs["b1"])  # its waiter and the holder both died
    store.put(orphan.key_in("unstable"), orphan.to_json())
    result = publish(archive, SUITE, [debs["a2"]])
    assert result.commits == 1
    assert _names(archive) == {("alpha", "1.0-1"), ("alpha", "1.1-1"), ("beta", "2.0-1")}
    assert pending_intents(store, "unstable") == []
    assert verify(archive).ok


def test_an_intent_naming_a_missing_pool_file_is_never_committed(
    archive: Archive, store: MemoryStore, debs: dict[str, Path]
) -> None:
    publish(archive, SUITE, [debs["a1"]])
    intent = _intent_for(archive, debs["b1"])
    store.delete(intent.entries[0].filename)
    store.put(intent.key_in("unstable"), intent.to_json())
    publish(archive, SUITE, [debs["a2"]])
    assert ("beta", "2.0-1") not in _names(archive)
    assert verify(archive).ok


def test_concurrent_publishers_share_commits_and_lose_nothing(
    store: MemoryStore, signing_key: GpgKey, tmp_path: Path
) -> None:
    options = _options(signing_key, SystemClock())
    per, publishers = 4, 4
    files = [
        [make_deb(tmp_path / f"p{p}", f"pkg{p}-{i}", "1.0", "all") for i in range(per)]
        for p in range(publishers)
    ]
    results: list[PublishResult] = []
    guard = threading.Lock()

    def run(batch: list[Path]) -> None:
        with open_archive(store, options, writable=True) as mine:
            for deb in batch:
                done = publish(mine, SUITE, [deb])
                with guard:
                    results.append(done)

    threads = [threading.Thread(target=run, args=(batch,)) for batch in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == per * publishers
    with open_archive(store, options) as reader:
        assert len(_names(reader)) == per * publishers
        assert verify(reader).ok
    commits = store.count("PUT", "dists/unstable/InRelease")
    assert commits == sum(r.commits for r in results)
    assert pending_intents(store, "unstable") == []
