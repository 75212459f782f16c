"""Many create-only uploads of local files at once (an archive's pool files).

Each file is created with `If-None-Match: *` and carries its SHA-256 in its metadata
(`sha256`), so a file found already there is told apart from ours by that, not by its
bytes. On an `S3Store` the uploads take its bulk path (`S3Store.put_new_file`: signed
and sent without botocore's per-request pipeline) from more threads; every other store
gets `put_file(create_only=True)` from a thread pool. Measured in bench/bulk_publish.py.

The first failure stops the rest (uploads not yet started are cancelled) and is
raised as it is: what was created stays, unreferenced, for `gc`.
"""

from __future__ import annotations

import enum
import hashlib
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from debops_ci.storage.base import NotFound, PreconditionFailed, Store

__all__ = ["BulkSettings", "NewFile", "Outcome", "put_new_files", "stored_sha256"]


class Outcome(enum.Enum):
    """What became of one file."""

    CREATED = "created"  # written now
    SAME = "same"  # already there with the same SHA-256 (an earlier attempt, a rerun)
    OTHER = "other"  # already there with other bytes: the caller decides what to say


@dataclass(frozen=True)
class NewFile:
    key: str
    path: Path
    sha256: str  # hex, of the file's bytes


@dataclass(frozen=True)
class BulkSettings:
    """Uploads in flight at once; the defaults are these, written once."""

    # 32 keeps a local SeaweedFS on 2 cores busy with the bulk path (1,300 PUTs/s;
    # 16 gave 1,100/s, 8 gave 930/s); a distant region wants more, S3 allows it.
    s3_threads: int = 32
    # A local directory (and memory) gains nothing from more: as before the bulk path.
    other_threads: int = 16


def stored_sha256(store: Store, key: str) -> str:
    """The SHA-256 a stored object declares (else of its bytes); "" when it is absent."""
    info = store.head(key)
    if info is not None and info.metadata.get("sha256"):
        return info.metadata["sha256"]
    try:
        return hashlib.sha256(store.get(key).data).hexdigest()
    except NotFound:
        return ""


def put_new_files(
    store: Store, files: Sequence[NewFile], settings: BulkSettings | None = None
) -> list[Outcome]:
    """Create every file (create-only); return each one's `Outcome`, in order."""
    settings = settings or BulkSettings()
    if not files:
        return []
    put, threads = _uploader(store, settings)
    stop = threading.Event()  # set by the first failure: start nothing more

    def one(item: NewFile) -> Outcome:
        if stop.is_set():
            raise _Stopped
        try:
            put(item)
            return Outcome.CREATED
        except PreconditionFailed:
            pass
        except BaseException:
            stop.set()
            raise
        same = stored_sha256(store, item.key) == item.sha256
        return Outcome.SAME if same else Outcome.OTHER

    with ThreadPoolExecutor(max_workers=min(len(files), threads)) as pool:
        futures = [pool.submit(one, item) for item in files]
        wait(futures, return_when=FIRST_EXCEPTION)
        if stop.is_set():
            for future in futures:
                future.cancel()
    # Raise the failure that comes first in the caller's order (a stable message).
    for future in futures:
        error = None if future.cancelled() else future.exception()
        if error is not None and not isinstance(error, _Stopped):
            raise error
    return [future.result() for future in futures]


class _Stopped(Exception):
    """An upload not started because another one had failed."""


def _uploader(store: Store, settings: BulkSettings) -> tuple[Callable[[NewFile], object], int]:
    """The store's bulk path and how many threads feed it."""
    # Only an S3Store has one; its module is loaded only when an s3:// store was opened,
    # so a store of another kind never pays for importing boto3 here.
    s3 = sys.modules.get("debops_ci.storage.s3")
    if s3 is not None and isinstance(store, s3.S3Store):
        s3_store = store

        def put_s3(item: NewFile) -> object:
            return s3_store.put_new_file(
                item.key, item.path, item.sha256, metadata={"sha256": item.sha256}
            )

        return put_s3, settings.s3_threads

    def put_any(item: NewFile) -> object:
        return store.put_file(
            item.key, item.path, create_only=True, metadata={"sha256": item.sha256}
        )

    return put_any, settings.other_threads
