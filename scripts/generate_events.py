"""CLI for the synthetic event stream generator (logic lives in ``lakehouse.generator``).

Example (the shipped sample, see data/sample/README.md)::

    .venv/bin/python scripts/generate_events.py --users 300 --days 182 --start-date 2025-01-05 \\
        --seed 42 --target-rows 35000 --invalid-rate 0.0005 --duplicate-rate 0.0005 \\
        --late-rate 0.001 --files 3 --out data/sample

Scale: ``--target-rows N`` picks the events per active day that give roughly N rows. Ten million
rows, as in ``scripts/benchmark_generator.sh``: ``--users 100000 --days 365 --start-date 2024-01-07
--files 4 --target-rows 10000000`` (add ``--workers 2`` to use two processes; same bytes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    from lakehouse import generator
except ImportError:  # run as a script from a checkout: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from lakehouse import generator


def build_parser() -> argparse.ArgumentParser:
    """Flags mirror ``generator.generate`` keyword arguments one to one."""
    p = argparse.ArgumentParser(description="Write a synthetic HeyMax event_stream.csv (SPEC source format).")
    p.add_argument("--out", required=True, help="directory, or FILE.csv when --files 1")
    p.add_argument("--users", type=int, default=300, help="number of users (default 300)")
    p.add_argument("--days", type=int, default=182, help="days in the period (default 182)")
    p.add_argument("--start-date", default="2025-01-05", help="first date, YYYY-MM-DD (default 2025-01-05)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--invalid-rate", type=float, default=0.0, help="share of events written as invalid rows")
    p.add_argument("--duplicate-rate", type=float, default=0.0, help="share of events written twice")
    p.add_argument("--late-rate", type=float, default=0.0, help="share of events written to a later file")
    p.add_argument("--files", type=int, default=1, help="split the date range into N files (default 1)")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--events-per-day",
        type=float,
        default=3.0,
        help="mean events on an active day of an average user (default 3.0)",
    )
    size.add_argument("--target-rows", type=int, default=None, help="aim for roughly this many data rows")
    p.add_argument("--workers", type=int, default=1, help="processes; output is identical for any value")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the generator and print a one-screen summary (to stderr, so stdout stays clean)."""
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        result = generator.generate(
            args.out,
            users=args.users,
            days=args.days,
            start_date=args.start_date,
            seed=args.seed,
            invalid_rate=args.invalid_rate,
            duplicate_rate=args.duplicate_rate,
            late_rate=args.late_rate,
            files=args.files,
            events_per_day=args.events_per_day,
            target_rows=args.target_rows,
            workers=args.workers,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    for path, rows in zip(result.files, result.rows_per_file, strict=True):
        print(f"{path}\t{rows} rows", file=sys.stderr)
    kinds = ", ".join(f"{k}={v}" for k, v in result.invalid_by_kind.items() if v)
    print(
        f"rows={result.rows} valid_events={result.valid_events} duplicates={result.duplicates} "
        f"late={result.late} invalid={result.invalid} ({kinds or 'none'}) "
        f"events_per_day={result.events_per_day:.4f} seconds={seconds:.2f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
