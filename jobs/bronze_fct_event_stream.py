"""spark-submit entry point: raw CSV -> bronze.fct_event_stream (+ quarantine). See lakehouse.jobs."""

import sys

from lakehouse.jobs.bronze_fct_event_stream import main

if __name__ == "__main__":
    sys.exit(main())
