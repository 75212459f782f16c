"""What a commit notes on its own InRelease, so the next publisher need not ask again.

S3 answers an object's user metadata with its bytes, so facts kept there cost no
request to the publisher that reads the root anyway (it must, to verify it):

- when this endpoint last proved it honours conditional writes (else: the probe);
- whether the suite stores the plain uncompressed `Packages` (an adopted
  original-layout suite; else: a HEAD of it);
- whether the original tool's `.debrepos3.nolock` marker exists, to hide it while we
  hold the lock (else: a HEAD of it).

The note is a hint, never trusted for safety: a root written by another tool has none
(the reader then asks), and each fact only saves a request whose answer the note
recorded at the last commit. The original tool rewrites InRelease without a note, and
it creates `.nolock` only when it held the lock, which it can only take from an
existing `.nolock`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from debops_ci.storage import Store

__all__ = ["NOTE_KEY", "RootNote", "endpoint_digest"]

# S3 lower-cases metadata names; the value is ASCII.
NOTE_KEY = "debops-ci-root"
_VERSION = "1"


def endpoint_digest(store: Store) -> str:
    """Which endpoint a probe was made through (a proxy may strip conditions)."""
    return hashlib.sha256(store.describe().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RootNote:
    plain_index: bool
    legacy_nolock: bool
    probed: float | None = None  # seconds since the epoch
    probed_at: str = ""  # endpoint_digest of the probe

    def to_metadata(self) -> dict[str, str]:
        fields = [
            f"v={_VERSION}",
            f"plain={int(self.plain_index)}",
            f"nolock={int(self.legacy_nolock)}",
        ]
        if self.probed is not None and self.probed_at:
            fields += [f"probed={self.probed:.0f}", f"at={self.probed_at}"]
        return {NOTE_KEY: " ".join(fields)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> RootNote | None:
        """The note on a root, or None (no note, another version, or malformed)."""
        text = metadata.get(NOTE_KEY)
        if not text:
            return None
        try:
            fields = dict(item.split("=", 1) for item in text.split())
            if fields.get("v") != _VERSION:
                return None
            probed = float(fields["probed"]) if "probed" in fields else None
            return cls(
                plain_index=fields["plain"] == "1",
                legacy_nolock=fields["nolock"] == "1",
                probed=probed,
                probed_at=fields.get("at", ""),
            )
        except (ValueError, KeyError):
            return None
