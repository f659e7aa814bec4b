"""spark-submit entry point of the job `silver_user_activity_daily` (lakehouse/silver/user_activity_daily.py)."""

from lakehouse.job_runtime import exit_process
from lakehouse.launcher import job_main
from lakehouse.silver.user_activity_daily import JOB

if __name__ == "__main__":
    exit_process(job_main(JOB))
