#!/usr/bin/env python
"""Benchmark silver: ~1M events over a year, full backfill of both tables, then one incremental day.

    scripts/benchmark_silver.sh [--rows 1000000] [--users 3000] [--days 365] [--workdir DIR]

Generates the data with the project's generator, ingests the year into bronze (timed, reported, not part of
the silver figures), then times: silver.fct_events full load, silver.dim_users full backfill (one range
build + MERGE), then the next day arriving as a new file: its bronze ingest, the incremental
silver.fct_events MERGE and silver.dim_users for that one day (auto mode: it starts at that day).
Prints a table and writes ``benchmark_silver.json`` in the work dir. Wall-clock seconds on this machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from lakehouse import delta_io, generator
from lakehouse.bronze import fct_event_stream as bronze
from lakehouse.config import load_config
from lakehouse.registry import SILVER_DIM_USERS, SILVER_EVENTS
from lakehouse.session import get_spark
from lakehouse.silver import dim_users as silver_dim_users
from lakehouse.silver import fct_events as silver_fct_events


def split_last_day(source: Path, year_file: Path, day_file: Path, last_day: date) -> tuple[int, int]:
    """Stream the generated file into (every day but the last, the last day)."""
    prefix = last_day.isoformat()
    counts = [0, 0]
    with source.open() as src, year_file.open("w") as year, day_file.open("w") as day:
        header = src.readline()
        year.write(header)
        day.write(header)
        for line in src:
            target = 1 if line.startswith(prefix) else 0
            (day if target else year).write(line)
            counts[target] += 1
    return counts[0], counts[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--workdir", help="default: a temporary folder, removed afterwards")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lakehouse-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = date(2025, 1, 5)
    last_day = start + timedelta(days=args.days)  # the incremental day, after the year
    results: dict[str, object] = {"machine": f"{platform.node()} {platform.machine()}, {_cores()} cores"}

    t = time.perf_counter()
    raw = workdir / "raw.csv"
    generator.generate(raw, users=args.users, days=args.days + 1, start_date=start, seed=11,
                       target_rows=int(args.rows * (args.days + 1) / args.days))  # fmt: skip
    (workdir / "year").mkdir(exist_ok=True)
    (workdir / "day").mkdir(exist_ok=True)
    year_rows, day_rows = split_last_day(raw, workdir / "year" / "year.csv", workdir / "day" / "day.csv", last_day)
    raw.unlink()
    results["generate_seconds"] = round(time.perf_counter() - t, 1)
    results["year_rows"], results["day_rows"] = year_rows, day_rows

    config = load_config(env="local", overrides={
        "paths.warehouse": str(workdir / "warehouse"), "paths.input": str(workdir / "year"),
        "spark.driver_memory": args.driver_memory, "bronze.future_slack_minutes": 10**7,
    })  # fmt: skip
    spark = get_spark(config, app_name="benchmark-silver")

    def timed(name: str, fn, rows) -> None:
        """``rows``: a count, or a callable that counts after the step (rows the step produced)."""
        began = time.perf_counter()
        fn()
        seconds = time.perf_counter() - began
        rows = rows() if callable(rows) else rows
        results[name] = {"seconds": round(seconds, 1), "rows": rows, "rows_per_second": round(rows / seconds)}
        print(f"{name:32} {seconds:8.1f} s {rows:>10,} rows {rows / seconds:>10,.0f} rows/s", flush=True)

    def run(job, cfg=config) -> None:
        assert job.JOB.execute(spark, cfg, job.Params()) == 0, f"{job.JOB.name} failed"

    timed("bronze_year", lambda: run(bronze), year_rows)
    timed("silver_fct_events_backfill", lambda: run(silver_fct_events), year_rows)
    timed(
        "silver_dim_users_backfill", lambda: run(silver_dim_users), delta_io.read(spark, SILVER_EVENTS, config).count()
    )
    snapshots = delta_io.read(spark, SILVER_DIM_USERS, config).count()
    results["dim_users_rows_after_backfill"] = snapshots

    day_config = config.with_overrides(**{"paths.input": str(workdir / "day")})
    timed("bronze_one_day", lambda: run(bronze, day_config), day_rows)
    timed("silver_fct_events_one_day", lambda: run(silver_fct_events), day_rows)
    day_snapshots = lambda: delta_io.read(spark, SILVER_DIM_USERS, config).where(f"ds = DATE'{last_day}'").count()  # noqa: E731
    timed("silver_dim_users_one_day", lambda: run(silver_dim_users), day_snapshots)
    (workdir / "benchmark_silver.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    spark.stop()
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
