"""spark-submit entry point of the job `silver_fct_events` (lakehouse/silver/fct_events.py)."""

from lakehouse.job_runtime import exit_process
from lakehouse.launcher import job_main
from lakehouse.silver.fct_events import JOB

if __name__ == "__main__":
    exit_process(job_main(JOB))
