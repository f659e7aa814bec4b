#!/usr/bin/env bash
# Run the whole pipeline (every job of conf's DAG, in order, in one Spark application) and print a
# summary of the tables: `lakehouse run` after set-up. Set-up (virtualenv, the package and what the
# jobs need, Delta jars) happens on first use; test tools are not installed here (scripts/test.sh).
# The first run starts its JVM without a class-data-sharing archive and writes one as it exits, for
# every run after it (lakehouse/jvm.py; a training run before it would cost a newcomer about 2 minutes).
#   scripts/run_pipeline.sh [--input PATH] [--warehouse DIR] [--full-refresh] [--set key=value ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap "" first-run
cd "$ROOT"
if [ -z "$ARCHIVE_DUMP" ]; then
  exec lakehouse run "$@"
fi
code=0
SPARK_SUBMIT_OPTS="-XX:ArchiveClassesAtExit=$ARCHIVE_DUMP -Xlog:cds*=off ${SPARK_SUBMIT_OPTS:-}" lakehouse run "$@" \
  || code=$?
# The JVM writes the archive on its way out (about 10 s after the summary): kept in the background.
nohup python -m lakehouse.jvm --adopt "$ARCHIVE_DUMP" >/dev/null 2>&1 &
exit "$code"
