"""CI providers: which one runs us, and what event (pull request, mainline, branch) it is.

Every environment variable of every provider is read here and nowhere else:

- GitHub Actions (`GITHUB_ACTIONS=true`): pull request from
  `GITHUB_REF=refs/pull/<N>/merge` (or the event payload at `GITHUB_EVENT_PATH` for
  `pull_request_target`), checked against `GITHUB_EVENT_NAME`; build number
  `GITHUB_RUN_NUMBER`; branch `GITHUB_REF_NAME` on a push, `GITHUB_HEAD_REF` on a
  pull request; commit `GITHUB_SHA`; base `GITHUB_BASE_REF`.
- CircleCI (`CIRCLECI=true`): pull request from `CIRCLE_PULL_REQUEST` (a URL ending
  in `/pull/<N>`) or `CIRCLE_PR_NUMBER`; build `CIRCLE_BUILD_NUM`; branch
  `CIRCLE_BRANCH`; commit `CIRCLE_SHA1`; no base (the scan falls back to
  `origin/HEAD`).
- GitLab CI (`GITLAB_CI=true`): merge request `CI_MERGE_REQUEST_IID`; build
  `CI_PIPELINE_IID`; branch `CI_COMMIT_BRANCH` (or
  `CI_MERGE_REQUEST_SOURCE_BRANCH_NAME`); commit `CI_COMMIT_SHA`; base
  `CI_MERGE_REQUEST_TARGET_BRANCH_NAME`; mainline `CI_DEFAULT_BRANCH`.
- local / generic (anything else): only the explicit `pr`, `build` and `branch`;
  without a pull request number it is a mainline build.

An explicit `pr`, `build` or `branch` (command-line flags) that disagrees with
what the provider's environment says is a `UsageError`, as is
an environment that contradicts itself: better to stop than to publish a version
built for the wrong pull request.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from debops_ci.errors import UsageError

__all__ = [
    "DEFAULT_MAIN_BRANCHES",
    "BuildEvent",
    "EventKind",
    "Provider",
    "ci_run_url",
    "detect_event",
    "detect_provider",
    "pr_target_branch",
    "push_before_sha",
]

DEFAULT_MAIN_BRANCHES: tuple[str, ...] = ("main", "master")

_GITHUB_PR_REF = re.compile(r"^refs/pull/(?P<pr>[^/]+)/(?:merge|head)$")
_PR_URL = re.compile(r"/(?:pull|pull-requests|merge_requests)/(?P<pr>[^/?#]+)/?(?:[?#].*)?$")
_T = TypeVar("_T")

_GITHUB_PR_EVENTS = frozenset({"pull_request", "pull_request_target", "pull_request_review"})


class Provider(enum.Enum):
    """The CI service we run on (`LOCAL` covers a laptop and any unknown CI)."""

    GITHUB_ACTIONS = "github-actions"
    CIRCLECI = "circleci"
    GITLAB_CI = "gitlab-ci"
    LOCAL = "local"


class EventKind(enum.Enum):
    """What is being built: it decides the version and whether to build at all."""

    PULL_REQUEST = "pull_request"
    MAINLINE = "mainline"
    BRANCH = "branch"


@dataclass(frozen=True)
class BuildEvent:
    """One CI event, as far as versioning and publishing care."""

    provider: Provider
    kind: EventKind
    pr: int | None
    build: int | None
    branch: str | None
    commit: str | None
    base_ref: str | None

    def describe(self) -> str:
        """A short human description, e.g. `pull request #751 (build 14)`."""
        build = f" (build {self.build})" if self.build is not None else ""
        if self.kind is EventKind.PULL_REQUEST:
            return f"pull request #{self.pr}{build}"
        if self.kind is EventKind.MAINLINE:
            where = f" {self.branch}" if self.branch else ""
            return f"mainline{where}{build}"
        return f"branch {self.branch or '(none)'}{build}"


def detect_provider(env: Mapping[str, str]) -> Provider:
    """The CI provider named by the environment; `LOCAL` when none is."""
    if env.get("GITHUB_ACTIONS", "").lower() == "true":
        return Provider.GITHUB_ACTIONS
    if env.get("CIRCLECI", "").lower() == "true":
        return Provider.CIRCLECI
    if env.get("GITLAB_CI", "").lower() == "true":
        return Provider.GITLAB_CI
    return Provider.LOCAL


def detect_event(
    env: Mapping[str, str],
    *,
    pr: int | None = None,
    build: int | None = None,
    branch: str | None = None,
    main_branches: Sequence[str] | None = None,
) -> BuildEvent:
    """Work out the build event from the environment and explicit values.

    `main_branches` are the branches whose pushes are mainline builds. When it is
    `None`: GitLab's `CI_DEFAULT_BRANCH` when set, else `main` and `master`.
    Without a provider (`LOCAL`), no `pr` means a mainline build.
    """
    if pr is not None and pr <= 0:
        raise UsageError(f"pull request number must be positive, not {pr}")
    if build is not None and build < 0:
        raise UsageError(f"build number must not be negative, not {build}")
    provider = detect_provider(env)
    if provider is Provider.GITHUB_ACTIONS:
        env_pr, env_build, env_branch, commit, base_ref = _github(env, pr)
    elif provider is Provider.CIRCLECI:
        env_pr, env_build, env_branch, commit, base_ref = _circleci(env)
    elif provider is Provider.GITLAB_CI:
        env_pr, env_build, env_branch, commit, base_ref = _gitlab(env)
    else:
        env_pr, env_build, env_branch, commit, base_ref = None, None, None, None, None

    what = provider.value
    the_pr = _agree("pull request number", env_pr, pr, what, "--pr")
    the_build = _agree("build number", env_build, build, what, "--build")
    the_branch = _agree("branch", env_branch, branch, what, "--branch")

    if main_branches is None:
        default = env.get("CI_DEFAULT_BRANCH", "") if provider is Provider.GITLAB_CI else ""
        main_branches = (default,) if default else DEFAULT_MAIN_BRANCHES

    if the_pr is not None:
        kind = EventKind.PULL_REQUEST
    elif provider is Provider.LOCAL or (the_branch is not None and the_branch in main_branches):
        kind = EventKind.MAINLINE
    else:
        kind = EventKind.BRANCH
    return BuildEvent(
        provider=provider,
        kind=kind,
        pr=the_pr,
        build=the_build,
        branch=the_branch,
        commit=commit or None,
        base_ref=base_ref or None,
    )


_Found = tuple[int | None, int | None, str | None, str | None, str | None]


def _github(env: Mapping[str, str], explicit_pr: int | None) -> _Found:
    event_name = env.get("GITHUB_EVENT_NAME", "")
    ref = env.get("GITHUB_REF", "")
    match = _GITHUB_PR_REF.match(ref)
    pr: int | None = None
    if match:
        pr = _number("GITHUB_REF", match.group("pr"), ref)
        if event_name and event_name not in _GITHUB_PR_EVENTS:
            raise UsageError(
                f"GITHUB_REF={ref} is a pull request ref but GITHUB_EVENT_NAME={event_name}: "
                "the environment contradicts itself"
            )
    elif event_name == "pull_request":
        raise UsageError(
            f"GITHUB_EVENT_NAME=pull_request but GITHUB_REF={ref or '(unset)'} is not "
            "refs/pull/<N>/merge: check the workflow's checkout"
        )
    elif event_name in _GITHUB_PR_EVENTS:
        # pull_request_target runs on the base branch: the number is in the payload.
        pr = _github_payload_pr(env)
        if pr is None and explicit_pr is None:
            raise UsageError(
                f"GITHUB_EVENT_NAME={event_name} but no pull request number in GITHUB_REF "
                "or the event payload: pass --pr"
            )
    build = _optional_number("GITHUB_RUN_NUMBER", env)
    if pr is not None:
        branch = env.get("GITHUB_HEAD_REF") or None
    elif ref.startswith("refs/heads/"):
        branch = env.get("GITHUB_REF_NAME") or ref.removeprefix("refs/heads/")
    else:
        branch = None  # a tag, or a ref we cannot build from
    base_ref = env.get("GITHUB_BASE_REF") or None
    return pr, build, branch, env.get("GITHUB_SHA"), base_ref


def _github_payload_pr(env: Mapping[str, str]) -> int | None:
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict):
        return None
    number = payload.get("number")
    pull = payload.get("pull_request")
    if number is None and isinstance(pull, dict):
        number = pull.get("number")
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return number
    return None


def _circleci(env: Mapping[str, str]) -> _Found:
    url = env.get("CIRCLE_PULL_REQUEST", "")
    pr: int | None = None
    if url:
        match = _PR_URL.search(url)
        if not match:
            raise UsageError(
                f"CIRCLE_PULL_REQUEST={url} does not end in /pull/<N>: "
                "cannot tell the pull request number"
            )
        pr = _number("CIRCLE_PULL_REQUEST", match.group("pr"), url)
    forked_pr = _optional_number("CIRCLE_PR_NUMBER", env)
    if forked_pr is not None:
        if pr is not None and pr != forked_pr:
            raise UsageError(
                f"CIRCLE_PULL_REQUEST says pull request {pr} but CIRCLE_PR_NUMBER says "
                f"{forked_pr}: the environment contradicts itself"
            )
        pr = forked_pr
    build = _optional_number("CIRCLE_BUILD_NUM", env)
    return pr, build, env.get("CIRCLE_BRANCH") or None, env.get("CIRCLE_SHA1"), None


def _gitlab(env: Mapping[str, str]) -> _Found:
    pr = _optional_number("CI_MERGE_REQUEST_IID", env)
    build = _optional_number("CI_PIPELINE_IID", env)
    branch = env.get("CI_COMMIT_BRANCH") or env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
    base_ref = env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME") or None
    return pr, build, branch or None, env.get("CI_COMMIT_SHA"), base_ref


def _optional_number(name: str, env: Mapping[str, str]) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    return _number(name, value, value)


def _number(name: str, text: str, shown: str) -> int:
    if not text.isdecimal() or not text.isascii():
        raise UsageError(f"{name}={shown}: {text!r} is not a number")
    value = int(text)
    if value < 0:
        raise UsageError(f"{name}={shown}: must not be negative")
    return value


def _agree(
    what: str, from_env: _T | None, explicit: _T | None, provider: str, flag: str
) -> _T | None:
    """The value, when the environment and the explicit flag do not contradict each other."""
    if from_env is not None and explicit is not None and from_env != explicit:
        raise UsageError(
            f"{provider} says {what} {from_env} but {flag} {explicit} was given: "
            f"drop {flag} or fix the environment"
        )
    return explicit if explicit is not None else from_env


def pr_target_branch(env: Mapping[str, str]) -> tuple[str, str]:
    """The branch a pull/merge request targets, and the variable that said so ('' if none)."""
    provider = detect_provider(env)
    if provider is Provider.GITHUB_ACTIONS:
        return env.get("GITHUB_BASE_REF", ""), "GITHUB_BASE_REF"
    if provider is Provider.GITLAB_CI:
        name = "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
        return env.get(name, ""), name
    return "", ""


def push_before_sha(env: Mapping[str, str]) -> str:
    """The commit a push started from, as the CI reports it ('' when it does not)."""
    provider = detect_provider(env)
    if provider is Provider.GITLAB_CI:
        return env.get("CI_COMMIT_BEFORE_SHA", "").strip()
    if provider is Provider.GITHUB_ACTIONS and env.get("GITHUB_EVENT_NAME") == "push":
        path = env.get("GITHUB_EVENT_PATH", "")
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8")) if path else {}
        except (OSError, ValueError):
            payload = {}
        value = payload.get("before") if isinstance(payload, dict) else None
        return value.strip() if isinstance(value, str) else ""
    return ""


def ci_run_url(env: Mapping[str, str]) -> str:
    """A link to the running CI job ('' outside CI): shown to whoever waits on our lock."""
    if env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
    for name in ("CI_JOB_URL", "CIRCLE_BUILD_URL", "BUILD_URL"):
        if env.get(name):
            return env[name]
    return ""
