#!/usr/bin/env bash
# Stops the Superset web server started by scripts/superset_up.sh: exactly the gunicorn master in
# .cache/superset/superset.pid (after checking its command line) and its workers. No-op if not running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"  # ROOT and VENV; nothing is installed to stop
if [ ! -x "$VENV/bin/lakehouse" ]; then
  echo "[superset] not running (no virtualenv at $VENV)" >&2
  exit 0
fi
cd "$ROOT"
exec "$VENV/bin/lakehouse" superset down "$@"
