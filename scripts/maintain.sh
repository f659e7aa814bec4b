#!/usr/bin/env bash
# Table maintenance: OPTIMIZE the small files daily runs leave, then VACUUM files older than
# operations.vacuum_retention_hours (default 168 h, the time-travel window); prints files
# before/after per table. Takes the warehouse lock like every writing run. Run it weekly.
#   scripts/maintain.sh [--warehouse DIR] [--tables gold.agg_active_user,ops.job_runs] [--no-vacuum]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap
cd "$ROOT"
exec lakehouse maintain "$@"
