"""spark-submit entry point of the job `gold_agg_miles_category_weekly` (lakehouse/gold/job.py)."""

import sys

from lakehouse.gold.job import JOBS

if __name__ == "__main__":
    sys.exit(JOBS["gold_agg_miles_category_weekly"].main())
