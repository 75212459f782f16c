"""How much control data a .deb may carry: what every client can still parse.

apt reads an index stanza into a buffer that starts at 64 KiB and doubles, refusing to
grow past 1 MiB (apt-pkg/tagfile.cc, `pkgTagFile::Resize`); a longer stanza fails with
"Unable to parse package file" and takes every package of its index with it. dpkg has
no limit of its own. Debian 12's amd64 index tops out at a 75,649-byte field (the
Provides of librust-winapi-dev) in a 76,338-byte stanza. The limits below keep half of
apt's buffer free (for the fields the archive adds, and for other parsers) and allow
more than three times what Debian ships.
"""

from __future__ import annotations

__all__ = ["MAX_CONTROL_TAR_BYTES", "MAX_FIELD_BYTES", "MAX_PARAGRAPH_BYTES"]

MAX_FIELD_BYTES = 256 * 1024
"""One field as written (`Name: value`, continuation lines included)."""

MAX_PARAGRAPH_BYTES = 512 * 1024
"""The whole control file."""

MAX_CONTROL_TAR_BYTES = 128 * 1024 * 1024
"""What is decompressed of control.tar while looking for `./control` (md5sums, symbols
and maintainer scripts may come first): a bomb stops here, in bounded memory."""
