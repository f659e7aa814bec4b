# Sourced by the scripts in this folder: creates or reuses the project's virtualenv, installs the
# package when setup.py or the pinned versions changed, and makes sure Delta's jars are cached.
# Second runs do no network and no reinstall (an install stamp holds a hash of what was installed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LAKEHOUSE_VENV:-$ROOT/.venv}"
export LAKEHOUSE_ENV="${LAKEHOUSE_ENV:-local}"

_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

_require_java() {
  if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
    echo "error: Java 17 is required by Spark (install openjdk-17-jre-headless or set JAVA_HOME)" >&2
    exit 1
  fi
}

_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
      if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
        echo "$candidate"; return 0
      fi
    fi
  done
  echo "error: Python >= 3.11 is required" >&2
  exit 1
}

# bootstrap [EXTRAS [first-run|no-archive]]: the package with the given setup.py extras ("" = what the jobs need, "serving" =
# + SQL clients, "dev" = + test tools). A venv that already has more extras is left alone.
_rank() { case "$1" in dev) echo 2 ;; serving) echo 1 ;; *) echo 0 ;; esac; }
_extras_cover() { [ "$(_rank "$1")" -ge "$(_rank "$2")" ]; }
_wider() { if _extras_cover "$1" "$2"; then echo "$1"; else echo "$2"; fi; }

bootstrap() {
  local extras="${1:-}"
  _require_java
  if [ ! -x "$VENV/bin/python" ]; then
    _log "creating virtualenv $VENV"
    "$(_python)" -m venv "$VENV"
  fi
  local stamp_file="$VENV/.lakehouse-install-stamp"
  local hash installed
  hash="$(cat "$ROOT/setup.py" "$ROOT/lakehouse/versions.py" | sha256sum | cut -c1-16)"
  installed="$(cat "$stamp_file" 2>/dev/null || true)"
  # The stamp is "<hash> <extras installed>"; "dev" includes "serving", which includes "".
  local have="${installed#* }"
  if [ "${installed%% *}" != "$hash" ] || ! _extras_cover "$have" "$extras"; then
    [ "${installed%% *}" = "$hash" ] && extras="$(_wider "$have" "$extras")"
    _log "installing the lakehouse package${extras:+ [$extras]} and its pinned dependencies (first run takes a few minutes)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT${extras:+[$extras]}"
    echo "$hash $extras" > "$stamp_file"
  fi
  # Delta's jars into .cache/jars (offline once cached), the driver JVM's class-data-sharing archive
  # and the virtualenv's spark-env.sh, so that spark-submit from this virtualenv has Delta without
  # extra flags and starts fast (lakehouse/jvm.py). The archive: built once by a training run (about
  # 2-3 minutes) for the tests and the benchmark; "bootstrap '' first-run" (scripts/run_pipeline.sh)
  # instead sets ARCHIVE_DUMP when there is none yet, and that run's own JVM writes it at exit.
  ARCHIVE_DUMP=""
  if [ "${2:-}" = "first-run" ]; then
    ARCHIVE_DUMP="$("$VENV/bin/python" -m lakehouse.jvm --first-run-dump)"
  elif [ "${2:-}" = "no-archive" ]; then  # one JVM to start (the fast tier): an existing archive is used, none built
    "$VENV/bin/python" -m lakehouse.jvm --no-archive >/dev/null
  else
    "$VENV/bin/python" -m lakehouse.jvm >/dev/null
  fi
  export PATH="$VENV/bin:$PATH"
  export PYSPARK_PYTHON="$VENV/bin/python"
  export PYSPARK_DRIVER_PYTHON="$VENV/bin/python"
  export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
}
