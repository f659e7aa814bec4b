"""spark-submit entry point of the job `silver_dim_users` (lakehouse/silver/dim_users.py)."""

import sys

from lakehouse.silver.dim_users import JOB

if __name__ == "__main__":
    sys.exit(JOB.main())
