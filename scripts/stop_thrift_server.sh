#!/usr/bin/env bash
# Stops the Spark Thrift Server started by scripts/start_thrift_server.sh: exactly the process
# in .cache/thrift/thrift.pid (THRIFT_STATE_DIR), after checking its command line, and waits
# until it has exited (SIGTERM, SIGKILL after --timeout seconds, default 30). No-op if not running.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${LAKEHOUSE_VENV:-$ROOT/.venv}/bin/python"
if [ ! -x "$PY" ]; then
  echo "[thrift] not running (no virtualenv at ${LAKEHOUSE_VENV:-$ROOT/.venv})" >&2
  exit 0
fi
cd "$ROOT"
exec "$PY" -m lakehouse.serving.thrift stop "$@"
