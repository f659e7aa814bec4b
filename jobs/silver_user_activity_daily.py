"""spark-submit entry point of the job `silver_user_activity_daily` (lakehouse/silver/user_activity_daily.py)."""

import sys

from lakehouse.silver.user_activity_daily import JOB

if __name__ == "__main__":
    sys.exit(JOB.main())
