"""spark-submit entry point for lakehouse.jobs.gold_agg_user_lifecycle_weekly (see its docstring)."""

import sys

from lakehouse.jobs.gold_agg_user_lifecycle_weekly import main

if __name__ == "__main__":
    sys.exit(main())
