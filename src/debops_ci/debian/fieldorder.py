"""The canonical field order of a Packages stanza, as apt-ftparchive writes it.

The list is apt's `TFRewritePackageOrder` (apt-pkg/tagfile-order.c, "inspired by both
dpkg and dak"): Package first, the archive's own fields (Filename, Size, hashes) before
Homepage and Description. Fields it does not name follow in the .deb's order, as apt
does. dpkg-scanpackages has an order of its own; both start with Package.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["PACKAGE_FIELD_ORDER", "canonical_order"]

PACKAGE_FIELD_ORDER = (
    "Package",
    "Package-Type",
    "Architecture",
    "Architecture-Variant",
    "Subarchitecture",
    "Version",
    "Kernel-Version",
    "Built-Using",
    "Static-Built-Using",
    "Built-For-Profiles",
    "Auto-Built-Package",
    "Multi-Arch",
    "Status",
    "Priority",
    "Build-Essential",
    "Protected",
    "Important",
    "Essential",
    "Installer-Menu-Item",
    "Section",
    "Source",
    "Origin",
    "Phased-Update-Percentage",
    "Maintainer",
    "Original-Maintainer",
    "Bugs",
    "Config-Version",
    "Conffiles",
    "Triggers-Awaited",
    "Triggers-Pending",
    "Installed-Size",
    "Provides",
    "Pre-Depends",
    "Depends",
    "Recommends",
    "Suggests",
    "Conflicts",
    "Breaks",
    "Replaces",
    "Enhances",
    "Filename",
    "MSDOS-Filename",
    "Size",
    "MD5sum",
    "SHA1",
    "SHA256",
    "SHA512",
    "Homepage",
    "Description",
    "Description-md5",
    "Tag",
    "Task",
)
_RANK = {name.lower(): rank for rank, name in enumerate(PACKAGE_FIELD_ORDER)}


def canonical_order(fields: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """`fields` sorted into the canonical order; unknown ones last, in their order."""
    listed = list(fields)
    unknown = len(_RANK)
    # sorted() is stable: unknown fields keep the order they came in.
    return sorted(listed, key=lambda field: _RANK.get(field[0].lower(), unknown))
