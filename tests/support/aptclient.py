"""A real apt client in a private sandbox: own config, sources, keys, lists and root.

Why: the only proof that a published archive works is apt accepting it: `apt-get
update` without a single warning, and `apt-get install` of an exact version. This runs
the system's apt-get/apt-cache/dpkg, but through an APT_CONFIG file that points every
directory into `workdir` and installs into `workdir/root` with `dpkg --root`, so the
host's apt and dpkg state are never read or written.

apt reads APT_CONFIG first, then Dir::Etc::parts (normally /etc/apt/apt.conf.d) and
Dir::Etc::main; `-o` options come last. So the APT_CONFIG file itself moves Dir::Etc
into the sandbox, which makes the system's apt.conf.d, sources and keys invisible.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ._proc import run
from .debs import parse_stanzas

# Lines in apt/dpkg output that mean something went wrong even when apt exits 0.
_PROBLEM = re.compile(r"^(W: |E: |Err:|dpkg: (warning|error)\b)", re.MULTILINE)
# Fields dropped when seeding the private status file from the host's: the seeded
# packages stand alone, so their own relations must not need anything else.
_RELATION_FIELDS = {
    "depends",
    "pre-depends",
    "recommends",
    "suggests",
    "breaks",
    "conflicts",
    "replaces",
    "enhances",
    "conffiles",
}


class AptError(RuntimeError):
    """apt failed or warned; the message holds the command and its whole output."""

    def __init__(self, what: str, result: AptResult) -> None:
        self.result = result
        super().__init__(f"{what} (exit {result.returncode}):\n{result.output}")


@dataclass(frozen=True)
class AptResult:
    returncode: int
    output: str  # stdout and stderr interleaved, as a person would see them

    def problems(self) -> list[str]:
        """The W:/E:/Err:/dpkg warning lines, which apt prints even on exit 0."""
        return [m.group(0) + rest for m, rest in _problem_lines(self.output)]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.problems()


def _problem_lines(output: str) -> list[tuple[re.Match[str], str]]:
    found: list[tuple[re.Match[str], str]] = []
    for line in output.splitlines():
        m = _PROBLEM.match(line)
        if m:
            found.append((m, line[m.end() :]))
    return found


def native_dpkg_arch() -> str:
    return run(["dpkg", "--print-architecture"]).stdout.decode().strip()


class AptClient:
    """An isolated apt for one test. `arch` is what apt believes the machine is."""

    def __init__(
        self,
        workdir: Path,
        arch: str = "amd64",
        architectures: Sequence[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.arch = arch
        self.architectures = list(architectures or [arch])
        if arch not in self.architectures:
            self.architectures.insert(0, arch)
        self.etc = workdir / "etc"
        self.keys = workdir / "keys"
        self.root = workdir / "root"
        self.admindir = self.root / "var/lib/dpkg"
        self.status_file = self.admindir / "status"
        self.downloads = workdir / "downloads"
        self.config_path = workdir / "apt.conf"
        self._sources = 0
        for d in (
            self.etc / "apt.conf.d",
            self.etc / "sources.list.d",
            self.etc / "preferences.d",
            self.etc / "trusted.gpg.d",
            self.etc / "auth.conf.d",
            self.keys,
            workdir / "state/lists/partial",
            workdir / "cache/archives/partial",
            workdir / "log",
            self.downloads,
            self.admindir / "info",
            self.admindir / "updates",
            self.admindir / "triggers",
            self.root / "var/log",
        ):
            d.mkdir(parents=True, exist_ok=True)
        (self.etc / "sources.list").touch()
        self.status_file.touch()
        (self.admindir / "available").touch()
        self.config_path.write_text(self._config())
        # dpkg's native arch is compiled in: to install packages of the arch apt is
        # pretending to be, register it as foreign in the private dpkg database
        # (--force-architecture would work too, but warns on every install).
        native = native_dpkg_arch()
        for foreign in self.architectures:
            if foreign != native:
                run(["dpkg", f"--root={self.root}", "--add-architecture", foreign])

    def _config(self) -> str:
        w = self.workdir
        archs = " ".join(f'"{a}";' for a in self.architectures)
        dpkg_opts = [
            f"--root={self.root}",
            f"--log={self.root}/var/log/dpkg.log",
            "--force-script-chrootless",
            "--force-not-root",
        ]
        opts = " ".join(f'"{o}";' for o in dpkg_opts)
        return f"""\
