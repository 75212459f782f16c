"""An open archive: its store, the key that signs it, the keys trusted to have signed it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from debops_ci.archive import layout
from debops_ci.archive.lock import DEFAULT_LEASE_SECONDS, DEFAULT_TIMEOUT_SECONDS, SuiteLock
from debops_ci.archive.rootnote import RootNote, endpoint_digest
from debops_ci.archive.state import SuiteState, read_suite
from debops_ci.clock import SYSTEM_CLOCK, Clock
from debops_ci.errors import UsageError
from debops_ci.signing import Signer, Verifier
from debops_ci.storage import NotFound, Store
from debops_ci.storage.probe import (
    PROBE_NOTE_SECONDS,
    remember_probe,
    require_conditional_writes,
)

__all__ = ["Archive", "Log"]

Log = Callable[[str], None]


class Archive:
    """Use as a context manager; it owns the temporary GnuPG home of its verifier."""

    def __init__(
        self,
        store: Store,
        *,
        signer: Signer | None = None,
        trusted_keys: list[str] | None = None,
        force: bool = False,
        allow_unsafe_store: bool = False,
        run: str = "",
        log: Log = lambda _msg: None,
        lock_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        clock: Clock = SYSTEM_CLOCK,
        public_url: str | None = None,
    ) -> None:
        """`run`: a link to the CI run, shown to publishers waiting on our lock.
        `public_url`: where clients read the archive, for its pages (else derived)."""
        self.store = store
        self.signer = signer
        self.force = force
        self.allow_unsafe_store = allow_unsafe_store
        self.run = run
        self.clock = clock
        self.public_url = public_url
        self.log = log
        self.lock_timeout = lock_timeout
        self.lease_seconds = lease_seconds
        self._trusted_keys = trusted_keys
        self._stack = contextlib.ExitStack()
        self._verifier: Verifier | None = None
        self._writable_checked = False
        self._probe_to_remember = False
        self._notes: dict[str, RootNote | None] = {}  # per suite, from the last read
        self._probed: float | None = None  # when conditional writes were last proven

    def __enter__(self) -> Archive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    # -- trust ------------------------------------------------------------------

    def trusted_keys(self) -> list[str]:
        """Pinned keys if given, else the signing key; the archive's own copy only to read."""
        if self._trusted_keys:
            return self._trusted_keys
        if self.signer is not None:
            return [self.signer.public_key_armored]
        try:
            published = self.store.get(layout.PUBLIC_KEY_ASC).data.decode("utf-8", "replace")
        except NotFound:
            raise UsageError(
                "no key to verify the archive with: pass --archive-key FILE (or a signing key)"
            ) from None
        self.log(
            f"note: checking signatures against {layout.PUBLIC_KEY_ASC} from the archive "
            "itself (consistency, not authenticity); pin a key with --archive-key"
        )
        return [published]

    def verifier(self) -> Verifier | None:
        """None when --force: the root is then read without checking its signature."""
        if self.force:
            return None
        if self._verifier is None:
            if not self._trusted_keys and self.signer is not None:
                self._verifier = self._stack.enter_context(Verifier.for_signer(self.signer))
            else:
                self._verifier = self._stack.enter_context(Verifier.open(self.trusted_keys()))
        return self._verifier

    # -- reading and locking ----------------------------------------------------

    def read(self, suite: str) -> SuiteState:
        state = read_suite(
            self.store,
            suite,
            self.verifier(),
            on_unverified=lambda what: self.log(
                f"warning: --force: {what} read WITHOUT checking its signature"
            ),
        )
        self._notes[suite] = state.note
        return state

    def _proof_noted(self) -> float | None:
        """When a root read in this run says conditional writes were proven here."""
        digest = endpoint_digest(self.store)
        times = [
            note.probed
            for note in self._notes.values()
            if note is not None and note.probed is not None and note.probed_at == digest
        ]
        fresh = [t for t in times if self.clock.time() - t < PROBE_NOTE_SECONDS]
        return max(fresh) if fresh else None

    def root_note(self, *, plain_index: bool, legacy_nolock: bool) -> RootNote:
        """What a commit notes on the InRelease it writes (see `rootnote.py`)."""
        proven = self._probed is not None
        return RootNote(
            plain_index=plain_index,
            legacy_nolock=legacy_nolock,
            probed=self._probed if proven else None,
            probed_at=endpoint_digest(self.store) if proven else "",
        )

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.time(), UTC)

    def require_existing(self) -> None:
        """Read-only commands on an archive that does not exist say so plainly."""
        if not self.store.exists():
            raise UsageError(
                f"no archive at {self.store.describe()}: check --archive/--bucket-name"
            )

    def ensure_writable(self) -> None:
        """Once per run: create a local root, or prove an S3 server honours conditions."""
        if self._writable_checked:
            return
        self.store.prepare_writes()
        if self.store.capabilities.probe_conditional_writes and not self.allow_unsafe_store:
            # A root we read may say this endpoint passed the probe lately: no request.
            noted = self._proof_noted()
            if noted is not None:
                self._probed = noted
            else:
                probe = require_conditional_writes(self.store, allow_unsafe=False)
                self._probe_to_remember, self._probed = probe.ran, probe.proven_at
        self._writable_checked = True

    def committed(self) -> None:
        """Called after a successful commit: remember a passed probe in the bucket."""
        if self._probe_to_remember:
            remember_probe(self.store)
            self._probe_to_remember = False

    def lock(self, suite: str) -> SuiteLock:
        note = self._notes.get(suite)
        return SuiteLock(
            self.store,
            suite,
            run=self.run,
            lease_seconds=self.lease_seconds,
            timeout_seconds=self.lock_timeout,
            log=self.log,
            clock=self.clock,
            legacy_nolock=note.legacy_nolock if note is not None else None,
        )

    def require_signer(self) -> Signer:
        if self.signer is None:
            raise UsageError(
                "no signing key: set DEB_GPG_KEY or DEB_GPG_KEY_BASE64, or pass --gpg-key-fp"
            )
        return self.signer

    def suites(self) -> list[str]:
        return [s for s in self.store.list_dirs("dists/") if s and not s.startswith(".")]
