"""A reference signed APT archive made by apt-ftparchive, independent of debops-ci.

Why: it proves the harness (apt sandbox, HTTP, S3, keys) before the library exists,
and later gives tests a known-good archive made by Debian's own tools to compare with.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Sequence
from pathlib import Path

from ._proc import run
from .gpgkeys import GpgKey


def build_reference_archive(
    root: Path,
    debs: Sequence[Path],
    key: GpgKey,
    *,
    suite: str = "stable",
    codename: str | None = None,
    component: str = "main",
    architectures: Sequence[str] = ("amd64", "arm64"),
) -> Path:
    """Lay out pool/, dists/<suite>/{Release,InRelease,Release.gpg} and Packages(.gz).

    Arch "all" packages land in every binary-<arch>/Packages, as in Debian.
    Returns `root`.
    """
    pool = root / "pool" / component
    pool.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        shutil.copy2(deb, pool / deb.name)
    dist = root / "dists" / suite
    for arch in architectures:
        bindir = dist / component / f"binary-{arch}"
        bindir.mkdir(parents=True, exist_ok=True)
        packages = run(
            ["apt-ftparchive", "--arch", arch, "packages", f"pool/{component}"], cwd=root
        ).stdout
        (bindir / "Packages").write_bytes(packages)
        (bindir / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    conf = {
        "Origin": "debops-ci-tests",
        "Label": "debops-ci-tests",
        "Suite": suite,
        "Codename": codename or suite,
        "Architectures": " ".join(architectures),
        "Components": component,
        "Description": "reference archive made by apt-ftparchive",
    }
    opts = [f"-oAPT::FTPArchive::Release::{k}={v}" for k, v in conf.items()]
    release = run(["apt-ftparchive", *opts, "release", f"dists/{suite}"], cwd=root).stdout
    (dist / "Release").write_bytes(release)
    (dist / "InRelease").write_bytes(key.clearsign(release))
    (dist / "Release.gpg").write_bytes(key.detach_sign(release))
    return root
