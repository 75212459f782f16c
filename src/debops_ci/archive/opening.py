"""Opening an archive from a location and typed options: the one door for every caller
(the three CLIs, users' scripts, the tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from debops_ci.archive.lock import DEFAULT_TIMEOUT_SECONDS
from debops_ci.archive.session import Archive, Log
from debops_ci.clock import SYSTEM_CLOCK, Clock
from debops_ci.errors import UsageError
from debops_ci.signing import Signer
from debops_ci.storage import OperationObserver, S3Tuning, Store, open_store

__all__ = ["ArchiveOptions", "SigningKey", "open_archive", "read_public_key"]


@dataclass(frozen=True, repr=False)
class SigningKey:
    """Where the signing key comes from. Never printed (the repr hides the secret)."""

    private_key: bytes | None = None  # an armored or binary OpenPGP private key
    passphrase: str | None = None
    fingerprint: str | None = None  # pick this key (from private_key, or the keyring)
    throwaway: bool = False  # a key made for this run only (demos, tests)

    def __repr__(self) -> str:
        source = "throwaway" if self.throwaway else "given" if self.private_key else "keyring"
        return f"SigningKey({source}, fingerprint={self.fingerprint})"

    @property
    def present(self) -> bool:
        return bool(self.private_key or self.fingerprint or self.throwaway)


@dataclass(frozen=True)
class ArchiveOptions:
    """How to reach, trust and write an archive. Every field has its one default here."""

    endpoint_url: str | None = None  # S3-compatible endpoint
    profile: str | None = None  # AWS profile for credentials
    s3: S3Tuning = field(default_factory=S3Tuning)
    key: SigningKey = field(default_factory=SigningKey)
    archive_keys: tuple[str, ...] = ()  # pinned armored public keys the archive must match
    force: bool = False  # read a root whose signature does not verify (key rotation)
    unsafe_no_conditional_writes: bool = False
    lock_timeout: float = DEFAULT_TIMEOUT_SECONDS
    public_url: str | None = None  # where clients read it (pages, sources lines)
    run: str = ""  # a link to the CI run, shown to publishers waiting on our lock
    observer: OperationObserver | None = None  # sees every storage operation
    log: Log = field(default=lambda _msg: None)
    clock: Clock = SYSTEM_CLOCK


def read_public_key(path: str | Path) -> str:
    """An armored public key file (for `archive_keys`), checked to be one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --archive-key {path}: {exc}") from None
    if "BEGIN PGP PUBLIC KEY BLOCK" not in text:
        raise UsageError(f"--archive-key {path} is not an armored OpenPGP public key")
    return text


def _open_location(location: str | Store, options: ArchiveOptions) -> Store:
    if not isinstance(location, str):
        return location
    return open_store(
        location,
        endpoint_url=options.endpoint_url,
        profile=options.profile,
        observer=options.observer,
        tuning=options.s3,
    )


def _key_env(key: SigningKey) -> dict[str, str]:
    env: dict[str, str] = {}
    if key.private_key:
        env["DEB_GPG_KEY"] = key.private_key.decode("latin-1")
    if key.passphrase:
        env["DEB_GPG_PASSPHRASE"] = key.passphrase
    return env


@contextlib.contextmanager
def open_archive(
    location: str | Store,
    options: ArchiveOptions | None = None,
    *,
    writable: bool = False,
) -> Iterator[Archive]:
    """An open archive at `s3://bucket[/prefix]`, `file:///path`, a path, or a Store.

    `writable` loads the signing key (required). A reader loads it too when one is
    given and no key is pinned, to trust the archive it signs.
    """
    options = options or ArchiveOptions()
    trusted = list(options.archive_keys) or None
    key = options.key
    # An S3 client takes ~0.1 s of CPU to build, the signer as long waiting for GnuPG:
    # the two at once. (The store's error, if any, is still the one raised.)
    opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="debops-open")
    opening = opener.submit(_open_location, location, options)
    opener.shutdown(wait=False)  # that one task runs on; the thread ends with it
    with contextlib.ExitStack() as stack:
        signer = None
        if writable or (key.present and not trusted and not key.throwaway):
            try:
                signer = stack.enter_context(
                    Signer.open(
                        _key_env(key), key_fingerprint=key.fingerprint, throwaway=key.throwaway
                    )
                )
            except BaseException:
                problem = opening.exception()
                if problem is not None:
                    raise problem from None
                raise
        store = opening.result()
        if signer is not None and key.throwaway:
            options.log(
                f"signing with a throwaway key {signer.fingerprint} (valid for this run only)"
            )
        yield stack.enter_context(
            Archive(
                store,
                signer=signer,
                trusted_keys=trusted,
                force=options.force or key.throwaway,
                allow_unsafe_store=options.unsafe_no_conditional_writes,
                run=options.run,
                log=options.log,
                lock_timeout=options.lock_timeout,
                clock=options.clock,
                public_url=options.public_url,
            )
        )
