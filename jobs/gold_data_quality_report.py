"""spark-submit entry point of the job `gold_data_quality_report` (lakehouse/gold/data_quality_report.py)."""

from lakehouse.gold.data_quality_report import JOB
from lakehouse.job_runtime import exit_process
from lakehouse.launcher import job_main

if __name__ == "__main__":
    exit_process(job_main(JOB))
