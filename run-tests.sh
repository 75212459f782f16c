#!/usr/bin/env bash
# The whole check: set-up (quick when already done), lint, format, types, then the tests.
#
#   ./run-tests.sh            everything: unit and end-to-end (the end-to-end tests start
#                             their own SeaweedFS, GnuPG keys, sshd hosts, HTTP servers,
#                             Chromium and git repos)
#   ./run-tests.sh --quick    the fast tier: lint, types and the in-process unit tests
#   ./run-tests.sh [--quick] PYTEST-ARGS...   e.g. -k lock, or a test file
set -euo pipefail
cd "$(dirname "$0")"
QUICK=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; shift; fi
./setup.sh --test >/dev/null
PATH="$(pwd)/.venv/bin:$PATH"
export PATH
ruff check src tests bench
ruff format --check src tests bench
mypy
mypy bench tests/test_bench_report.py  # separately: bench imports the harness as tests.support
if [ "$QUICK" = 1 ]; then
    exec python -m pytest -q -m "not e2e" "$@"
fi
exec python -m pytest -q "$@"
