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
import time
from collections.abc import Iterator
from pathlib import Path

from debops_ci.errors import StorageError
from debops_ci.storage.base import (
    Blob,
    Capabilities,
    NotFound,
    ObjectInfo,
    OperationObserver,
    PreconditionFailed,
    Staged,
    describe_condition,
)

_LOCK_NAME = ".debops-store.lock"
_TMP_PREFIX = ".debops-tmp-"


def _tag(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


class _StagedFile:
    def __init__(self, store: LocalStore, key: str, tmp: Path) -> None:
        self._store, self._key, self._tmp = store, key, tmp

    def finish(self) -> None:
        self._store._note("PUT", self._key, "staged")
        try:
            # Onto a name that is already the same file, rename() does nothing and
            # leaves the temp name: unlink it in every case.
            os.replace(self._tmp, self._store._path(self._key))
        except OSError as exc:
            raise StorageError(f"cannot write {self._key}: {exc.strerror}") from exc
        finally:
            self.discard()

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


class LocalStore:
    def __init__(self, root: Path, observer: OperationObserver | None = None) -> None:
        self.root = root.resolve()
        self._observer = observer

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(local_root=self.root)

    def describe(self) -> str:
        return str(self.root)

    def exists(self) -> bool:
        return self.root.is_dir()

    def prepare_writes(self) -> None:
        self.ensure_root()
        self._sweep_temp_files()

    def _sweep_temp_files(self, older_than: float = 3600.0) -> None:
        """Temp files of writers killed mid-write (they would be served over HTTP)."""
        dists = self.root / "dists"
        if not dists.is_dir():
            return
        now = time.time()
        for dirpath, _dirs, files in os.walk(dists):
            for name in files:
                if not name.startswith(_TMP_PREFIX):
                    continue
                path = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > older_than:
                        path.unlink()

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
                return Blob(fh.read(), _tag(st), last_modified=st.st_mtime)
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
        tmp: str | None = None
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
        except BaseException as exc:
            # Also on SIGTERM (SystemExit) mid-write: no temp file is left to be served.
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if isinstance(exc, OSError):
                raise StorageError(f"cannot write {target}: {exc.strerror}") from exc
            raise

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
        content_encoding: str | None = None,  # files carry none: never given here
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

    def stage(self, key: str, data: bytes | None = None, *, copy_of: str | None = None) -> Staged:
        """A temp file (written and fsynced, or hard-linked) beside `key`; finish renames."""
        target = self._path(key)
        if copy_of is None:
            assert data is not None
            return _StagedFile(self, key, self._write_temp(target, data, None))
        self._note("COPY", key, f"from {copy_of} (staged)")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            os.unlink(tmp)
            os.link(self._path(copy_of), tmp)
        except FileNotFoundError:
            raise NotFound(f"{copy_of} not found in {self.root}") from None
        except OSError as exc:
            raise StorageError(f"cannot stage a copy of {copy_of}: {exc.strerror}") from exc
        return _StagedFile(self, key, tmp)

    def copy(self, source: str, target: str) -> str:
        self._note("COPY", target, f"from {source}")
        src, dst = self._path(source), self._path(target)
        tmp = dst.parent / f"{_TMP_PREFIX}{os.getpid()}-{threading.get_ident()}"
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            # A hard link is safe: objects are never changed in place, only replaced.
            os.link(src, tmp)
            # rename() onto a name that is already the same file is a no-op that leaves
            # the source name in place: the temp link must go in every case.
            os.replace(tmp, dst)
        except FileNotFoundError:
            raise NotFound(f"{source} not found in {self.root}") from None
        except OSError as exc:
            raise StorageError(f"cannot copy {source} to {target}: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
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
