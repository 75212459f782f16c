"""An open archive: its store, the key that signs it, the keys trusted to have signed it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from debops_ci.archive import layout
from debops_ci.archive.lock import DEFAULT_LEASE_SECONDS, DEFAULT_TIMEOUT_SECONDS, SuiteLock
from debops_ci.archive.state import SuiteState, read_suite
from debops_ci.errors import UsageError
from debops_ci.signing import Signer, Verifier
from debops_ci.storage import LocalStore, NotFound, S3Store, Store
from debops_ci.storage.probe import require_conditional_writes

Log = Callable[[str], None]


@dataclass(frozen=True)
class SuiteSettings:
    """What a publish writes into a suite's Release. None: keep what the suite has."""

    suite: str = "unstable"
    component: str = "main"
    origin: str | None = None
    label: str | None = None
    default_arch: str = "amd64"
    valid_days: int | None = None
    description: str | None = None
    # Refuse a suite whose Date is older: the last Date this publisher saw (rollback).
    not_older_than: datetime | None = None

    def check(self) -> None:
        layout.check_suite_name(self.suite)
        layout.check_component_name(self.component)
        for name, value in (
            ("--origin", self.origin),
            ("--label", self.label),
            ("--description", self.description),
        ):
            if value is not None:
                layout.check_single_line(name, value)
                if not value:
                    raise UsageError(f"{name} must not be empty")
        if not layout.COMPONENT_RE.match(self.default_arch):
            raise UsageError(f"invalid --arch {self.default_arch!r}")
        if self.valid_days is not None and self.valid_days <= 0:
            raise UsageError("--valid-days must be a positive number of days")


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
        env: Mapping[str, str] | None = None,
        log: Log = lambda _msg: None,
        lock_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.signer = signer
        self.force = force
        self.allow_unsafe_store = allow_unsafe_store
        self.env = dict(env or {})
        self.log = log
        self.lock_timeout = lock_timeout
        self.lease_seconds = lease_seconds
        self._trusted_keys = trusted_keys
        self._stack = contextlib.ExitStack()
        self._verifier: Verifier | None = None
        self._writable_checked = False

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
            self._verifier = self._stack.enter_context(Verifier.open(self.trusted_keys()))
        return self._verifier

    # -- reading and locking ----------------------------------------------------

    def read(self, suite: str) -> SuiteState:
        return read_suite(
            self.store,
            suite,
            self.verifier(),
            on_unverified=lambda what: self.log(
                f"warning: --force: {what} read WITHOUT checking its signature"
            ),
        )

    def require_existing(self) -> None:
        """Read-only commands on a local path that does not exist say so plainly."""
        if isinstance(self.store, LocalStore) and not self.store.root.is_dir():
            raise UsageError(f"no archive at {self.store.root}: check --archive")
        if isinstance(self.store, S3Store) and not self.store.bucket_exists():
            raise UsageError(
                f"bucket {self.store.bucket!r} does not exist: check --archive/--bucket-name"
            )

    def ensure_writable(self) -> None:
        """Once per run: create a local root, or prove an S3 server honours conditions."""
        if self._writable_checked:
            return
        if isinstance(self.store, LocalStore):
            self.store.ensure_root()
        else:
            require_conditional_writes(self.store, allow_unsafe=self.allow_unsafe_store)
        self._writable_checked = True

    def lock(self, suite: str) -> SuiteLock:
        return SuiteLock(
            self.store,
            suite,
            env=self.env,
            lease_seconds=self.lease_seconds,
            timeout_seconds=self.lock_timeout,
            log=self.log,
        )

    def require_signer(self) -> Signer:
        if self.signer is None:
            raise UsageError(
                "no signing key: set DEB_GPG_KEY or DEB_GPG_KEY_BASE64, or pass --gpg-key-fp"
            )
        return self.signer

    def suites(self) -> list[str]:
        return [s for s in self.store.list_dirs("dists/") if s and not s.startswith(".")]
