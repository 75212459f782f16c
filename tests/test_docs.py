"""Docs generated from the code, and docs whose examples are code: both checked here."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from support.debs import make_deb
from support.gpgkeys import GpgKey

ROOT = Path(__file__).resolve().parent.parent


def test_command_reference_matches_the_cli() -> None:
    from debops_ci.cli.reference import render_reference

    expected = render_reference()
    current = (ROOT / "docs" / "commands.md").read_text()
    assert current == expected, (
        "docs/commands.md drifted from the CLI: run "
        "`python -m debops_ci.cli.reference > docs/commands.md`"
    )


def test_api_examples_run(
    tmp_path: Path, signing_key: GpgKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    deb = make_deb(tmp_path / "debs", "hello", "1.0-1")
    namespace: dict[str, object] = {"key": signing_key, "deb": deb}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    assert (tmp_path / "archive" / "dists" / "unstable" / "InRelease").is_file()


def test_public_api_is_declared_and_importable() -> None:
    import debops_ci

    for name in debops_ci.__all__:
        assert getattr(debops_ci, name) is not None, name
    assert sorted(debops_ci.__all__) == debops_ci.__all__


def test_version_does_not_import_boto3_or_the_commands() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from debops_ci.cli.main import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('boto3', 'debops_ci'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    assert "boto3" not in out
    assert "debops_ci.archive" not in out, out
