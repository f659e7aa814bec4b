"""Job: ``silver.fct_events`` -> ``silver.dim_users`` daily snapshots, MERGEd on ``(user_id, ds)``.

Modes:
- ``--ds D``: one day, as a daily scheduler calls it; built from the snapshot of ``D - 1`` plus
  the events of ``D`` (cost grows with users, not with history).
- ``--start-date A --end-date B``: every day of the range in one Spark job and one MERGE.
- no dates: from the earliest ``event_date`` of silver events this table has not consumed yet (late
  events included) or the day after the last snapshot, whichever is earlier, to the data's last
  date. So a late event recomputes every snapshot from its day on. What counts as consumed is
  read from the data (``silver.fct_events._batch_id`` against ``ops.processed_batches``), so a run
  that died between two commits is repaired by the next one.

Never reads the wall clock: the dates come from the arguments and the data only.
"""

from __future__ import annotations

import argparse
import logging
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.config import LakehouseConfig
from lakehouse.jobs.common import JobFailed, iso_date, run_job
from lakehouse.ops import JobRun, utc_now
from lakehouse.registry import OPS_PROCESSED_BATCHES, SILVER_DIM_USERS, SILVER_EVENTS
from lakehouse.silver.dim_users import build_snapshots, state_from_events, state_from_snapshot

JOB = "silver_dim_users"
CONSUMER = SILVER_DIM_USERS.full_name
log = logging.getLogger("lakehouse")


def _date_literal(d: date) -> str:
    return f"DATE'{d.isoformat()}'"


def base_state(spark: SparkSession, config: LakehouseConfig, start: date) -> DataFrame:
    """State as of ``start - 1``: that day's snapshot when it exists, else an aggregate of older events."""
    previous = start - timedelta(days=1)
    snapshots = delta_io.read(spark, SILVER_DIM_USERS, config).where(F.col("ds") == F.lit(previous))
    if snapshots.limit(1).count():
        return state_from_snapshot(snapshots)
    older = delta_io.read(spark, SILVER_EVENTS, config).where(F.col("event_date") < F.lit(start))
    return state_from_events(older)


def build_range(spark: SparkSession, config: LakehouseConfig, start: date, end: date) -> DataFrame:
    events = delta_io.read(spark, SILVER_EVENTS, config).where(
        (F.col("event_date") >= F.lit(start)) & (F.col("event_date") <= F.lit(end))
    )
    return build_snapshots(base_state(spark, config, start), events, start, end)


def write_range(spark: SparkSession, config: LakehouseConfig, start: date, end: date) -> dict[str, int]:
    snapshots = build_range(spark, config, start, end)
    prune = f"t.ds >= {_date_literal(start)} AND t.ds <= {_date_literal(end)}"
    return delta_io.merge_upsert(snapshots, SILVER_DIM_USERS, config, ["user_id", "ds"], prune)


def auto_range(spark: SparkSession, config: LakehouseConfig) -> tuple[date | None, date | None, list[str]]:
    """(start, end, batch ids to mark consumed) from what silver has that the snapshots do not reflect."""
    events = delta_io.read(spark, SILVER_EVENTS, config)
    consumed = (
        delta_io.read(spark, OPS_PROCESSED_BATCHES, config).where(F.col("consumer") == CONSUMER).select("batch_id")
    )
    pending = events.join(consumed.withColumnRenamed("batch_id", "_batch_id"), on="_batch_id", how="left_anti")
    pending_stats = pending.groupBy("_batch_id").agg(F.min("event_date").alias("lo")).collect()
    max_event_date = events.agg(F.max("event_date")).first()[0]
    last_ds = delta_io.read(spark, SILVER_DIM_USERS, config).agg(F.max("ds")).first()[0]
    if max_event_date is None:
        return None, None, []
    candidates = [r["lo"] for r in pending_stats]
    if last_ds is not None and last_ds < max_event_date:
        candidates.append(last_ds + timedelta(days=1))
    if last_ds is None:
        candidates.append(events.agg(F.min("event_date")).first()[0])
    start = min(candidates) if candidates else None
    return start, max_event_date, sorted(r["_batch_id"] for r in pending_stats)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ds", type=iso_date, help="build one day's snapshot")
    parser.add_argument("--start-date", type=iso_date, help="first ds of a range (with --end-date)")
    parser.add_argument("--end-date", type=iso_date, help="last ds of a range (with --start-date)")
    parser.add_argument("--full-refresh", action="store_true", help="rebuild every snapshot from silver events")


def execute(spark: SparkSession, config: LakehouseConfig, run: JobRun, args: argparse.Namespace) -> None:
    ds, start, end = getattr(args, "ds", None), getattr(args, "start_date", None), getattr(args, "end_date", None)
    if ds and (start or end):
        raise JobFailed("give either --ds or --start-date/--end-date, not both")
    if bool(start) != bool(end):
        raise JobFailed("--start-date and --end-date go together")
    if start and end and start > end:
        raise JobFailed(f"--start-date {start} is after --end-date {end}")
    if getattr(args, "full_refresh", False):
        delta_io.ensure_table(spark, SILVER_DIM_USERS, config).delete()
        delta_io.ensure_table(spark, OPS_PROCESSED_BATCHES, config).delete(F.col("consumer") == CONSUMER)

    batches: list[str] = []
    if ds:
        start = end = ds
    elif not start:
        start, end, batches = auto_range(spark, config)
        if start is None or end is None or start > end:
            log.info("%s: snapshots are up to date", JOB)
            run.rows_out = 0
            return
    assert start is not None and end is not None
    log.info("%s: building snapshots %s .. %s", JOB, start, end)
    metrics = write_range(spark, config, start, end)
    run.rows_out = metrics.get("numTargetRowsInserted", 0) + metrics.get("numTargetRowsUpdated", 0)
    if batches:
        now = utc_now()
        rows = [(CONSUMER, b, run.run_id, 0, 0, None, now) for b in batches]
        delta_io.append(spark.createDataFrame(rows, OPS_PROCESSED_BATCHES.schema), OPS_PROCESSED_BATCHES, config)
    run.parameters.update({"resolved_start": str(start), "resolved_end": str(end)})
    log.info("%s: %s .. %s merged (%s)", JOB, start, end, metrics)


def main(argv: list[str] | None = None) -> int:
    return run_job(JOB, __doc__.splitlines()[0], add_arguments, execute, argv)
