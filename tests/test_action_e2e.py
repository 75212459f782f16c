"""The composite action, run the way the GitHub runner runs it, into a real SeaweedFS.

`run_action` reads `action.yml` with PyYAML, fills in the inputs' defaults, puts
`${{ inputs.* }}` and `${{ github.* }}` into each step's `env` the way the runner does,
and runs each step's `run:` with `bash --noprofile --norc -eo pipefail` (GitHub's bash)
under a pull_request environment: GITHUB_* variables, an event payload file,
GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_ACTION_PATH (this repository) and RUNNER_TEMP.
The install step runs this repository's setup.sh for real (quick when all is installed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.aptclient import AptClientFactory
from support.cli import key_env
from support.gpgkeys import GpgKey
from support.seaweed import S3Bucket
from test_ci_fixtures import clone, commit, copy_examples, git, init_repo

from debops_ci.archive.webpage import archive_slug

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
VERSION = "1.0.0-1~pr42.7"  # PR 42, run 7; the changelog version has a revision: `.`
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class ActionRun:
    returncode: int
    stdout: str
    outputs: dict[str, str]
    summary: str


def _github_outputs(text: str) -> dict[str, str]:
    """Read a GITHUB_OUTPUT file: `name=value` lines and `name<<DELIM` blocks."""
    found: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            found[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            found[name] = value
    return found


def run_action(
    inputs: dict[str, str], env: dict[str, str], workspace: Path, tmp: Path
) -> ActionRun:
    action: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text())
    values = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    assert set(inputs) <= set(values), f"not inputs of the action: {set(inputs) - set(values)}"
    values.update(inputs)
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir()
    summary = tmp / "step-summary.md"
    summary.touch()
    github = {"action_path": str(ROOT), "workspace": str(workspace)}
    step_outputs: dict[str, dict[str, str]] = {}

    def evaluate(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            context, _, name = m.group(1).partition(".")
            if context == "inputs":
                return values[name]
            if context == "github":
                return github[name]
            if context == "steps":
                step_id, _, output = name.partition(".outputs.")
                return step_outputs.get(step_id, {}).get(output, "")
            raise AssertionError(f"the test runner cannot evaluate ${{{{ {m.group(1)} }}}}")

        return _EXPRESSION.sub(one, text)

    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEB_GPG", "DEBOPS_"))}
    stdout = ""
    for index, step in enumerate(action["runs"]["steps"]):
        assert "if" not in step, "the test runner does not evaluate if:"
        output_file = runner_temp / f"output-{index}"
        output_file.touch()
        step_env = {
            **base,
            **env,
            "GITHUB_ACTION_PATH": str(ROOT),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_OUTPUT": str(output_file),
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(runner_temp),
            **{k: evaluate(str(v)) for k, v in step.get("env", {}).items()},
        }
        script = runner_temp / f"step-{index}.sh"
        script.write_text(evaluate(step["run"]))
        assert step["shell"] == "bash"
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace,
            env=step_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
            check=False,
        )
        stdout += proc.stdout
        if "id" in step:
            step_outputs[step["id"]] = _github_outputs(output_file.read_text())
        if proc.returncode != 0:  # the runner stops the action at a failed step
            return ActionRun(proc.returncode, stdout, {}, summary.read_text())
    outputs = {name: evaluate(spec["value"]) for name, spec in action["outputs"].items()}
    return ActionRun(0, stdout, outputs, summary.read_text())


@pytest.fixture
def pull_request_42(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A clone whose feature branch touches hello and hello-tools; a PR 42 run 7 env."""
    origin = init_repo(tmp_path / "origin")
    copy_examples(origin / "examples")
    commit(origin, "initial")
    work = clone(origin, tmp_path / "work")
    git(work, "checkout", "-q", "-b", "feature")
    hello_c = work / "examples" / "hello" / "hello.c"
    hello_c.write_text(hello_c.read_text().replace("Hello", "Hello again"))
    (work / "examples" / "tools" / "hello-tools" / "NOTES").write_text("changed\n")
    head = commit(work, "touch hello and hello-tools")
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {
                "action": "synchronize",
                "number": 42,
                "pull_request": {
                    "number": 42,
                    "head": {"ref": "feature", "sha": head},
                    "base": {"ref": "main"},
                },
            }
        )
    )
    home = tmp_path / "home"  # run.sh may write a git config: never the real one
    home.mkdir()
    env = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REF": "refs/pull/42/merge",
        "GITHUB_HEAD_REF": "feature",
        "GITHUB_BASE_REF": "main",
        "GITHUB_RUN_NUMBER": "7",
        "GITHUB_SHA": head,
        "GITHUB_REPOSITORY": "acme/backend",
        "HOME": str(home),
        "DEBOPS_INSTALL_BUILD_DEPS": "false",  # the examples' build deps are installed
    }
    return work, env


