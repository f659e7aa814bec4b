"""spark-submit entry point: the whole DAG in one application. See lakehouse.jobs.pipeline."""

import sys

from lakehouse.jobs.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
