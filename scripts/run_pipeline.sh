#!/usr/bin/env bash
# Run the whole pipeline (every job of conf's DAG, in order, in one Spark application) and print a
# summary of the tables. Set-up (virtualenv, package, Delta jars) happens on first use.
#   scripts/run_pipeline.sh [--input PATH] [--warehouse DIR] [--full-refresh] [--set key=value ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap dev
cd "$ROOT"
exec python jobs/run_pipeline.py "$@"
