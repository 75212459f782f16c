"""The store interface: a flat key space of immutable-or-CAS objects.

Conditional writes are first-class: `put(..., create_only=True)` maps to
`If-None-Match: *` and `put(..., if_match=etag)` to `If-Match: <etag>`. The archive's
safety rests on them, so every backend must honour both or say it cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from debops_ci.errors import DebopsError, StorageError

__all__ = [
    "Blob",
    "Capabilities",
    "DeferredWrite",
    "NotFound",
    "ObjectInfo",
    "OperationObserver",
    "PreconditionFailed",
    "S3Tuning",
    "Staged",
    "Store",
    "content_type_for",
    "describe_condition",
]


class NotFound(StorageError):
    """The key does not exist."""


class PreconditionFailed(DebopsError):
    """A conditional write lost: the object exists (create-only) or changed (if-match).

    Not a user-facing failure by itself: callers catch it to rebase or to compare bytes.
    """

    exit_code = 6


@dataclass(frozen=True)
class Blob:
    """An object's bytes with the version tag they were read at."""

    data: bytes
    etag: str
    # User metadata, where the store keeps it and answers it with the bytes (S3 does):
    # what the writer noted about the object, without another request.
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: float | None = None  # seconds since the epoch, where the store says


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: float  # seconds since the epoch
    metadata: dict[str, str]


# Called once per storage operation, for --show-commands: (verb, key, detail).
OperationObserver = Callable[[str, str, str], None]


@dataclass(frozen=True)
class Capabilities:
    """What a backend promises, so callers ask it instead of checking its class."""

    # Conditional writes are only claimed by the server: prove them once before writing.
    probe_conditional_writes: bool = False
    # `copy` runs inside the store (no bytes travel through us).
    server_side_copy: bool = True
    # A directory on this machine (served by `debops-ci serve`, used by file:// apt).
    local_root: Path | None = None
    # A stored Content-Encoding is served as sent (S3, to browsers that decode it).
    serves_content_encoding: bool = False


@dataclass(frozen=True)
class S3Tuning:
    """Retry and timeout knobs of the S3 client; the defaults are these, written once."""

    max_attempts: int = 8  # tries per request, the first included
    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 60.0  # seconds


class Staged(Protocol):
    """A write prepared by `Store.stage`."""

    def finish(self) -> None:
        """Make it visible."""
        ...

    def discard(self) -> None:
        """Forget it (nothing becomes visible)."""
        ...


@dataclass
class DeferredWrite:
    """The staging of a backend whose writes are atomic anyway: nothing to prepare."""

    store: Store
    key: str
    data: bytes | None
    copy_of: str | None

    def finish(self) -> None:
        if self.copy_of is not None:
            self.store.copy(self.copy_of, self.key)
        else:
            assert self.data is not None
            self.store.put(self.key, self.data)

    def discard(self) -> None:
        return None


class Store(Protocol):
    """What the archive needs from object storage, and nothing more."""

    @property
    def capabilities(self) -> Capabilities:
        """What this backend promises (see `Capabilities`)."""
        ...

    def exists(self) -> bool:
        """Whether the archive's container (directory, bucket) exists at all."""
        ...

    def prepare_writes(self) -> None:
        """Make the container ready for writes (a local directory is created)."""
        ...

    def describe(self) -> str:
        """A human-readable location with no secrets, e.g. `s3://bucket/prefix`."""
        ...

    def public_url(self) -> str | None:
        """Where apt can read this store over HTTP, if known."""
        ...

    def get(self, key: str) -> Blob:
        """Read an object. Raises NotFound."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Size, tag and metadata of an object, or None when absent."""
        ...

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
        """Write an object; return its new tag. Raises PreconditionFailed.
        `content_encoding` only where `capabilities.serves_content_encoding`.

        `create_only` is `If-None-Match: *`; `if_match` is compare-and-swap on the tag.
        """
        ...

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        create_only: bool = False,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Write a local file's bytes (large .debs). Raises PreconditionFailed."""
        ...

    def copy(self, source: str, target: str) -> str:
        """Server-side copy of an existing object over `target`; no bytes travel."""
        ...

    def stage(self, key: str, data: bytes | None = None, *, copy_of: str | None = None) -> Staged:
        """Prepare an unconditional write (`data`) or copy (`copy_of`) of `key`, to be
        made visible later with `Staged.finish()` as fast as the backend can.

        The archive stages its after-commit copies before the commit, so that what is
        left after it is only the cheapest step (a rename on a local disk).
        """
        ...

    def delete(self, key: str) -> None:
        """Remove an object; absent is not an error."""
        ...

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with prefix, in key order."""
        ...

    def list_dirs(self, prefix: str) -> list[str]:
        """The immediate 'sub-directories' under prefix (which ends in '/')."""
        ...


def content_type_for(key: str) -> str:
    """The MIME type a browser or apt expects for an archive file."""
    if key.endswith(".deb"):
        return "application/vnd.debian.binary-package"
    if key.endswith(".gz"):
        return "application/gzip"
    if key.endswith(".xz"):
        return "application/x-xz"
    if key.endswith(".html"):
        return "text/html; charset=utf-8"
    if key.endswith((".asc", "Release", "InRelease", ".gpg", "Packages")):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def describe_condition(create_only: bool, if_match: str | None) -> str:
    """How a write is guarded, for --show-commands."""
    if create_only:
        return "if-none-match: *"
    if if_match is not None:
        return "if-match"
    return ""
