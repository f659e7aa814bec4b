#!/usr/bin/env bash
# Stops the Superset web server started by scripts/superset_up.sh: exactly the gunicorn master
# whose pid is in .cache/superset/superset.pid, and its worker processes. No-op if not running.
set -euo pipefail

# shellcheck source=scripts/_superset_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/_superset_env.sh"

STOP_TIMEOUT="${SUPERSET_STOP_TIMEOUT:-30}"

if ! pid="$(superset_running_pid)"; then
  if [ -f "$SUPERSET_PID_FILE" ]; then
    superset_log "not running (stale pid file $SUPERSET_PID_FILE removed)"
    rm -f "$SUPERSET_PID_FILE" "$SUPERSET_CACHE_DIR/superset.port"
  else
    superset_log "not running"
  fi
  exit 0
fi

# Workers are the master's direct children; remember them in case the master dies first.
workers="$(pgrep -P "$pid" || true)"
superset_log "stopping gunicorn pid $pid (workers: ${workers//$'\n'/ })"
# TERM: gunicorn stops accepting, lets workers finish (graceful timeout 10 s) and exits.
kill -TERM "$pid" 2>/dev/null || true

alive() {
  local p
  for p in "$pid" $workers; do
    kill -0 "$p" 2>/dev/null && return 0
  done
  return 1
}

deadline=$((SECONDS + STOP_TIMEOUT))
while alive && [ "$SECONDS" -lt "$deadline" ]; do
  sleep 0.5
done
if alive; then
  superset_log "still running after ${STOP_TIMEOUT}s: sending KILL"
  for p in "$pid" $workers; do
    kill -KILL "$p" 2>/dev/null || true
  done
fi
rm -f "$SUPERSET_PID_FILE" "$SUPERSET_CACHE_DIR/superset.port"
superset_log "stopped"
