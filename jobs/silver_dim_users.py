"""spark-submit entry point for lakehouse.jobs.silver_dim_users (see its docstring)."""

import sys

from lakehouse.jobs.silver_dim_users import main

if __name__ == "__main__":
    sys.exit(main())
