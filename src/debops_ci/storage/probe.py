"""Does this server honour conditional writes? Checked once per run, cheaply.

Some S3-compatible servers accept `If-None-Match`/`If-Match` and silently ignore them,
which would turn every safety guarantee of the publish transaction into a race.
"""

from __future__ import annotations

import json
import time
import uuid

from debops_ci.errors import StorageError
from debops_ci.storage.base import NotFound, PreconditionFailed, Store

PROBE_PREFIX = ".debops-ci/probe-"
# A passed probe is remembered in the bucket for this long (one GET instead of five
# requests per publish); a different endpoint, or an older note, probes again.
PROBE_NOTE = ".debops-ci/conditional-writes-ok"
PROBE_NOTE_SECONDS = 7 * 86400.0


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


def _remembered(store: Store) -> bool:
    try:
        note = json.loads(store.get(PROBE_NOTE).data.decode("utf-8"))
    except (NotFound, ValueError, UnicodeDecodeError):
        return False
    if not isinstance(note, dict):
        return False
    fresh = time.time() - float(note.get("probed", 0)) < PROBE_NOTE_SECONDS
    return fresh and note.get("where") == store.describe()


def require_conditional_writes(store: Store, *, allow_unsafe: bool) -> bool:
    """Refuse a server that ignores conditional writes. True when the probe ran and
    passed, so the caller should `remember_probe` once its own writes succeed (a
    command that then fails leaves the bucket as it found it)."""
    if allow_unsafe or _remembered(store):
        return False
    if conditional_writes_honoured(store):
        return True
    raise StorageError(
        f"{store.describe()} ignores conditional writes (If-None-Match/If-Match), so "
        "concurrent publishes could lose updates; use a server that supports them, or "
        "pass --unsafe-no-conditional-writes if only one publisher ever runs"
    )


def remember_probe(store: Store) -> None:
    """Note in the bucket that this endpoint honours conditional writes."""
    note = {"where": store.describe(), "probed": time.time()}
    store.put(PROBE_NOTE, json.dumps(note).encode() + b"\n")
