"""`debops-ci ci` end to end: a real git repo, simulated CI providers, real builds, a real
archive (local and SeaweedFS) and a real apt installing exactly the CI version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.aptclient import AptClientFactory
from support.cli import key_env, run_cli
from support.gpgkeys import GpgKey
from support.httpserve import StaticHttpServer
from support.seaweed import S3Bucket
from test_ci_fixtures import clone, commit, copy_examples, git, init_repo, write_package

pytestmark = pytest.mark.e2e

CONFIG = """\
origin = "acme"

[pull-request]
distro = "pr"

[mainline]
distro = "stable"
"""

# A GitHub Actions pull_request run: PR 42 into main, run number 7.
GITHUB_PR_42_RUN_7 = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_EVENT_NAME": "pull_request",
    "GITHUB_REF": "refs/pull/42/merge",
    "GITHUB_RUN_NUMBER": "7",
    "GITHUB_BASE_REF": "main",
}


@pytest.fixture
def feature_clone(tmp_path: Path) -> tuple[Path, str]:
    """A clone with `origin/main` and a feature branch touching two of four packages."""
    origin = init_repo(tmp_path / "origin")
    copy_examples(origin / "examples")
    write_package(origin / "services" / "untouched", "untouched")
    (origin / "debops-ci.toml").write_text(CONFIG)
    commit(origin, "initial")
    work = clone(origin, tmp_path / "work")
    git(work, "checkout", "-q", "-b", "feature")
    hello_c = work / "examples" / "hello" / "hello.c"
    hello_c.write_text(hello_c.read_text().replace("Hello", "Hello again"))
    (work / "examples" / "tools" / "hello-tools" / "NOTES").write_text("changed\n")
    head = commit(work, "touch hello and hello-tools")
    return work, head


def install_check(
    apt_client_factory: AptClientFactory,
    url: str,
    suite: str,
    key: GpgKey,
    pins: dict[str, str],
) -> None:
    apt = apt_client_factory("amd64")
    apt.seed_status(["libc6"])  # the C example links against libc
    apt.add_source(url, suite, "main", key.public_armored)
    apt.update()
    apt.install([f"{name}={version}" for name, version in pins.items()])
    for name, version in pins.items():
        assert apt.installed_version(name) == version


def test_github_pull_request_builds_touched_packages_into_the_pr_suite(
    feature_clone: tuple[Path, str],
    tmp_path: Path,
    signing_key: GpgKey,
    http_serve: Callable[[Path], StaticHttpServer],
    apt_client_factory: AptClientFactory,
) -> None:
    work, head = feature_clone
    archive = tmp_path / "archive"
    archive.mkdir()
    summary = tmp_path / "summary.md"
    env = {
        **key_env(signing_key),
        "CI": "true",
        **GITHUB_PR_42_RUN_7,
        "GITHUB_HEAD_REF": "feature",
        "GITHUB_SHA": head,
        "GITHUB_STEP_SUMMARY": str(summary),
        "DEBOPS_ARCHIVE": str(archive),
        "DEBOPS_INSTALL_BUILD_DEPS": "false",
    }
    result = run_cli(["ci"], env, cwd=work)
    assert result.returncode == 0, result.output
    assert "::group::" in result.stderr
    # A revision-carrying version gets `.` before the build number (see README).
    version = "1.0.0-1~pr42.7"
    assert f"hello {version} (amd64)" in result.stdout
    assert f"hello-tools {version} (all)" in result.stdout
    assert "untouched" not in result.stdout and "hello-data" not in result.stdout
    assert f"apt install hello-tools={version} hello={version}" in summary.read_text()

    listed = run_cli(["list", "--archive", str(archive), "--distro", "pr"], env)
    assert "hello-tools" in listed.stdout and "stable" not in listed.stdout
    assert not (archive / "dists" / "stable").exists()
    release = (archive / "dists" / "pr" / "Release").read_text()
    assert "Origin: acme" in release  # from debops-ci.toml

    server = http_serve(archive)
    install_check(
        apt_client_factory,
        server.url,
        "pr",
        signing_key,
        {"hello": version, "hello-tools": version},
    )
    # The source tree is untouched: the CI entry went into the build copy only.
    assert git(work, "status", "--porcelain") == ""


def test_original_invocation_on_circleci_publishes_to_the_bucket(
    feature_clone: tuple[Path, str],
    signing_key: GpgKey,
    s3_bucket: S3Bucket,
    apt_client_factory: AptClientFactory,
) -> None:
    work, head = feature_clone
    (work / "debops-ci.toml").unlink()  # defaults only: suite `unstable`
    env = {
        **key_env(signing_key),
        **s3_bucket.env(),
        "CIRCLECI": "true",
        "CIRCLE_PULL_REQUEST": "https://github.com/acme/backend/pull/43",
        "CIRCLE_BUILD_NUM": "8",
        "CIRCLE_BRANCH": "feature",
        "CIRCLE_SHA1": head,
    }
    result = run_cli(["--show-commands", "ci", "--bucket-name", s3_bucket.bucket], env, cwd=work)
    assert result.returncode == 0, result.output
    assert "PUT    dists/unstable/InRelease" in result.stderr
    assert s3_bucket.env()["AWS_SECRET_ACCESS_KEY"] not in result.output
    version = "1.0.0-1~pr43.8"
    install_check(
        apt_client_factory,
        s3_bucket.http_url,
        "unstable",
        signing_key,
        {"hello": version, "hello-tools": version},
    )


def test_gitlab_merge_request_and_mainline_push_go_to_their_suites(
    feature_clone: tuple[Path, str],
    tmp_path: Path,
    signing_key: GpgKey,
    http_serve: Callable[[Path], StaticHttpServer],
    apt_client_factory: AptClientFactory,
) -> None:
    work, head = feature_clone
    archive = tmp_path / "archive"
    archive.mkdir()
    base_env = {**key_env(signing_key), "DEBOPS_ARCHIVE": str(archive)}
    mr = {
        **base_env,
        "GITLAB_CI": "true",
        "CI_MERGE_REQUEST_IID": "44",
        "CI_PIPELINE_IID": "9",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_SHA": head,
    }
    result = run_cli(["ci"], mr, cwd=work)
    assert result.returncode == 0, result.output
    assert "1.0.0-1~pr44.9" in result.stdout

    # The merge lands on main: a push builds the changelog versions as written.
    git(work, "checkout", "-q", "main")
    git(work, "merge", "-q", "--ff-only", "feature")
    push = {
        **base_env,
        "GITLAB_CI": "true",
        "CI_COMMIT_BRANCH": "main",
        "CI_DEFAULT_BRANCH": "main",
        "CI_PIPELINE_IID": "10",
        "CI_COMMIT_SHA": head,
        "CI_COMMIT_BEFORE_SHA": git(work, "rev-parse", "origin/main").strip(),
    }
    result = run_cli(["ci"], push, cwd=work)
    assert result.returncode == 0, result.output
    assert "hello 1.0.0-1 (amd64)" in result.stdout

    # Rerunning the mainline job: the version is taken, so the changelog needs a bump.
    again = run_cli(["ci"], push, cwd=work)
    assert again.returncode == 9
    assert "bump" in again.stderr

    server = http_serve(archive)
    install_check(
        apt_client_factory,
        server.url,
        "stable",
        signing_key,
        {"hello": "1.0.0-1", "hello-tools": "1.0.0-1"},
    )


def test_events_that_build_nothing_exit_zero_and_publish_nothing(
    feature_clone: tuple[Path, str], tmp_path: Path
) -> None:
    work, head = feature_clone
    archive = tmp_path / "archive"
    branch_push = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/heads/feature",
        "GITHUB_REF_NAME": "feature",
        "GITHUB_RUN_NUMBER": "3",
        "GITHUB_SHA": head,
        "DEBOPS_ARCHIVE": str(archive),
    }
    result = run_cli(["ci"], branch_push, cwd=work)  # no signing key needed either
    assert result.returncode == 0, result.output
    assert "nothing to build" in result.output
    assert not archive.exists()

    git(work, "checkout", "-q", "-b", "docs-only", "origin/main")
    (work / "README.txt").write_text("docs\n")
    commit(work, "docs only")
    pr = {
        **branch_push,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/5/merge",
        "GITHUB_BASE_REF": "main",
    }
    result = run_cli(["ci"], pr, cwd=work)
    assert result.returncode == 0, result.output
    assert "nothing to build: no package changed" in result.output
    assert not archive.exists()


@pytest.mark.parametrize(
    ("mutate", "env_extra", "code", "message"),
    [
        ("fail-build", {}, 9, "failed"),
        ("bad-changelog", {}, 9, "changelog"),
        ("", {"GITHUB_REF": "refs/heads/feature"}, 2, "pull"),
    ],
)
def test_failures_are_one_clear_error_and_publish_nothing(
    feature_clone: tuple[Path, str],
    tmp_path: Path,
    signing_key: GpgKey,
    mutate: str,
    env_extra: dict[str, str],
    code: int,
    message: str,
) -> None:
    work, _head = feature_clone
    hello = work / "examples" / "hello"
    if mutate == "fail-build":
        (hello / "hello.c").write_text("this is not C\n")
    elif mutate == "bad-changelog":
        (hello / "debian" / "changelog").write_text("not a changelog at all\n")
    if mutate:
        commit(work, mutate)
    archive = tmp_path / "archive"
    env = {
        **key_env(signing_key),
        **GITHUB_PR_42_RUN_7,
        "DEBOPS_ARCHIVE": str(archive),
        **env_extra,
    }
    result = run_cli(["ci"], env, cwd=work)
    assert result.returncode == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("debops-ci: error")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert not archive.exists()
