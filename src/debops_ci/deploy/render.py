"""Text and JSON views of the deployer's results (colours only when asked)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from debops_ci.deploy.lock import LockWaiting
from debops_ci.deploy.queries import BadgeOutcome, VersionsReport
from debops_ci.deploy.rollout import BatchStarted, CheckOutcome, DeployResult, HostOutcome, Plan
from debops_ci.deploy.status import AHEAD, StatusReport

__all__ = [
    "render_badges",
    "render_event",
    "render_result",
    "render_status",
    "render_versions",
    "to_json",
]

_GREEN, _RED, _YELLOW, _BOLD, _RESET = "\033[32m", "\033[31m", "\033[33m", "\033[1m", "\033[0m"
_MIN_WIDTH = 16


def _paint(text: str, colour: str, on: bool) -> str:
    return f"{colour}{text}{_RESET}" if on and text.strip() else text


def render_status(report: StatusReport, color: bool = False) -> str:
    """The table: a row per package, a column per stage, ►►/⚠ between stages."""
    pkg_width = max([len("package"), *(len(r.package) for r in report.rows)]) + 2
    widths = [
        max([_MIN_WIDTH, len(stage) + 2, *(len(r.cells[i].text()) + 2 for r in report.rows)])
        for i, stage in enumerate(report.stages)
    ]
    head = "package".ljust(pkg_width)
    for i, stage in enumerate(report.stages):
        head += stage.ljust(widths[i]) + ("    " if i < len(report.stages) - 1 else "")
    lines = [_paint(head.rstrip(), _BOLD, color)]
    for row in report.rows:
        line = row.package.ljust(pkg_width)
        for i, cell in enumerate(row.cells):
            text = cell.text().ljust(widths[i])
            if cell.unreachable:
                text = _paint(text, _YELLOW, color)
            line += text
            if i < len(row.marks):
                mark = row.marks[i]
                shown = f"{mark:<3} "
                colour = _GREEN if mark == AHEAD else _RED
                line += _paint(shown, colour, color) if mark else "    "
        lines.append(line.rstrip())
    notes: list[str] = []
    for row in report.rows:
        for cell in row.cells:
            if len(cell.versions) > 1 or (cell.versions and cell.not_installed):
                parts = []
                for host in report.stage_hosts[cell.stage]:
                    status = report.hosts[host]
                    if status.reachable:
                        parts.append(f"{host} {status.packages[row.package].version or '-'}")
                notes.append(f"{row.package} on {cell.stage}: " + ", ".join(parts))
    for status in report.unreachable:
        notes.append(_paint(f"{status.host}: unreachable: {status.error}", _YELLOW, color))
    if notes:
        lines.append("")
        lines += notes
    return "\n".join(lines)


def render_versions(report: VersionsReport) -> str:
    """Versions apt offers on the stage, newest first; `*` marks installed ones."""
    n = len(report.hosts)
    lines = [f"{report.package} on {report.stage} ({n} host(s)):"]
    for version in report.versions():
        offered = sum(version in h.available for h in report.hosts)
        running = [h.host for h in report.hosts if h.installed == version]
        mark = "*" if running else " "
        line = f" {mark} {version:<24} available on {offered}/{n}"
        if running:
            line += "  installed on " + " ".join(running)
        lines.append(line)
    if not report.versions():
        lines.append("   (no version available)")
    for host in report.hosts:
        if host.error:
            lines.append(f"{host.host}: {host.error}")
    return "\n".join(lines)


def _v(version: str | None) -> str:
    return version if version is not None else "(none)"


def render_plan(plan: Plan) -> str:
    title = f"{plan.action} {plan.package}"
    if plan.version:
        title += f" {plan.version}"
    lines = [f"plan: {title} on {plan.stage}"]
    for host in plan.hosts:
        if host.change == "none":
            lines.append(f"  {host.host}: {_v(host.current)} (already there)")
        else:
            lines.append(f"  {host.host}: {_v(host.current)} → {_v(host.target)} ({host.change})")
    if plan.batches:
        shown = " ".join("[" + " ".join(b) + "]" for b in plan.batches)
        lines.append(f"  batches: {shown}" + (f"; check: {plan.check}" if plan.check else ""))
    else:
        lines.append("  nothing to change")
    return "\n".join(lines)


def render_event(event: object) -> str:
    """One progress line (or block) for an event the rollout reports."""
    if isinstance(event, Plan):
        return render_plan(event)
    if isinstance(event, BatchStarted):
        return f"batch {event.index}/{event.total}: {' '.join(event.hosts)}"
    if isinstance(event, HostOutcome):
        if event.action == "note":
            return f"  {event.host}: warning: {event.reason}"
        verb = "rolled back" if event.action == "rollback-on-failure" else "ok"
        if event.ok:
            return f"  {event.host}: {_v(event.from_version)} → {_v(event.to_version)} {verb}"
        return f"  {event.host}: FAILED: {event.reason}"
    if isinstance(event, CheckOutcome):
        if event.ok:
            return f"  {event.host}: health check passed"
        return (
            f"  {event.host}: health check FAILED after {event.attempts} try(ies): {event.reason}"
        )
    if isinstance(event, LockWaiting):
        return (
            f"{event.host}: waiting up to {event.timeout:g} s for the deploy lock ({event.holder})"
        )
    return str(event)


def render_result(result: DeployResult) -> str:
    plan = result.plan
    if result.dry_run:
        return "dry run: nothing changed"
    changed = sum(1 for o in result.outcomes if o.ok)
    if not plan.changes:
        return f"{plan.package}: every host of {plan.stage} already runs it; nothing to do"
    return f"{plan.action} {plan.package} on {plan.stage}: {changed} host(s) changed"


def render_badges(outcomes: list[BadgeOutcome], directory: str) -> str:
    lines = []
    for o in outcomes:
        if o.error:
            lines.append(f"{o.host}: FAILED: {o.error}")
        else:
            lines.append(f"{o.host}: {len(o.written)} badge(s) in {directory}")
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_json(value: object) -> str:
    """Any result dataclass as JSON (status adds each cell's text and newest version)."""
    data = _plain(value)
    if isinstance(value, StatusReport):
        for row_data, row in zip(data["rows"], value.rows, strict=True):
            for cell_data, cell in zip(row_data["cells"], row.cells, strict=True):
                cell_data["text"] = cell.text()
                cell_data["newest"] = cell.newest
    return json.dumps(data, indent=2, ensure_ascii=False)
