"""spark-submit entry point of the job `restore_table` (lakehouse/maintenance.py)."""

import sys

from lakehouse.maintenance import RESTORE_JOB

if __name__ == "__main__":
    sys.exit(RESTORE_JOB.main())
