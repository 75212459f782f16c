"""The deployer's pure parts: deployer.ini, batches, version order, table, plan, badges."""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.etree import ElementTree

import pytest

from debops_ci.cli.deployer import main
from debops_ci.deploy import DeployConfigError, find_config, parse_config
from debops_ci.deploy.audit import AuditEntry, append_local
from debops_ci.deploy.badges import badge_svg
from debops_ci.deploy.batches import parse_batch_spec, split_batches
from debops_ci.deploy.hosts import HostPackage, check_name, check_version
from debops_ci.deploy.lock import lock_script
from debops_ci.deploy.queries import HostVersions, VersionsReport
from debops_ci.deploy.render import render_plan, render_status, render_versions, to_json
from debops_ci.deploy.rollout import HostPlan, Plan, _change
from debops_ci.deploy.ssh import as_root
from debops_ci.deploy.status import AHEAD, BEHIND, Cell, HostStatus, StatusReport, _cell, _mark

# The original tool's file, as the ooni/backend repository had it (2023).
ORIGINAL_INI = """\
[environment]
deb_packages = ooni-api fastpath analysis detector ooni-stun
badges_path = /var/www/package_badges
stages = test hel prod

[stage:test]
hosts = ams-pg-test.ooni.org

[stage:hel]
hosts = backend-hel.ooni.org

[stage:prod]
hosts = backend-fsn.ooni.org

[stage:old]
hosts = retired.ooni.org
"""


# -- deployer.ini ----------------------------------------------------------------------


def test_the_original_ini_parses_with_defaults_for_every_new_key() -> None:
    config = parse_config(ORIGINAL_INI, Path("/srv/deploy/deployer.ini"))
    assert config.packages == ("ooni-api", "fastpath", "analysis", "detector", "ooni-stun")
    assert config.badges_path == "/var/www/package_badges"
    assert [s.name for s in config.stages] == ["test", "hel", "prod"]  # [stage:old] ignored
    assert config.stage(None).hosts == ("ams-pg-test.ooni.org",)
    assert config.stage("prod").batch == ("100%",)
    assert config.stage("prod").check is None
    assert config.ssh_config is None
    assert config.previous_stage("hel") == config.stage("test")
    assert config.previous_stage("test") is None
    assert config.all_hosts()[0] == "ams-pg-test.ooni.org"


def test_new_keys_and_relative_ssh_config(tmp_path: Path) -> None:
    text = ORIGINAL_INI.replace(
        "stages = test hel prod",
        "stages = test hel prod\nssh_config = ssh/config\nconnect_timeout = 3\nlock_timeout = 0",
    ).replace(
        "hosts = backend-fsn.ooni.org",
        "hosts = a b c d\nbatch = 1 50% 100%\ncheck = systemctl is-active ooni-api\n"
        "check_retries = 5\ncheck_interval = 1.5",
    )
    config = parse_config(text, tmp_path / "deployer.ini")
    assert config.ssh_config == tmp_path / "ssh" / "config"
    assert config.connect_timeout == 3 and config.lock_timeout == 0
    prod = config.stage("prod")
    assert prod.batch == ("1", "50%", "100%")
    assert prod.check == "systemctl is-active ooni-api"
    assert (prod.check_retries, prod.check_interval) == (5, 1.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[stage:x]\nhosts = a\n", "no [environment] section"),
        ("[environment]\nstages = a\n[stage:a]\nhosts = h\n", "deb_packages lists no package"),
        ("[environment]\ndeb_packages = p\n", "stages lists no stage"),
        ("[environment]\ndeb_packages = p\nstages = a\n", "has no [stage:a]"),
        ("[environment]\ndeb_packages = p\nstages = a\n[stage:a]\n", "hosts lists no host"),
        ("[environment]\ndeb_packages = p\nstages = a a\n[stage:a]\nhosts = h\n", "twice"),
        ("[environment]\ndeb_packages = p\nstages = a\n[stage:a]\nhosts = h\nbatch = 0\n", "0"),
        (
            "[environment]\ndeb_packages = p\nstages = a\nlock_timeout = soon\n"
            "[stage:a]\nhosts = h\n",
            "lock_timeout = 'soon' is not a number",
        ),
        ("not an ini", "not a valid ini file"),
    ],
)
def test_bad_ini_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(DeployConfigError, match=message.replace("[", r"\[")) as info:
        parse_config(text, Path("deployer.ini"))
    assert "\n" not in str(info.value)


