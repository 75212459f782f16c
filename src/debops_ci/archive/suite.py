"""From a suite's entries to the index files and Release fields that describe it. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from debops_ci.archive import layout
from debops_ci.archive.indexes import (
    ARCH_ALL,
    IndexFile,
    PackageEntry,
    build_packages_files,
    entries_for_arch,
)


@dataclass(frozen=True)
class ComposedSuite:
    architectures: list[str]
    components: list[str]
    files: list[IndexFile]


def suite_architectures(
    components: Mapping[str, Sequence[PackageEntry]],
    previous: Sequence[str],
    default_arch: str,
) -> list[str]:
    """Real architectures of the packages; `all` packages keep earlier ones visible."""
    entries = [e for group in components.values() for e in group]
    archs = {e.architecture for e in entries if e.architecture != ARCH_ALL}
    if any(e.architecture == ARCH_ALL for e in entries):
        archs.update(a for a in previous if a != ARCH_ALL)
        if not archs:
            archs.add(default_arch)
    if not archs:
        # An emptied suite keeps its shape so clients' `apt-get update` stays clean.
        archs.update(a for a in previous if a != ARCH_ALL)
        if not archs:
            archs.add(default_arch)
    return sorted(archs)


def compose_suite(
    components: Mapping[str, Sequence[PackageEntry]],
    *,
    previous_architectures: Sequence[str],
    previous_components: Sequence[str],
    default_arch: str,
    plain_index: bool,
) -> ComposedSuite:
    archs = suite_architectures(components, previous_architectures, default_arch)
    live = sorted(c for c, entries in components.items() if entries)
    files: list[IndexFile] = []
    if not live:
        # Nothing left: publish empty indexes for the old shape rather than a
        # Release with no components, which apt reports as a misconfiguration.
        names = sorted(previous_components) or sorted(components) or ["main"]
        for component in names:
            for arch in archs:
                directory = layout.binary_dir(component, arch)
                files += build_packages_files(directory, [], plain=plain_index)
        return ComposedSuite(archs, names, files)
    has_all = False
    for component in live:
        for arch in archs:
            visible = entries_for_arch(components[component], arch)
            if visible:
                directory = layout.binary_dir(component, arch)
                files += build_packages_files(directory, visible, plain=plain_index)
        # `all` packages also get their own index, which apt fetches for every
        # architecture: a client of an architecture the suite has no index for (arm64
        # on a suite of only `all` packages) still sees them.
        only_all = [e for e in components[component] if e.architecture == ARCH_ALL]
        if only_all:
            has_all = True
            directory = layout.binary_dir(component, ARCH_ALL)
            files += build_packages_files(directory, only_all, plain=plain_index)
    return ComposedSuite([ARCH_ALL, *archs] if has_all else archs, live, files)
