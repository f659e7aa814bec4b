#!/usr/bin/env bash
# Stop exactly the processes scripts/cluster_up.sh started (pid files under .cache/cluster/).
#   scripts/cluster_down.sh [all|spark|s3]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap
cd "$ROOT"
exec lakehouse cluster down "$@"
