"""``silver.fct_events``: one row per distinct event_id (partitioned by event_date); job ``silver_fct_events``.

``event_id = md5(concat_ws('-', date_format(event_time, 'yyyy-MM-dd HH:mm:ss.SSSSSS'), user_id,
event_type))`` (docs/contract.md). Cross-run dedup rule: when the same event_id is delivered more
than once, the first delivery wins (earliest ``_ingested_at``, then source file name, then line);
within a run by :func:`first_delivery`, across runs because the load only inserts event_ids the
table does not have yet.

The job is incremental: it reads only the committed bronze batches this table has not consumed
(:mod:`lakehouse.batches`), and only the bronze partitions of their event dates (from the file
manifest), and writes them with a Delta MERGE that inserts the event_ids the table lacks, matching
on ``event_id`` and its ``event_date`` (which the id determines), so the MERGE touches only the
partitions the batches cover. A re-run inserts nothing; an event delivered again in a later file
adds nothing. Each consumed batch is recorded with the earliest and latest event_date it brought
(:func:`batch_effects`): downstream tables recompute from those days.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse import batches, delta_io
from lakehouse.jobkit import Job, JobContext, param
from lakehouse.registry import BRONZE_EVENTS, EVENT_TIME_PATTERN, SILVER_EVENTS

CONSUMER = SILVER_EVENTS.full_name
log = logging.getLogger("lakehouse")


def event_id(event_time: Column, user_id: Column, event_type: Column) -> Column:
    return F.md5(F.concat_ws("-", F.date_format(event_time, EVENT_TIME_PATTERN), user_id, event_type))


def event_data(transaction_category: Column, miles_amount: Column, platform: Column) -> Column:
    """JSON of the type-specific attributes; null values are kept as JSON null."""
    attributes = F.struct(
        transaction_category.alias("transaction_category"),
        miles_amount.alias("miles_amount"),
        platform.alias("platform"),
    )
    return F.to_json(attributes, {"ignoreNullFields": "false"})


def with_event_columns(bronze_df: DataFrame) -> DataFrame:
    return bronze_df.withColumn("event_id", event_id(F.col("event_time"), F.col("user_id"), F.col("event_type")))


def first_delivery(events_df: DataFrame) -> DataFrame:
    """One row per event_id: the earliest delivery (ingestion time, file, line)."""
    order = Window.partitionBy("event_id").orderBy("_ingested_at", "_source_file", "_source_line")
    return events_df.withColumn("_delivery", F.row_number().over(order)).where(F.col("_delivery") == 1)


def build_events(bronze_df: DataFrame) -> DataFrame:
    """Bronze rows (any number of batches) -> deduplicated silver events."""
    deduped = first_delivery(with_event_columns(bronze_df))
    return deduped.select(
        "event_id",
        "event_time",
        "event_date",
        "user_id",
        "event_type",
        "transaction_category",
        "miles_amount",
        "platform",
        "utm_source",
        "country",
        event_data(F.col("transaction_category"), F.col("miles_amount"), F.col("platform")).alias("event_data"),
        "_batch_id",
    )


def new_events(bronze_df: DataFrame, silver_df: DataFrame, lo: date, hi: date) -> DataFrame:
    """Deduplicated events of ``bronze_df`` (event dates ``lo``..``hi``), each with ``_present``.

    ``_present`` is the ``_batch_id`` of the silver row that already holds the event_id (null: the
    event is new and must be inserted). event_id determines event_date, so only silver's partitions
    in ``lo``..``hi`` can hold one: the lookup is bounded to them instead of scanning every event_id
    of the table.
    """
    existing = silver_df.where(F.col("event_date").between(F.lit(lo), F.lit(hi))).select(
        "event_id", "event_date", F.col("_batch_id").alias("_present")
    )
    return build_events(bronze_df).join(existing, on=["event_id", "event_date"], how="left")


def batch_effects(candidates: DataFrame) -> DataFrame:
    """Per batch: events it inserts now, and the event dates it brought into silver.

    A batch's dates cover the events it inserts now *and* those silver already holds from this
    very batch: an earlier run that committed them and was stopped before its bookkeeping. So the
    consumers downstream learn about those days too (a crash never hides a late event).
    """
    brought = F.col("_present").isNull() | (F.col("_present") == F.col("_batch_id"))
    return candidates.groupBy("_batch_id").agg(
        F.count(F.when(F.col("_present").isNull(), 1)).alias("inserted"),
        F.min(F.when(brought, F.col("event_date"))).alias("lo"),
        F.max(F.when(brought, F.col("event_date"))).alias("hi"),
    )


@dataclass(frozen=True)
class Params:
    full_refresh: bool = param(False, "rebuild from every committed bronze batch")


def load(ctx: JobContext, *, refresh: bool = False) -> int:
    """Load pending batches; returns the number of events inserted."""
    spark, config, run = ctx.spark, ctx.config, ctx.run
    if refresh:
        batches.full_refresh(ctx, CONSUMER, SILVER_EVENTS)
    pending = batches.pending(ctx, CONSUMER)
    if not pending:
        log.info("silver_fct_events: no new bronze batches")
        run.rows_in = run.rows_out = 0
        return 0
    files = batches.consumed(ctx, batches.BRONZE)
    rows_in = {b: files[b].rows_in for b in pending}
    with_rows = [files[b] for b in pending if files[b].rows_in]
    inserted = 0
    per_batch: dict[str, tuple[int, date | None, date | None]] = {}
    if with_rows:
        bronze_df = delta_io.read(spark, BRONZE_EVENTS, config).where(F.col("_batch_id").isin(pending))
        if all(c.min_event_date_inserted for c in with_rows):
            # The manifest knows each batch's event dates: read only those bronze partitions.
            lo = min(c.min_event_date_inserted for c in with_rows)
            hi = max(c.max_event_date_inserted for c in with_rows)
            bronze_df = bronze_df.where(F.col("event_date").between(F.lit(lo), F.lit(hi)))
        else:  # batches ingested before the manifest had event dates
            lo, hi = bronze_df.agg(F.min("event_date"), F.max("event_date")).first()
        silver_df = delta_io.read(spark, SILVER_EVENTS, config)
        candidates = new_events(bronze_df, silver_df, lo, hi).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            per_batch = {
                r["_batch_id"]: (int(r["inserted"]), r["lo"], r["hi"]) for r in batch_effects(candidates).collect()
            }
            if any(v[0] for v in per_batch.values()):
                new_df = candidates.where(F.col("_present").isNull())
                prune = f"t.event_date >= DATE'{lo}' AND t.event_date <= DATE'{hi}'"
                metrics = delta_io.merge_insert_new(new_df, SILVER_EVENTS, config, ["event_id", "event_date"], prune)
                inserted = metrics.get("numTargetRowsInserted", sum(v[0] for v in per_batch.values()))
        finally:
            candidates.unpersist()
    batches.record(
        ctx, CONSUMER,
        [batches.Consumption(b, rows_in.get(b, 0), *per_batch.get(b, (0, None, None))) for b in pending],
    )  # fmt: skip
    run.rows_in, run.rows_out = sum(rows_in.values()), inserted
    log.info("silver_fct_events: %d batches, %d bronze rows, %d new events", len(pending), run.rows_in, inserted)
    return inserted


def run(ctx: JobContext, params: Params) -> None:
    load(ctx, refresh=params.full_refresh)


JOB = Job("silver_fct_events", "new bronze batches -> silver.fct_events (one row per distinct event_id)", Params, run)
