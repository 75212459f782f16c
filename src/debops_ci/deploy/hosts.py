"""What the deployer asks of one host, and the shell scripts that ask it.

Every function takes a Transport and a host, runs one script (as root) and returns
data. Package names and versions are validated before they reach a script, and every
value is shell-quoted anyway.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from debops_ci.deploy.errors import DeployConfigError, DeployFailedError
from debops_ci.deploy.ssh import RemoteResult, Transport

__all__ = [
    "APT_ENV",
    "AUDIT_PATH",
    "STATE_DIR",
    "HostPackage",
    "HostState",
    "InstallOutcome",
    "available_versions",
    "bookkeep",
    "check_name",
    "check_version",
    "install",
    "installed_packages",
    "prepare",
    "run_check",
    "simulate",
    "write_badges",
]

STATE_DIR = "/var/lib/deployer"
AUDIT_PATH = "/var/log/deployer/audit.log"
# Never prompt: no debconf questions, keep changed config files, no needrestart or
# apt-listchanges dialogs.
APT_ENV = (
    "export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1 "
    "APT_LISTCHANGES_FRONTEND=none LC_ALL=C.UTF-8"
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_VERSION = re.compile(r"^[A-Za-z0-9.+~:-]+$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise DeployConfigError(f"{name!r} is not a Debian package name")
    return name


def check_version(version: str) -> str:
    if not _VERSION.match(version) or not version[0].isdigit():
        raise DeployConfigError(f"{version!r} is not a Debian version")
    return version


@dataclass(frozen=True)
class HostPackage:
    """A package as dpkg sees it: `version` only when it is fully installed (`ii`)."""

    name: str
    version: str | None
    state: str  # dpkg's db:Status-Abbrev, e.g. "ii", "rc", "un"; "" when dpkg never heard of it

    @property
    def broken(self) -> bool:
        """Half-installed, unpacked or failed-config: dpkg was interrupted or failed."""
        return self.state[1:2] in _BROKEN and self.state[1:2] != ""


# dpkg's current-state letters (the 2nd of db:Status-Abbrev): i installed; n, c not
# installed (c: config files left); H, U, F, W, t: interrupted or unfinished.
_BROKEN = "HUFWt"


def _from_dpkg(name: str, state: str, version: str) -> HostPackage:
    """What a `${db:Status-Abbrev}` and `${Version}` pair means.

    `hn` with no version (selected, held, never installed) and `rc` (removed, config
    files left) are known to dpkg but not installed: version None. Broken states keep
    their version, so they can be reported.
    """
    state, version = state.strip(), version.strip()
    current = state[1:2]
    shown = (
        version if version and current != "" and (current == "i" or current in _BROKEN) else None
    )
    return HostPackage(name, shown, state)


def installed_packages(
    transport: Transport, host: str, packages: Sequence[str], timeout: float | None = None
) -> dict[str, HostPackage]:
    """dpkg's view of `packages` on the host (one round trip)."""
    names = " ".join(shlex.quote(check_name(p)) for p in packages)
    script = (
        f"for p in {names}; do "
        "dpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\t${Version}\\n' \"$p\" 2>/dev/null "
        "|| printf '%s\\t\\t\\n' \"$p\"; done"
    )
    result = transport.run(host, script, timeout=timeout)
    if not result.ok:
        raise _failed(result, "dpkg-query failed")
    found = {p: HostPackage(p, None, "") for p in packages}
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0] not in found:
            continue
        # `name<TAB><TAB>` (known, not installed) made the original crash
        found[parts[0]] = _from_dpkg(parts[0], parts[1], parts[2])
    return found


@dataclass(frozen=True)
class HostState:
    """One host before a change: dpkg health, the package, the versions apt offers."""

    host: str
    package: HostPackage
    available: tuple[str, ...]
    audit: str  # `dpkg --audit` output; empty when dpkg is healthy
    record: dict[str, object] | None = None  # the host's note of its last deploy


def _failed(result: RemoteResult, what: str) -> Exception:
    return DeployFailedError(f"{result.host}: {what}: {result.reason()}")


def prepare(
    transport: Transport,
    host: str,
    package: str,
    *,
    update: bool = True,
    timeout: float | None = None,
) -> HostState:
    """apt-get update (optional), then dpkg --audit, the package's state and madison."""
    pkg = shlex.quote(check_name(package))
    update_cmd = (
        f"{APT_ENV}; apt-get -q -o DPkg::Lock::Timeout=120 update >/tmp/.deployer-update.$$ 2>&1 "
        "|| { cat /tmp/.deployer-update.$$ >&2; rm -f /tmp/.deployer-update.$$; "
        "echo 'apt-get update failed' >&2; exit 1; }; rm -f /tmp/.deployer-update.$$"
        if update
        else "true"
    )
    script = (
        f"set -u; {update_cmd}\n"
        'echo "@audit"; dpkg --audit 2>&1 || true\n'
        f"echo \"@package\"; dpkg-query -W -f='${{db:Status-Abbrev}}\\t${{Version}}\\n' {pkg} "
        "2>/dev/null || true\n"
        f'echo "@madison"; apt-cache madison {pkg} 2>/dev/null || true\n'
        f'echo "@record"; cat {STATE_DIR}/records/{check_name(package)}.json 2>/dev/null || true\n'
    )
    result = transport.run(host, script, timeout=timeout)
    if not result.ok:
        raise _failed(result, "apt-get update failed")
    sections: dict[str, list[str]] = {"audit": [], "package": [], "madison": [], "record": []}
    current: list[str] | None = None
    for line in result.stdout.splitlines():
        if line.startswith("@") and line[1:] in sections:
            current = sections[line[1:]]
        elif current is not None:
            current.append(line)
    state, version = "", ""
    if sections["package"]:
        state, _, version = sections["package"][0].partition("\t")
        state = state.strip()
    available: list[str] = []
    for line in sections["madison"]:
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[0] == package and parts[1] not in available:
            available.append(parts[1])
    return HostState(
        host=host,
        package=_from_dpkg(package, state, version),
        available=tuple(available),
        audit="\n".join(x for x in sections["audit"] if x.strip()),
        record=_parse_record("\n".join(sections["record"])),
    )


