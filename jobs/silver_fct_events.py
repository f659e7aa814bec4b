"""spark-submit entry point of the job `silver_fct_events` (lakehouse/silver/fct_events.py)."""

import sys

from lakehouse.silver.fct_events import JOB

if __name__ == "__main__":
    sys.exit(JOB.main())
