"""One exception hierarchy; the CLI turns each into one line and its exit code.

Messages are written for the user: what went wrong and what to do. They never
carry a secret (keys, passphrases, credentials).
"""

from __future__ import annotations


class DebopsError(Exception):
    """Base of every error debops-ci reports to a user."""

    exit_code = 1


class UsageError(DebopsError):
    """Bad flags, environment or configuration."""

    exit_code = 2


class ConflictError(DebopsError):
    """Refused to overwrite: same name, different bytes (the seed's 'refuse to overwrite')."""

    exit_code = 3


class ArchiveIntegrityError(DebopsError):
    """The archive does not verify: tampered, torn, or signed by another key."""

    exit_code = 4


class LockTimeoutError(DebopsError):
    """Another publisher held the suite lock for longer than we were willing to wait."""

    exit_code = 5


class StorageError(DebopsError):
    """The object store failed or refused (credentials, bucket, network)."""

    exit_code = 6


class SigningError(DebopsError):
    """GnuPG could not load the key, sign, or verify."""

    exit_code = 7


class PackageError(DebopsError):
    """A .deb (or its control data) is malformed or unsafe."""

    exit_code = 8


class BuildError(DebopsError):
    """Scanning, versioning or building a package failed."""

    exit_code = 9
