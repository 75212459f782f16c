"""Real GnuPG keys made on the fly, each in its own private GNUPGHOME.

Why: the archive is only as good as its signature, so tests sign and verify with real
keys (ed25519: generated in milliseconds). Each key lives in a 0700 home under /tmp
(short path: gpg-agent's socket path must stay under the unix-socket length limit),
and its agent is killed when the home is removed.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ._proc import run


def _gpg(home: Path, *args: str, input: bytes | None = None) -> bytes:
    cmd = ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--quiet", *args]
    return run(cmd, input=input).stdout


def kill_agent(home: Path) -> None:
    """Stop gpg-agent (and any other daemon) started for this home."""
    run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


@contextmanager
def gnupg_home(prefix: str = "dci-gpg-") -> Iterator[Path]:
    """A fresh 0700 GNUPGHOME; on exit its daemons are killed and it is removed."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o700)
    # The cheapest passphrase protection (S2K count) gpg-agent allows: protecting a
    # new key then takes milliseconds instead of ~2 s. Test keys need no strength.
    # No passphrase cache, so a wrong passphrase fails even right after a right one.
    (home / "gpg-agent.conf").write_text("s2k-count 65536\ndefault-cache-ttl 0\nmax-cache-ttl 0\n")
    try:
        yield home
    finally:
        kill_agent(home)
        shutil.rmtree(home, ignore_errors=True)


@dataclass(frozen=True)
class GpgKey:
    """A generated key pair. Secret parts are kept out of repr (and so out of logs)."""

    fingerprint: str
    uid: str
    public_armored: str
    private_armored: str = field(repr=False)
    passphrase: str | None = field(repr=False)
    home: Path  # the GNUPGHOME holding the secret key; valid while its fixture lives

    @property
    def keyid(self) -> str:
        """The long key id (last 16 hex digits), as apt prints in NO_PUBKEY."""
        return self.fingerprint[-16:]

    def public_binary(self) -> bytes:
        """The public key unarmored, as apt wants in a *.gpg keyring file."""
        return _gpg(self.home, "--export", self.fingerprint)

    def _sign_args(self) -> tuple[list[str], bytes | None]:
        args = ["--pinentry-mode", "loopback", "--local-user", self.fingerprint]
        if self.passphrase is None:
            return [*args, "--passphrase", ""], None
        return [*args, "--passphrase-fd", "0"], self.passphrase.encode() + b"\n"

    def clearsign(self, data: bytes) -> bytes:
        """An InRelease-style clear-signed document."""
        return self._sign_file(data, "--clearsign")

    def detach_sign(self, data: bytes) -> bytes:
        """An armored detached signature, as in Release.gpg."""
        return self._sign_file(data, "--armor", "--detach-sign")

    def _sign_file(self, data: bytes, *mode: str) -> bytes:
        # The passphrase (if any) goes through stdin, so the data goes through a file.
        args, stdin = self._sign_args()
        with tempfile.TemporaryDirectory(dir=self.home) as tmp:
            src = Path(tmp) / "in"
            out = Path(tmp) / "out"
            src.write_bytes(data)
            _gpg(self.home, *args, *mode, "-o", str(out), str(src), input=stdin)
            return out.read_bytes()


def generate_key(
    home: Path,
    uid: str = "debops-ci test key <test@example.invalid>",
    *,
    passphrase: str | None = None,
    algo: str = "ed25519",
    expire: str = "never",
) -> GpgKey:
    """Generate a signing-only key in `home` and export both halves armored."""
    pin = ["--pinentry-mode", "loopback"]
    if passphrase is None:
        pw_args, stdin = ["--passphrase", ""], None
    else:
        pw_args, stdin = ["--passphrase-fd", "0"], passphrase.encode() + b"\n"
    before = set(_fingerprints(home))
    _gpg(home, *pin, *pw_args, "--quick-gen-key", uid, algo, "sign", expire, input=stdin)
    new = [fp for fp in _fingerprints(home) if fp not in before]
    if len(new) != 1:
        raise RuntimeError(f"expected one new key in {home}, found {len(new)}")
    fpr = new[0]
    public = _gpg(home, "--armor", "--export", fpr).decode()
    # Exporting a protected secret key needs its passphrase (gpg-agent asks).
    private = _gpg(home, *pin, *pw_args, "--armor", "--export-secret-keys", fpr, input=stdin)
    return GpgKey(
        fingerprint=fpr,
        uid=uid,
        public_armored=public,
        private_armored=private.decode(),
        passphrase=passphrase,
        home=home,
    )


def _fingerprints(home: Path) -> list[str]:
    """Primary-key fingerprints of the secret keys in `home`."""
    out = run(
        ["gpg", "--homedir", str(home), "--batch", "--with-colons", "--list-secret-keys"],
        check=False,
    ).stdout.decode()
    fprs: list[str] = []
    want_fpr = False
    for line in out.splitlines():
        parts = line.split(":")
        if parts[0] == "sec":
            want_fpr = True
        elif parts[0] == "fpr" and want_fpr:
            fprs.append(parts[9])
            want_fpr = False
    return fprs


def new_passphrase() -> str:
    """A random passphrase: tests can then assert it never shows up in any output."""
    return secrets.token_urlsafe(18)


def import_public_key(home: Path, armored: str) -> None:
    """Import a public key into another home, e.g. to verify with gpg directly."""
    _gpg(home, "--import", input=armored.encode())


def verify_clearsigned(home: Path, data: bytes) -> str:
    """Verify a clear-signed document with the keys in `home`; return the signer fpr.

    Uses `--status-fd` so the answer does not depend on gpg's human messages.
    """
    proc = run(
        ["gpg", "--homedir", str(home), "--batch", "--status-fd", "1", "--verify"],
        input=data,
        check=False,
    )
    for line in proc.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[:2] == ["[GNUPG:]", "VALIDSIG"]:
            return parts[-1]  # the primary key's fingerprint
    raise RuntimeError("no valid signature:\n" + proc.stderr.decode(errors="replace"))
