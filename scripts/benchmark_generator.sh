#!/usr/bin/env bash
# Benchmark the synthetic event generator at scale (default: 10 million rows) into a temp dir,
# then print seconds, rows, rows/s and peak RSS. The output is deleted afterwards.
#
# Usage: scripts/benchmark_generator.sh [TARGET_ROWS] [WORKERS]
#   env: USERS (100000), DAYS (365), START (2024-01-07), FILES (4), SEED (42), PYTHON, KEEP=1
# Peak RSS comes from /usr/bin/time -v when present, else from Python's resource module
# (RUSAGE_CHILDREN: the largest process, i.e. one worker, not the sum over workers).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"  # ROOT and VENV (nothing installed here)
PY="${PYTHON:-$VENV/bin/python}"
TARGET_ROWS="${1:-10000000}"
WORKERS="${2:-1}"
USERS="${USERS:-100000}"
DAYS="${DAYS:-365}"
START="${START:-2024-01-07}"
FILES="${FILES:-4}"
SEED="${SEED:-42}"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/gen_bench.XXXXXX")"
if [[ "${KEEP:-0}" != "1" ]]; then trap 'rm -rf "$TMP"' EXIT; fi

CMD=("$PY" "$ROOT/scripts/generate_events.py" --out "$TMP/out" --users "$USERS" --days "$DAYS"
     --start-date "$START" --seed "$SEED" --files "$FILES" --target-rows "$TARGET_ROWS"
     --invalid-rate 0.001 --duplicate-rate 0.001 --late-rate 0.001 --workers "$WORKERS")
echo "command: ${CMD[*]}"

start_ns=$(date +%s%N)
if [[ -x /usr/bin/time ]]; then
  /usr/bin/time -v -o "$TMP/time.txt" "${CMD[@]}"
  peak_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$TMP/time.txt")
  rss_source="/usr/bin/time -v"
else
  peak_kb=$("$PY" - "${CMD[@]}" <<'EOF'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=sys.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
EOF
)
  rss_source="python resource (RUSAGE_CHILDREN)"
fi
end_ns=$(date +%s%N)

# Data rows = all lines minus one header per file.
rows=$(cat "$TMP"/out/*.csv | wc -l)
nfiles=$(ls "$TMP"/out/*.csv | wc -l)
rows=$((rows - nfiles))
bytes=$(cat "$TMP"/out/*.csv | wc -c)

awk -v ns="$((end_ns - start_ns))" -v rows="$rows" -v kb="$peak_kb" -v bytes="$bytes" \
    -v files="$nfiles" -v workers="$WORKERS" -v src="$rss_source" 'BEGIN {
  s = ns / 1e9
  printf "seconds:    %.2f\n", s
  printf "rows:       %d (in %d files, %.0f MB)\n", rows, files, bytes / 1e6
  printf "rows/s:     %.0f\n", rows / s
  printf "peak RSS:   %.1f MB (%s)\n", kb / 1024, src
  printf "workers:    %d\n", workers
}'
if [[ "${KEEP:-0}" == "1" ]]; then echo "kept output in $TMP/out"; fi
