#!/usr/bin/env bash
# Starts Apache Superset for the gold tables, configured only from files in this repo.
#
#   scripts/superset_up.sh            # install (first run), init, import dashboards, serve
#   scripts/superset_down.sh          # stop it
#
# Idempotent; a second run skips the install and the DB init and takes seconds, but always
# re-imports conf/superset/bundle (overwriting databases, datasets, charts, dashboards by UUID)
# so the repo stays the source of truth. If the server is already running it is left running.
# It warns when the bundle is stale (python -m lakehouse.serving.superset.bundle --check).
#
# Addresses and the week start come from the lakehouse config (conf/lakehouse.yaml and the
# overlay conf/env/$LAKEHOUSE_ENV.yaml), read by `python -m lakehouse.serving.superset.env` in
# the lakehouse virtualenv (.venv, or LAKEHOUSE_VENV; set up by scripts/_bootstrap.sh if missing).
#
# Environment (all optional):
#   SUPERSET_HOST, SUPERSET_PORT  web address (default serving.superset_host/_port: 127.0.0.1:8088)
#   THRIFT_HOST, THRIFT_PORT  Spark Thrift server (default serving.thrift_host/_port: 127.0.0.1:10000)
#   SUPERSET_SECRET_KEY       Flask secret key          } generated on first run into
#   SUPERSET_ADMIN_USER       admin login               } .cache/superset/credentials.env
#   SUPERSET_ADMIN_PASSWORD   admin password            } (mode 600) unless given here
#   THRIFT_USER               Thrift user of Superset's connection (default superset, a service user
#                             whose password the Thrift server's start generated)
#   THRIFT_STATE_DIR          the Thrift server's state dir, where that password is (default .cache/thrift)
#   SUPERSET_PYTHON           interpreter for the virtualenv (default python3.11)
#   SUPERSET_WORKERS          gunicorn workers (default 2; the machine has 2 cores)
#   SUPERSET_START_TIMEOUT    seconds to wait for /health (default 180)
#   SUPERSET_FORCE_INIT=1     run `superset db upgrade` and `superset init` even if done
#
# Layout (all under .cache/, gitignored): .cache/superset-venv (virtualenv),
# .cache/superset/home (SUPERSET_HOME, SQLite metadata DB), .cache/superset/superset.{pid,log},
# .cache/superset/setup.log (output of install/upgrade/init/import).
set -euo pipefail

# shellcheck source=scripts/_superset_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/_superset_env.sh"

SUPERSET_PYTHON="${SUPERSET_PYTHON:-python3.11}"
SUPERSET_WORKERS="${SUPERSET_WORKERS:-2}"
SUPERSET_START_TIMEOUT="${SUPERSET_START_TIMEOUT:-180}"
THRIFT_USER="${THRIFT_USER:-superset}"
THRIFT_STATE_DIR="${THRIFT_STATE_DIR:-$SUPERSET_REPO_ROOT/.cache/thrift}"
# Empty: taken from the lakehouse config by load_lakehouse_settings.
SUPERSET_HOST="${SUPERSET_HOST:-}"
SUPERSET_PORT="${SUPERSET_PORT:-}"
THRIFT_HOST="${THRIFT_HOST:-}"
THRIFT_PORT="${THRIFT_PORT:-}"
# shellcheck source=scripts/_bootstrap.sh
source "$SUPERSET_REPO_ROOT/scripts/_bootstrap.sh"  # VENV: the one place the virtualenv path is decided
LAKEHOUSE_PY="$VENV/bin/python"
SETUP_LOG="$SUPERSET_CACHE_DIR/setup.log"
PORT_FILE="$SUPERSET_CACHE_DIR/superset.port"

# The published apache-superset 6.1.0 wheel does not start as installed with the newest
# releases of dependencies it leaves open; this set was found by trying
# on this kind of machine: flask-caching<2.5, rich<15 and cachetools. Keep the caps until a
# Superset release pins them itself.
# Spark Thrift driver: PyHive 0.7.0 over the pure-Python SASL stack (nothing to compile);
# thrift<1 is what PyHive's generated code supports. PyHive 0.7.0 has no `hive_pure_sasl`
# extra (pip warns and ignores it), so its packages, pure-sasl and thrift-sasl, are listed.
# gunicorn serves the app: already a dependency of apache-superset, named because this script
# calls it.
REQUIREMENTS=(
  "apache-superset==6.1.0"
  "flask-caching<2.5"
  "rich<15"
  "cachetools"
  "pyhive==0.7.0"
  "thrift<1"
  "thrift-sasl"
  "pure-sasl"
  "gunicorn"
)

