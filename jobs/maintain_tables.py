"""spark-submit entry point of the job `maintain_tables` (lakehouse/maintenance.py)."""

from lakehouse.job_runtime import exit_process
from lakehouse.launcher import job_main
from lakehouse.maintenance import MAINTAIN_JOB

if __name__ == "__main__":
    exit_process(job_main(MAINTAIN_JOB))
