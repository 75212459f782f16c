"""Errors of `build-docs`, each carrying its exit code (see `debops_ci.errors`)."""

from __future__ import annotations

from debops_ci.errors import DebopsError, UsageError

__all__ = ["DocsBuildError", "DocsConfigError"]


class DocsConfigError(UsageError):
    """`build_docs.ini` or a flag is wrong (exit 2); nothing was written."""


class DocsBuildError(DebopsError):
    """The site could not be built or failed its checks (exit 1); the previous site is kept."""

    exit_code = 1
