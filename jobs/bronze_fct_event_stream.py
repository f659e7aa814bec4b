"""spark-submit entry point of the job `bronze_fct_event_stream` (lakehouse/bronze/fct_event_stream.py)."""

import sys

from lakehouse.bronze.fct_event_stream import JOB

if __name__ == "__main__":
    sys.exit(JOB.main())
