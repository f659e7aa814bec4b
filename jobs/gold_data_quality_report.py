"""spark-submit entry point for lakehouse.jobs.gold_data_quality_report (see its docstring)."""

import sys

from lakehouse.jobs.gold_data_quality_report import main

if __name__ == "__main__":
    sys.exit(main())
