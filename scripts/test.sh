#!/usr/bin/env bash
# The whole test suite (what CI runs, via .ci/run), after set-up: virtualenv with the test tools,
# Delta jars, and Debian's chromium for the serving tests. Then ruff, then pytest.
#   scripts/test.sh                      everything
#   scripts/test.sh --fast [pytest args] the edit-test loop: unit tests and the reference implementation, no
#                                        whole-DAG scenario, service or subprocess JVM (pytest -m "$FAST"; no apt)
#   scripts/test.sh -m cluster           the cluster + S3 scenario alone
#   scripts/test.sh tests/unit -k rules  extra arguments go to pytest
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
fast=0
FAST="not e2e and not perjob and not serving and not cluster and not airflow"
if [ "${1:-}" = "--fast" ]; then
  fast=1
  shift
fi
if [ "$fast" = 1 ]; then
  bootstrap dev no-archive  # the session's one JVM: the archive's training run (2-3 minutes) would not pay off
else
  bootstrap dev
fi
cd "$ROOT"
if [ "$fast" = 0 ]; then
  # Serving tests need Debian's chromium (never a downloaded browser build); installed once.
  bash "$ROOT/scripts/_serving_prereqs.sh"
fi
_log "ruff"
ruff check .
_log "pytest"
if [ "$fast" = 1 ]; then
  exec python -m pytest -m "$FAST" "$@"
fi
exec python -m pytest "$@"
