"""An in-memory store with fault hooks: the engine's fast, deterministic test double.

It keeps the contract of the real backends exactly (create-only, compare-and-swap on
tags, server-side copy, listings in key order) and lets a test script what goes wrong:
fail an operation, perform it but lose its answer (the retried-request case), or run a
callback first (let another writer commit in between, advance a clock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from debops_ci.errors import StorageError
from debops_ci.storage.base import (
    Blob,
    Capabilities,
    DeferredWrite,
    NotFound,
    ObjectInfo,
    OperationObserver,
    PreconditionFailed,
    Staged,
    describe_condition,
)

__all__ = ["Fault", "MemoryStore"]


@dataclass
class Fault:
    """What to do to the next `times` operations `op` (GET, HEAD, PUT, COPY, DELETE, LIST)
    on keys matching the glob `key`.

    - `action="fail"`: raise `error` (default a StorageError) instead of running it;
    - `action="lose_answer"`: run it, then raise `error` as if the answer never came;
    - `action="call"`: run `callback(op, key)` first, then the operation.
    """

    op: str
    key: str = "*"
    action: str = "fail"
    times: int = 1
    error: Exception | None = None
    callback: Callable[[str, str], None] | None = None
    hits: int = field(default=0, init=False)

    def matches(self, op: str, key: str) -> bool:
        return self.hits < self.times and self.op == op and fnmatchcase(key, self.key)


@dataclass
class _Object:
    data: bytes
    etag: str
    last_modified: float
    metadata: dict[str, str]


class MemoryStore:
    """A store that lives in a dict; thread-safe, like a real server."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        observer: OperationObserver | None = None,
        name: str = "memory",
    ) -> None:
        self._objects: dict[str, _Object] = {}
        self._lock = threading.RLock()
        self._counter = 0
        self._clock = clock or (lambda: 0.0)
        self._observer = observer
        self._name = name
        self.faults: list[Fault] = []
        self.operations: list[tuple[str, str]] = []  # (op, key), in order

    # -- the test's handles -------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def stored_keys(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)

    def count(self, op: str, pattern: str = "*") -> int:
        return sum(1 for o, k in self.operations if o == op and fnmatchcase(k, pattern))

    # -- the Store protocol --------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    def describe(self) -> str:
        return f"memory://{self._name}"

    def public_url(self) -> str | None:
        return None

    def exists(self) -> bool:
        return True

    def prepare_writes(self) -> None:
        return None

    def _before(self, op: str, key: str, detail: str = "") -> Fault | None:
        """Record the operation and return a `lose_answer` fault to apply after it."""
        self.operations.append((op, key))
        if self._observer is not None:
            self._observer(op, key, detail)
        for fault in list(self.faults):
            if not fault.matches(op, key):
                continue
            fault.hits += 1
            if fault.action == "call":
                assert fault.callback is not None
                fault.callback(op, key)
            elif fault.action == "fail":
                raise fault.error or StorageError(f"injected failure of {op} {key}")
            elif fault.action == "lose_answer":
                return fault
        return None

    @staticmethod
    def _after(lost: Fault | None, op: str, key: str) -> None:
        if lost is not None:
            raise lost.error or StorageError(f"injected lost answer of {op} {key}")

    def _new_etag(self) -> str:
        self._counter += 1
        return f'"{self._counter:016x}"'

    def get(self, key: str) -> Blob:
        lost = self._before("GET", key)
        with self._lock:
            obj = self._objects.get(key)
            if obj is None:
                raise NotFound(f"{key} not found in {self.describe()}")
            blob = Blob(obj.data, obj.etag, dict(obj.metadata), obj.last_modified)
        self._after(lost, "GET", key)
        return blob

    def head(self, key: str) -> ObjectInfo | None:
        lost = self._before("HEAD", key)
        with self._lock:
            obj = self._objects.get(key)
            info = (
                None
                if obj is None
                else ObjectInfo(key, len(obj.data), obj.etag, obj.last_modified, obj.metadata)
            )
        self._after(lost, "HEAD", key)
        return info

    def _write(
        self,
        key: str,
        data: bytes,
        create_only: bool,
        if_match: str | None,
        metadata: dict[str, str] | None,
    ) -> str:
        lost = self._before("PUT", key, describe_condition(create_only, if_match))
        with self._lock:
            current = self._objects.get(key)
            if create_only and current is not None:
                raise PreconditionFailed(f"{key} already exists")
            if if_match is not None and (current is None or current.etag != if_match):
                raise PreconditionFailed(f"{key} changed since it was read")
            etag = self._new_etag()
            self._objects[key] = _Object(bytes(data), etag, self._clock(), dict(metadata or {}))
        self._after(lost, "PUT", key)
        return etag

    def put(
        self,
        key: str,
        data: bytes,
        *,
        create_only: bool = False,
        if_match: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        content_encoding: str | None = None,
    ) -> str:
        return self._write(key, data, create_only, if_match, metadata)

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        create_only: bool = False,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        return self._write(key, path.read_bytes(), create_only, None, metadata)

    def stage(self, key: str, data: bytes | None = None, *, copy_of: str | None = None) -> Staged:
        return DeferredWrite(self, key, data, copy_of)

    def copy(self, source: str, target: str) -> str:
        lost = self._before("COPY", target, f"from {source}")
        with self._lock:
            obj = self._objects.get(source)
            if obj is None:
                raise NotFound(f"{source} not found in {self.describe()}")
            etag = self._new_etag()
            self._objects[target] = _Object(obj.data, etag, self._clock(), {})
        self._after(lost, "COPY", target)
        return etag

    def delete(self, key: str) -> None:
        lost = self._before("DELETE", key)
        with self._lock:
            self._objects.pop(key, None)
        self._after(lost, "DELETE", key)

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        self._before("LIST", prefix)
        with self._lock:
            found = [
                ObjectInfo(k, len(o.data), o.etag, o.last_modified, dict(o.metadata))
                for k, o in sorted(self._objects.items())
                if k.startswith(prefix)
            ]
        return iter(found)

    def list_dirs(self, prefix: str) -> list[str]:
        self._before("LIST", prefix, "directories")
        with self._lock:
            names = {
                k[len(prefix) :].split("/", 1)[0]
                for k in self._objects
                if k.startswith(prefix) and "/" in k[len(prefix) :]
            }
        return sorted(names)
