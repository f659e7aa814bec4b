#!/usr/bin/env bash
# Regenerates docs/screenshots/<dashboard>.png (the dashboard images the READMEs show):
# runs the serving end-to-end test (pipeline on the sample -> Thrift server -> Superset ->
# headless Chromium) with SAVE_SCREENSHOTS=1. About 5 minutes; stop a running Superset first
# (scripts/superset_down.sh), the test starts and stops its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SAVE_SCREENSHOTS=1 exec scripts/test.sh tests/serving/test_serving_e2e.py -s "$@"
