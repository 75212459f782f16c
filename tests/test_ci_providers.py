"""CI provider and event detection: each provider, and contradictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from debops_ci.ci.providers import (
    BuildEvent,
    EventKind,
    Provider,
    detect_event,
    detect_provider,
)
from debops_ci.errors import UsageError

SHA = "0123456789abcdef0123456789abcdef01234567"


def github(**extra: str) -> dict[str, str]:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/751/merge",
        "GITHUB_REF_NAME": "751/merge",
        "GITHUB_HEAD_REF": "feature/x",
        "GITHUB_BASE_REF": "main",
        "GITHUB_RUN_NUMBER": "14",
        "GITHUB_SHA": SHA,
    }
    env.update(extra)
    return env


def github_push(branch: str = "main", **extra: str) -> dict[str, str]:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": f"refs/heads/{branch}",
        "GITHUB_REF_NAME": branch,
        "GITHUB_BASE_REF": "",
        "GITHUB_RUN_NUMBER": "15",
        "GITHUB_SHA": SHA,
    }
    env.update(extra)
    return env


def test_provider_detection() -> None:
    assert detect_provider({}) is Provider.LOCAL
    assert detect_provider({"GITHUB_ACTIONS": "true"}) is Provider.GITHUB_ACTIONS
    assert detect_provider({"CIRCLECI": "true"}) is Provider.CIRCLECI
    assert detect_provider({"GITLAB_CI": "true"}) is Provider.GITLAB_CI
    assert detect_provider({"GITHUB_ACTIONS": "false", "CI": "true"}) is Provider.LOCAL


def test_github_pull_request() -> None:
    event = detect_event(github())
    assert event == BuildEvent(
        provider=Provider.GITHUB_ACTIONS,
        kind=EventKind.PULL_REQUEST,
        pr=751,
        build=14,
        branch="feature/x",
        commit=SHA,
        base_ref="main",
    )
    assert event.describe() == "pull request #751 (build 14)"


def test_github_event_is_frozen() -> None:
    event = detect_event(github())
    with pytest.raises(AttributeError):
        event.pr = 5  # type: ignore[misc]


def test_github_push_to_main_and_master_is_mainline() -> None:
    for branch in ("main", "master"):
        event = detect_event(github_push(branch))
        assert event.kind is EventKind.MAINLINE
        assert (event.pr, event.build, event.branch, event.base_ref) == (None, 15, branch, None)


def test_github_push_to_other_branch() -> None:
    event = detect_event(github_push("feature/y"))
    assert event.kind is EventKind.BRANCH
    assert event.branch == "feature/y"


def test_github_main_branches_can_be_told() -> None:
    event = detect_event(github_push("develop"), main_branches=["develop"])
    assert event.kind is EventKind.MAINLINE
    assert detect_event(github_push("main"), main_branches=["develop"]).kind is EventKind.BRANCH


def test_github_tag_push_is_not_mainline() -> None:
    env = github_push(GITHUB_REF="refs/tags/v1.0", GITHUB_REF_NAME="v1.0")
    event = detect_event(env)
    assert event.kind is EventKind.BRANCH
    assert event.branch is None


def test_github_explicit_pr_agreeing_is_fine() -> None:
    assert detect_event(github(), pr=751, build=14).pr == 751


def test_github_explicit_pr_contradicting_ref() -> None:
    with pytest.raises(UsageError, match="pull request number 751 but --pr 7"):
        detect_event(github(), pr=7)


def test_github_explicit_build_contradicting() -> None:
    with pytest.raises(UsageError, match="build number 14 but --build 99"):
        detect_event(github(), build=99)


def test_github_pull_request_event_with_branch_ref() -> None:
    with pytest.raises(UsageError, match="GITHUB_EVENT_NAME=pull_request but GITHUB_REF"):
        detect_event(github(GITHUB_REF="refs/heads/main"))


def test_github_pull_ref_on_push_event() -> None:
    with pytest.raises(UsageError, match="contradicts itself"):
        detect_event(github(GITHUB_EVENT_NAME="push"))


def test_github_non_numeric_run_number() -> None:
    with pytest.raises(UsageError, match="GITHUB_RUN_NUMBER=abc"):
        detect_event(github(GITHUB_RUN_NUMBER="abc"))


def test_github_non_numeric_pull_ref() -> None:
    with pytest.raises(UsageError, match="not a number"):
        detect_event(github(GITHUB_REF="refs/pull/abc/merge"))


def test_github_pull_request_target_reads_payload(tmp_path: Path) -> None:
    payload = tmp_path / "event.json"
    payload.write_text(json.dumps({"number": 42, "pull_request": {"number": 42}}))
    env = github(
        GITHUB_EVENT_NAME="pull_request_target",
        GITHUB_REF="refs/heads/main",
        GITHUB_EVENT_PATH=str(payload),
    )
    event = detect_event(env)
    assert (event.kind, event.pr) == (EventKind.PULL_REQUEST, 42)


def test_github_pull_request_target_without_number() -> None:
    env = github(GITHUB_EVENT_NAME="pull_request_target", GITHUB_REF="refs/heads/main")
    with pytest.raises(UsageError, match="pass --pr"):
        detect_event(env)
    assert detect_event(env, pr=9).pr == 9


def circleci(**extra: str) -> dict[str, str]:
    env = {
        "CIRCLECI": "true",
        "CIRCLE_PULL_REQUEST": "https://github.com/acme/widgets/pull/752",
        "CIRCLE_BUILD_NUM": "51",
        "CIRCLE_BRANCH": "feature/z",
        "CIRCLE_SHA1": SHA,
    }
    env.update(extra)
    return env


def test_circleci_pull_request() -> None:
    event = detect_event(circleci())
    assert event == BuildEvent(
        Provider.CIRCLECI, EventKind.PULL_REQUEST, 752, 51, "feature/z", SHA, None
    )


def test_circleci_mainline_and_branch() -> None:
    env = circleci(CIRCLE_PULL_REQUEST="", CIRCLE_BRANCH="master")
    assert detect_event(env).kind is EventKind.MAINLINE
    env["CIRCLE_BRANCH"] = "wip"
    assert detect_event(env).kind is EventKind.BRANCH


def test_circleci_bad_pull_request_url() -> None:
    with pytest.raises(UsageError, match="does not end in /pull/<N>"):
        detect_event(circleci(CIRCLE_PULL_REQUEST="https://github.com/acme/widgets"))


def test_circleci_contradicting_pr_numbers() -> None:
    with pytest.raises(UsageError, match="contradicts itself"):
        detect_event(circleci(CIRCLE_PR_NUMBER="753"))
    with pytest.raises(UsageError, match="--pr 1"):
        detect_event(circleci(), pr=1)


def test_circleci_non_numeric_build() -> None:
    with pytest.raises(UsageError, match="CIRCLE_BUILD_NUM"):
        detect_event(circleci(CIRCLE_BUILD_NUM="x1"))


def gitlab(**extra: str) -> dict[str, str]:
    env = {
        "GITLAB_CI": "true",
        "CI_MERGE_REQUEST_IID": "12",
        "CI_PIPELINE_IID": "340",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "topic",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "trunk",
        "CI_DEFAULT_BRANCH": "trunk",
        "CI_COMMIT_SHA": SHA,
    }
    env.update(extra)
    return env


def test_gitlab_merge_request() -> None:
    event = detect_event(gitlab())
    assert event == BuildEvent(
        Provider.GITLAB_CI, EventKind.PULL_REQUEST, 12, 340, "topic", SHA, "trunk"
    )


def test_gitlab_default_branch_is_mainline() -> None:
    env = gitlab(CI_MERGE_REQUEST_IID="", CI_COMMIT_BRANCH="trunk")
    del env["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"]
    assert detect_event(env).kind is EventKind.MAINLINE
    env["CI_COMMIT_BRANCH"] = "main"  # not the default branch of this project
    assert detect_event(env).kind is EventKind.BRANCH


def test_gitlab_non_numeric_iid() -> None:
    with pytest.raises(UsageError, match="CI_MERGE_REQUEST_IID"):
        detect_event(gitlab(CI_MERGE_REQUEST_IID="twelve"))


def test_local_explicit_values() -> None:
    event = detect_event({}, pr=3, build=7, branch="topic")
    assert event == BuildEvent(Provider.LOCAL, EventKind.PULL_REQUEST, 3, 7, "topic", None, None)


def test_local_without_pr_is_mainline() -> None:
    event = detect_event({}, build=2, branch="whatever")
    assert event.kind is EventKind.MAINLINE
    assert event.describe() == "mainline whatever (build 2)"


def test_local_rejects_nonsense_numbers() -> None:
    with pytest.raises(UsageError):
        detect_event({}, pr=0)
    with pytest.raises(UsageError):
        detect_event({}, build=-1)


def test_explicit_branch_contradicting_environment() -> None:
    with pytest.raises(UsageError, match="--branch other"):
        detect_event(github_push("main"), branch="other")
