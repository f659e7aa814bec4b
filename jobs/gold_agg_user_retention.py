"""spark-submit entry point for lakehouse.jobs.gold_agg_user_retention (see its docstring)."""

import sys

from lakehouse.jobs.gold_agg_user_retention import main

if __name__ == "__main__":
    sys.exit(main())
