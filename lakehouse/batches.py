"""Incremental bookkeeping: which bronze batches a consumer has not consumed yet.

A batch is one ingested file, committed to bronze and listed in ``ops.ingested_files``. Each table
that reads batches incrementally (a *consumer*: ``silver.fct_events``, ``silver.dim_users``) records
the batches it has loaded in ``ops.processed_batches``; what it has not recorded is pending. Every
consumer goes through this module, so the rule is written once:

- :func:`pending` - committed batches the consumer has not recorded;
- :func:`consumed` - the batch ids it has recorded (for consumers that decide from the data);
- :func:`record` - mark batches consumed, one Delta commit for the whole run;
- :func:`reset` - forget a consumer's (or every consumer's) batches;
- :func:`full_refresh` - empty the consumer's tables, then reset it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.config import LakehouseConfig
from lakehouse.ops import utc_now
from lakehouse.registry import OPS_INGESTED_FILES, OPS_PROCESSED_BATCHES, TableSpec


@dataclass(frozen=True)
class Consumption:
    """What a consumer did with one batch (``ops.processed_batches`` row)."""

    batch_id: str
    rows_in: int = 0
    rows_inserted: int = 0
    min_event_date_inserted: date | None = None


def consumed(spark: SparkSession, config: LakehouseConfig, consumer: str) -> DataFrame:
    """``batch_id`` of every batch the consumer has recorded."""
    return delta_io.read(spark, OPS_PROCESSED_BATCHES, config).where(F.col("consumer") == consumer).select("batch_id")


def pending(spark: SparkSession, config: LakehouseConfig, consumer: str) -> list[str]:
    """Committed bronze batches the consumer has not recorded, sorted."""
    committed = (
        delta_io.read(spark, OPS_INGESTED_FILES, config).where(F.col("status") == "committed").select("batch_id")
    )
    left = committed.join(consumed(spark, config, consumer), on="batch_id", how="left_anti").distinct()
    return sorted(r["batch_id"] for r in left.collect())


def record(
    spark: SparkSession, config: LakehouseConfig, consumer: str, run_id: str, batches: Sequence[Consumption]
) -> None:
    """Mark ``batches`` consumed by ``consumer`` (one commit)."""
    if not batches:
        return
    now = utc_now()
    rows = [
        (consumer, b.batch_id, run_id, int(b.rows_in), int(b.rows_inserted), b.min_event_date_inserted, now)
        for b in batches
    ]
    delta_io.append(spark.createDataFrame(rows, OPS_PROCESSED_BATCHES.schema), OPS_PROCESSED_BATCHES, config)


def full_refresh(spark: SparkSession, config: LakehouseConfig, consumer: str | None, *tables: TableSpec) -> None:
    """Forget what ``consumer`` (every consumer when None) consumed, then empty ``tables`` in order.

    Bookkeeping goes first: a run killed half-way leaves tables that are re-read in full by the
    next run (MERGE and replaceWhere make that idempotent), never an emptied table whose
    bookkeeping says it is up to date.
    """
    reset(spark, config, consumer)
    for spec in tables:
        delta_io.ensure_table(spark, spec, config).delete()


def reset(spark: SparkSession, config: LakehouseConfig, consumer: str | None = None) -> None:
    """Forget what ``consumer`` (every consumer when None) consumed: its next run re-reads every batch."""
    table = delta_io.ensure_table(spark, OPS_PROCESSED_BATCHES, config)
    if consumer is None:
        table.delete()
    else:
        table.delete(F.col("consumer") == consumer)
