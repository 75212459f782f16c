"""The deployer against a real fleet: sshd per host on 127.0.0.1, real apt and dpkg.

One fleet for the module (stages test = t1 t2 t3, prod = p1 p2 p3), reset between
tests by purging the test packages and the deployer's state on every host. The
archive is published by `debops-ci upload` and served over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.deployenv import DeployerEnv, publish_archive, wait_for_line
from support.gpgkeys import GpgKey
from support.httpserve import StaticHttpServer
from support.sshfleet import SshFleet, free_port

pytestmark = pytest.mark.e2e

TEST = ["t1", "t2", "t3"]
PROD = ["p1", "p2", "p3"]
PKG = "hello-svc"
# Fails while /etc/deployer-test-fail exists on the host (reset removes it).
CHECK = "test ! -e /etc/deployer-test-fail"
BLOCK = "while [ ! -e /etc/deployer-test-release ]; do sleep 0.1; done"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, signing_key: GpgKey) -> Iterator[SshFleet]:
    workdir = tmp_path_factory.mktemp("deployer")
    archive, _ = publish_archive(workdir, signing_key)
    server = StaticHttpServer(archive)
    hosts = SshFleet(workdir / "fleet", TEST + PROD)
    try:
        hosts.start(server.url, (archive / "archive-key.asc").read_text())
        yield hosts
    finally:
        hosts.stop()
        server.stop()
    assert hosts.alive() == []


@pytest.fixture
def env(fleet: SshFleet, tmp_path: Path) -> DeployerEnv:
    fleet.reset(["hello-svc", "other-svc"])
    deployer = DeployerEnv(fleet, tmp_path / "project")
    deployer.write_ini(
        {"test": TEST, "prod": PROD},
        stage_extra={"prod": "check_retries = 2\ncheck_interval = 0\n"},
    )
    return deployer


def versions(fleet: SshFleet, hosts: list[str], package: str = PKG) -> list[str | None]:
    return [fleet.installed(h, package) for h in hosts]


def set_versions(fleet: SshFleet, placement: dict[str, str], package: str = PKG) -> None:
    fleet.install_many(placement, package)


def audit_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- status ----------------------------------------------------------------------------


def test_status_every_host_of_two_stages_with_drift(env: DeployerEnv, fleet: SshFleet) -> None:
    hello = {"t1": "1.0.2", "t2": "1.0.2", "t3": "1.0.2", "p1": "1.0.1", "p2": "1.0.1"}
    set_versions(fleet, {**hello, "p3": "1.0.0"})
    other = {"t1": "2.0.0", "t2": "2.0.0", "t3": "2.0.0", "p1": "2.0.1", "p2": "2.0.1"}
    set_versions(fleet, {**other, "p3": "2.0.1"}, "other-svc")

    result = env.run()
    assert result.returncode == 0, result.output
    table = result.stdout.split("\n\n")[0].splitlines()  # the notes follow a blank line
    rows = {line.split()[0]: line for line in table}
    assert rows["package"].split() == ["package", "test", "prod"]
    assert rows["hello-svc"].split() == ["hello-svc", "1.0.2", "►►", "1.0.1", "(2/3)"]
    assert rows["other-svc"].split() == ["other-svc", "2.0.0", "⚠", "2.0.1"]
    assert "hello-svc on prod: p1 1.0.1, p2 1.0.1, p3 1.0.0" in result.stdout
    assert "\033[" not in result.stdout  # no colours when not on a terminal

    as_json = json.loads(env.run("--json").stdout)
    assert as_json["hosts"]["p3"]["packages"][PKG]["version"] == "1.0.0"
    assert as_json["rows"][0]["marks"] == ["►►"]
    assert as_json["rows"][0]["cells"][1]["text"] == "1.0.1 (2/3)"


def test_versions_lists_what_apt_offers_and_marks_installed(
    env: DeployerEnv, fleet: SshFleet
) -> None:
    set_versions(fleet, {"t2": "1.0.1"})
    result = env.run("versions", PKG)
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "hello-svc on test (3 host(s)):"
    assert [line.split()[0] for line in lines[1:]] == ["1.0.2", "*", "1.0.0"]
    assert "1.0.1" in lines[2] and "installed on t2" in lines[2]
    assert "available on 3/3" in lines[1]


# -- deploy ----------------------------------------------------------------------------


def test_deploy_given_version_then_newest_with_records_audit_and_badges(
    env: DeployerEnv, fleet: SshFleet
) -> None:
    first = env.run("deploy", PKG, "test", "1.0.1")
    assert first.returncode == 0, first.output
    assert "t1: (none) → 1.0.1 (install)" in first.stdout
    assert versions(fleet, TEST) == ["1.0.1"] * 3
    assert versions(fleet, PROD) == [None] * 3  # other stage untouched

    newest = env.run("deploy", PKG)  # stage defaults to the first, version to the newest
    assert newest.returncode == 0, newest.output
    assert "plan: deploy hello-svc 1.0.2 on test" in newest.stdout
    assert "t2: 1.0.1 → 1.0.2 (upgrade)" in newest.stdout
    assert versions(fleet, TEST) == ["1.0.2"] * 3

    record = json.loads(fleet.sh("t3", "cat /var/lib/deployer/records/hello-svc.json"))
    assert (record["previous"], record["current"]) == ("1.0.1", "1.0.2")
    host_audit = [
        json.loads(x) for x in fleet.sh("t1", "cat /var/log/deployer/audit.log").split("\n") if x
    ]
    assert [(a["from"], a["to"], a["result"]) for a in host_audit] == [
        (None, "1.0.1", "ok"),
        ("1.0.1", "1.0.2", "ok"),
    ]
    local = audit_lines(env.audit_log)
    assert len(local) == 6 and {a["host"] for a in local} == set(TEST)
    assert all(a["who"] and a["when"] and a["package"] == PKG for a in local)
    badge = fleet.sh("t2", "cat /var/www/badges/hello-svc.svg")
    assert "<svg" in badge and ">1.0.2</text>" in badge and ">hello-svc</text>" in badge

    again = env.run("deploy", PKG, "test", "1.0.2")
    assert again.returncode == 0
    assert "already runs it; nothing to do" in again.stdout


def test_dry_run_and_a_version_that_does_not_exist_touch_nothing(
    env: DeployerEnv, fleet: SshFleet
) -> None:
    set_versions(fleet, {"t1": "1.0.0"})
    dry = env.run("deploy", PKG, "test", "--dry-run")
    assert dry.returncode == 0, dry.output
    assert "t1: 1.0.0 → 1.0.2 (upgrade)" in dry.stdout
    assert "t2: (none) → 1.0.2 (install)" in dry.stdout
    assert "dry run: nothing changed" in dry.stdout

    missing = env.run("deploy", PKG, "test", "9.9.9")
    assert missing.returncode == 1
    err = missing.stderr.strip().splitlines()
    assert len(err) == 1
    assert "hello-svc 9.9.9 is not available on any host of test" in err[0]
    assert "1.0.0 1.0.1 1.0.2" in err[0] and "nothing changed" in err[0]
    assert versions(fleet, TEST) == ["1.0.0", None, None]
    assert not env.audit_log.exists()

    bad = env.run("deploy", "no-such-pkg")
    assert bad.returncode == 2 and "unknown package 'no-such-pkg'" in bad.stderr
    bad_stage = env.run("deploy", PKG, "staging")
    assert bad_stage.returncode == 2 and "unknown stage 'staging'" in bad_stage.stderr


def test_package_known_to_dpkg_but_not_installed(env: DeployerEnv, fleet: SshFleet) -> None:
    # Held, never installed: dpkg-query prints `hello-svc<TAB>`, exit 0 (the original crashed).
    fleet.ssh("t1", "apt-get -qq update && apt-mark hold hello-svc >/dev/null")
    raw = fleet.sh("t1", "dpkg-query --show hello-svc")
    assert raw == "hello-svc\t\n"
    status = env.run()
    assert status.returncode == 0, status.output
    assert "Traceback" not in status.output
    row = next(line for line in status.stdout.splitlines() if line.startswith(PKG))
    assert row.split()[:2] == [PKG, "-"]
    as_json = json.loads(env.run("--json").stdout)
    assert as_json["hosts"]["t1"]["packages"][PKG] == {
        "name": PKG,
        "version": None,
        "state": "hn",
    }
    fleet.ssh("t1", "apt-mark unhold hello-svc >/dev/null")


def test_deploy_refuses_a_downgrade_and_rollback_does_one(
    env: DeployerEnv, fleet: SshFleet
) -> None:
    assert env.run("deploy", PKG, "prod", "1.0.1").returncode == 0
    assert env.run("deploy", PKG, "prod", "1.0.2").returncode == 0
    down = env.run("deploy", PKG, "prod", "1.0.0")
    assert down.returncode == 1
    assert "deploy never downgrades" in down.stderr and "deployer rollback" in down.stderr
    assert versions(fleet, PROD) == ["1.0.2"] * 3

    back = env.run("rollback", PKG, "prod")
    assert back.returncode == 0, back.output
    assert "p1: 1.0.2 → 1.0.1 (downgrade)" in back.stdout
    assert versions(fleet, PROD) == ["1.0.1"] * 3
    # A second rollback undoes the first: the rollback wrote the record too.
    assert env.run("rollback", PKG, "prod").returncode == 0
    assert versions(fleet, PROD) == ["1.0.2"] * 3

    none = env.run("rollback", PKG, "test")
    assert none.returncode == 1 and "no record of a deploy of hello-svc" in none.stderr


def test_promote_installs_what_the_previous_stage_runs(env: DeployerEnv, fleet: SshFleet) -> None:
    assert env.run("deploy", PKG, "test", "1.0.1").returncode == 0
    assert env.run("deploy", PKG, "prod", "1.0.0").returncode == 0
    promoted = env.run("promote", PKG, "prod")
    assert promoted.returncode == 0, promoted.output
    assert "plan: promote hello-svc 1.0.1 on prod" in promoted.stdout
    assert versions(fleet, PROD) == ["1.0.1"] * 3

    set_versions(fleet, {"t2": "1.0.2"})  # test disagrees now
    refused = env.run("promote", PKG, "prod")
    assert refused.returncode == 1
    assert "its hosts disagree" in refused.stderr and "1.0.2 on t2" in refused.stderr
    assert versions(fleet, PROD) == ["1.0.1"] * 3

    first = env.run("promote", PKG, "test")
    assert first.returncode == 2 and "first stage" in first.stderr


# -- batches and health checks -----------------------------------------------------------


def test_failed_health_check_stops_the_rollout(env: DeployerEnv, fleet: SshFleet) -> None:
    assert env.run("deploy", PKG, "prod", "1.0.1").returncode == 0
    fleet.ssh("p2", "touch /etc/deployer-test-fail")
    result = env.run("deploy", PKG, "prod", "--batch", "1 2 100%", "--check", CHECK)
    assert result.returncode == 1
    assert "batches: [p1] [p2] [p3]" in result.stdout
    assert "p1: health check passed" in result.stdout
    err = result.stderr.strip().splitlines()
    assert len(err) == 1
    assert "p2: health check `test ! -e /etc/deployer-test-fail` failed 2 time(s)" in err[0]
    assert "stopped at batch 2 of 3 (1 host(s) not touched)" in err[0]
    assert versions(fleet, PROD) == ["1.0.2", "1.0.2", "1.0.1"]


def test_failed_batch_is_rolled_back_with_the_flag(env: DeployerEnv, fleet: SshFleet) -> None:
    assert env.run("deploy", PKG, "prod", "1.0.1").returncode == 0
    fleet.ssh("p3", "touch /etc/deployer-test-fail")
    env.write_ini(
        {"test": TEST, "prod": PROD},
        stage_extra={"prod": f"batch = 1 100%\ncheck = {CHECK}\ncheck_retries = 1\n"},
    )
    result = env.run("deploy", PKG, "prod", "1.0.2", "--rollback-on-failure")
    assert result.returncode == 1
    assert "p2: 1.0.2 → 1.0.1 rolled back" in result.stdout
    assert "batch 2 rolled back" in result.stderr
    assert versions(fleet, PROD) == ["1.0.2", "1.0.1", "1.0.1"]
    # A rolled-back host's record is the one it had before: a later `rollback` must
    # not return it to the failed 1.0.2.
    record = json.loads(fleet.sh("p2", "cat /var/lib/deployer/records/hello-svc.json"))
    assert record["current"] == "1.0.1"
    results = [(a["host"], a["action"], a["result"]) for a in audit_lines(env.audit_log)]
    assert ("p3", "rollback-on-failure", "ok") in results


def test_a_non_root_login_goes_through_sudo_n(env: DeployerEnv, fleet: SshFleet) -> None:
    # "*": no password, but not locked (sshd without PAM refuses locked accounts).
    fleet.ssh("p1", "id deployer >/dev/null 2>&1 || useradd -m -p '*' deployer")
    fleet.add_user_alias("p1-as-deployer", "p1", "deployer")
    env.write_ini({"test": ["p1-as-deployer"]})
    refused = env.run("deploy", PKG, "test", "1.0.0")
    assert refused.returncode == 1
    assert "p1-as-deployer:" in refused.stderr and "sudo" in refused.stderr
    assert fleet.installed("p1", PKG) is None

    fleet.ssh("p1", "echo 'deployer ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deployer")
    try:
        done = env.run("deploy", PKG, "test", "1.0.0")
        assert done.returncode == 0, done.output
        assert fleet.installed("p1", PKG) == "1.0.0"
        assert "deploy" in fleet.sh("p1", "cat /var/log/deployer/audit.log")
    finally:
        fleet.ssh("p1", "rm -f /etc/sudoers.d/deployer")


# -- failures of hosts -------------------------------------------------------------------


def test_unreachable_and_hung_hosts(env: DeployerEnv, fleet: SshFleet) -> None:
    fleet.add_alias("gone", free_port())  # nothing listens there
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)  # accepts TCP, never speaks ssh
    fleet.add_alias("hung", hung.getsockname()[1])
    try:
        env.write_ini({"test": ["t1", "gone", "hung"], "prod": PROD})
        status = env.run("--timeout", "2")
        assert status.returncode == 3
        assert "gone: unreachable:" in status.stdout and "Connection refused" in status.stdout
        assert "hung: unreachable:" in status.stdout
        row = next(line for line in status.stdout.splitlines() if line.startswith(PKG))
        assert row.split()[1] == "-"
        assert "unreachable: gone hung" in status.stderr

        deploy = env.run("--timeout", "2", "deploy", PKG, "test")
        assert deploy.returncode == 3
        assert deploy.stderr.count("\n") == 1 and "unreachable" in deploy.stderr
        assert fleet.installed("t1", PKG) is None
    finally:
        hung.close()


def test_interrupted_dpkg_is_reported_not_papered_over(env: DeployerEnv, fleet: SshFleet) -> None:
    fleet.ssh(
        "t2",
        "apt-get -qq update && cd /tmp && apt-get -qq download hello-svc=1.0.1 "
        "&& dpkg --unpack hello-svc_1.0.1_amd64.deb >/dev/null && rm hello-svc_1.0.1_amd64.deb",
    )
    result = env.run("deploy", PKG, "test")
    assert result.returncode == 1
    assert "t2: dpkg was interrupted" in result.stderr and "dpkg --audit" in result.stderr
    assert versions(fleet, ["t1", "t3"]) == [None, None]
    fleet.ssh("t2", "dpkg --configure -a >/dev/null")
    assert env.run("deploy", PKG, "test").returncode == 0
    assert versions(fleet, TEST) == ["1.0.2"] * 3


# -- concurrency -----------------------------------------------------------------------


def test_two_deployers_at_once(env: DeployerEnv, fleet: SshFleet) -> None:
    seen: list[str] = []
    with env.background("deploy", PKG, "test", "1.0.1", "--check", BLOCK) as first:
        wait_for_line(first, "batch 1/1", seen)
        refused = env.run("deploy", PKG, "test", "--lock-timeout", "0")
        assert refused.returncode == 4, refused.output
        assert "another deploy holds the lock" in refused.stderr
        assert "deploy hello-svc since" in refused.stderr  # names who holds it
        with env.background("deploy", PKG, "test", "--lock-timeout", "120") as second:
            waited: list[str] = []
            wait_for_line(second, "waiting up to 120 s for the deploy lock", waited)
            fleet.each(TEST, "touch /etc/deployer-test-release")
            assert first.wait(timeout=120) == 0, "".join(seen)
            assert second.wait(timeout=120) == 0, "".join(waited)
    assert versions(fleet, TEST) == ["1.0.2"] * 3


def test_deployer_killed_mid_rollout_blocks_nobody(env: DeployerEnv, fleet: SshFleet) -> None:
    seen: list[str] = []
    with env.background("deploy", PKG, "test", "1.0.1", "--batch", "1 100%", "--check", BLOCK) as a:
        wait_for_line(a, "t1: (none) → 1.0.1 ok", seen)
        a.kill()  # SIGKILL: no cleanup of any kind
        a.wait(timeout=30)
    assert versions(fleet, TEST) == ["1.0.1", None, None]
    rerun = env.run("deploy", PKG, "test", "1.0.1", "--lock-timeout", "0", "--check", "true")
    assert rerun.returncode == 0, rerun.output
    assert "t1: 1.0.1 (already there)" in rerun.stdout
    assert versions(fleet, TEST) == ["1.0.1"] * 3
    fleet.each(TEST, "touch /etc/deployer-test-release")  # end the orphaned check


def test_refresh_badges_writes_escaped_svg_on_every_host(env: DeployerEnv, fleet: SshFleet) -> None:
    set_versions(fleet, {"p1": "1.0.1"})
    result = env.run("refresh_badges")
    assert result.returncode == 0, result.output
    assert "p1: 2 badge(s) in /var/www/badges" in result.stdout
    for host in TEST + PROD:
        listing = fleet.sh(host, "ls /var/www/badges").split()
        assert listing == ["hello-svc.svg", "other-svc.svg"]
    assert ">1.0.1</text>" in fleet.sh("p1", "cat /var/www/badges/hello-svc.svg")
    assert ">not installed</text>" in fleet.sh("p2", "cat /var/www/badges/hello-svc.svg")
