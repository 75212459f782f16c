"""Look for secrets where they must never be: command output, the archive, stray files.

Why: a CI log or a file left in /tmp outlives the job. The secrets the tests plant are
unique (a random AWS secret key, random passphrases, freshly generated private keys),
so finding one anywhere is a leak, never a coincidence.
"""

from __future__ import annotations

import gzip
import lzma
import os
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from support.gpgkeys import GpgKey

# Directories under /tmp that are not debops-ci's: pytest's own (scanned explicitly by
# the tests, as the archive and the working directory), and the tool runner's.
_SKIP_TMP_PREFIXES = ("pytest-of-", "bash_jobs", "bash_tool_")
_MAX_SCAN_BYTES = 8 << 20
GPG_HOME_GLOB = "debops-gpg-*"


def private_key_lines(key: GpgKey) -> list[str]:
    """Every line of the armored private key body that the public export does not share."""
    public = {line.strip() for line in key.public_armored.splitlines()}
    lines: list[str] = []
    for line in key.private_armored.splitlines():
        line = line.strip()
        if len(line) < 16 or line.startswith("-----") or ":" in line or line in public:
            continue
        lines.append(line)
    return lines


@dataclass
class Secrets:
    """The planted secrets, by what they are (for readable failures)."""

    items: dict[str, str] = field(default_factory=dict)

    def add(self, what: str, value: str | None) -> None:
        if value:
            self.items[what] = value

    def add_key(self, key: GpgKey) -> None:
        for i, line in enumerate(private_key_lines(key)):
            self.items[f"private key {key.fingerprint[-8:]} line {i + 1}"] = line
        self.add(f"passphrase of {key.fingerprint[-8:]}", key.passphrase)

    def found_in(self, data: str | bytes) -> list[str]:
        blob = data.encode() if isinstance(data, str) else data
        return [what for what, value in self.items.items() if value.encode() in blob]

    def found_in_files(self, files: Iterable[Path]) -> dict[str, list[str]]:
        leaks: dict[str, list[str]] = {}
        for path in files:
            for blob in _readable_forms(path):
                hits = self.found_in(blob)
                if hits:
                    leaks[str(path)] = hits
                    break
        return leaks


def _readable_forms(path: Path) -> Iterator[bytes]:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_SCAN_BYTES:
            return
        data = path.read_bytes()
    except OSError:
        return
    yield data
    try:
        if data[:2] == b"\x1f\x8b":
            yield gzip.decompress(data)
        elif data[:6] == b"\xfd7zXZ\x00":
            yield lzma.decompress(data)
    except (OSError, EOFError, lzma.LZMAError):
        return


def files_under(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def new_tmp_files(since: float, *, deep: bool = False, tmp: Path = Path("/tmp")) -> list[Path]:
    """Regular files under /tmp changed since `since` (epoch seconds), outside pytest's.

    Quick by default: only directories changed since then are walked (a new temporary
    directory, or one that gained an entry). `deep` walks everything (about a second).
    """
    found: list[Path] = []
    try:
        entries = list(os.scandir(tmp))
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith(_SKIP_TMP_PREFIXES):
            continue
        try:
            changed = entry.stat(follow_symlinks=False).st_mtime >= since - 1
        except OSError:
            continue
        paths: Sequence[Path]
        if entry.is_dir(follow_symlinks=False):
            if not (deep or changed):
                continue
            paths = [
                Path(dirpath) / name
                for dirpath, _dirs, names in os.walk(entry.path)
                for name in names
            ]
        else:
            paths = [Path(entry.path)]
        for path in paths:
            try:
                st = path.lstat()
            except OSError:
                continue
            # From the lstat: a second look (is_file) may hit a chroot's /proc (EACCES).
            if stat.S_ISREG(st.st_mode) and st.st_mtime >= since - 1:
                found.append(path)
    return found


def gnupg_homes_holding(key: GpgKey, tmp: Path | None = None) -> set[Path]:
    """debops-ci's private GnuPG homes that hold this key (other processes' are ignored).

    Both kinds of home keep the key's fingerprint in their keybox: the signer's (with the
    private key) and the verifier's (public key only). Without `tmp`, every place
    debops-ci makes homes in (`$XDG_RUNTIME_DIR`, /dev/shm, /tmp) is searched.
    """
    from debops_ci.signing import home_bases

    wanted = bytes.fromhex(key.fingerprint)
    homes: set[Path] = set()
    bases = [tmp] if tmp is not None else home_bases()
    for home in (h for base in bases for h in base.glob(GPG_HOME_GLOB)):
        try:
            if any(wanted in f.read_bytes() for f in home.rglob("*.kbx") if f.is_file()):
                homes.add(home)
        except OSError:
            continue
    return homes


def wait_until_gone(paths: Iterable[Path], timeout: float) -> list[Path]:
    """Poll until none of `paths` exists; return those still there at the deadline."""
    remaining = list(paths)
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        time.sleep(0.05)
        remaining = [p for p in remaining if p.exists()]
    return remaining
