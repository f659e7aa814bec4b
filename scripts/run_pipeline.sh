#!/usr/bin/env bash
# Run the whole pipeline (every job of conf's DAG, in order, in one Spark application) and print a
# summary of the tables: `lakehouse run` after set-up. Set-up (virtualenv, the package and what the
# jobs need, Delta jars) happens on first use; test tools are not installed here (scripts/test.sh).
#   scripts/run_pipeline.sh [--input PATH] [--warehouse DIR] [--full-refresh] [--set key=value ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap
cd "$ROOT"
exec lakehouse run "$@"