// Generated by tests/support/aptclient.py: everything lives under {w}.
Dir "/";
Dir::Etc "{self.etc}/";
Dir::Etc::main "apt.conf";
Dir::Etc::parts "apt.conf.d";
Dir::Etc::sourcelist "sources.list";
Dir::Etc::sourceparts "sources.list.d";
Dir::Etc::trusted "trusted.gpg";
Dir::Etc::trustedparts "trusted.gpg.d";
Dir::Etc::preferences "preferences";
Dir::Etc::preferencesparts "preferences.d";
Dir::Etc::netrc "auth.conf";
Dir::Etc::netrcparts "auth.conf.d";
Dir::State "{w}/state/";
Dir::State::lists "lists/";
Dir::State::status "{self.status_file}";
Dir::Cache "{w}/cache/";
Dir::Cache::archives "archives/";
Dir::Log "{w}/log/";
APT::Architecture "{self.arch}";
APT::Architectures {{ {archs} }};
APT::Sandbox::User "root";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Get::Assume-Yes "true";
Debug::NoLocking "true";
Acquire::Languages "none";
Acquire::Retries "0";
Acquire::http::Timeout "20";
DPkg::Options {{ {opts} }};
DPkg::Use-Pty "false";
"""

    # -- running apt -------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {"APT_CONFIG": str(self.config_path), "DEBIAN_FRONTEND": "noninteractive"}

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> AptResult:
        """Run an apt tool (e.g. "apt-get", "update") in the sandbox; never raises."""
        proc = run([*args], env=self.env, cwd=cwd, check=False, timeout=timeout, merge_output=True)
        return AptResult(proc.returncode, proc.stdout.decode(errors="replace"))

    def _strict(self, what: str, result: AptResult) -> str:
        if not result.ok:
            raise AptError(what, result)
        return result.output

    # -- sources -----------------------------------------------------------------------

    def add_source(
        self,
        url: str,
        suite: str,
        components: Sequence[str] | str,
        key_armored: str | bytes,
        *,
        name: str | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Path:
        """Add `deb [signed-by=KEY] url suite components`; return the key file's path.

        An armored key (str) is written as `<name>.asc`, a binary one (bytes) as
        `<name>.gpg`: apt tells the two apart by extension only.
        """
        self._sources += 1
        name = name or f"source{self._sources}"
        if isinstance(key_armored, str):
            key_path = self.keys / f"{name}.asc"
            key_path.write_text(key_armored)
        else:
            key_path = self.keys / f"{name}.gpg"
            key_path.write_bytes(key_armored)
        comps = components if isinstance(components, str) else " ".join(components)
        opts = {"signed-by": str(key_path), **(options or {})}
        opt_text = " ".join(f"{k}={v}" for k, v in opts.items())
        self.add_source_line(f"deb [{opt_text}] {url} {suite} {comps}".rstrip(), name=name)
        return key_path

    def add_source_line(self, line: str, *, name: str | None = None) -> Path:
        """Add a raw one-line-style source (e.g. a flat repository or a bad option)."""
        if not name:
            self._sources += 1
            name = f"source{self._sources}"
        path = self.etc / "sources.list.d" / f"{name}.list"
        path.write_text(line + "\n")
        return path

    def clear_sources(self) -> None:
        for path in (self.etc / "sources.list.d").iterdir():
            path.unlink()

    # -- queries -----------------------------------------------------------------------

    def run_update(self) -> AptResult:
        return self.run("apt-get", "update")

    def update(self, *, forbid_ign: bool = False) -> str:
        """`apt-get update`; raises AptError on any W:, E: or Err: line or bad exit.

        `forbid_ign`: also fail on "Ign:" lines, e.g. a missing InRelease that apt
        quietly replaced with Release + Release.gpg.
        """
        result = self.run_update()
        if forbid_ign and re.search(r"^Ign:", result.output, re.MULTILINE):
            raise AptError("apt-get update ignored a file", result)
        return self._strict("apt-get update", result)

    def policy(self, pkg: str) -> str:
        return self._strict(f"apt-cache policy {pkg}", self.run("apt-cache", "policy", pkg))

    def candidate(self, pkg: str) -> str | None:
        """The version `apt-get install pkg` would pick, or None."""
        m = re.search(r"^\s*Candidate:\s*(\S+)", self.policy(pkg), re.MULTILINE)
        return None if m is None or m.group(1) == "(none)" else m.group(1)

    def candidates(self, pkg: str) -> list[str]:
        """Every version apt knows for `pkg` from the sources, highest first."""
        out = self._strict(f"apt-cache madison {pkg}", self.run("apt-cache", "madison", pkg))
        versions: list[str] = []
        for line in out.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) >= 3 and parts[0] == pkg and parts[1] not in versions:
                versions.append(parts[1])
        return versions

    def records(self, pkg: str, version: str | None = None) -> list[dict[str, str]]:
        """The Packages stanzas apt holds for `pkg` (or `pkg=version`)."""
        spec = pkg if version is None else f"{pkg}={version}"
        result = self.run("apt-cache", "show", spec)
        if result.returncode != 0:
            return []
        return parse_stanzas(result.output)

    def download(self, pkg: str, version: str) -> Path:
        """`apt-get download pkg=version`; check the file against apt's SHA256."""
        dest = self.downloads / f"{pkg}={version}".replace("/", "_")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        self._strict(
            f"apt-get download {pkg}={version}",
            self.run("apt-get", "download", f"{pkg}={version}", cwd=dest),
        )
        files = list(dest.iterdir())
        if len(files) != 1:
            raise AssertionError(f"expected one downloaded file, got {files}")
        digest = hashlib.sha256(files[0].read_bytes()).hexdigest()
        expected = {r.get("SHA256") for r in self.records(pkg, version)}
        if digest not in expected:
            raise AssertionError(f"{files[0].name}: sha256 {digest} not in {expected}")
        return files[0]

    # -- the private root ----------------------------------------------------------------

    def install(self, pkgs: Sequence[str]) -> str:
        """Real `apt-get install` of e.g. ["foo=1.0-1", "bar"] into `self.root`."""
        return self._strict(
            f"apt-get install {' '.join(pkgs)}",
            self.run("apt-get", "install", "-y", *pkgs, timeout=300),
        )

    def remove(self, pkgs: Sequence[str]) -> str:
        return self._strict(
            f"apt-get remove {' '.join(pkgs)}", self.run("apt-get", "remove", "-y", *pkgs)
        )

    def installed(self) -> dict[str, str]:
        """Package name -> version for every installed package in the private root."""
        stanzas = parse_stanzas(self.status_file.read_text())
        return {
            s["Package"]: s["Version"]
            for s in stanzas
            if s.get("Status", "").split()[-1:] == ["installed"]
        }

    def installed_version(self, pkg: str) -> str | None:
        return self.installed().get(pkg)

    def seed_status(
        self,
        names: Iterable[str] = ("libc6",),
        *,
        host_status: Path = Path("/var/lib/dpkg/status"),
    ) -> None:
        """Mark host packages installed in the private root, with no relations.

        Why: test packages built against libc (Depends: libc6 (>= 2.34)) must be
        installable into an otherwise empty root. The stanzas are copied from the host
        with their own dependencies dropped and their architecture set to ours.
        """
        wanted = set(names)
        host = {s["Package"]: s for s in parse_stanzas(host_status.read_text())}
        missing = wanted - host.keys()
        if missing:
            raise KeyError(f"not installed on the host: {sorted(missing)}")
        for name in sorted(wanted):
            stanza = dict(host[name])
            arch = stanza.get("Architecture", self.arch)
            self.add_status_entry(
                name,
                stanza["Version"],
                arch=arch if arch == "all" else self.arch,
                fields={k: v for k, v in stanza.items() if k.lower() not in _RELATION_FIELDS},
            )

    def add_status_entry(
        self,
        name: str,
        version: str,
        *,
        arch: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        """Add (or replace) an installed package in the private dpkg status file."""
        arch = arch or self.arch
        stanza: dict[str, str] = {
            "Package": name,
            "Status": "install ok installed",
            "Maintainer": "seeded by the debops-ci test harness",
            "Description": f"{name} (seeded)",
            **(fields or {}),
        }
        stanza.update({"Version": version, "Architecture": arch})
        stanza["Status"] = "install ok installed"
        kept = [s for s in parse_stanzas(self.status_file.read_text()) if s.get("Package") != name]
        kept.append(stanza)
        self.status_file.write_text("\n".join(_format_stanza(s) for s in kept))
        # dpkg warns about a package with no file list: give it an empty one.
        multiarch_same = stanza.get("Multi-Arch") == "same"
        list_name = f"{name}:{arch}.list" if multiarch_same else f"{name}.list"
        (self.admindir / "info" / list_name).touch()


class AptClientFactory(Protocol):
    """The `apt_client_factory` fixture: a new sandbox per call."""

    def __call__(
        self, arch: str = "amd64", architectures: list[str] | None = None
    ) -> AptClient: ...


def _format_stanza(stanza: Mapping[str, str]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in stanza.items())
