#!/usr/bin/env bash
# System packages the serving tests need, installed once: Debian's `chromium` (headless browser
# for the dashboard screenshots, driven by Python Playwright with executable_path; never a
# browser build downloaded by `playwright install`).
#
# Idempotent: when everything is there it prints one line and returns at once. Installing needs
# root (apt-get); without root it says what to install and exits 1.
#   bash scripts/_serving_prereqs.sh
set -euo pipefail

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
  echo "[serving-prereqs] chromium present ($CHROMIUM)" >&2
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "[serving-prereqs] ERROR: $CHROMIUM missing; install Debian's chromium as root: apt-get install chromium" >&2
  exit 1
fi

echo "[serving-prereqs] installing Debian's chromium (apt-get; first run only)" >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp -t serving-prereqs.XXXXXX.log)"
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "[serving-prereqs] ERROR: apt-get failed (full output: $log)" >&2
  exit 1
fi
rm -f "$log"
[ -x "$CHROMIUM" ] || { echo "[serving-prereqs] ERROR: chromium installed but $CHROMIUM missing" >&2; exit 1; }
echo "[serving-prereqs] chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")" >&2
