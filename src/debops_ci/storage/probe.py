"""Does this server honour conditional writes? Checked once per run, cheaply.

Some S3-compatible servers accept `If-None-Match`/`If-Match` and silently ignore them,
which would turn every safety guarantee of the publish transaction into a race.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from debops_ci.errors import StorageError
from debops_ci.storage.base import NotFound, PreconditionFailed, Store

__all__ = [
    "PROBE_NOTE",
    "PROBE_NOTE_SECONDS",
    "PROBE_PREFIX",
    "ProbeResult",
    "conditional_writes_honoured",
    "remember_probe",
    "require_conditional_writes",
]

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


def _remembered(store: Store) -> float | None:
    """When the bucket's note says this endpoint passed the probe (if lately)."""
    try:
        note = json.loads(store.get(PROBE_NOTE).data.decode("utf-8"))
        if not isinstance(note, dict):
            return None
        probed = float(note.get("probed", 0))
    except (NotFound, ValueError, UnicodeDecodeError, TypeError):
        return None
    fresh = time.time() - probed < PROBE_NOTE_SECONDS
    return probed if fresh and note.get("where") == store.describe() else None


@dataclass(frozen=True)
class ProbeResult:
    ran: bool  # probed now: `remember_probe` once the caller's own writes succeed
    proven_at: float | None  # when conditional writes were last proven (None: unsafe)


def require_conditional_writes(store: Store, *, allow_unsafe: bool) -> ProbeResult:
    """Refuse a server that ignores conditional writes. A probe that runs and passes
    is remembered only once the caller's own writes succeed (`remember_probe`): a
    command that then fails leaves the bucket as it found it."""
    if allow_unsafe:
        return ProbeResult(False, None)
    remembered = _remembered(store)
    if remembered is not None:
        return ProbeResult(False, remembered)
    if conditional_writes_honoured(store):
        return ProbeResult(True, time.time())
    raise StorageError(
        f"{store.describe()} ignores conditional writes (If-None-Match/If-Match), so "
        "concurrent publishes could lose updates; use a server that supports them, or "
        "pass --unsafe-no-conditional-writes if only one publisher ever runs"
    )


def remember_probe(store: Store) -> None:
    """Note in the bucket that this endpoint honours conditional writes."""
    note = {"where": store.describe(), "probed": time.time()}
    store.put(PROBE_NOTE, json.dumps(note).encode() + b"\n")
