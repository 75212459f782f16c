"""The deployer over 10 real hosts: status, and a deploy in batches.

Ten hosts of the test harness's fleet (`tests.support.sshfleet`: one OpenSSH sshd per
host on 127.0.0.1, each in its own mount/UTS/PID namespace with overlays of /etc,
/usr, /var, /opt, so each has its own dpkg database and apt state), apt pointed at an
archive published by `debops-ci upload` and served over HTTP on 127.0.0.1. Timed,
as a user runs them (a fresh `deployer` process each time, wall clock):

- `deployer` (the status table, every host asked), median of `--runs`;
- `deployer deploy hello-svc prod 1.0.1 --batch '1 50% 100%' --check true`, from
  nothing installed (3 batches: 1, 4, 5 hosts), then the upgrade to 1.0.2 the same way;
- the same upgrade with `--batch 1 2 3 4 5 6 7 8 9 10`: one host at a time, as the
  original tool went (for comparison).

Usage: python -m bench.deployer [--hosts 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from tests.support.debs import make_deb
from tests.support.gpgkeys import generate_key, gnupg_home
from tests.support.httpserve import StaticHttpServer
from tests.support.sshfleet import SshFleet

PKG = "hello-svc"


def _deployer(workdir: Path, *args: str) -> float:
    """Run `deployer ARGS` in `workdir`; its wall time (raises on a non-zero exit)."""
    env = common.bench_env({"DEPLOYER_AUDIT_LOG": str(workdir / "audit.log")})
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", "from debops_ci.cli.deployer import main; main()", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise common.BenchCommandError(f"deployer {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return wall


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="deployer-bench-", dir="/tmp"))
    names = [f"h{i:02d}" for i in range(1, args.hosts + 1)]
    try:
        with gnupg_home() as home:
            key = generate_key(home, "deployer bench <bench@example.invalid>")
            debs = [make_deb(work / "debs", PKG, v) for v in ("1.0.1", "1.0.2")]
            common.say("publishing the archive with debops-ci upload")
            common.run(
                [sys.executable, "-m", "debops_ci", "upload", "--archive", str(work / "archive")]
                + [str(d) for d in debs],
                env=common.bench_env({"DEB_GPG_KEY": key.private_armored}),
            )
        server = StaticHttpServer(work / "archive")
        fleet = SshFleet(work / "fleet", names)
        try:
            started = time.perf_counter()
            fleet.start(server.url, (work / "archive" / "archive-key.asc").read_text())
            common.say(f"{len(names)} hosts up in {time.perf_counter() - started:.1f} s")
            project = work / "project"
            project.mkdir()
            (project / "deployer.ini").write_text(
                "[environment]\n"
                f"deb_packages = {PKG}\n"
                "badges_path = /var/www/badges\n"
                "stages = prod\n"
                f"ssh_config = {fleet.ssh_config}\n"
                "[stage:prod]\n"
                f"hosts = {' '.join(names)}\n"
            )
            status = [_deployer(project) for _ in range(max(1, args.runs))]
            batches = ["--batch", "1 50% 100%", "--check", "true"]
            install = _deployer(project, "deploy", PKG, "prod", "1.0.1", *batches)
            upgrade = _deployer(project, "deploy", PKG, "prod", "1.0.2", *batches)
            _deployer(project, "rollback", PKG, "prod", *batches)
            serial = " ".join(str(i) for i in range(1, len(names) + 1))
            one_by_one = _deployer(
                project, "deploy", PKG, "prod", "1.0.2", "--batch", serial, "--check", "true"
            )
            after = [_deployer(project) for _ in range(max(1, args.runs))]
        finally:
            fleet.stop()
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = len(names)
    rows = [
        (f"status, {n} hosts (median of {len(status)})", common.secs(common.median(status))),
        (f"status, {n} hosts, after deploys", common.secs(common.median(after))),
        (f"deploy (install) to {n} hosts, batches 1 50% 100%", common.secs(install)),
        (f"deploy (upgrade) to {n} hosts, batches 1 50% 100%", common.secs(upgrade)),
        (f"deploy (upgrade) to {n} hosts, one at a time", common.secs(one_by_one)),
    ]
    print(common.table(["what", "wall"], rows))
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
