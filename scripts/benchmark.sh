#!/usr/bin/env bash
# Benchmark the whole DAG on generated day files (logic in lakehouse/benchmark.py): the backfill of a
# year, one new day on a month and on a year of history (lakehouse run, and one spark-submit per job
# the way a scheduler runs it), a run with nothing new, a job with nothing to do, and the shipped sample.
# Prints a per-job table per run (whole-process and per-step seconds, rows in/out, Delta commits, Spark
# jobs and snapshot loads from Spark's event log) and writes JSON.
#   scripts/benchmark.sh [--users 20000] [--events-per-day 10000] [--days 365] [--month-days 30]
#                        [--files-per-day 1] [--cases sample,backfill,year,nothing-new,month,per-job]
#                        [--driver-memory 2g] [--workdir DIR] [--out FILE.json]   (--help: every flag)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap dev  # the test tools too: the DuckDB peer (lakehouse/duckdb_peer.py) is a dev dependency
cd "$ROOT"
exec lakehouse benchmark "$@"
