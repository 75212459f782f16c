"""The `debian/` packaging agrees with the project (fast; the build itself is e2e).

`test_debian_package.py` builds and installs the .deb; these catch, in the quick tier,
what would only break there: a version bumped in one place only, a dependency added to
pyproject.toml but not pinned for the package, a launcher that lost its exec bit.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from debops_ci import __version__
from debops_ci.debian.changelog import read_top_entry

ROOT = Path(__file__).resolve().parents[1]
DEBIAN = ROOT / "debian"
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+) --hash=sha256:[0-9a-f]{64}$")


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (DEBIAN / "requirements.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        assert match, f"not a hash-pinned requirement: {line!r}"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_changelog_version_is_the_project_version() -> None:
    entry = read_top_entry(DEBIAN / "changelog")
    assert entry.source == "debops-ci"
    upstream = entry.version.rsplit("-", 1)[0]
    assert upstream == __version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (pyproject.toml) is not pinned in debian/requirements.txt"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {spec}"


def test_boto3_pin_has_conditional_writes() -> None:
    # 1.35.69: the first release whose PutObject takes IfMatch; Debian 12 has 1.26.
    major, minor, patch = (int(p) for p in _pins()["boto3"].split(".")[:3])
    assert (major, minor, patch) >= (1, 35, 69)


def test_launchers_and_maintainer_scripts_are_executable() -> None:
    for path in [
        *(DEBIAN / "bin").iterdir(),
        DEBIAN / "rules",
        DEBIAN / "runtime.d" / "debops-ci.rtupdate",
    ]:
        assert os.access(path, os.X_OK), f"{path} must be executable"
    for tool, module in [
        ("debops-ci", "debops_ci.cli.main"),
        ("deployer", "debops_ci.cli.deployer"),
        ("build-docs", "debops_ci.cli.build_docs"),
    ]:
        text = (DEBIAN / "bin" / tool).read_text()
        assert text.startswith("#!/usr/bin/python3 -I\n")
        assert 'sys.path.insert(0, "/usr/lib/debops-ci")' in text
        assert f"from {module} import main" in text
