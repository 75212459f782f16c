"""The status table: every host of every stage queried in parallel, then summarised.

A cell shows the newest version a stage runs, with `(k/n)` when only k of its n hosts
run it; `►►` marks a stage ahead of the next one (ready to promote), `⚠` a later stage
running a newer version than an earlier one. Versions compare by Debian rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from debops_ci.debian.version import compare_versions, version_sort_key
from debops_ci.deploy.config import DeployConfig
from debops_ci.deploy.errors import DeployError, HostUnreachableError
from debops_ci.deploy.hosts import HostPackage, installed_packages
from debops_ci.deploy.ssh import Transport

__all__ = [
    "AHEAD",
    "BEHIND",
    "Cell",
    "HostStatus",
    "StatusReport",
    "StatusRow",
    "parallel",
    "query_status",
]

AHEAD = "►►"
BEHIND = "⚠"
T = TypeVar("T")
R = TypeVar("R")


def parallel(func: Callable[[T], R], items: Sequence[T], workers: int = 32) -> list[R]:
    """`func` over `items` in threads (each host is I/O bound), results in order."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(func, items))


@dataclass(frozen=True)
class HostStatus:
    """One host's answer, or why there was none."""

    host: str
    packages: dict[str, HostPackage]
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Cell:
    """One package on one stage."""

    stage: str
    hosts: int
    versions: dict[str, int]  # installed version -> how many hosts run it
    unreachable: int
    not_installed: int

    @property
    def newest(self) -> str | None:
        if not self.versions:
            return None
        return max(self.versions, key=version_sort_key)

    @property
    def agreed(self) -> bool:
        return self.unreachable == 0 and len(self.versions) == 1 and self.not_installed == 0

    def text(self) -> str:
        newest = self.newest
        if newest is None:
            return "unreachable" if self.unreachable == self.hosts else "-"
        count = self.versions[newest]
        return newest if count == self.hosts else f"{newest} ({count}/{self.hosts})"


@dataclass(frozen=True)
class StatusRow:
    package: str
    cells: tuple[Cell, ...]
    marks: tuple[str, ...]  # between cell i and i+1: AHEAD, BEHIND or ""


@dataclass(frozen=True)
class StatusReport:
    stages: tuple[str, ...]
    rows: tuple[StatusRow, ...]
    hosts: dict[str, HostStatus]
    stage_hosts: dict[str, tuple[str, ...]]

    @property
    def unreachable(self) -> list[HostStatus]:
        return [h for h in self.hosts.values() if not h.reachable]


def _mark(left: Cell, right: Cell) -> str:
    a, b = left.newest, right.newest
    if a is None and b is None:
        return ""
    if a is None:
        return BEHIND if left.unreachable == 0 else ""
    if b is None:
        return AHEAD if right.unreachable == 0 else ""
    order = compare_versions(a, b)
    return AHEAD if order > 0 else BEHIND if order < 0 else ""


def _cell(stage: str, hosts: Iterable[HostStatus], package: str) -> Cell:
    versions: dict[str, int] = {}
    unreachable = missing = total = 0
    for host in hosts:
        total += 1
        if not host.reachable:
            unreachable += 1
            continue
        version = host.packages[package].version
        if version is None:
            missing += 1
        else:
            versions[version] = versions.get(version, 0) + 1
    return Cell(stage, total, versions, unreachable, missing)


def query_status(config: DeployConfig, transport: Transport) -> StatusReport:
    """Ask every host (each once, in parallel, with a timeout each) what it runs."""

    def ask(host: str) -> HostStatus:
        try:
            found = installed_packages(
                transport, host, config.packages, timeout=config.command_timeout
            )
        except HostUnreachableError as exc:
            return HostStatus(host, {}, exc.reason)
        except DeployError as exc:
            return HostStatus(host, {}, str(exc))
        return HostStatus(host, found)

    answers = {h.host: h for h in parallel(ask, config.all_hosts())}
    rows = []
    for package in config.packages:
        cells = tuple(
            _cell(stage.name, (answers[h] for h in stage.hosts), package) for stage in config.stages
        )
        marks = tuple(_mark(cells[i], cells[i + 1]) for i in range(len(cells) - 1))
        rows.append(StatusRow(package, cells, marks))
    return StatusReport(
        stages=tuple(s.name for s in config.stages),
        rows=tuple(rows),
        hosts=answers,
        stage_hosts={s.name: s.hosts for s in config.stages},
    )
