"""GnuPG at the edge: load the archive key, sign Release files, verify InRelease.

Private key material only ever lives in a private GnuPG home (mode 0700), in memory
where the machine allows ($XDG_RUNTIME_DIR, /dev/shm), removed on every exit path,
SIGTERM included; after a SIGKILL, by the next run (each home records its owner). Nothing
from GnuPG's stderr is echoed to the user: status codes are mapped to our own words.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import gnupg

from debops_ci.errors import ArchiveIntegrityError, SigningError, UsageError

__all__ = [
    "Signer",
    "VerifiedRelease",
    "Verifier",
    "decode_key_env",
    "generate_key",
    "home_bases",
    "install_sigterm_cleanup",
    "private_gnupg_home",
    "remove_dead_homes",
    "unverified_clearsigned_content",
]

# python-gnupg logs command lines and GnuPG's stderr at DEBUG/INFO; keep it quiet.
logging.getLogger("gnupg").setLevel(logging.CRITICAL)

_live_homes: set[Path] = set()

_HOME_PREFIX = "debops-gpg-"
_OWNER_FILE = "owner"
# gpg-agent's sockets live in the home: a unix socket path has ~107 bytes at most.
_MAX_BASE_LENGTH = 64
# A home without an owner record (made before records existed) is only removed when
# this old: no run holds a key that long.
_LEGACY_AGE_SECONDS = 24 * 3600


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


def _is_private_dir(path: Path) -> bool:
    """Ours alone: a directory owned by us that nobody else may enter."""
    try:
        st = path.stat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def _is_shared_tmpfs(path: Path) -> bool:
    """A world-writable directory with the sticky bit: a private mkdtemp in it is safe."""
    try:
        st = path.stat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and bool(st.st_mode & stat.S_ISVTX) and os.access(path, os.W_OK)


def home_bases(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where private GnuPG homes are made, best first: `$XDG_RUNTIME_DIR` when it is
    private, `/dev/shm` (both in memory, never on disk), then `/tmp`."""
    env = os.environ if env is None else env
    bases: list[Path] = []
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime.startswith("/") and _is_private_dir(Path(runtime)):
        bases.append(Path(runtime))
    if _is_shared_tmpfs(Path("/dev/shm")):
        bases.append(Path("/dev/shm"))
    bases.append(Path("/tmp"))
    return [b for b in bases if len(str(b)) <= _MAX_BASE_LENGTH] or [Path("/tmp")]


def _process_start(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot), None if there is none."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat_line.rsplit(")", 1)[-1].split()
    # After the command: state is field 3 of proc(5), starttime field 22.
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _owner_record() -> str:
    return json.dumps(
        {"pid": os.getpid(), "start": _process_start(os.getpid()), "pidns": _pid_namespace()}
    )


def _owner_is_gone(parent: Path) -> bool:
    """Whether the run that made this home is provably dead (pid reuse included)."""
    try:
        owner = json.loads((parent / _OWNER_FILE).read_text())
        pid, pidns = int(owner["pid"]), str(owner["pidns"])
        start = None if owner["start"] is None else str(owner["start"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            age = time.time() - parent.stat().st_mtime
        except OSError:
            return False
        return age > _LEGACY_AGE_SECONDS
    if pidns != _pid_namespace():
        return False  # another container's pids: we cannot tell
    return _process_start(pid) != start


def remove_dead_homes(env: Mapping[str, str] | None = None) -> list[Path]:
    """Remove the homes (and stop the gpg-agents) of runs that died without cleaning up,
    SIGKILL for instance; return the homes removed. Homes of live runs are left alone."""
    removed: list[Path] = []
    ours = {home.parent for home in _live_homes}
    for base in dict.fromkeys(home_bases(env)):
        try:
            candidates = list(base.glob(_HOME_PREFIX + "*"))
        except OSError:
            continue
        for parent in candidates:
            if parent in ours or parent.is_symlink() or not _is_private_dir(parent):
                continue
            if _owner_is_gone(parent):
                _remove_home(parent / "g")
                removed.append(parent)
    return removed


@contextlib.contextmanager
def private_gnupg_home(env: Mapping[str, str] | None = None) -> Iterator[Path]:
    """A throwaway GnuPG home, in memory where possible (see `home_bases`).

    Its owner (pid, start time) is recorded beside it, so that a later run can remove
    it if this one is killed; and this run first removes what dead runs left.
    """
    with contextlib.suppress(OSError):
        remove_dead_homes(env)
    parent = Path(tempfile.mkdtemp(prefix=_HOME_PREFIX, dir=home_bases(env)[0]))
    home = parent / "g"
    _live_homes.add(home)
    try:
        os.chmod(parent, 0o700)
        (parent / _OWNER_FILE).write_text(_owner_record())
        home.mkdir(mode=0o700)
        (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
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

    def __init__(
        self,
        gpg: gnupg.GPG,
        fingerprint: str,
        passphrase: str | None,
        private_home: Path | None = None,
    ) -> None:
        self._gpg = gpg
        self.fingerprint = fingerprint
        self._passphrase = passphrase
        # A GnuPG home of our own (not the user's keyring): removed with this signer,
        # and by a later run if this one is killed.
        self.private_home = private_home
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
            signer = cls(gpg, fpr, passphrase, private_home=home)
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

    @classmethod
    @contextlib.contextmanager
    def for_signer(cls, signer: Signer) -> Iterator[Verifier]:
        """Trust exactly the signing key: its keyring is exported into the signer's own
        private home (one export; no second GnuPG home to set up, tear down, or leave
        behind when killed). A signer on the user's keyring gets a home of its own."""
        if signer.private_home is None:
            with cls.open([signer.public_key_armored]) as verifier:
                yield verifier
            return
        keyring = signer.private_home / "debops-ci-trusted.gpg"
        keyring.write_bytes(signer.export_public_binary())
        try:
            yield cls(keyring, {signer.fingerprint})
        finally:
            with contextlib.suppress(OSError):
                keyring.unlink()

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
