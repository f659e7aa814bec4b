"""spark-submit entry point of the whole DAG in one application (lakehouse/pipeline.py)."""

import sys

from lakehouse.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