def test_config_is_found_walking_up_and_dotted_name_too(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (tmp_path / ".deployer.ini").write_text(ORIGINAL_INI)
    assert find_config(deep) == tmp_path / ".deployer.ini"
    (tmp_path / "a" / "deployer.ini").write_text(ORIGINAL_INI)
    assert find_config(deep) == tmp_path / "a" / "deployer.ini"


def test_no_config_exits_2_with_the_original_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("deployer: error: Configuration file deployer.ini not found")
    assert err.count("\n") == 1


def test_unknown_package_and_stage_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "deployer.ini").write_text(ORIGINAL_INI)
    monkeypatch.chdir(tmp_path)
    for argv, text in [
        (["deploy", "nginx"], "unknown package 'nginx'"),
        (["deploy", "fastpath", "staging"], "unknown stage 'staging'"),
        (["deploy", "fastpath", "test", "not a version"], "is not a Debian version"),
        (["deploy", "fastpath", "--batch", "half"], "'half' is not a host count"),
        (["promote", "fastpath", "test"], "first stage"),
    ]:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2, argv
        assert text in capsys.readouterr().err


# -- batches ---------------------------------------------------------------------------


def test_batch_sizes() -> None:
    hosts = [f"h{i}" for i in range(1, 11)]
    assert [len(b) for b in split_batches(hosts, parse_batch_spec("1 50% 100%"))] == [1, 4, 5]
    assert [len(b) for b in split_batches(hosts, ("100%",))] == [10]
    assert [len(b) for b in split_batches(hosts, ("1", "2"))] == [1, 1, 8]  # rest at the end
    assert [len(b) for b in split_batches(hosts[:3], ("1", "50%", "100%"))] == [1, 1, 1]
    assert [len(b) for b in split_batches(hosts[:1], ("1", "50%", "100%"))] == [1]
    assert split_batches([], ("1",)) == []
    assert split_batches(hosts, ("3", "2", "100%"))[0] == ["h1", "h2", "h3"]  # never backwards
    with pytest.raises(DeployConfigError):
        parse_batch_spec("150%")
    with pytest.raises(DeployConfigError):
        parse_batch_spec("")


# -- versions and the table ------------------------------------------------------------


def test_changes_follow_debian_version_order() -> None:
    assert _change("1.0.9", "1.0.10") == "upgrade"  # not string order
    assert _change("1.0.81", "1.0.81~pr751-43") == "downgrade"  # ~ sorts before
    assert _change("1.0.80~pr752-51", "1.0.81~pr751-43") == "upgrade"
    assert _change("1:0.1", "2.0") == "downgrade"  # epoch wins
    assert _change(None, "1.0") == "install"
    assert _change("1.0", None) == "remove"
    assert _change("1.0", "1.0") == "none"


def _host(name: str, version: str | None, pkg: str = "api") -> HostStatus:
    return HostStatus(name, {pkg: HostPackage(pkg, version, "ii" if version else "")})


def _report(placement: dict[str, dict[str, str | None]]) -> StatusReport:
    """{stage: {host: version}} for package "api" -> a StatusReport as query_status builds."""
    from debops_ci.deploy.status import StatusRow

    hosts = {h: _host(h, v) for stage in placement.values() for h, v in stage.items()}
    cells = tuple(_cell(s, (hosts[h] for h in hs), "api") for s, hs in placement.items())
    marks = tuple(_mark(cells[i], cells[i + 1]) for i in range(len(cells) - 1))
    return StatusReport(
        stages=tuple(placement),
        rows=(StatusRow("api", cells, marks),),
        hosts=hosts,
        stage_hosts={s: tuple(hs) for s, hs in placement.items()},
    )


