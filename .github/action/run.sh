#!/usr/bin/env bash
# The run step of the composite action (action.yml): the action's inputs (INPUT_*)
# become one debops-ci command; its output becomes the step's outputs and the job
# summary (src/debops_ci/ci/github_action.py does both halves). Exits with the
# command's exit code.
set -euo pipefail
action_root="$(cd "$(dirname "$0")/../.." && pwd)"

# The Python that has debops-ci: the venv setup.sh made in the action's directory,
# else (install: false) the one behind the debops-ci already on PATH.
py=("$action_root/.venv/bin/python")
if [ ! -x "${py[0]}" ]; then
    if ! tool="$(command -v debops-ci)"; then
        echo "::error::debops-ci is not installed: use the action with install: true (the default)"
        exit 2
    fi
    read -r -a py < <(sed -n '1s/^#! *//p' "$(readlink -f "$tool")")
fi

# In a container job the checkout belongs to the runner's user, not to root, and git
# refuses it ("dubious ownership") unless the workspace is marked safe.
workspace="${GITHUB_WORKSPACE:-$PWD}"
if command -v git >/dev/null && git -C "$workspace" status 2>&1 | grep -q 'dubious ownership'; then
    git config --global --add safe.directory "$workspace"
fi

work="$(mktemp -d "${RUNNER_TEMP:-/tmp}/debops-ci-action.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"${py[@]}" -m debops_ci.ci.github_action argv "$work/argv"
mapfile -d '' -t argv <"$work/argv"

echo "debops-ci ${argv[*]}"
set +e
"${py[@]}" -m debops_ci "${argv[@]}" | tee "$work/stdout"
rc="${PIPESTATUS[0]}"
set -e
"${py[@]}" -m debops_ci.ci.github_action outputs "$work/stdout" "$rc"
exit "$rc"
