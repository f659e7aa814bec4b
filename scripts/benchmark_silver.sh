#!/usr/bin/env bash
# Silver benchmark (about 1M events over a year + one incremental day); see scripts/benchmark_silver.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap dev
cd "$ROOT"
exec python scripts/benchmark_silver.py "$@"
