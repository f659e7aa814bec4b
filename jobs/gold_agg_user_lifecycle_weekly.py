"""spark-submit entry point of the job `gold_agg_user_lifecycle_weekly` (lakehouse/gold/job.py)."""

from lakehouse.gold.job import JOBS
from lakehouse.jobkit import exit_process

if __name__ == "__main__":
    exit_process(JOBS["gold_agg_user_lifecycle_weekly"].main())
