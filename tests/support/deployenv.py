"""Everything a deployer end-to-end test needs: an archive, a fleet, deployer.ini.

The archive is published by the real `debops-ci upload` and served over HTTP on
127.0.0.1; the fleet's hosts (support.sshfleet) use it as their only apt source; the
`deployer` command runs as a subprocess in the directory holding deployer.ini, with
the fleet's ssh_config and a private local audit log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from support.cli import CliResult, key_env, run_cli
from support.debs import make_deb
from support.gpgkeys import GpgKey
from support.httpserve import StaticHttpServer
from support.sshfleet import SshFleet

# name -> versions published
PACKAGES: dict[str, tuple[str, ...]] = {
    "hello-svc": ("1.0.0", "1.0.1", "1.0.2"),
    "other-svc": ("2.0.0", "2.0.1"),
}


def publish_archive(workdir: Path, key: GpgKey) -> tuple[Path, list[Path]]:
    """Build the test packages and publish them with `debops-ci upload`."""
    debs: list[Path] = []
    for name, versions in PACKAGES.items():
        for version in versions:
            debs.append(make_deb(workdir / "debs", name, version))
    archive = workdir / "archive"
    result = run_cli(["upload", "--archive", str(archive), *map(str, debs)], key_env(key))
    if result.returncode != 0:
        raise RuntimeError(f"debops-ci upload failed:\n{result.output}")
    return archive, debs


# What a deployer run returns: the same record as a debops-ci run.
DeployerRun = CliResult


class DeployerEnv:
    """A deployer.ini over `stages` of fleet hosts, and a way to run `deployer`."""

    def __init__(self, fleet: SshFleet, workdir: Path) -> None:
        self.fleet = fleet
        self.workdir = workdir
        self.audit_log = workdir / "audit.log"
        workdir.mkdir(parents=True, exist_ok=True)

    def write_ini(
        self,
        stages: dict[str, Sequence[str]],
        *,
        stage_extra: dict[str, str] | None = None,
        env_extra: str = "",
        name: str = "deployer.ini",
    ) -> Path:
        lines = [
            "[environment]",
            "deb_packages = " + " ".join(PACKAGES),
            "badges_path = /var/www/badges",
            "stages = " + " ".join(stages),
            f"ssh_config = {self.fleet.ssh_config}",
            "connect_timeout = 5",
            env_extra,
        ]
        for stage, hosts in stages.items():
            lines += [f"[stage:{stage}]", "hosts = " + " ".join(hosts)]
            lines.append((stage_extra or {}).get(stage, ""))
        path = self.workdir / name
        path.write_text("\n".join(lines) + "\n")
        return path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DEBOPS_", "DEPLOYER_"))}
        env["DEPLOYER_AUDIT_LOG"] = str(self.audit_log)
        env["LC_ALL"] = "C.UTF-8"
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "from debops_ci.cli.deployer import main; main()", *args]

    def run(self, *args: str, timeout: float = 300) -> DeployerRun:
        proc = subprocess.run(
            self.command(*args),
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return DeployerRun(proc.returncode, proc.stdout, proc.stderr)

    @contextmanager
    def background(self, *args: str) -> Iterator[subprocess.Popen[str]]:
        """A deployer running concurrently (own process group); killed if still alive."""
        proc = subprocess.Popen(
            self.command(*args),
            cwd=self.workdir,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            if proc.stdout:
                proc.stdout.close()


def wait_for_line(proc: subprocess.Popen[str], needle: str, seen: list[str]) -> str:
    """Read the process's output until a line containing `needle` (kept in `seen`)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} never printed; output:\n{''.join(seen)}")


def serve_archive(archive: Path) -> StaticHttpServer:
    return StaticHttpServer(archive)