START_SECONDS=$SECONDS
mkdir -p "$SUPERSET_CACHE_DIR" "$SUPERSET_HOME"
: >"$SETUP_LOG"

# Runs a setup step with its (long) output in setup.log; on failure shows the tail.
run_logged() {
  local what="$1"
  shift
  printf '\n### %s: %s\n' "$what" "$*" >>"$SETUP_LOG"
  if ! "$@" >>"$SETUP_LOG" 2>&1; then
    tail -n 40 "$SETUP_LOG" >&2
    superset_die "$what failed (full output: $SETUP_LOG)"
  fi
}

requirements_hash() {
  { "$SUPERSET_PYTHON" -c 'import sys; print(sys.version.split()[0])'; printf '%s\n' "${REQUIREMENTS[@]}"; } |
    sha256sum | cut -d' ' -f1
}

install_superset() {
  command -v "$SUPERSET_PYTHON" >/dev/null || superset_die "$SUPERSET_PYTHON not found (set SUPERSET_PYTHON)"
  "$SUPERSET_PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    superset_die "$SUPERSET_PYTHON is not Python 3.11 (Superset 6.1 is installed and tested on 3.11 here)"
  REQ_HASH="$(requirements_hash)"
  local marker="$SUPERSET_VENV/.requirements.sha256"
  if [ -x "$SUPERSET_VENV/bin/gunicorn" ] && [ "$(cat "$marker" 2>/dev/null)" = "$REQ_HASH" ] &&
    "$SUPERSET_VENV/bin/python" -c '' 2>/dev/null; then
    superset_log "virtualenv up to date ($SUPERSET_VENV)"
    return
  fi
  if ! "$SUPERSET_VENV/bin/python" -c '' 2>/dev/null; then
    rm -rf "$SUPERSET_VENV"
    run_logged "create virtualenv" "$SUPERSET_PYTHON" -m venv "$SUPERSET_VENV"
  fi
  superset_log "installing Superset into $SUPERSET_VENV (first run: about a minute)"
  run_logged "pip install" "$SUPERSET_VENV/bin/pip" install --disable-pip-version-check \
    --no-input --progress-bar off "${REQUIREMENTS[@]}"
  printf '%s\n' "$REQ_HASH" >"$marker"
}

# The lakehouse virtualenv, set up by scripts/_bootstrap.sh when it is missing.
ensure_lakehouse_python() {
  if (cd "$SUPERSET_REPO_ROOT" && "$LAKEHOUSE_PY" -c 'import lakehouse.serving.superset.env') 2>/dev/null; then
    return
  fi
  superset_log "lakehouse virtualenv not ready at $LAKEHOUSE_PY: setting it up (scripts/_bootstrap.sh)"
  bootstrap serving
}

# SUPERSET_HOST/PORT and THRIFT_HOST/PORT from the config unless set in the environment;
# LAKEHOUSE_WEEK_START (for superset_config.py) always from the config.
load_lakehouse_settings() {
  local out key value
  out="$(cd "$SUPERSET_REPO_ROOT" && "$LAKEHOUSE_PY" -m lakehouse.serving.superset.env)" ||
    superset_die "could not read the lakehouse config (python -m lakehouse.serving.superset.env)"
  while IFS='=' read -r key value; do
    case "$key" in
    SUPERSET_HOST | SUPERSET_PORT | THRIFT_HOST | THRIFT_PORT)
      [ -n "${!key}" ] || printf -v "$key" '%s' "$value"
      ;;
    LAKEHOUSE_WEEK_START) LAKEHOUSE_WEEK_START="$value" ;;
    esac
  done <<<"$out"
  export LAKEHOUSE_WEEK_START
  superset_log "web on $SUPERSET_HOST:$SUPERSET_PORT, Thrift at $THRIFT_HOST:$THRIFT_PORT, weeks start on $LAKEHOUSE_WEEK_START"
}

