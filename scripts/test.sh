#!/usr/bin/env bash
# The whole test suite, after the same set-up as the pipeline (virtualenv, package, Delta jars).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k rules
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap dev
cd "$ROOT"
# Serving tests need Debian's chromium (never a downloaded browser build); installed once.
if [ -f "$ROOT/scripts/_serving_prereqs.sh" ]; then
  bash "$ROOT/scripts/_serving_prereqs.sh"
fi
_log "ruff"
ruff check .
_log "pytest"
exec python -m pytest "$@"
