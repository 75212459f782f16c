"""Reading a suite as apt would: the signed root first, then every index it names.

Nothing is believed unless the signed InRelease vouches for it: each index is fetched
by the hash InRelease lists and checked for size and SHA-256 before it is parsed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from debops_ci.archive import layout
from debops_ci.archive.indexes import PackageEntry, decompress, parse_packages
from debops_ci.archive.release import ListedFile, ParsedRelease, parse_release
from debops_ci.archive.rootnote import RootNote
from debops_ci.errors import ArchiveIntegrityError
from debops_ci.signing import Verifier, unverified_clearsigned_content
from debops_ci.storage import NotFound, Store
from debops_ci.storage.base import Blob

# Which listed file we read for a `<component>/binary-<arch>` directory, best first.
_PREFERRED_INDEX_NAMES = ("Packages.xz", "Packages.gz", "Packages")


@dataclass
class SuiteState:
    suite: str
    inrelease: Blob | None = None  # None: the suite does not exist yet
    release: ParsedRelease | None = None
    components: dict[str, list[PackageEntry]] = field(default_factory=dict)
    signed_by: str = ""
    content: bytes = b""  # the signed Release text inside InRelease

    @property
    def exists(self) -> bool:
        return self.inrelease is not None

    @property
    def date(self) -> datetime | None:
        return self.release.date if self.release else None

    # An adopted original-layout suite stores plain `Packages` for the old tool: keep it.
    writes_plain_index: bool = False
    note: RootNote | None = None  # what the last debops-ci commit noted on its root

    def all_entries(self) -> list[tuple[str, PackageEntry]]:
        return [(comp, e) for comp, entries in self.components.items() for e in entries]


def index_key(suite: str, release: ParsedRelease, listed: ListedFile) -> str:
    if release.by_hash:
        directory = listed.path.rsplit("/", 1)[0]
        return layout.in_suite(suite, f"{directory}/by-hash/SHA256/{listed.sha256}")
    return layout.in_suite(suite, listed.path)


def fetch_listed(store: Store, suite: str, release: ParsedRelease, listed: ListedFile) -> bytes:
    """Fetch an index file InRelease names and prove it is the one it names."""
    key = index_key(suite, release, listed)
    try:
        data = store.get(key).data
    except NotFound:
        raise ArchiveIntegrityError(
            f"{key} is listed in dists/{suite}/InRelease but missing: the archive is torn; "
            "run `debops-ci verify`"
        ) from None
    if len(data) != listed.size or hashlib.sha256(data).hexdigest() != listed.sha256:
        raise ArchiveIntegrityError(
            f"{key} does not match the hash in dists/{suite}/InRelease: the archive was "
            "tampered with or torn; run `debops-ci verify`"
        )
    return data


def chosen_indexes(release: ParsedRelease) -> dict[tuple[str, str], ListedFile]:
    """For each (component, arch) directory listed, the one index file to read."""
    chosen: dict[tuple[str, str], ListedFile] = {}
    for component in release.components:
        for arch in release.architectures:
            directory = layout.binary_dir(component, arch)
            for name in _PREFERRED_INDEX_NAMES:
                listed = release.files.get(f"{directory}/{name}")
                if listed is not None:
                    chosen[(component, arch)] = listed
                    break
    return chosen


def stores_plain_index(
    store: Store, suite: str, release: ParsedRelease, note: RootNote | None = None
) -> bool:
    """Original-layout suites list only a plain `Packages`; once adopted, we keep storing
    it, which shows as its by-hash copy (ours list it always but store it only then).
    The root's note, when there is one, says so without asking."""
    plain = [f for path, f in release.files.items() if path.endswith("/Packages")]
    if not plain:
        return False
    if not release.by_hash:
        return True
    if note is not None:
        return note.plain_index
    return store.head(index_key(suite, release, plain[0])) is not None


def read_suite(
    store: Store,
    suite: str,
    verifier: Verifier | None,
    *,
    on_unverified: Callable[[str], None] | None = None,
) -> SuiteState:
    """The suite as its signed root describes it. `verifier=None` means --force."""
    try:
        root = store.get(layout.inrelease_key(suite))
    except NotFound:
        if store.head(layout.release_key(suite)) is not None:
            raise ArchiveIntegrityError(
                f"dists/{suite} has a Release but no InRelease: not an archive debops-ci "
                "can adopt safely; add InRelease or choose another --distro"
            ) from None
        return SuiteState(suite)
    where = f"dists/{suite}/InRelease"
    signed_by = ""
    if verifier is not None:
        verified = verifier.verify_clearsigned(root.data, where)
        content, signed_by = verified.content, verified.fingerprint
    else:
        content = unverified_clearsigned_content(root.data, where)
        if on_unverified is not None:
            on_unverified(where)
    release = parse_release(content, where)
    named = release.get("Codename") or release.get("Suite")
    if suite not in (release.get("Codename"), release.get("Suite")):
        raise ArchiveIntegrityError(
            f"{where} describes suite {named!r}, not {suite!r}: the file was copied or "
            "tampered with"
        )
    state = SuiteState(suite, root, release, signed_by=signed_by, content=content)
    state.note = RootNote.from_metadata(root.metadata)
    state.writes_plain_index = stores_plain_index(store, suite, release, state.note)
    chosen = chosen_indexes(release)

    def load(item: tuple[tuple[str, str], ListedFile]) -> tuple[str, list[PackageEntry]]:
        (component, _arch), listed = item
        data = fetch_listed(store, suite, release, listed)
        raw = decompress(listed.path, data)
        return component, parse_packages(raw, f"dists/{suite}/{listed.path}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        loaded = list(pool.map(load, chosen.items()))
    for component in release.components:
        state.components.setdefault(component, [])
    seen: set[tuple[str, tuple[str, str, str]]] = set()
    for component, entries in loaded:
        for entry in entries:
            # `all` packages repeat in every architecture's index; keep one.
            marker = (component, entry.key)
            if marker not in seen:
                seen.add(marker)
                state.components[component].append(entry)
    return state
