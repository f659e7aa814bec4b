"""spark-submit entry point for lakehouse.jobs.silver_fct_events (see its docstring)."""

import sys

from lakehouse.jobs.silver_fct_events import main

if __name__ == "__main__":
    sys.exit(main())
