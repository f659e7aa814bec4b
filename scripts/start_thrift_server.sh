#!/usr/bin/env bash
# Starts the Spark Thrift Server (HiveServer2 protocol, for Superset, beeline, PyHive) over the
# lakehouse's Delta tables, waits until it answers a query and registers every existing table as
# bronze.*, silver.*, gold.*, ops.* (lakehouse/serving/thrift/__init__.py explains the design).
#   scripts/start_thrift_server.sh [--warehouse DIR] [--port N] [--host ADDR] [--set key=value ...]
#                                  [--timeout SECONDS] [--driver-memory 1g]
# Host and port default to serving.thrift_host/thrift_port of conf (127.0.0.1:10000). A second
# start while it runs says so and exits 0. Pid, state and log: .cache/thrift/ (THRIFT_STATE_DIR).
# Tables created after the start: lakehouse thrift register (scripts/sql.sh
# does it before each query).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap serving
cd "$ROOT"
exec lakehouse thrift start "$@"
