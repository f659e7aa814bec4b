#!/usr/bin/env bash
# The job DAG under Apache Airflow 3 (its own virtualenv and home under .cache/airflow/, installed from
# conf/airflow/constraints.txt on first use): `lakehouse airflow ...` after set-up.
#   scripts/airflow.sh test [--input PATH] [--warehouse DIR] [--env NAME] [--date YYYY-MM-DD]
#                                      airflow dags test of the DAG; exit 0 only when every task succeeded
#   scripts/airflow.sh up | down | status   API server (UI) + scheduler + DAG processor on 127.0.0.1:8089
#   scripts/airflow.sh render --out DAGS_FOLDER   the DAG file and its task spec for another Airflow
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap
cd "$ROOT"
exec lakehouse airflow "$@"
