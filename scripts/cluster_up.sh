#!/usr/bin/env bash
# Start a Spark standalone cluster (1 master + 1 worker, spark://127.0.0.1:7077) and an S3 server
# (SeaweedFS, http://127.0.0.1:8333, buckets heymax-raw and heymax-lakehouse), all on 127.0.0.1,
# state under .cache/cluster/; waits until the worker has registered. Then, for example:
#   .venv/bin/lakehouse cluster submit jobs/run_pipeline.py     (the whole DAG on the cluster, over S3)
#   scripts/cluster_up.sh [all|spark|s3]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
bootstrap
cd "$ROOT"
exec lakehouse cluster up "$@"