def _parse_record(text: str) -> dict[str, object] | None:
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def available_versions(
    transport: Transport, host: str, package: str, timeout: float | None = None
) -> HostState:
    """What `apt-cache madison` offers after `apt-get update` (the checklist's step)."""
    return prepare(transport, host, package, update=True, timeout=timeout)


@dataclass(frozen=True)
class InstallOutcome:
    host: str
    ok: bool
    version: str | None  # what dpkg has installed afterwards
    reason: str = ""


def _apt_install_args(package: str, version: str | None, *, allow_downgrade: bool) -> str:
    pkg = check_name(package)
    opts = [
        "-y",
        "-q",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        "-o",
        "DPkg::Lock::Timeout=300",
    ]
    if version is None:
        return " ".join([*opts, "remove", shlex.quote(pkg)])
    if allow_downgrade:
        opts.append("--allow-downgrades")
    target = f"{pkg}={check_version(version)}"
    return " ".join([*opts, "install", shlex.quote(target)])


def simulate(
    transport: Transport,
    host: str,
    package: str,
    version: str | None,
    *,
    allow_downgrade: bool,
    timeout: float | None = None,
) -> RemoteResult:
    """`apt-get -s install pkg=version`: would it work? Changes nothing."""
    args = _apt_install_args(package, version, allow_downgrade=allow_downgrade)
    return transport.run(host, f"{APT_ENV}; apt-get -s {args}", timeout=timeout)


def install(
    transport: Transport,
    host: str,
    package: str,
    version: str | None,
    *,
    allow_downgrade: bool,
    timeout: float | None = None,
) -> InstallOutcome:
    """Install `package=version` (or remove it when version is None), then re-read dpkg."""
    args = _apt_install_args(package, version, allow_downgrade=allow_downgrade)
    pkg = shlex.quote(package)
    script = (
        f'{APT_ENV}; apt-get {args} </dev/null; rc=$?; echo "@after"; '
        f"dpkg-query -W -f='${{db:Status-Abbrev}}\\t${{Version}}\\n' {pkg} 2>/dev/null; "
        "exit $rc"
    )
    result = transport.run(host, script, timeout=timeout)
    state, _, shown = result.stdout.rpartition("@after\n")[2].partition("\t")
    after = _from_dpkg(package, state, shown)
    if not result.ok:
        out = RemoteResult(
            host, result.returncode, result.stdout.rpartition("@after")[0], result.stderr
        )
        return InstallOutcome(host, False, after.version, f"apt-get: {out.reason()}")
    if after.version != version or after.broken:
        return InstallOutcome(
            host, False, after.version, f"dpkg reports {after.state} {after.version or '-'}"
        )
    return InstallOutcome(host, True, after.version)


def bookkeep(
    transport: Transport,
    host: str,
    *,
    audit_line: str,
    package: str,
    record: dict[str, object] | bool | None,
    badges: dict[str, str] | None = None,
    badges_dir: str | None = None,
) -> None:
    """One round trip after a change: the audit line, the record (a dict: write it;
    None: remove it; False: keep it) and badges ({package: svg}) in `badges_dir`."""
    parts = ["set -e", f"mkdir -p {shlex.quote(os.path.dirname(AUDIT_PATH))}"]
    parts.append(f"printf '%s\\n' {shlex.quote(audit_line)} >> {shlex.quote(AUDIT_PATH)}")
    rec = f"{STATE_DIR}/records/{check_name(package)}.json"
    if isinstance(record, dict):
        parts.append(_write_b64(rec, json.dumps(record) + "\n"))
    elif record is None:
        parts.append(f"rm -f {shlex.quote(rec)}")
    for name, svg in (badges or {}).items():
        assert badges_dir is not None
        parts.append(_write_b64(f"{badges_dir.rstrip('/')}/{check_name(name)}.svg", svg))
    result = transport.run(host, "\n".join(parts))
    if not result.ok:
        raise _failed(result, "cannot write the audit log, record or badges")


def _write_b64(path: str, content: str) -> str:
    q = shlex.quote(path)
    data = base64.b64encode(content.encode()).decode()
    return (
        f'mkdir -p "$(dirname {q})"; echo {data} | base64 -d > {q}.deployer.$$; '
        f"chmod 0644 {q}.deployer.$$; mv -f {q}.deployer.$$ {q}"
    )


def write_badges(transport: Transport, host: str, directory: str, svgs: dict[str, str]) -> None:
    """Write `<directory>/<package>.svg` for each badge, in one round trip."""
    script = "\n".join(
        ["set -e"]
        + [
            _write_b64(f"{directory.rstrip('/')}/{check_name(p)}.svg", svg)
            for p, svg in svgs.items()
        ]
    )
    result = transport.run(host, script)
    if not result.ok:
        raise _failed(result, f"cannot write badges in {directory}")


def run_check(transport: Transport, host: str, command: str, timeout: float) -> RemoteResult:
    """Run the stage's health check on the host (as root, in sh)."""
    return transport.run(host, command, timeout=timeout)