def test_table_marks_ahead_and_behind_and_disagreement() -> None:
    report = _report(
        {
            "test": {"t1": "1.0.10"},
            "hel": {"h1": "1.0.9", "h2": "1.0.9", "h3": "1.0.8"},
            "prod": {"p1": "1.0.10"},
        }
    )
    text = render_status(report)
    lines = text.splitlines()
    assert lines[0].split() == ["package", "test", "hel", "prod"]
    assert lines[1].split() == ["api", "1.0.10", AHEAD, "1.0.9", "(2/3)", BEHIND, "1.0.10"]
    assert "api on hel: h1 1.0.9, h2 1.0.9, h3 1.0.8" in text
    assert "\033[" not in text
    coloured = render_status(report, color=True)
    assert f"\033[32m{AHEAD}" in coloured and f"\033[31m{BEHIND}" in coloured
    # the columns line up: the second stage starts at the same offset in both lines
    assert lines[0].index("hel") == lines[1].index("1.0.9")


def test_unreachable_and_missing_cells() -> None:
    report = _report({"test": {"t1": None}, "prod": {"p1": "2.0"}})
    down = HostStatus("p2", {}, "ssh: connect to host 127.0.0.1 port 9: Connection refused")
    hosts = {**report.hosts, "p2": down}
    cell = _cell("prod", [hosts["p1"], down], "api")
    assert cell.text() == "2.0 (1/2)" and not cell.agreed
    all_down = Cell("prod", 2, {}, 2, 0)
    assert all_down.text() == "unreachable"
    assert report.rows[0].cells[0].text() == "-"
    assert report.rows[0].marks == (BEHIND,)
    rendered = render_status(
        StatusReport(report.stages, report.rows, hosts, {"test": ("t1",), "prod": ("p1", "p2")})
    )
    assert "p2: unreachable: ssh: connect to host 127.0.0.1 port 9: Connection refused" in rendered
    data = json.loads(to_json(report))
    assert data["rows"][0]["cells"][1]["newest"] == "2.0"


def test_plan_rendering() -> None:
    plan = Plan(
        action="deploy",
        package="api",
        stage="prod",
        version="1.0.2",
        hosts=(
            HostPlan("p1", "1.0.1", "1.0.2", "upgrade"),
            HostPlan("p2", None, "1.0.2", "install"),
            HostPlan("p3", "1.0.2", "1.0.2", "none"),
        ),
        batches=(("p1",), ("p2",)),
        check="curl -fsS localhost/health",
    )
    assert render_plan(plan).splitlines() == [
        "plan: deploy api 1.0.2 on prod",
        "  p1: 1.0.1 → 1.0.2 (upgrade)",
        "  p2: (none) → 1.0.2 (install)",
        "  p3: 1.0.2 (already there)",
        "  batches: [p1] [p2]; check: curl -fsS localhost/health",
    ]
    assert [h.host for h in plan.changes] == ["p1", "p2"]


def test_versions_rendering_newest_first_by_debian_order() -> None:
    report = VersionsReport(
        "api",
        "test",
        (
            HostVersions("t1", "1.0.9", ("1.0.10", "1.0.9", "1.0.10~pr3-1")),
            HostVersions("t2", None, ("1.0.10", "1.0.9")),
        ),
    )
    assert report.versions() == ["1.0.10", "1.0.10~pr3-1", "1.0.9"]
    lines = render_versions(report).splitlines()
    assert lines[1].split()[:4] == ["1.0.10", "available", "on", "2/2"]
    assert lines[3].split()[:2] == ["*", "1.0.9"] and lines[3].endswith("installed on t1")


