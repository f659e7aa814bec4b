"""spark-submit entry point of the job `maintain_tables` (lakehouse/maintenance.py)."""

import sys

from lakehouse.maintenance import MAINTAIN_JOB

if __name__ == "__main__":
    sys.exit(MAINTAIN_JOB.main())
