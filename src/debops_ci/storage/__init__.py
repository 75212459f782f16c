"""Where the archive lives: a local directory or S3-compatible object storage."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from debops_ci.errors import UsageError
from debops_ci.storage.base import (
    Blob,
    NotFound,
    ObjectInfo,
    OperationObserver,
    PreconditionFailed,
    Store,
)
from debops_ci.storage.local import LocalStore
from debops_ci.storage.s3 import S3Store

__all__ = [
    "Blob",
    "LocalStore",
    "NotFound",
    "ObjectInfo",
    "OperationObserver",
    "PreconditionFailed",
    "S3Store",
    "Store",
    "open_store",
]


def open_store(
    location: str,
    *,
    endpoint_url: str | None = None,
    profile: str | None = None,
    observer: OperationObserver | None = None,
) -> LocalStore | S3Store:
    """Open `s3://bucket[/prefix]`, `file:///path` or a plain path."""
    parsed = urlparse(location)
    if parsed.scheme == "s3":
        bucket = parsed.netloc
        if len(bucket) < 3 or not all(c.isalnum() or c in "-." for c in bucket):
            raise UsageError(f"invalid bucket name in {location!r}: use s3://bucket[/prefix]")
        return S3Store(
            bucket,
            parsed.path,
            endpoint_url=endpoint_url,
            profile=profile,
            observer=observer,
        )
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"file URLs must be local: {location!r}")
        return LocalStore(Path(unquote(parsed.path)), observer)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise UsageError(
            f"unsupported archive location {location!r}: use s3://bucket[/prefix], "
            "file:///path or a directory path"
        )
    return LocalStore(Path(location), observer)
