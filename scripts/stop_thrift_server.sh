#!/usr/bin/env bash
# Stops the Spark Thrift Server started by scripts/start_thrift_server.sh: exactly the process
# in .cache/thrift/thrift.pid (THRIFT_STATE_DIR), after checking its command line, and waits
# until it has exited (SIGTERM, SIGKILL after --timeout seconds, default 30). No-op if not running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"  # ROOT and VENV; nothing is installed to stop
if [ ! -x "$VENV/bin/lakehouse" ]; then
  echo "[thrift] not running (no virtualenv at $VENV)" >&2
  exit 0
fi
cd "$ROOT"
exec "$VENV/bin/lakehouse" thrift stop "$@"
