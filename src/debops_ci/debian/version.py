"""Debian version ordering, always through python-debian (never string comparison)."""

from __future__ import annotations

import functools

from debian.debian_support import Version, version_compare


def compare_versions(a: str, b: str) -> int:
    """Negative, zero or positive as a sorts before, with, or after b (dpkg's rules)."""
    return int(version_compare(a, b))


version_sort_key = functools.cmp_to_key(compare_versions)

__all__ = ["Version", "compare_versions", "version_sort_key"]
