"""``silver.user_activity_daily``: one row per user and day with an event; job ``silver_user_activity_daily``.

The compact input of every gold table: which users were active on which day (617k rows for a year
of the benchmark's 3.65M events). Maintained incrementally: the job reads the silver events of the
batches ``silver.fct_events`` recorded and this table has not (only the partitions of the dates
those batches brought), and inserts the (user_id, activity_date) pairs the table lacks with an
insert-only MERGE (partitioned by month; the MERGE touches only the months of the new dates). A
re-run inserts nothing; a run stopped between its MERGE and its bookkeeping is repeated without
duplicates. Each batch is recorded with the dates it brought into silver, which the gold tables
read to know which periods to recompute.
"""

from __future__ import annotations

import logging
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import batches, delta_io
from lakehouse.job_runtime import Consumes, Job, JobContext
from lakehouse.registry import SILVER_EVENTS, SILVER_USER_ACTIVITY
from lakehouse.silver.fct_events import Params

CONSUMER = SILVER_USER_ACTIVITY.full_name
INPUTS = Consumes(CONSUMER, (SILVER_EVENTS.full_name,), reads=(SILVER_EVENTS,))
log = logging.getLogger("lakehouse")


def user_days(events_df: DataFrame) -> DataFrame:
    """Distinct (user_id, activity_date) of events."""
    return (
        events_df.select("user_id", F.col("event_date").alias("activity_date"))
        .distinct()
        .select("user_id", "activity_date", F.trunc("activity_date", "month").alias("activity_month"))
    )


def _months(lo: date, hi: date) -> str:
    return f"t.activity_month >= DATE'{lo.replace(day=1)}' AND t.activity_month <= DATE'{hi.replace(day=1)}'"


def load(ctx: JobContext, *, refresh: bool = False) -> int:
    spark, config = ctx.spark, ctx.config
    if refresh:
        batches.full_refresh(ctx, CONSUMER, SILVER_USER_ACTIVITY)
    work = INPUTS.pending_work(ctx)
    pending = work.batches
    if not pending:
        log.info("silver_user_activity_daily: no new batches")
        ctx.run.rows_in = ctx.run.rows_out = 0
        return 0
    upstream = work.recorded
    inserted = 0
    for c in [c for c in work.dated if c.batch_id in work.undone]:
        # An undone batch (lakehouse.batches.undo_unrecorded): its days are rebuilt from silver as it is now.
        lo, hi = c.min_event_date_inserted, c.max_event_date_inserted
        days = delta_io.read(spark, SILVER_EVENTS, config).where(F.col("event_date").between(F.lit(lo), F.lit(hi)))
        delta_io.replace_where(user_days(days), SILVER_USER_ACTIVITY, config,
                               f"activity_date >= DATE'{lo}' AND activity_date <= DATE'{hi}'")  # fmt: skip
    dated = [c for c in work.dated if c.batch_id not in work.undone]
    if dated:
        lo = min(c.min_event_date_inserted for c in dated)
        hi = max(c.max_event_date_inserted for c in dated)
        events = delta_io.read(spark, SILVER_EVENTS, config).where(
            F.col("event_date").between(F.lit(lo), F.lit(hi)) & F.col("_batch_id").isin(pending)
        )
        metrics = delta_io.merge_insert_new(
            user_days(events), SILVER_USER_ACTIVITY, config, ["user_id", "activity_date", "activity_month"],
            _months(lo, hi),
        )  # fmt: skip
        inserted = metrics.get("numTargetRowsInserted", 0)
    batches.record(
        ctx, CONSUMER,
        [batches.Consumption(b, 0, 0, upstream[b].min_event_date_inserted, upstream[b].max_event_date_inserted)
         for b in pending],
    )  # fmt: skip
    ctx.run.rows_in = sum(upstream[b].rows_inserted for b in pending)
    ctx.run.rows_out = inserted
    log.info("silver_user_activity_daily: %d batches, %d new user-days", len(pending), inserted)
    return inserted


def run(ctx: JobContext, params: Params) -> None:
    load(ctx, refresh=params.full_refresh)


JOB = Job(
    "silver_user_activity_daily",
    "new silver.fct_events batches -> silver.user_activity_daily (one row per user and active day)",
    Params,
    run,
    inputs=INPUTS,
)