# A stale bundle still imports (and its charts still work), so this only warns.
check_bundle() {
  if ! (cd "$SUPERSET_REPO_ROOT" &&
    "$LAKEHOUSE_PY" -m lakehouse.serving.superset.bundle --check --superset-venv "$SUPERSET_VENV") >>"$SETUP_LOG" 2>&1; then
    superset_log "WARNING: $SUPERSET_BUNDLE_DIR is not what python -m lakehouse.serving.superset.bundle writes for this config and registry; importing it anyway (details: $SETUP_LOG)"
  fi
}

# Reads KEY=value from the credentials file (no shell evaluation of the file).
credential_from_file() {
  [ -f "$SUPERSET_CREDENTIALS_FILE" ] || return 0
  sed -n "s/^$1=//p" "$SUPERSET_CREDENTIALS_FILE" | tail -n 1
}

random_token() {
  "$SUPERSET_PYTHON" -c "import secrets; print(secrets.token_urlsafe($1))"
}

# Environment wins; else the credentials file; else generate and remember in the file.
# Values that came from the environment are never written to disk.
load_credentials() {
  local key value generated=0
  local -A from_file=()
  for key in SUPERSET_SECRET_KEY SUPERSET_ADMIN_USER SUPERSET_ADMIN_PASSWORD; do
    from_file[$key]="$(credential_from_file "$key")"
    value="${!key:-}"
    if [ -z "$value" ]; then
      value="${from_file[$key]}"
    fi
    if [ -z "$value" ]; then
      case "$key" in
      SUPERSET_SECRET_KEY) value="$(random_token 42)" ;;
      SUPERSET_ADMIN_USER) value="superset_admin" ;;
      SUPERSET_ADMIN_PASSWORD) value="$(random_token 18)" ;;
      esac
      from_file[$key]="$value"
      generated=1
    fi
    export "$key=$value"
  done
  if [ "$generated" = 1 ]; then
    (
      umask 077
      {
        echo "# Generated by scripts/superset_up.sh; environment variables of the same name win."
        for key in SUPERSET_SECRET_KEY SUPERSET_ADMIN_USER SUPERSET_ADMIN_PASSWORD; do
          [ -n "${from_file[$key]}" ] && echo "$key=${from_file[$key]}"
        done
      } >"$SUPERSET_CREDENTIALS_FILE.tmp"
    )
    mv "$SUPERSET_CREDENTIALS_FILE.tmp" "$SUPERSET_CREDENTIALS_FILE"
    superset_log "generated credentials written to $SUPERSET_CREDENTIALS_FILE"
  fi
  chmod 600 "$SUPERSET_CREDENTIALS_FILE" 2>/dev/null || true
}

init_metadata_db() {
  local marker="$SUPERSET_HOME/.initialized"
  if [ -z "${SUPERSET_FORCE_INIT:-}" ] && [ -f "$SUPERSET_HOME/superset.db" ] &&
    [ "$(cat "$marker" 2>/dev/null)" = "$REQ_HASH" ]; then
    superset_log "metadata DB already initialised for this install ($SUPERSET_HOME)"
    return
  fi
  superset_log "initialising the metadata DB (db upgrade, init)"
  run_logged "superset db upgrade" "$SUPERSET_VENV/bin/superset" db upgrade
  run_logged "superset init" "$SUPERSET_VENV/bin/superset" init
  printf '%s\n' "$REQ_HASH" >"$marker"
}

import_bundle() {
  # The password goes through the environment (never argv); Superset keeps it encrypted.
  local uri="hive://${THRIFT_USER}@${THRIFT_HOST}:${THRIFT_PORT}/gold?auth=CUSTOM" password
  password="$("$LAKEHOUSE_PY" -m lakehouse.serving.thrift --state-dir "$THRIFT_STATE_DIR" password --user "$THRIFT_USER")" ||
    superset_die "no Thrift password for $THRIFT_USER in $THRIFT_STATE_DIR: start the Thrift server first (scripts/start_thrift_server.sh)"
  superset_log "importing $SUPERSET_BUNDLE_DIR (database URI $uri, password from $THRIFT_STATE_DIR/auth)"
  THRIFT_PASSWORD="$password" run_logged "import bundle" "$SUPERSET_VENV/bin/python" \
    "$SUPERSET_CODE_DIR/bootstrap.py" \
    --bundle "$SUPERSET_BUNDLE_DIR" --sqlalchemy-uri "$uri"
  grep '^\[superset\] \(dashboard\|[0-9]\+ database\)' "$SETUP_LOG" >&2 || true
}

