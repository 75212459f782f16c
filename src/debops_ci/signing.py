"""GnuPG at the edge: load the archive key, sign Release files, verify InRelease.

Private key material only ever lives in a private GnuPG home (mode 0700) under a
temporary directory that is removed on every exit path, SIGTERM included. Nothing
from GnuPG's stderr is echoed to the user: status codes are mapped to our own words.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import gnupg

from debops_ci.errors import ArchiveIntegrityError, SigningError, UsageError

# python-gnupg logs command lines and GnuPG's stderr at DEBUG/INFO; keep it quiet.
logging.getLogger("gnupg").setLevel(logging.CRITICAL)

_live_homes: set[Path] = set()


def _remove_home(home: Path) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    shutil.rmtree(home.parent, ignore_errors=True)
    _live_homes.discard(home)


def _remove_all_homes() -> None:
    for home in list(_live_homes):
        _remove_home(home)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Remove the key material at once: a thread stuck on the network can hold the exit
    # past the CI runner's grace period, and its SIGKILL would leave the home behind.
    _remove_all_homes()
    # Then turn SIGTERM into a normal exit so `finally` blocks and atexit clean up.
    raise SystemExit(128 + signum)


atexit.register(_remove_all_homes)


def install_sigterm_cleanup() -> None:
    """Called by the CLI: a killed CI job must still remove the private GnuPG home."""
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


@contextlib.contextmanager
def private_gnupg_home() -> Iterator[Path]:
    """A throwaway GnuPG home. Short path: gpg-agent's socket path has a length limit."""
    parent = Path(tempfile.mkdtemp(prefix="debops-gpg-", dir="/tmp"))
    home = parent / "g"
    home.mkdir(mode=0o700)
    os.chmod(parent, 0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    _live_homes.add(home)
    try:
        yield home
    finally:
        _remove_home(home)


def _gpg(home: Path | None) -> gnupg.GPG:
    gpg = gnupg.GPG(
        gnupghome=str(home) if home else None,
        options=["--pinentry-mode", "loopback", "--no-auto-key-retrieve"],
    )
    gpg.encoding = "utf-8"
    return gpg


@dataclass(frozen=True)
class VerifiedRelease:
    content: bytes
    fingerprint: str


def decode_key_env(env: Mapping[str, str]) -> bytes | None:
    """The private key from DEB_GPG_KEY (armored) or DEB_GPG_KEY_BASE64."""
    armored = env.get("DEB_GPG_KEY", "").strip()
    if armored:
        return armored.encode() + b"\n"
    encoded = env.get("DEB_GPG_KEY_BASE64", "").strip()
    if encoded:
        try:
            return base64.b64decode("".join(encoded.split()), validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(
                "DEB_GPG_KEY_BASE64 is not valid base64: store `base64 -w0 < private.asc`"
            ) from None
    return None


class Signer:
    """Signs with one key. Open it with `Signer.open()` as a context manager."""

    def __init__(self, gpg: gnupg.GPG, fingerprint: str, passphrase: str | None) -> None:
        self._gpg = gpg
        self.fingerprint = fingerprint
        self._passphrase = passphrase
        self.public_key_armored = self._export_public()

    def __repr__(self) -> str:  # never show the passphrase
        return f"Signer(fingerprint={self.fingerprint})"

    @classmethod
    @contextlib.contextmanager
    def open(
        cls,
        env: Mapping[str, str],
        *,
        key_fingerprint: str | None = None,
        throwaway: bool = False,
    ) -> Iterator[Signer]:
        passphrase = env.get("DEB_GPG_PASSPHRASE") or None
        key_data = None if throwaway else decode_key_env(env)
        if key_data is None and key_fingerprint and not throwaway:
            # A key from the user's own keyring, used in place.
            gpg = _gpg(Path(env["GNUPGHOME"]) if env.get("GNUPGHOME") else None)
            fpr = _find_secret_key(gpg, key_fingerprint)
            signer = cls(gpg, fpr, passphrase)
            signer._check_can_sign()
            yield signer
            return
        if key_data is None and not throwaway:
            raise UsageError(
                "no signing key: set DEB_GPG_KEY or DEB_GPG_KEY_BASE64, or pass --gpg-key-fp "
                "(make one with `debops-ci keygen`)"
            )
        with private_gnupg_home() as home:
            gpg = _gpg(home)
            if throwaway:
                fpr = generate_key(gpg, "debops-ci throwaway key <throwaway@debops-ci.invalid>")
                passphrase = None
            else:
                assert key_data is not None
                result = gpg.import_keys(key_data)
                secrets = gpg.list_keys(secret=True)
                if not result.fingerprints or not secrets:
                    raise SigningError(
                        "DEB_GPG_KEY/DEB_GPG_KEY_BASE64 holds no private key: export it with "
                        "`gpg --export-secret-keys --armor FPR`"
                    )
                if key_fingerprint:
                    fpr = _find_secret_key(gpg, key_fingerprint)
                else:
                    fpr = secrets[0]["fingerprint"]
            signer = cls(gpg, fpr, passphrase)
            signer._check_can_sign()
            yield signer

    def _export_public(self) -> str:
        exported = self._gpg.export_keys(self.fingerprint, armor=True)
        if not exported:
            raise SigningError(f"cannot export the public part of key {self.fingerprint}")
        return str(exported)

    def export_public_binary(self) -> bytes:
        exported = self._gpg.export_keys(self.fingerprint, armor=False)
        return bytes(exported)

    def _sign(self, data: bytes, *, detach: bool) -> bytes:
        try:
            result = self._gpg.sign(
                data,
                keyid=self.fingerprint,
                # None, not "": python-gnupg would read the data's first line as passphrase.
                passphrase=self._passphrase,
                clearsign=not detach,
                detach=detach,
                extra_args=["--digest-algo", "SHA512"],
            )
        except ValueError:
            raise SigningError(
                "DEB_GPG_PASSPHRASE is not a valid passphrase (it contains a newline?)"
            ) from None
        if not result.data:
            status = f"{result.status or ''} {getattr(result, 'stderr', '')}".lower()
            if any(
                marker in status
                for marker in (
                    "bad passphrase",
                    "bad_passphrase",
                    "missing_passphrase",
                    "missing passphrase",
                    "failure sign 11",
                    "no passphrase",
                )
            ):
                raise SigningError(
                    f"wrong or missing passphrase for signing key {self.fingerprint}: "
                    "check DEB_GPG_PASSPHRASE"
                )
            if self._passphrase is None and "need_passphrase" in status:
                raise SigningError(
                    f"signing key {self.fingerprint} needs a passphrase: set DEB_GPG_PASSPHRASE"
                )
            raise SigningError(
                f"GnuPG could not sign with key {self.fingerprint} "
                "(is it a signing key, not expired? is DEB_GPG_PASSPHRASE needed?)"
            )
        return bytes(result.data)

    def _check_can_sign(self) -> None:
        self._sign(b"debops-ci signing check\n", detach=True)

    def clearsign(self, data: bytes) -> bytes:
        return self._sign(data, detach=False)

    def detach_sign(self, data: bytes) -> bytes:
        return self._sign(data, detach=True)


def _find_secret_key(gpg: gnupg.GPG, wanted: str) -> str:
    wanted_norm = wanted.replace(" ", "").upper().removeprefix("0X")
    for key in gpg.list_keys(secret=True):
        candidates = [key["fingerprint"], key["keyid"], *key.get("subkeys_fps", [])]
        if any(c.upper().endswith(wanted_norm) for c in candidates if c):
            return str(key["fingerprint"])
    raise SigningError(f"no private key {wanted} in the keyring: check --gpg-key-fp and GNUPGHOME")


def generate_key(gpg: gnupg.GPG, uid: str) -> str:
    """A new ed25519 signing key without expiry or passphrase; returns its fingerprint."""
    proc = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(gpg.gnupghome),
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SigningError("GnuPG could not generate a key (is gpg installed?)")
    keys = gpg.list_keys(secret=True)
    return str(keys[-1]["fingerprint"])


class Verifier:
    """Checks InRelease signatures against trusted public keys only (never the archive's)."""

    def __init__(self, keyring: Path, fingerprints: set[str]) -> None:
        self._keyring = keyring
        self.fingerprints = fingerprints

    @classmethod
    @contextlib.contextmanager
    def open(cls, public_keys: list[str]) -> Iterator[Verifier]:
        with private_gnupg_home() as home:
            gpg = _gpg(home)
            fingerprints: set[str] = set()
            for armored in public_keys:
                result = gpg.import_keys(armored)
                fingerprints.update(result.fingerprints)
            if not fingerprints:
                raise SigningError("the archive key given is not an OpenPGP public key")
            keyring = home / "trusted.gpg"
            keyring.write_bytes(bytes(gpg.export_keys(list(fingerprints), armor=False)))
            yield cls(keyring, fingerprints)

    def verify_clearsigned(self, signed: bytes, what: str) -> VerifiedRelease:
        """Return the content GnuPG vouches for (never re-parse the armor ourselves)."""
        with tempfile.TemporaryDirectory(prefix="debops-verify-") as tmp:
            src = Path(tmp) / "in"
            out = Path(tmp) / "out"
            src.write_bytes(signed)
            proc = subprocess.run(
                [
                    "gpgv",
                    "--keyring",
                    str(self._keyring),
                    "--status-fd",
                    "1",
                    "--output",
                    str(out),
                    str(src),
                ],
                capture_output=True,
                check=False,
            )
            status = proc.stdout.decode(errors="replace")
            fingerprint = ""
            for line in status.splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[1] == "VALIDSIG":
                    fingerprint = parts[-1] if len(parts) >= 12 else parts[2]
            if proc.returncode != 0 or not fingerprint or not out.exists():
                raise ArchiveIntegrityError(
                    f"{what} is not signed by the archive key "
                    f"({', '.join(sorted(self.fingerprints))}): tampered, or signed by another "
                    "key; check --archive-key, or re-sign deliberately with --force"
                )
            return VerifiedRelease(out.read_bytes(), fingerprint)

    def verify_detached(self, data: bytes, signature: bytes) -> bool:
        with tempfile.TemporaryDirectory(prefix="debops-verify-") as tmp:
            src = Path(tmp) / "data"
            sig = Path(tmp) / "data.sig"
            src.write_bytes(data)
            sig.write_bytes(signature)
            proc = subprocess.run(
                ["gpgv", "--keyring", str(self._keyring), str(sig), str(src)],
                capture_output=True,
                check=False,
            )
            return proc.returncode == 0


def unverified_clearsigned_content(signed: bytes, what: str) -> bytes:
    """The text inside a clearsigned message, for --force only (signature NOT checked)."""
    text = signed.decode("utf-8", errors="replace").replace("\r\n", "\n")
    head = "-----BEGIN PGP SIGNED MESSAGE-----\n"
    tail = "\n-----BEGIN PGP SIGNATURE-----"
    start = text.find(head)
    end = text.find(tail)
    blank = text.find("\n\n", start)
    if start < 0 or end < 0 or blank < 0 or blank > end:
        raise ArchiveIntegrityError(f"{what} is not a clearsigned message")
    body = text[blank + 2 : end]
    lines = [line[2:] if line.startswith("- ") else line for line in body.split("\n")]
    return ("\n".join(lines) + "\n").encode("utf-8")