def _objects(bucket: S3Bucket) -> list[str]:
    listed = bucket.client().list_objects_v2(Bucket=bucket.bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def _s3_env(bucket: S3Bucket) -> dict[str, str]:
    # The endpoint comes from the action's endpoint-url input, not the environment.
    return {k: v for k, v in bucket.env().items() if not k.startswith("AWS_ENDPOINT_URL")}


def test_the_action_publishes_a_pull_request_and_apt_installs_it(
    pull_request_42: tuple[Path, dict[str, str]],
    tmp_path: Path,
    signing_key: GpgKey,
    s3_bucket: S3Bucket,
    apt_client_factory: AptClientFactory,
) -> None:
    work, env = pull_request_42
    run = run_action(
        {
            "bucket-name": s3_bucket.bucket,
            "endpoint-url": s3_bucket.endpoint_url,
            "args": f"--show-commands --label 'Acme PR builds' --build-dir {tmp_path / 'build'}",
        },
        {**env, **_s3_env(s3_bucket), **key_env(signing_key)},
        work,
        tmp_path,
    )
    assert run.returncode == 0, run.stdout
    assert "::group::Install debops-ci and its Debian tools (setup.sh)" in run.stdout
    assert "::endgroup::" in run.stdout
    assert "PUT    dists/unstable/InRelease" in run.stdout  # the args input got through
    release = s3_bucket.client().get_object(Bucket=s3_bucket.bucket, Key="dists/unstable/Release")
    assert "Label: Acme PR builds" in release["Body"].read().decode()  # quoted, one word
    assert s3_bucket.env()["AWS_SECRET_ACCESS_KEY"] not in run.stdout

    outputs = run.outputs
    assert outputs["status"] == "published"
    packages = json.loads(outputs["packages"])
    assert {(p["package"], p["version"], p["architecture"]) for p in packages} == {
        ("hello", VERSION, "amd64"),
        ("hello-dbgsym", VERSION, "amd64"),
        ("hello-tools", VERSION, "all"),
    }
    assert outputs["suite"] == "unstable"
    assert outputs["archive-url"] == s3_bucket.http_url
    assert outputs["key-url"] == f"{s3_bucket.http_url}/archive-key.asc"
    keyring = f"/etc/apt/keyrings/{archive_slug(s3_bucket.http_url)}.asc"
    assert outputs["deb-line"] == (f"deb [signed-by={keyring}] {s3_bucket.http_url} unstable main")
    assert outputs["apt-install"] == f"apt install hello-tools={VERSION} hello={VERSION}"
    assert json.loads(outputs["debs"]) == []

    assert "### debops-ci: pull request #42 (build 7)" in run.summary
    assert f"| `hello-tools` | `{VERSION}` | all |" in run.summary
    assert f"apt install hello-tools={VERSION} hello={VERSION}" in run.summary
    assert "#### Use this archive" in run.summary
    assert outputs["deb-line"] in run.summary

    # apt, given only the outputs: the key from key-url, the suite at archive-url.
    with urllib.request.urlopen(outputs["key-url"], timeout=30) as response:
        key = response.read().decode()
    apt = apt_client_factory("amd64")
    apt.seed_status(["libc6"])  # the C example links against libc
    apt.add_source(outputs["archive-url"], outputs["suite"], "main", key)
    apt.update()
    wanted = {p["package"]: p["version"] for p in packages if not p["package"].endswith("-dbgsym")}
    apt.install([f"{name}={version}" for name, version in wanted.items()])
    for name, version in wanted.items():
        assert apt.installed_version(name) == version


def test_an_empty_key_fails_clearly_and_writes_nothing(
    pull_request_42: tuple[Path, dict[str, str]], tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    work, env = pull_request_42
    # What GitHub gives a pull request from a fork: the secrets are empty strings.
    no_secrets = {**env, **_s3_env(s3_bucket), "DEB_GPG_KEY": "", "DEB_GPG_KEY_BASE64": ""}
    run = run_action(
        {"bucket-name": s3_bucket.bucket, "endpoint-url": s3_bucket.endpoint_url},
        no_secrets,
        work,
        tmp_path,
    )
    assert run.returncode == 2, run.stdout
    errors = [line for line in run.stdout.splitlines() if line.startswith("::error::")]
    assert errors == [
        "::error::debops-ci ci signs the archive but DEB_GPG_KEY and DEB_GPG_KEY_BASE64 are "
        "empty (a pull request from a fork gets no secrets): set the secret, or use "
        "missing-key: build to build without publishing"
    ]
    assert "dpkg-buildpackage" not in run.stdout  # refused before building anything
    assert "**Refused:**" in run.summary
    assert _objects(s3_bucket) == []
    assert git(work, "status", "--porcelain") == ""


def test_missing_key_build_builds_the_fork_pull_request_without_publishing(
    pull_request_42: tuple[Path, dict[str, str]], tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    work, env = pull_request_42
    run = run_action(
        {
            "bucket-name": s3_bucket.bucket,
            "endpoint-url": s3_bucket.endpoint_url,
            "missing-key": "build",
            "args": f"--build-dir {tmp_path / 'build'}",
        },
        {**env, **_s3_env(s3_bucket), "DEB_GPG_KEY": ""},
        work,
        tmp_path,
    )
    assert run.returncode == 0, run.stdout
    assert "::warning::no signing key" in run.stdout
    assert run.outputs["status"] == "built"
    debs = json.loads(run.outputs["debs"])
    assert sorted(Path(d).name for d in debs) == [
        f"hello-dbgsym_{VERSION}_amd64.deb",
        f"hello-tools_{VERSION}_all.deb",
        f"hello_{VERSION}_amd64.deb",
    ]
    assert all(Path(d).is_file() for d in debs)
    assert run.outputs["deb-line"] == "" and run.outputs["archive-url"] == ""
    assert "Built, not published." in run.summary
    assert _objects(s3_bucket) == []
