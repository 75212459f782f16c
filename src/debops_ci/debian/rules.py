"""Debian's naming rules in one place: package names, versions, architectures, epochs,
and where a package goes in a pool.

Every other module (the .deb reader, `remove`, changelogs, the archive layout) asks
here, so the rules cannot drift apart.
"""

from __future__ import annotations

import re

from debops_ci.errors import PackageError

__all__ = [
    "ARCH_RE",
    "PACKAGE_NAME_RE",
    "VERSION_RE",
    "check_architecture",
    "check_package_name",
    "check_version",
    "deb_filename",
    "is_valid_version",
    "pool_path",
    "pool_prefix",
    "strip_epoch",
]

# Debian Policy §5.6.1 (Source) and §5.6.7 (Package): at least two characters.
PACKAGE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
ARCH_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Policy §5.6.12: [epoch:]upstream[-revision]; upstream starts with a digit.
VERSION_RE = re.compile(
    r"^(?:(?P<epoch>[0-9]+):)?"
    r"(?P<upstream>[0-9][A-Za-z0-9.+~-]*?|[0-9][A-Za-z0-9.+~]*)"
    r"(?:-(?P<revision>[A-Za-z0-9.+~]+))?$"
)


def is_valid_version(version: str) -> bool:
    return bool(VERSION_RE.match(version)) and not version.endswith("-")


def check_version(version: str, what: str) -> None:
    if not is_valid_version(version):
        raise PackageError(
            f"{what}: {version!r} is not a valid Debian version "
            "(digits first, then letters, digits and . + ~ -)"
        )


def check_package_name(name: str, what: str) -> None:
    if not PACKAGE_NAME_RE.match(name):
        raise PackageError(
            f"{what}: {name!r} is not a valid Debian package name "
            "(lowercase letters, digits, + - . ; at least two characters)"
        )


def check_architecture(arch: str, what: str) -> None:
    if not ARCH_RE.match(arch):
        raise PackageError(f"{what}: {arch!r} is not a valid architecture name")


def strip_epoch(version: str) -> str:
    """`1:2.0-1` → `2.0-1`: file names never carry the epoch."""
    return version.split(":", 1)[1] if ":" in version else version


def deb_filename(package: str, version: str, architecture: str) -> str:
    """Debian's file name for a binary package: `<name>_<version-without-epoch>_<arch>.deb`."""
    return f"{package}_{strip_epoch(version)}_{architecture}.deb"


def pool_prefix(source: str) -> str:
    """Debian's pool fan-out: `libfoo` goes under `libf/`, everything else under its initial."""
    return source[:4] if source.startswith("lib") and len(source) > 3 else source[0]


def pool_path(component: str, source: str, package: str, version: str, architecture: str) -> str:
    """`pool/<component>/<prefix>/<source>/<file name>`, as dak lays out Debian's pool."""
    name = deb_filename(package, version, architecture)
    return f"pool/{component}/{pool_prefix(source)}/{source}/{name}"
