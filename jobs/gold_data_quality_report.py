"""spark-submit entry point of the job `gold_data_quality_report` (lakehouse/gold/data_quality_report.py)."""

import sys

from lakehouse.gold.data_quality_report import JOB

if __name__ == "__main__":
    sys.exit(JOB.main())
