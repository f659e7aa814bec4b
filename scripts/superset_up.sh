#!/usr/bin/env bash
# Starts Apache Superset with the dashboards over the Spark Thrift Server (start that first:
# scripts/start_thrift_server.sh). Idempotent: the first run installs Superset into its own
# virtualenv (.cache/superset-venv) and initialises its metadata DB; every run re-imports
# conf/superset/bundle so the repo stays the source of truth. Stop with scripts/superset_down.sh.
# Settings, environment variables and layout: lakehouse/serving/superset/service.py (lakehouse superset up).
#   scripts/superset_up.sh [--env NAME] [--set key=value ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap serving
cd "$ROOT"
exec "$VENV/bin/lakehouse" superset up "$@"
