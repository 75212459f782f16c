"""A local directory as a store: the embedded default, and what `serve` publishes.

Every write goes to a temporary file first and is then linked or renamed into place,
so a reader never sees a half-written object. Create-only is `link()` (fails if the
name exists); compare-and-swap holds an `flock` on one lock file for the whole store
while it compares the tag and renames. The tag is (inode, mtime, size): a rename
always brings a new inode, so a changed object always has a new tag.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from debops_ci.errors import StorageError
from debops_ci.storage.base import (
    Blob,
    NotFound,
    ObjectInfo,
    OperationObserver,
    PreconditionFailed,
    describe_condition,
)

_LOCK_NAME = ".debops-store.lock"
_TMP_PREFIX = ".debops-tmp-"


def _tag(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


class LocalStore:
    def __init__(self, root: Path, observer: OperationObserver | None = None) -> None:
        self.root = root.resolve()
        self._observer = observer

    def describe(self) -> str:
        return str(self.root)

    def public_url(self) -> str | None:
        return None

    def _note(self, verb: str, key: str, detail: str = "") -> None:
        if self._observer is not None:
            self._observer(verb, key, detail)

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
            raise StorageError(f"refusing unsafe storage key {key!r}")
        return self.root / key

    def ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create archive directory {self.root}: {exc.strerror}"
            ) from exc

    def get(self, key: str) -> Blob:
        self._note("GET", key)
        try:
            with open(self._path(key), "rb") as fh:
                st = os.fstat(fh.fileno())
                return Blob(fh.read(), _tag(st))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"{key} not found in {self.root}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {key} in {self.root}: {exc.strerror}") from exc

    def head(self, key: str) -> ObjectInfo | None:
        self._note("HEAD", key)
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return ObjectInfo(key, st.st_size, _tag(st), st.st_mtime, {})

    @contextlib.contextmanager
    def _store_lock(self) -> Iterator[None]:
        self.ensure_root()
        fd = os.open(self.root / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_temp(self, target: Path, data: bytes | None, source: Path | None) -> Path:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
            with os.fdopen(fd, "wb") as out:
                if source is not None:
                    with open(source, "rb") as src:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                else:
                    assert data is not None
                    out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            return Path(tmp)
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror}") from exc

    def _commit(self, key: str, tmp: Path, create_only: bool, if_match: str | None) -> str:
        target = self._path(key)
        try:
            if create_only:
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    raise PreconditionFailed(f"{key} already exists") from None
                return _tag(os.stat(target))
            if if_match is not None:
                with self._store_lock():
                    current = self.head(key)
                    if current is None or current.etag != if_match:
                        raise PreconditionFailed(f"{key} changed since it was read")
                    os.replace(tmp, target)
                    return _tag(os.stat(target))
            os.replace(tmp, target)
            return _tag(os.stat(target))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def put(
        self,
        key: str,
        data: bytes,
        *,
        create_only: bool = False,
        if_match: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        self._note("PUT", key, describe_condition(create_only, if_match))
        tmp = self._write_temp(self._path(key), data, None)
        return self._commit(key, tmp, create_only, if_match)

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        create_only: bool = False,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        self._note("PUT", key, describe_condition(create_only, None))
        tmp = self._write_temp(self._path(key), None, path)
        return self._commit(key, tmp, create_only, None)

    def copy(self, source: str, target: str) -> str:
        self._note("COPY", target, f"from {source}")
        src, dst = self._path(source), self._path(target)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.parent / f"{_TMP_PREFIX}{os.getpid()}-{threading.get_ident()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            # A hard link is safe: objects are never changed in place, only replaced.
            os.link(src, tmp)
            os.replace(tmp, dst)
        except FileNotFoundError:
            raise NotFound(f"{source} not found in {self.root}") from None
        except OSError as exc:
            raise StorageError(f"cannot copy {source} to {target}: {exc.strerror}") from exc
        return _tag(os.stat(dst))

    def delete(self, key: str) -> None:
        self._note("DELETE", key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(self._path(key))

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        self._note("LIST", prefix)
        base = self.root
        found: list[ObjectInfo] = []
        start = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base
        if not start.is_dir():
            return iter(())
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(_TMP_PREFIX) or name == _LOCK_NAME:
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(base).as_posix()
                if key.startswith(prefix):
                    st = full.stat()
                    found.append(ObjectInfo(key, st.st_size, _tag(st), st.st_mtime, {}))
        return iter(sorted(found, key=lambda info: info.key))

    def list_dirs(self, prefix: str) -> list[str]:
        self._note("LIST", prefix, "directories")
        folder = self.root / prefix
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir())
