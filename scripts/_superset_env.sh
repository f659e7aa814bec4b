# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared settings and helpers for scripts/superset_up.sh and scripts/superset_down.sh.
# Sourced, never executed. Everything Superset writes lives under .cache/ (gitignored); the
# only tracked inputs are lakehouse/serving/superset/{superset_config,bootstrap}.py (run in
# Superset's virtualenv) and the bundle conf/superset/bundle/.

SUPERSET_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

SUPERSET_CACHE_DIR="$SUPERSET_REPO_ROOT/.cache/superset"
SUPERSET_VENV="$SUPERSET_REPO_ROOT/.cache/superset-venv"
SUPERSET_PID_FILE="$SUPERSET_CACHE_DIR/superset.pid"
SUPERSET_LOG_FILE="$SUPERSET_CACHE_DIR/superset.log"
SUPERSET_CREDENTIALS_FILE="$SUPERSET_CACHE_DIR/credentials.env"
SUPERSET_BUNDLE_DIR="$SUPERSET_REPO_ROOT/conf/superset/bundle"
SUPERSET_CODE_DIR="$SUPERSET_REPO_ROOT/lakehouse/serving/superset"

export SUPERSET_HOME="$SUPERSET_CACHE_DIR/home"
export SUPERSET_CONFIG_PATH="$SUPERSET_CODE_DIR/superset_config.py"
export FLASK_APP=superset

superset_log() { printf '[superset] %s\n' "$*" >&2; }
superset_die() { printf '[superset] ERROR: %s\n' "$*" >&2; exit 1; }

# Prints the pid from the pid file when that process is alive and is our gunicorn; else nothing.
# Checking the command line guards against a stale pid file whose number the kernel reused.
superset_running_pid() {
  [ -f "$SUPERSET_PID_FILE" ] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$SUPERSET_PID_FILE")"
  [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'gunicorn' || return 1
  printf '%s\n' "$pid"
}
