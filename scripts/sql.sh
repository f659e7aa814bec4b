#!/usr/bin/env bash
# Ad-hoc Spark SQL over every lakehouse table (bronze.*, silver.*, gold.*, ops.*), printed as a
# readable table. Runs on the Thrift server when scripts/start_thrift_server.sh started one
# (registering tables created since), else in a local Spark session that registers them.
#   scripts/sql.sh "SELECT period_type, SUM(active_users) FROM gold.agg_active_user GROUP BY 1"
#   scripts/sql.sh --local --warehouse /tmp/wh "SHOW TABLES IN silver; SELECT COUNT(*) FROM silver.fct_events"
#   echo "SELECT 1" | scripts/sql.sh
# Options: --local, --max-rows N (default 200), --warehouse DIR, --env NAME, --set key=value.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap serving
cd "$ROOT"
exec lakehouse sql "$@"
