"""Write an archive the way the original debops-ci tool did, to test adoption in place.

Its layout (from the reference notes): each .deb stored next to its index under
`dists/<distro>/main/binary-<arch>/`, a plain `Packages` only, a clearsigned `InRelease`
only (no Release, no Release.gpg), `Acquire-By-Hash: no`, and the lock pair.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from debops_ci.debian.package import inspect_deb


def _clearsign(data: bytes, private_key: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="legacy-gpg-", dir="/tmp") as home:
        env = {"GNUPGHOME": home, "PATH": "/usr/bin:/bin"}
        subprocess.run(
            ["gpg", "--batch", "--import"],
            input=private_key.encode(),
            env=env,
            capture_output=True,
            check=True,
        )
        signed = subprocess.run(
            ["gpg", "--batch", "--pinentry-mode", "loopback", "--clearsign"],
            input=data,
            env=env,
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
        return signed


def write_legacy_archive(
    root: Path, distro: str, arch: str, debs: list[Path], private_key: str
) -> list[str]:
    """Lay out `debs` like the original tool; return the Filename of each."""
    directory = f"dists/{distro}/main/binary-{arch}"
    (root / directory).mkdir(parents=True, exist_ok=True)
    stanzas: list[str] = []
    filenames: list[str] = []
    for deb in debs:
        pkg = inspect_deb(deb)
        filename = f"{directory}/{deb.name}"
        (root / filename).write_bytes(deb.read_bytes())
        filenames.append(filename)
        stanzas.append(pkg.stanza(filename))
    packages = ("\n\n".join(stanzas) + "\n").encode()
    (root / directory / "Packages").write_bytes(packages)
    now = datetime.now(UTC)
    fmt = "%a, %d %b %Y %H:%M:%S UTC"
    release = (
        "Acquire-By-Hash: no\n"
        f"Architectures: {arch}\n"
        f"Codename: {distro}\n"
        "Components: main\n"
        f"Date: {now.strftime(fmt)}\n"
        "Origin: private\n"
        f"Valid-Until: {(now + timedelta(days=3650)).strftime(fmt)}\n"
        "SHA256:\n"
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} main/binary-{arch}/Packages\n"
    )
    (root / f"dists/{distro}/InRelease").write_bytes(_clearsign(release.encode(), private_key))
    (root / f"dists/{distro}/.debrepos3.nolock").write_bytes(b"")
    return filenames
