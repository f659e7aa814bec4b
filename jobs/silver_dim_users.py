"""spark-submit entry point of the job `silver_dim_users` (lakehouse/silver/dim_users.py)."""

from lakehouse.job_runtime import exit_process
from lakehouse.launcher import job_main
from lakehouse.silver.dim_users import JOB

if __name__ == "__main__":
    exit_process(job_main(JOB))