# -- badges, audit, scripts ------------------------------------------------------------


def test_badge_is_valid_svg_with_escaped_text() -> None:
    svg = badge_svg("a<b>&c", "1.0~pr1-2")
    root = ElementTree.fromstring(svg)  # well-formed XML
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["a<b>&c", "a<b>&c", "1.0~pr1-2", "1.0~pr1-2"]
    assert "#97CA00" in svg and "#555" in svg
    assert "not installed" in badge_svg("x", None)
    assert int(root.attrib["width"]) > 40


def test_local_audit_is_json_lines_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit.log"
    entry = AuditEntry(
        "me@laptop", "2026-01-01T00:00:00Z", "deploy", "prod", "p1", "api", None, "1.0", "ok"
    )
    append_local(path, entry)
    append_local(path, entry)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["from"] is None and lines[0]["to"] == "1.0"
    assert path.stat().st_mode & 0o777 == 0o600


def test_names_and_versions_are_validated_before_any_script() -> None:
    assert check_name("hello-svc") == "hello-svc"
    assert check_version("1:2.0~pr7-3") == "1:2.0~pr7-3"
    for bad in ["x; rm -rf /", "Hello", "-rf"]:
        with pytest.raises(DeployConfigError):
            check_name(bad)
    for bad in ["1.0 && reboot", "$(id)", "~1"]:
        with pytest.raises(DeployConfigError):
            check_version(bad)


def test_scripts_run_as_root_and_the_lock_waits_only_when_asked() -> None:
    wrapped = as_root("echo 'hi'")
    assert "sudo -n sh -c" in wrapped and '"$(id -u)" -eq 0' in wrapped
    refuse, wait = lock_script("me", 0), lock_script("me", 30)
    assert refuse.count("flock -n 9") == 2 and "flock -w" not in refuse
    assert "flock -w 30 9" in wait
    assert "printf '%s\\n' me >" in wait  # who holds it, for the next one to read


def test_socket_dirs_of_dead_deployers_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import tempfile

    from debops_ci.deploy.ssh import SshTransport

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"deployer-ssh-{dead.pid}-abc"
    alive = tmp_path / f"deployer-ssh-{os.getpid()}-def"
    stale.mkdir()
    alive.mkdir()
    transport = SshTransport()
    try:
        assert not stale.exists() and alive.exists()
        own = [p for p in tmp_path.iterdir() if p not in (alive,)]
        assert len(own) == 1 and (own[0].stat().st_mode & 0o777) == 0o700
    finally:
        transport.close()
    assert sorted(tmp_path.iterdir()) == [alive]


@pytest.mark.parametrize(
    ("abbrev", "version", "shown", "broken"),
    [
        ("ii ", "1.0", "1.0", False),
        ("hi ", "1.0", "1.0", False),  # held, installed
        ("hn ", "", None, False),  # held, never installed: `name<TAB>` in the original
        ("un ", "", None, False),
        ("rc ", "1.0", None, False),  # removed, config files left
        ("iU ", "1.0", "1.0", True),  # unpacked, not configured
        ("iF ", "1.0", "1.0", True),  # half-configured
        ("iH ", "1.0", "1.0", True),
        ("", "", None, False),  # dpkg never heard of it
    ],
)
def test_dpkg_states(abbrev: str, version: str, shown: str | None, broken: bool) -> None:
    from debops_ci.deploy.hosts import _from_dpkg

    package = _from_dpkg("api", abbrev, version)
    assert (package.version, package.broken) == (shown, broken)


def test_help_needs_no_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for argv in (["--help"], ["deploy", "--help"], ["--version"]):
        try:
            main(argv)  # click returns after --help here (standalone_mode=False)
        except SystemExit as exc:
            assert exc.code == 0, argv
    out = capsys.readouterr().out
    assert "PACKAGE [STAGE] [VERSION]" in out and "--rollback-on-failure" in out
