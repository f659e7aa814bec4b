"""``silver.fct_events``: one row per distinct event_id (partitioned by event_date); job ``silver_fct_events``.

``event_id = md5(concat_ws('-', date_format(event_time, 'yyyy-MM-dd HH:mm:ss.SSSSSS'), user_id,
event_type))`` (docs/contract.md). Dedup rule, the same whatever order the files arrive in: when the
same event_id is delivered more than once, the copy kept is the one of the file whose **name** sorts
first, then (the same name delivered twice, changed in place) the smaller batch id, then the earlier
line (:func:`first_delivery`). Within a run the rule picks among the rows read; across runs a new
batch's copy replaces the stored one when it ranks before it (the stored copy's file name comes from
``ops.ingested_files``). So daily runs and a full refresh of the same folder keep the same copy
(an earlier rule, "first ingested wins", did not: a refresh reads every file at once).

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
from lakehouse.job_runtime import Consumes, Job, JobContext, param
from lakehouse.registry import BRONZE_EVENTS, EVENT_TIME_PATTERN, SILVER_EVENTS

CONSUMER = SILVER_EVENTS.full_name
#: Committed bronze batches (and undone ones, whose days are restored from bronze).
INPUTS = Consumes(CONSUMER, (batches.BRONZE,), reads=(BRONZE_EVENTS, SILVER_EVENTS))
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


def file_name(source_file: Column) -> Column:
    """The file's name without its folder (the same locally and on object storage)."""
    return F.regexp_extract(source_file, r"[^/]+$", 0)


def first_delivery(events_df: DataFrame) -> DataFrame:
    """One row per event_id: the copy of the file whose name sorts first, then batch id, then line."""
    ranked = events_df.withColumn("_file_name", file_name(F.col("_source_file")))
    order = Window.partitionBy("event_id").orderBy("_file_name", "_batch_id", "_source_line")
    return ranked.withColumn("_delivery", F.row_number().over(order)).where(F.col("_delivery") == 1)


def build_events(bronze_df: DataFrame) -> DataFrame:
    """Bronze rows (any number of batches) -> deduplicated silver events."""
    return _kept_copies(bronze_df).drop("_file_name")


def _kept_copies(bronze_df: DataFrame) -> DataFrame:
    """:func:`build_events` with ``_file_name``, the kept copy's file (which the table does not store)."""
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
        "_file_name",
    )


def new_events(bronze_df: DataFrame, silver_df: DataFrame, lo: date, hi: date, stored_files: DataFrame) -> DataFrame:
    """Deduplicated events of ``bronze_df`` (event dates ``lo``..``hi``), each with ``_present`` and ``_replace``.

    ``_present`` is the ``_batch_id`` of the silver row that already holds the event_id (null: the
    event is new and must be inserted); ``_replace`` is true when this copy ranks before the stored
    one (:func:`first_delivery`'s rule; ``stored_files``: ``_present`` -> ``_present_file``, the file
    name of each committed batch). event_id determines event_date, so only silver's partitions in
    ``lo``..``hi`` can hold one: the lookup is bounded to them instead of scanning every event_id of
    the table.
    """
    existing = (
        silver_df.where(F.col("event_date").between(F.lit(lo), F.lit(hi)))
        .select("event_id", "event_date", F.col("_batch_id").alias("_present"))
        .join(F.broadcast(stored_files), on="_present", how="left")
    )
    candidates = _kept_copies(bronze_df).join(existing, on=["event_id", "event_date"], how="left")
    ranks_before = F.struct("_file_name", "_batch_id") < F.struct(F.col("_present_file"), F.col("_present"))
    replace = F.col("_present").isNotNull() & (F.col("_present") != F.col("_batch_id")) & ranks_before
    return candidates.withColumn("_replace", F.coalesce(replace, F.lit(False)))


