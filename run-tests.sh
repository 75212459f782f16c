#!/usr/bin/env bash
# The whole check: lint, format, types, then every test (unit and end-to-end; the
# end-to-end tests start their own SeaweedFS, GnuPG keys, HTTP servers and git repos).
set -euo pipefail
cd "$(dirname "$0")"
ruff check src tests bench
ruff format --check src tests bench
mypy
mypy bench  # separately: bench imports the harness as tests.support
python3 -m pytest -q "$@"
