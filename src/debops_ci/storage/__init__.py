"""Where the archive lives: a local directory, S3-compatible object storage, or memory.

`S3Store` is imported on first use only: boto3 costs ~0.1 s to import, which a
command on a local archive (or `--version`) should not pay.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from debops_ci.errors import UsageError
from debops_ci.storage.base import (
    Blob,
    Capabilities,
    NotFound,
    ObjectInfo,
    OperationObserver,
    PreconditionFailed,
    S3Tuning,
    Store,
)
from debops_ci.storage.local import LocalStore
from debops_ci.storage.memory import Fault, MemoryStore

if TYPE_CHECKING:
    from debops_ci.storage.s3 import S3Store

__all__ = [
    "Blob",
    "Capabilities",
    "Fault",
    "LocalStore",
    "MemoryStore",
    "NotFound",
    "ObjectInfo",
    "OperationObserver",
    "PreconditionFailed",
    "S3Store",
    "S3Tuning",
    "Store",
    "open_store",
]


def __getattr__(name: str) -> Any:
    if name == "S3Store":
        from debops_ci.storage.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(
    location: str,
    *,
    endpoint_url: str | None = None,
    profile: str | None = None,
    observer: OperationObserver | None = None,
    tuning: S3Tuning | None = None,
) -> Store:
    """Open `s3://bucket[/prefix]`, `file:///path` or a plain path."""
    parsed = urlparse(location)
    if parsed.scheme == "s3":
        bucket = parsed.netloc
        if len(bucket) < 3 or not all(c.isalnum() or c in "-." for c in bucket):
            raise UsageError(f"invalid bucket name in {location!r}: use s3://bucket[/prefix]")
        from debops_ci.storage.s3 import S3Store

        return S3Store(
            bucket,
            parsed.path,
            endpoint_url=endpoint_url,
            profile=profile,
            observer=observer,
            tuning=tuning or S3Tuning(),
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
