"""spark-submit entry point of the whole DAG in one application (lakehouse/pipeline.py)."""

from lakehouse.job_runtime import exit_process
from lakehouse.pipeline import main

if __name__ == "__main__":
    exit_process(main())
