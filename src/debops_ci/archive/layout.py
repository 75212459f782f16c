"""Where things live in the archive. One place, so every module agrees."""

from __future__ import annotations

import re

from debops_ci.errors import UsageError

PUBLIC_KEY_ASC = "archive-key.asc"
PUBLIC_KEY_GPG = "archive-key.gpg"
INDEX_HTML = "index.html"
SUITE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
COMPONENT_RE = re.compile(r"^[a-z0-9][a-z0-9._+-]*$")


def inrelease_key(suite: str) -> str:
    return f"dists/{suite}/InRelease"


def release_key(suite: str) -> str:
    return f"dists/{suite}/Release"


def release_gpg_key(suite: str) -> str:
    return f"dists/{suite}/Release.gpg"


def lock_key(suite: str) -> str:
    # The original tool's names, so old and new writers exclude each other.
    return f"dists/{suite}/.debrepos3.lock"


def nolock_key(suite: str) -> str:
    return f"dists/{suite}/.debrepos3.nolock"


def binary_dir(component: str, arch: str) -> str:
    """Relative to `dists/<suite>/`."""
    return f"{component}/binary-{arch}"


def in_suite(suite: str, relative: str) -> str:
    return f"dists/{suite}/{relative}"


def check_suite_name(suite: str) -> None:
    if not SUITE_NAME_RE.match(suite) or ".." in suite:
        raise UsageError(f"invalid distro/suite name {suite!r}: use letters, digits and . _ + -")


def check_component_name(component: str) -> None:
    if not COMPONENT_RE.match(component) or ".." in component:
        raise UsageError(
            f"invalid component name {component!r}: use lowercase letters, digits and . _ + -"
        )


def check_single_line(name: str, value: str) -> None:
    """Values we copy into Release must not smuggle in a field of their own."""
    if any(c in value for c in "\r\n\x00") or value != value.strip():
        raise UsageError(f"{name} must be one line without leading or trailing spaces")
