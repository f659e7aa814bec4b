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
  cd "$ROOT"
else
  bootstrap dev no-archive  # the virtualenv, the pins, Delta's jars; the archive below
  cd "$ROOT"
  # What the service scenarios install on first use, side by side with the archive's training run (one
  # JVM, partly single-threaded): Debian's chromium and javac for the serving tests (never a downloaded
  # browser build), Airflow's and Superset's virtualenvs and metadata databases. Seconds once installed.
  mkdir -p .cache
  setup_pids=() setup_logs=()
  for step in "serving-prereqs:bash scripts/_serving_prereqs.sh" "airflow:lakehouse airflow install" \
              "superset:lakehouse superset install"; do
    log_file=".cache/setup-${step%%:*}.log"
    ${step#*:} >"$log_file" 2>&1 &
    setup_pids+=($!) setup_logs+=("$log_file")
  done
  python -m lakehouse.jvm >/dev/null  # the class-data-sharing archive (a training run the first time)
  failed=0
  for i in "${!setup_pids[@]}"; do
    if ! wait "${setup_pids[$i]}"; then
      echo "error: set-up step failed; the tail of ${setup_logs[$i]}:" >&2
      tail -n 30 "${setup_logs[$i]}" >&2
      failed=1
    else
      tail -n 1 "${setup_logs[$i]}" >&2
    fi
  done
  [ "$failed" = 0 ] || exit 1
fi
_log "ruff"
ruff check .
ruff format --check --quiet lakehouse jobs scripts tests setup.py || { echo "ruff format: the files above are not formatted (ruff format .)" >&2; exit 1; }
_log "pytest"
if [ "$fast" = 1 ]; then
  exec python -m pytest -m "$FAST" "$@"
fi
# The whole suite's in-process session is a client of an engine the suite starts (tests/conftest.py): every
# job body runs on Spark Connect; the fast tier keeps one classic session (the cold path's unit tests).
export LAKEHOUSE_TEST_SESSION="${LAKEHOUSE_TEST_SESSION:-engine}"
exec python -m pytest "$@"
