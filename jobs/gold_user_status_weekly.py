"""spark-submit entry point of the job `gold_user_status_weekly` (lakehouse/gold/refresh.py)."""

from lakehouse.gold.refresh import JOBS
from lakehouse.job_runtime import exit_process
from lakehouse.launcher import job_main

if __name__ == "__main__":
    exit_process(job_main(JOBS["gold_user_status_weekly"]))
