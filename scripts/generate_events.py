"""Thin wrapper of ``lakehouse generate`` (logic in ``lakehouse.generator``), for runs from a checkout.

Example (the shipped sample, see data/sample/README.md)::

    .venv/bin/python scripts/generate_events.py --users 300 --days 182 --start-date 2025-01-05 \\
        --seed 42 --target-rows 35000 --invalid-rate 0.0005 --duplicate-rate 0.0005 \\
        --late-rate 0.001 --files 3 --out data/sample

Scale: ``--target-rows N`` picks the events per active day that give roughly N rows. Ten million
rows, as in ``scripts/benchmark_generator.sh``: ``--users 100000 --days 365 --start-date 2024-01-07
--files 4 --target-rows 10000000`` (add ``--workers 2`` to use two processes; same bytes).
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from lakehouse.generator import main
except ImportError:  # run as a script from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from lakehouse.generator import main

if __name__ == "__main__":
    sys.exit(main())
