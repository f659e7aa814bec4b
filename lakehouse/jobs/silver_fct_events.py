"""Job: new bronze batches -> ``silver.fct_events`` (one row per distinct event_id).

Incremental: only committed bronze batches that this table has not consumed yet are read
(``ops.ingested_files`` minus ``ops.processed_batches``). They are written with a Delta MERGE that
inserts event_ids the table does not have (matching on ``event_id`` and its ``event_date``, which
the id determines, so the MERGE touches only the partitions the batch covers). A re-run inserts
nothing; an event delivered again in a later file adds nothing. Each consumed batch is recorded in
``ops.processed_batches`` with the earliest event_date it inserted, for the dim_users job.
"""

from __future__ import annotations

import argparse
import logging

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.config import LakehouseConfig
from lakehouse.jobs.common import run_job
from lakehouse.ops import JobRun, utc_now
from lakehouse.registry import BRONZE_EVENTS, OPS_INGESTED_FILES, OPS_PROCESSED_BATCHES, SILVER_EVENTS
from lakehouse.silver.events import build_events

JOB = "silver_fct_events"
CONSUMER = SILVER_EVENTS.full_name
log = logging.getLogger("lakehouse")


def pending_batches(spark: SparkSession, config: LakehouseConfig, consumer: str) -> list[str]:
    committed = (
        delta_io.read(spark, OPS_INGESTED_FILES, config).where(F.col("status") == "committed").select("batch_id")
    )
    consumed = (
        delta_io.read(spark, OPS_PROCESSED_BATCHES, config).where(F.col("consumer") == consumer).select("batch_id")
    )
    return sorted(r["batch_id"] for r in committed.join(consumed, on="batch_id", how="left_anti").distinct().collect())


def load(spark: SparkSession, config: LakehouseConfig, run: JobRun, *, refresh: bool = False) -> int:
    """Load pending batches; returns the number of events inserted."""
    if refresh:
        delta_io.ensure_table(spark, SILVER_EVENTS, config).delete()
        delta_io.ensure_table(spark, OPS_PROCESSED_BATCHES, config).delete(F.col("consumer") == CONSUMER)
    batches = pending_batches(spark, config, CONSUMER)
    if not batches:
        log.info("%s: no new bronze batches", JOB)
        run.rows_in = run.rows_out = 0
        return 0
    bronze_df = delta_io.read(spark, BRONZE_EVENTS, config).where(F.col("_batch_id").isin(batches))
    events_df = build_events(bronze_df)
    # event_id determines event_date, so only the partitions the batches cover can hold a duplicate:
    # bound the anti-join to them instead of scanning every event_id of the table.
    lo, hi = bronze_df.agg(F.min("event_date"), F.max("event_date")).first()
    existing = (
        delta_io.read(spark, SILVER_EVENTS, config)
        .where(F.col("event_date").between(F.lit(lo), F.lit(hi)))
        .select("event_id", "event_date")
    )
    new_df = events_df.join(existing, on=["event_id", "event_date"], how="left_anti").persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        stats = new_df.agg(
            F.count(F.lit(1)).alias("n"), F.min("event_date").alias("lo"), F.max("event_date").alias("hi")
        )
        stats = stats.first()
        per_batch = {
            r["_batch_id"]: (int(r["n"]), r["lo"])
            for r in new_df.groupBy("_batch_id")
            .agg(F.count(F.lit(1)).alias("n"), F.min("event_date").alias("lo"))
            .collect()
        }
        rows_in = {r["_batch_id"]: int(r["count"]) for r in bronze_df.groupBy("_batch_id").count().collect()}
        inserted = 0
        if stats["n"]:
            prune = f"t.event_date >= DATE'{stats['lo']}' AND t.event_date <= DATE'{stats['hi']}'"
            metrics = delta_io.merge_insert_new(new_df, SILVER_EVENTS, config, ["event_id", "event_date"], prune)
            inserted = metrics.get("numTargetRowsInserted", stats["n"])
    finally:
        new_df.unpersist()
    now = utc_now()
    rows = [
        (
            CONSUMER,
            b,
            run.run_id,
            rows_in.get(b, 0),
            per_batch.get(b, (0, None))[0],
            per_batch.get(b, (0, None))[1],
            now,
        )
        for b in batches
    ]
    delta_io.append(spark.createDataFrame(rows, OPS_PROCESSED_BATCHES.schema), OPS_PROCESSED_BATCHES, config)
    run.rows_in, run.rows_out = sum(rows_in.values()), inserted
    log.info("%s: %d batches, %d bronze rows, %d new events", JOB, len(batches), run.rows_in, inserted)
    return inserted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full-refresh", action="store_true", help="rebuild from every committed bronze batch")


def execute(spark: SparkSession, config: LakehouseConfig, run: JobRun, args: argparse.Namespace) -> None:
    load(spark, config, run, refresh=getattr(args, "full_refresh", False))


def main(argv: list[str] | None = None) -> int:
    return run_job(JOB, __doc__.splitlines()[0], add_arguments, execute, argv)