def batch_effects(candidates: DataFrame) -> DataFrame:
    """Per batch: events it inserts now, copies it replaces, and the event dates it brought into silver.

    A batch's dates cover the events it inserts or replaces now *and* those silver already holds from
    this very batch: an earlier run that committed them and was stopped before its bookkeeping. So the
    consumers downstream learn about those days too (a crash never hides a late event).
    """
    brought = F.col("_present").isNull() | (F.col("_present") == F.col("_batch_id")) | F.col("_replace")
    return candidates.groupBy("_batch_id").agg(
        F.count(F.when(F.col("_present").isNull(), 1)).alias("inserted"),
        F.count(F.when(F.col("_replace"), 1)).alias("replaced"),
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
    work = INPUTS.pending_work(ctx)
    pending = work.batches
    if not pending:
        log.info("silver_fct_events: no new bronze batches")
        run.rows_in = run.rows_out = 0
        return 0
    files = work.recorded
    rows_in = {b: files[b].rows_in for b in pending}
    with_rows = [files[b] for b in pending if files[b].rows_in]
    # Undone batches (lakehouse.batches.undo_unrecorded): their rows are gone from bronze and from here;
    # an event they had may also be in a batch this table already consumed, whose copy is restored from
    # bronze by reading every batch's rows of their days.
    repairs = [c for c in work.dated if c.batch_id in work.undone]
    inserted = 0
    per_batch: dict[str, tuple[int, date | None, date | None]] = {
        c.batch_id: (0, c.min_event_date_inserted, c.max_event_date_inserted) for c in repairs
    }
    if with_rows or repairs:
        wanted = F.col("_batch_id").isin(pending)
        for c in repairs:
            wanted = wanted | F.col("event_date").between(F.lit(c.min_event_date_inserted),
                                                          F.lit(c.max_event_date_inserted))  # fmt: skip
        bronze_df = delta_io.read(spark, BRONZE_EVENTS, config).where(wanted)
        spans = [*with_rows, *repairs]
        if all(c.min_event_date_inserted for c in spans):
            # The manifest knows each batch's event dates: read only those bronze partitions.
            lo = min(c.min_event_date_inserted for c in spans)
            hi = max(c.max_event_date_inserted for c in spans)
            bronze_df = bronze_df.where(F.col("event_date").between(F.lit(lo), F.lit(hi)))
        else:  # batches ingested before the manifest had event dates
            lo, hi = bronze_df.agg(F.min("event_date"), F.max("event_date")).first()
        silver_df = delta_io.read(spark, SILVER_EVENTS, config)
        stored = spark.createDataFrame(
            sorted((b, f.file_name) for b, f in batches.ledger(ctx).committed().items()),
            "_present string, _present_file string",
        )
        candidates = new_events(bronze_df, silver_df, lo, hi, stored).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            effects = batch_effects(candidates).collect()
            per_batch |= {r["_batch_id"]: (int(r["inserted"]), r["lo"], r["hi"]) for r in effects}
            replaced = sum(int(r["replaced"]) for r in effects)
            if replaced or any(v[0] for v in per_batch.values()):
                prune = f"t.event_date >= DATE'{lo}' AND t.event_date <= DATE'{hi}'"
                keys = ["event_id", "event_date"]
                if replaced:
                    changes = candidates.where(F.col("_present").isNull() | F.col("_replace"))
                    metrics = delta_io.merge_insert_or_replace(changes, SILVER_EVENTS, config, keys, "_replace", prune)
                else:  # the usual day: Delta's insert-only MERGE (no join to find files to rewrite)
                    new_df = candidates.where(F.col("_present").isNull())
                    metrics = delta_io.merge_insert_new(new_df, SILVER_EVENTS, config, keys, prune)
                inserted = metrics.get("numTargetRowsInserted", sum(v[0] for v in per_batch.values()))
                if replaced:
                    log.info("silver_fct_events: %d stored copies replaced by copies that rank first", replaced)
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


JOB = Job(
    "silver_fct_events",
    "new bronze batches -> silver.fct_events (one row per distinct event_id)",
    Params,
    run,
    inputs=INPUTS,
)
