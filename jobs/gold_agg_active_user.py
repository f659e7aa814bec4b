"""spark-submit entry point for lakehouse.jobs.gold_agg_active_user (see its docstring)."""

import sys

from lakehouse.jobs.gold_agg_active_user import main

if __name__ == "__main__":
    sys.exit(main())
