"""One precedence: flag > environment > config file (event table first) > default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from debops_ci.errors import UsageError
from debops_ci.options import Resolver, find_config, load_config_file, load_resolver


def test_flag_beats_env_beats_config_beats_default() -> None:
    config = {"distro": "from-config", "origin": "cfg-origin", "component": "contrib"}
    env = {"DEBOPS_DISTRO": "from-env", "DEBOPS_ORIGIN": "env-origin"}
    res = Resolver({"distro": "from-flag"}, env, config)
    assert res.get("distro") == "from-flag"
    assert res.get("origin") == "env-origin"
    assert res.get("component") == "contrib"
    assert res.get("arch") == "amd64"


def test_event_table_overrides_top_level_for_that_event_only() -> None:
    config = {"archive": "s3://main", "pull-request": {"archive": "s3://pr", "distro": "pr"}}
    res = Resolver({}, {}, config)
    assert res.with_event("pull-request").get("archive") == "s3://pr"
    assert res.with_event("pull-request").get("distro") == "pr"
    assert res.with_event("mainline").get("archive") == "s3://main"
    assert res.get("distro") == "unstable"
    # ...and the environment still beats the event table.
    env_res = Resolver({}, {"DEBOPS_ARCHIVE": "/tmp/x"}, config, event="pull-request")
    assert env_res.get("archive") == "/tmp/x"


def test_types_are_checked() -> None:
    assert Resolver({}, {"DEBOPS_BRANCH_BUILDS": "yes"}).get("branch-builds") is True
    assert Resolver({}, {}, {"valid-days": 30}).get("valid-days") == 30
    with pytest.raises(UsageError, match="number"):
        Resolver({}, {"DEBOPS_LOCK_TIMEOUT": "soon"}).get("lock-timeout")
    with pytest.raises(UsageError, match="true or false"):
        Resolver({}, {"DEBOPS_BRANCH_BUILDS": "maybe"}).get("branch-builds")


def test_config_found_walking_up_and_pyproject_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.debops-ci]\ndistro = "py"\n')
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    found = find_config(nested)
    assert found is not None and found[1] == {"distro": "py"}
    (tmp_path / "a" / "debops-ci.toml").write_text('distro = "nearer"\n')
    found = find_config(nested)
    assert found is not None and found[1] == {"distro": "nearer"}


def test_pyproject_without_our_table_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_config(tmp_path) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('distro = "x"\nbogus = 1\n', "unknown setting 'bogus'"),
        ("distro = [unclosed\n", "not valid TOML"),
        ('[pull-request]\nnope = "x"\n', "unknown setting 'nope' in [pull-request]"),
        ('pull-request = "x"\n', "must be a table"),
    ],
)
def test_bad_config_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "debops-ci.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=re.escape(message)):
        load_config_file(path)


def test_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_resolver({}, {}, str(tmp_path / "missing.toml"))
