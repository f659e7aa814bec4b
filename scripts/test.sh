#!/usr/bin/env bash
# The whole test suite, after the same set-up as the pipeline (virtualenv, package, Delta jars).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k rules
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap dev
cd "$ROOT"
_log "ruff"
ruff check .
_log "pytest"
exec python -m pytest "$@"
