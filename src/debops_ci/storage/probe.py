"""Does this server honour conditional writes? Checked once per run, cheaply.

Some S3-compatible servers accept `If-None-Match`/`If-Match` and silently ignore them,
which would turn every safety guarantee of the publish transaction into a race.
"""

from __future__ import annotations

import uuid

from debops_ci.errors import StorageError
from debops_ci.storage.base import PreconditionFailed, Store

PROBE_PREFIX = ".debops-ci/probe-"


def conditional_writes_honoured(store: Store) -> bool:
    """Write a probe object twice create-only and once with a wrong tag; expect refusals."""
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        etag = store.put(key, b"probe\n", create_only=True)
    except PreconditionFailed:
        # A fresh random key exists only if a retry of this very write found it: the
        # first attempt landed and its answer was lost.
        etag = store.get(key).etag
    try:
        try:
            store.put(key, b"probe again\n", create_only=True)
            return False
        except PreconditionFailed:
            pass
        try:
            store.put(key, b"probe again\n", if_match='"0000000000000000"')
            return False
        except PreconditionFailed:
            pass
        return store.get(key).etag == etag
    finally:
        store.delete(key)


def require_conditional_writes(store: Store, *, allow_unsafe: bool) -> None:
    if allow_unsafe:
        return
    if not conditional_writes_honoured(store):
        raise StorageError(
            f"{store.describe()} ignores conditional writes (If-None-Match/If-Match), so "
            "concurrent publishes could lose updates; use a server that supports them, or "
            "pass --unsafe-no-conditional-writes if only one publisher ever runs"
        )
