"""spark-submit entry point of the job `bronze_fct_event_stream` (lakehouse/bronze/fct_event_stream.py)."""

from lakehouse.bronze.fct_event_stream import JOB
from lakehouse.job_runtime import exit_process
from lakehouse.launcher import job_main

if __name__ == "__main__":
    exit_process(job_main(JOB))
