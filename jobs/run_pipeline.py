"""spark-submit entry point of the whole DAG in one application (lakehouse/launcher.py)."""

from lakehouse.job_runtime import exit_process
from lakehouse.launcher import run_main

if __name__ == "__main__":
    exit_process(run_main())
