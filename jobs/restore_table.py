"""spark-submit entry point of the job `restore_table` (lakehouse/maintenance.py)."""

from lakehouse.job_runtime import exit_process
from lakehouse.launcher import job_main
from lakehouse.maintenance import RESTORE_JOB

if __name__ == "__main__":
    exit_process(job_main(RESTORE_JOB))