health_ok() {
  [ "$(curl -fsS --max-time 5 "http://$SUPERSET_HOST:$1/health" 2>/dev/null)" = "OK" ]
}

start_server() {
  local running_pid
  if running_pid="$(superset_running_pid)"; then
    local running_port
    running_port="$(cat "$PORT_FILE" 2>/dev/null || echo "?")"
    [ "$running_port" = "$SUPERSET_PORT" ] ||
      superset_die "Superset already runs (pid $running_pid) on port $running_port; run scripts/superset_down.sh first"
    superset_log "web server already running (pid $running_pid); bundle re-imported into it"
    return
  fi
  rm -f "$SUPERSET_PID_FILE"
  if curl -s --max-time 2 -o /dev/null "http://$SUPERSET_HOST:$SUPERSET_PORT/"; then
    superset_die "port $SUPERSET_PORT is in use by another process (set SUPERSET_PORT or serving.superset_port)"
  fi
  superset_log "starting gunicorn on $SUPERSET_HOST:$SUPERSET_PORT (log $SUPERSET_LOG_FILE)"
  printf '\n=== %s superset_up.sh: starting gunicorn on %s:%s\n' "$(date -Is)" \
    "$SUPERSET_HOST" "$SUPERSET_PORT" >>"$SUPERSET_LOG_FILE"
  # setsid: its own session, so it outlives this shell and any job control around it.
  # The admin password stays out of the server's environment; it does not need it.
  # --timeout is above SUPERSET_WEBSERVER_TIMEOUT (superset_config.py) so slow Spark queries
  # end with Superset's timeout message rather than a killed worker.
  (
    cd "$SUPERSET_CACHE_DIR"
    exec setsid env -u SUPERSET_ADMIN_PASSWORD "$SUPERSET_VENV/bin/gunicorn" \
      --bind "$SUPERSET_HOST:$SUPERSET_PORT" \
      --workers "$SUPERSET_WORKERS" --worker-class gthread --threads 4 \
      --timeout 190 --graceful-timeout 10 \
      --limit-request-line 0 --limit-request-field_size 0 \
      --pid "$SUPERSET_PID_FILE" \
      "superset.app:create_app()"
  ) >>"$SUPERSET_LOG_FILE" 2>&1 </dev/null &
  local launcher=$!
  printf '%s\n' "$SUPERSET_PORT" >"$PORT_FILE"

  local deadline=$((SECONDS + SUPERSET_START_TIMEOUT))
  until health_ok "$SUPERSET_PORT"; do
    if ! kill -0 "$launcher" 2>/dev/null; then
      tail -n 40 "$SUPERSET_LOG_FILE" >&2
      rm -f "$SUPERSET_PID_FILE"
      superset_die "gunicorn exited during start-up (log: $SUPERSET_LOG_FILE)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 40 "$SUPERSET_LOG_FILE" >&2
      kill -TERM "$launcher" 2>/dev/null || true
      rm -f "$SUPERSET_PID_FILE"
      superset_die "no answer on http://$SUPERSET_HOST:$SUPERSET_PORT/health after ${SUPERSET_START_TIMEOUT}s; stopped it (log: $SUPERSET_LOG_FILE)"
    fi
    sleep 1
  done
  # gunicorn writes the pid file itself; it is the same process as the launcher after exec.
  [ -s "$SUPERSET_PID_FILE" ] || printf '%s\n' "$launcher" >"$SUPERSET_PID_FILE"
}

ensure_lakehouse_python
load_lakehouse_settings
install_superset
check_bundle
load_credentials
init_metadata_db
import_bundle
start_server
health_ok "$SUPERSET_PORT" || superset_die "health check failed on port $SUPERSET_PORT"

superset_log "ready in $((SECONDS - START_SECONDS))s: http://$SUPERSET_HOST:$SUPERSET_PORT/ (pid $(cat "$SUPERSET_PID_FILE"))"
superset_log "login: user $SUPERSET_ADMIN_USER; password from SUPERSET_ADMIN_PASSWORD or $SUPERSET_CREDENTIALS_FILE"
