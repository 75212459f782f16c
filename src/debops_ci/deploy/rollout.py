"""Deploy, promote and rollback: lock, look, plan, simulate, then roll out in batches.

Nothing on any host changes until every host of the stage has been locked, updated
(`apt-get update`), found healthy (`dpkg --audit`) and has simulated the change
successfully. Then the hosts that need a change go in batches; after each batch the
stage's health check must pass on every host of the batch before the next starts.
Each host that changes gets a record of what it ran before (for `rollback`), a line
in its audit log and in the local one, and a fresh badge.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from debops_ci.debian.version import compare_versions, version_sort_key
from debops_ci.deploy import hosts as remote
from debops_ci.deploy.audit import AuditEntry, append_local, operator
from debops_ci.deploy.badges import badge_svg
from debops_ci.deploy.batches import parse_batch_spec, split_batches
from debops_ci.deploy.config import DeployConfig, Stage
from debops_ci.deploy.errors import (
    DeployConfigError,
    DeployError,
    DeployFailedError,
    HostUnreachableError,
)
from debops_ci.deploy.lock import acquire_locks
from debops_ci.deploy.ssh import RemoteResult, Transport
from debops_ci.deploy.status import parallel

__all__ = [
    "BatchStarted",
    "CheckOutcome",
    "DeployRequest",
    "DeployResult",
    "HostOutcome",
    "HostPlan",
    "Plan",
    "Runtime",
    "run_deploy",
]


@dataclass(frozen=True)
class DeployRequest:
    """What to do. `action` is deploy, promote or rollback; None = from deployer.ini."""

    package: str
    stage: str | None = None
    version: str | None = None
    action: str = "deploy"
    dry_run: bool = False
    batch: str | None = None
    check: str | None = None
    rollback_on_failure: bool = False
    lock_timeout: float | None = None


@dataclass(frozen=True)
class HostPlan:
    host: str
    current: str | None
    target: str | None
    change: str  # install, upgrade, downgrade, remove, none


@dataclass(frozen=True)
class Plan:
    action: str
    package: str
    stage: str
    version: str | None  # the one target version (deploy, promote); None for rollback
    hosts: tuple[HostPlan, ...]
    batches: tuple[tuple[str, ...], ...]
    check: str | None

    @property
    def changes(self) -> tuple[HostPlan, ...]:
        return tuple(h for h in self.hosts if h.change != "none")


@dataclass(frozen=True)
class BatchStarted:
    index: int
    total: int
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class HostOutcome:
    host: str
    from_version: str | None
    to_version: str | None
    ok: bool
    reason: str = ""
    action: str = "deploy"


@dataclass(frozen=True)
class CheckOutcome:
    host: str
    ok: bool
    attempts: int
    reason: str = ""


@dataclass(frozen=True)
class DeployResult:
    plan: Plan
    dry_run: bool
    outcomes: tuple[HostOutcome, ...] = ()
    checks: tuple[CheckOutcome, ...] = ()


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Runtime:
    """What the rollout uses from the outside world (injectable in tests)."""

    transport: Transport
    report: Callable[[object], None] = lambda event: None
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], str] = _utc_now
    who: str = field(default_factory=operator)


def _change(current: str | None, target: str | None) -> str:
    if target is None:
        return "none" if current is None else "remove"
    if current is None:
        return "install"
    order = compare_versions(target, current)
    return "none" if order == 0 else "upgrade" if order > 0 else "downgrade"


def _stage_version(config: DeployConfig, rt: Runtime, stage: Stage, package: str) -> str:
    """The one version every host of `stage` runs (promote's source), or refuse."""
    found: dict[str, list[str]] = {}

    def ask(host: str) -> str | None:
        return remote.installed_packages(
            rt.transport, host, [package], timeout=config.command_timeout
        )[package].version

    for host, version in zip(stage.hosts, parallel(ask, stage.hosts), strict=True):
        found.setdefault(version or "not installed", []).append(host)
    if len(found) != 1:
        detail = "; ".join(f"{v} on {' '.join(h)}" for v, h in found.items())
        raise DeployFailedError(
            f"cannot promote {package} from {stage.name}: its hosts disagree ({detail}); "
            f"deploy one version to every host of {stage.name} first"
        )
    version = next(iter(found))
    if version == "not installed":
        raise DeployFailedError(f"cannot promote {package}: {stage.name} does not run it")
    return version


def _plan(
    config: DeployConfig, rt: Runtime, request: DeployRequest, stage: Stage
) -> tuple[Plan, dict[str, dict[str, object] | None], bool]:
    package = request.package
    if request.action == "promote":
        previous = config.previous_stage(stage.name)
        assert previous is not None  # run_deploy checked
        version: str | None = _stage_version(config, rt, previous, package)
    else:
        version = request.version

    def look(host: str) -> remote.HostState:
        return remote.prepare(rt.transport, host, package, timeout=config.install_timeout)

    states = {s.host: s for s in parallel(look, stage.hosts)}
    records = {h: s.record for h, s in states.items()}
    for state in states.values():
        if state.audit:
            first = state.audit.splitlines()[0]
            raise DeployFailedError(
                f"{state.host}: dpkg was interrupted or left packages half-configured "
                f"(dpkg --audit: {first}); repair it on the host (dpkg --configure -a) "
                "and rerun; nothing changed"
            )
    allow_downgrade = request.action == "rollback"
    targets: dict[str, str | None] = {}
    if request.action == "rollback":
        for host in stage.hosts:
            record = records[host]
            if record is None or "previous" not in record:
                raise DeployFailedError(
                    f"{host}: no record of a deploy of {package}; nothing to roll back to"
                )
            prev = record["previous"]
            targets[host] = prev if isinstance(prev, str) else None
    else:
        if version is None:
            offered = {v for s in states.values() for v in s.available}
            if not offered:
                raise DeployFailedError(
                    f"{package}: no host of {stage.name} can install any version "
                    "(apt-cache madison is empty; check the hosts' apt sources); nothing changed"
                )
            version = max(offered, key=version_sort_key)
        remote.check_version(version)
        missing = [h for h in stage.hosts if version not in states[h].available]
        if missing:
            offered_list = sorted(
                {v for s in states.values() for v in s.available}, key=version_sort_key
            )
            where = "any host" if len(missing) == len(stage.hosts) else " ".join(missing)
            raise DeployFailedError(
                f"{package} {version} is not available on {where} of {stage.name} "
                f"(apt offers: {' '.join(offered_list) or 'nothing'}); nothing changed"
            )
        for host in stage.hosts:
            targets[host] = version
    plans = []
    for host in stage.hosts:
        current = states[host].package.version
        change = _change(current, targets[host])
        if change == "downgrade" and not allow_downgrade:
            raise DeployFailedError(
                f"{host}: runs {package} {current}, newer than {targets[host]}; deploy never "
                f"downgrades: use `deployer rollback {package} {stage.name}`; nothing changed"
            )
        plans.append(HostPlan(host, current, targets[host], change))
    changing = [p for p in plans if p.change != "none"]

    def sim(p: HostPlan) -> tuple[HostPlan, RemoteResult]:
        result = remote.simulate(
            rt.transport,
            p.host,
            package,
            p.target,
            allow_downgrade=allow_downgrade,
            timeout=config.command_timeout,
        )
        return p, result

    for p, result in parallel(sim, changing):
        if not result.ok:
            raise DeployFailedError(
                f"{p.host}: apt-get cannot {p.change} {package} {p.target or ''}: "
                f"{result.reason()}; nothing changed"
            )
    terms = parse_batch_spec(request.batch) if request.batch else stage.batch
    batches = split_batches([p.host for p in changing], terms)
    plan = Plan(
        action=request.action,
        package=package,
        stage=stage.name,
        version=version if request.action != "rollback" else None,
        hosts=tuple(plans),
        batches=tuple(tuple(b) for b in batches),
        check=request.check if request.check is not None else stage.check,
    )
    return plan, records, allow_downgrade


def run_deploy(config: DeployConfig, rt: Runtime, request: DeployRequest) -> DeployResult:
    """Plan the change on every host of the stage; unless dry-run, roll it out.

    Raises DeployFailedError naming the first failed host (after stopping the rollout
    and, when asked, rolling the failed batch back), HostUnreachableError,
    DeployLockedError or DeployConfigError.
    """
    config.check_package(request.package)
    remote.check_name(request.package)
    if request.version is not None:
        remote.check_version(request.version)
    if request.batch:
        parse_batch_spec(request.batch)
    stage = config.stage(request.stage)
    if request.action == "promote" and config.previous_stage(stage.name) is None:
        raise DeployConfigError(
            f"{stage.name} is the first stage: nothing to promote from; use deploy"
        )
    if request.dry_run:
        plan, _, _ = _plan(config, rt, request, stage)
        rt.report(plan)
        return DeployResult(plan, dry_run=True)
    timeout = request.lock_timeout if request.lock_timeout is not None else config.lock_timeout
    owner = f"{rt.who} {request.action} {request.package} since {rt.now()}"
    with acquire_locks(rt.transport, stage.hosts, owner, timeout, rt.report):
        plan, records, allow_downgrade = _plan(config, rt, request, stage)
        rt.report(plan)
        return _execute(config, rt, stage, plan, records, allow_downgrade, request)


def _execute(
    config: DeployConfig,
    rt: Runtime,
    stage: Stage,
    plan: Plan,
    records: dict[str, dict[str, object] | None],
    allow_downgrade: bool,
    request: DeployRequest,
) -> DeployResult:
    by_host = {p.host: p for p in plan.hosts}
    outcomes: list[HostOutcome] = []
    checks: list[CheckOutcome] = []

    now_at = {p.host: p.current for p in plan.hosts}

    def change(host: str, target: str | None, downgrade: bool, action: str) -> HostOutcome:
        before = now_at[host]
        try:
            result = remote.install(
                rt.transport,
                host,
                plan.package,
                target,
                allow_downgrade=downgrade,
                timeout=config.install_timeout,
            )
            outcome = HostOutcome(host, before, result.version, result.ok, result.reason, action)
        except DeployError as exc:
            outcome = HostOutcome(host, before, None, False, str(exc), action)
        if outcome.to_version is not None or outcome.ok:
            now_at[host] = outcome.to_version
        _after_change(config, rt, stage, plan, outcome, target, records.get(host))
        return outcome

    for index, batch in enumerate(plan.batches, 1):
        rt.report(BatchStarted(index, len(plan.batches), batch))
        done = parallel(
            lambda h: change(h, by_host[h].target, allow_downgrade, plan.action), list(batch)
        )
        for outcome in done:
            rt.report(outcome)
        outcomes += done
        failure = next((o for o in done if not o.ok), None)
        reason = f"{failure.host}: {failure.reason}" if failure else ""
        if failure is None and plan.check:
            results = parallel(lambda h: _health_check(config, rt, stage, plan, h), list(batch))
            for check in results:
                rt.report(check)
            checks += results
            bad = next((c for c in results if not c.ok), None)
            if bad is not None:
                reason = (
                    f"{bad.host}: health check `{plan.check}` failed "
                    f"{bad.attempts} time(s): {bad.reason}"
                )
        if reason:
            rolled = ""
            if request.rollback_on_failure:
                back = parallel(
                    lambda h: change(h, by_host[h].current, True, "rollback-on-failure"),
                    list(batch),
                )
                for outcome in back:
                    rt.report(outcome)
                outcomes += back
                failed_back = [o.host for o in back if not o.ok]
                rolled = (
                    f"; batch {index} rolled back"
                    if not failed_back
                    else f"; rolling back FAILED on {' '.join(failed_back)}"
                )
            remaining = sum(len(b) for b in plan.batches[index:])
            raise DeployFailedError(
                f"{reason}; rollout of {plan.package} on {plan.stage} stopped at batch "
                f"{index} of {len(plan.batches)} ({remaining} host(s) not touched){rolled}"
            )
    return DeployResult(plan, dry_run=False, outcomes=tuple(outcomes), checks=tuple(checks))


def _health_check(
    config: DeployConfig, rt: Runtime, stage: Stage, plan: Plan, host: str
) -> CheckOutcome:
    assert plan.check is not None
    attempts = max(1, stage.check_retries)
    reason = ""
    for attempt in range(1, attempts + 1):
        try:
            result = remote.run_check(rt.transport, host, plan.check, stage.check_timeout)
            if result.ok:
                return CheckOutcome(host, True, attempt)
            reason = result.reason()
        except HostUnreachableError as exc:
            reason = exc.reason
        if attempt < attempts:
            rt.sleep(stage.check_interval)
    return CheckOutcome(host, False, attempts, reason)


def _after_change(
    config: DeployConfig,
    rt: Runtime,
    stage: Stage,
    plan: Plan,
    outcome: HostOutcome,
    target: str | None,
    old_record: dict[str, object] | None,
) -> None:
    """Record, audit and badge one host's change; a failure here is reported, not fatal."""
    entry = AuditEntry(
        who=rt.who,
        when=rt.now(),
        action=outcome.action,
        stage=stage.name,
        host=outcome.host,
        package=plan.package,
        from_version=outcome.from_version,
        to_version=outcome.to_version if outcome.ok else target,
        result="ok" if outcome.ok else "failed",
        reason=outcome.reason,
    )
    append_local(config.audit_log, entry)
    record: dict[str, object] | bool | None = False  # False: leave it as it is
    if outcome.ok and outcome.action == "rollback-on-failure":
        # Back where it was: so is its record (rollback must not return to the bad one).
        record = old_record
    elif outcome.ok:
        record = {
            "package": plan.package,
            "previous": outcome.from_version,
            "current": outcome.to_version,
            "when": entry.when,
            "who": rt.who,
            "action": outcome.action,
            "stage": stage.name,
        }
    badges = None
    if config.badges_path:
        badges = {plan.package: badge_svg(plan.package, outcome.to_version)}
    try:
        remote.bookkeep(
            rt.transport,
            outcome.host,
            audit_line=entry.json_line(),
            package=plan.package,
            record=record,
            badges=badges,
            badges_dir=config.badges_path,
        )
    except DeployError as exc:
        rt.report(HostOutcome(outcome.host, None, None, False, f"bookkeeping: {exc}", "note"))
