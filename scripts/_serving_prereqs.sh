#!/usr/bin/env bash
# System packages the serving tests need, installed once: Debian's `chromium` (headless browser
# for the dashboard screenshots, driven by Python Playwright with executable_path; never a
# browser build downloaded by `playwright install`), and a JDK's `javac` (the Thrift server's
# read-only guard and password check are compiled on its first start: openjdk-17-jdk-headless).
#
# Idempotent: when everything is there it prints one line and returns at once. Installing needs
# root (apt-get); without root it says what to install and exits 1.
#   bash scripts/_serving_prereqs.sh
set -euo pipefail

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
have_javac() { command -v javac >/dev/null 2>&1 || [ -x "${JAVA_HOME:-/nonexistent}/bin/javac" ]; }

packages=()
[ -x "$CHROMIUM" ] || packages+=(chromium fonts-dejavu-core)
have_javac || packages+=(openjdk-17-jdk-headless)
if [ "${#packages[@]}" = 0 ]; then
  echo "[serving-prereqs] chromium and javac present ($CHROMIUM)" >&2
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "[serving-prereqs] ERROR: missing; install as root: apt-get install ${packages[*]}" >&2
  exit 1
fi

echo "[serving-prereqs] installing ${packages[*]} (apt-get; first run only)" >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp -t serving-prereqs.XXXXXX.log)"
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "[serving-prereqs] ERROR: apt-get failed (full output: $log)" >&2
  exit 1
fi
rm -f "$log"
[ -x "$CHROMIUM" ] || { echo "[serving-prereqs] ERROR: chromium installed but $CHROMIUM missing" >&2; exit 1; }
have_javac || { echo "[serving-prereqs] ERROR: the JDK installed but javac not on PATH" >&2; exit 1; }
echo "[serving-prereqs] installed ${packages[*]}: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")" >&2
