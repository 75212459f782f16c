"""The store interface: a flat key space of immutable-or-CAS objects.

Conditional writes are first-class: `put(..., create_only=True)` maps to
`If-None-Match: *` and `put(..., if_match=etag)` to `If-Match: <etag>`. The archive's
safety rests on them, so every backend must honour both or say it cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from debops_ci.errors import DebopsError, StorageError


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


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: float  # seconds since the epoch
    metadata: dict[str, str]


# Called once per storage operation, for --show-commands: (verb, key, detail).
OperationObserver = Callable[[str, str, str], None]


class Store(Protocol):
    """What the archive needs from object storage, and nothing more."""

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
    ) -> str:
        """Write an object; return its new tag. Raises PreconditionFailed."""
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
