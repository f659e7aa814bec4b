"""``silver.dim_users``: one row per user per day ``ds``, as of the end of ``ds``; job ``silver_dim_users``.

Grain: one row per ``user_id`` per ``ds`` for every user whose first event date is <= ``ds``,
partitioned by ``ds``, loaded by Delta MERGE on ``(user_id, ds)`` (a re-run updates in place).

Every column is a running value that can be carried forward: first event (acquisition attributes),
latest event, totals. ``is_active_Nd`` follows from the last event date: a user has an event in
``[ds-N+1, ds]`` exactly when their last event at or before ``ds`` is on or after ``ds-N+1``.

So a range ``[start, end]`` is built from a *base* state as of ``start - 1`` (the previous snapshot,
or an aggregate of older events when there is none) plus one aggregate per user and day of the
range, combined with running window functions over a user x day grid: one Spark job for any number
of days, and for a single day the cost grows with the number of users, not with history.

Tie-breaks (documented in docs/incremental.md): the first event is the smallest ``(event_time, event_id)``,
as docs/contract.md says; the latest event is the largest ``(event_time, event_id)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse import batches, delta_io
from lakehouse.config import LakehouseConfig
from lakehouse.job_runtime import Consumes, Job, JobContext, param
from lakehouse.registry import EVENT_TIME_PATTERN, SILVER_DIM_USERS, SILVER_EVENTS

CONSUMER = SILVER_DIM_USERS.full_name
#: The batches silver.fct_events recorded; explicit dates or a full refresh always build.
INPUTS = Consumes(CONSUMER, (SILVER_EVENTS.full_name,), reads=(SILVER_EVENTS, SILVER_DIM_USERS),
                  forced_by=("full_refresh", "ds", "start_date", "end_date"))  # fmt: skip
log = logging.getLogger("lakehouse")

ACTIVE_WINDOWS = (7, 30, 90)
MILES = "decimal(20,2)"
STATE_COLUMNS = (
    "user_id", "first_event", "latest_event_struct", "total_events", "total_miles_earned", "total_miles_redeemed",
    "first_negative_date",
)  # fmt: skip


def _first_struct() -> Column:
    return F.struct("event_time", "event_id", F.col("utm_source"), F.col("country"))


def _latest_struct() -> Column:
    return F.struct("event_time", "event_id", "event_type", "transaction_category", "miles_amount", "platform")


def _miles(event_type: str) -> Column:
    return F.sum(F.when(F.col("event_type") == event_type, F.col("miles_amount")).otherwise(F.lit(0))).cast(MILES)


def _state_aggregates(prefix: str) -> list[Column]:
    """What a set of events adds to a user's running state (one day, or all history before a range)."""
    return [
        F.min(_first_struct()).alias(f"{prefix}first"),
        F.max(_latest_struct()).alias(f"{prefix}latest"),
        F.count(F.lit(1)).alias(f"{prefix}events"),
        _miles("miles_earned").alias(f"{prefix}earned"),
        _miles("miles_redeemed").alias(f"{prefix}redeemed"),
    ]


def daily_user_aggregates(events_df: DataFrame) -> DataFrame:
    """One row per (user_id, event_date) with what that day adds to the user's running state."""
    return (
        events_df.groupBy("user_id", F.col("event_date").alias("ds"))
        .agg(*_state_aggregates("day_"))
        .select("user_id", "ds", "day_first", "day_latest", "day_events", "day_earned", "day_redeemed")
    )


def first_negative_dates(events_df: DataFrame) -> DataFrame:
    """``(user_id, first_negative_date)`` of every user whose running balance over ``events_df`` went
    negative: the first event day after which earned - redeemed < 0 (a balance changes on event days only)."""
    net = _miles("miles_earned") - _miles("miles_redeemed")
    running = Window.partitionBy("user_id").orderBy("ds").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    days = events_df.groupBy("user_id", F.col("event_date").alias("ds")).agg(net.alias("net"))
    return (
        days.select("user_id", "ds", F.sum("net").over(running).alias("balance"))
        .where(F.col("balance") < 0)
        .groupBy("user_id")
        .agg(F.min("ds").alias("first_negative_date"))
    )


def state_from_events(events_df: DataFrame) -> DataFrame:
    """The base state (STATE_COLUMNS) computed from raw events, when no previous snapshot exists."""
    return (
        events_df.groupBy("user_id")
        .agg(*_state_aggregates("all_"))
        .join(first_negative_dates(events_df), on="user_id", how="left")
        .select(
            "user_id",
            F.col("all_first").alias("first_event"),
            F.col("all_latest").alias("latest_event_struct"),
            F.col("all_events").alias("total_events"),
            F.col("all_earned").alias("total_miles_earned"),
            F.col("all_redeemed").alias("total_miles_redeemed"),
            "first_negative_date",
        )
    )


def state_from_snapshot(snapshot_df: DataFrame) -> DataFrame:
    """The base state (STATE_COLUMNS) read back from one day of ``silver.dim_users``."""
    latest_schema = (
        "event_id string, event_time string, event_type string, transaction_category string, "
        "miles_amount decimal(10,2), platform string"
    )
    latest = F.from_json("latest_event", latest_schema)
    return snapshot_df.select(
        "user_id",
        F.struct(
            F.col("first_event_time").alias("event_time"),
            F.col("first_event_id").alias("event_id"),
            F.col("acq_source").alias("utm_source"),
            F.col("country").alias("country"),
        ).alias("first_event"),
        F.struct(
            F.to_timestamp(latest["event_time"], EVENT_TIME_PATTERN).alias("event_time"),
            latest["event_id"].alias("event_id"),
            latest["event_type"].alias("event_type"),
            latest["transaction_category"].alias("transaction_category"),
            latest["miles_amount"].alias("miles_amount"),
            latest["platform"].alias("platform"),
        ).alias("latest_event_struct"),
        "total_events",
        F.col("total_miles_earned").cast(MILES).alias("total_miles_earned"),
        F.col("total_miles_redeemed").cast(MILES).alias("total_miles_redeemed"),
        "first_negative_date",
    )  # fmt: skip


def latest_event_json(latest: Column) -> Column:
    return F.to_json(
        F.struct(
            latest["event_id"].alias("event_id"),
            F.date_format(latest["event_time"], EVENT_TIME_PATTERN).alias("event_time"),
            latest["event_type"].alias("event_type"),
            latest["transaction_category"].alias("transaction_category"),
            latest["miles_amount"].alias("miles_amount"),
            latest["platform"].alias("platform"),
        ),
        {"ignoreNullFields": "false"},
    )


def build_snapshots(base_df: DataFrame, range_events_df: DataFrame, start: date, end: date) -> DataFrame:
    """Snapshots for every ds in ``[start, end]`` of every user acquired by ds.

    ``base_df``: STATE_COLUMNS as of ``start - 1`` (empty for the first day of data).
    ``range_events_df``: silver events with ``start <= event_date <= end``.
    """
    in_range = (F.col("event_date") >= F.lit(start)) & (F.col("event_date") <= F.lit(end))
    daily = daily_user_aggregates(range_events_df.where(in_range))
    first_day_in_range = daily.groupBy("user_id").agg(F.min("ds").alias("first_ds"))
    users = (
        base_df.select("user_id", F.lit(start).cast("date").alias("from_ds"))
        .unionByName(first_day_in_range.select("user_id", F.col("first_ds").alias("from_ds")))
        .groupBy("user_id")
        .agg(F.min("from_ds").alias("from_ds"))
    )
    grid = users.select(
        "user_id", F.explode(F.sequence("from_ds", F.lit(end).cast("date"), F.expr("INTERVAL 1 DAY"))).alias("ds")
    )
    running = Window.partitionBy("user_id").orderBy("ds").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    zero = F.lit(0).cast(MILES)
    cumulated = (
        grid.join(daily, on=["user_id", "ds"], how="left")
        .join(base_df, on="user_id", how="left")
        .select(
            "user_id",
            "ds",
            F.least(F.col("first_event"), F.min("day_first").over(running)).alias("first"),
            F.greatest(F.col("latest_event_struct"), F.max("day_latest").over(running)).alias("latest"),
            (F.coalesce("total_events", F.lit(0)) + F.coalesce(F.sum("day_events").over(running), F.lit(0))).alias(
                "total_events"
            ),
            (F.coalesce("total_miles_earned", zero) + F.coalesce(F.sum("day_earned").over(running), zero)).alias(
                "earned"
            ),
            (F.coalesce("total_miles_redeemed", zero) + F.coalesce(F.sum("day_redeemed").over(running), zero)).alias(
                "redeemed"
            ),
            F.col("first_negative_date").alias("base_first_negative"),
        )
    )
    # The first negative day so far: the base's, else the first day of the range whose balance is negative.
    negative_day = F.when(F.col("earned") - F.col("redeemed") < 0, F.col("ds"))
    cumulated = cumulated.select(
        "*", F.least("base_first_negative", F.min(negative_day).over(running)).alias("first_negative")
    )
    last_date = F.to_date(F.col("latest.event_time"))
    flags = [(last_date >= F.date_sub("ds", n - 1)).alias(f"is_active_{n}d") for n in ACTIVE_WINDOWS]
    return cumulated.select(
        "user_id",
        "ds",
        F.col("first.utm_source").alias("acq_source"),
        F.col("first.country").alias("country"),
        F.col("first.event_time").alias("first_event_time"),
        F.to_date("first.event_time").alias("first_event_date"),
        F.col("latest.event_time").alias("last_event_time"),
        last_date.alias("last_event_date"),
        F.col("total_events").cast("long").alias("total_events"),
        F.col("earned").cast(MILES).alias("total_miles_earned"),
        F.col("redeemed").cast(MILES).alias("total_miles_redeemed"),
        (F.col("earned") - F.col("redeemed")).cast(MILES).alias("miles_balance"),
        *flags,
        latest_event_json(F.col("latest")).alias("latest_event"),
        F.col("first.event_id").alias("first_event_id"),
        F.col("first_negative").alias("first_negative_date"),
    )


# --- the job ----------------------------------------------------------------------------------
# Modes:
# - ``--ds D``: one day, as a daily scheduler calls it; built from the snapshot of ``D - 1`` plus
#   the events of ``D`` (cost grows with users, not with history).
# - ``--start-date A --end-date B``: every day of the range in one Spark job and one MERGE.
# - no dates (auto): see :func:`stale_range`.
# Never reads the wall clock: the dates come from the arguments and the data only.


def stale_range(
    changed: list[tuple[date | None, date | None]], last_ds: date | None, max_event_date: date | None
) -> tuple[date | None, date | None]:
    """The snapshot days new data makes stale: ``(start, end)``, or ``(None, None)`` if none.

    ``changed``: the (earliest, latest) event_date each pending batch brought into silver
    (``(None, None)`` when it brought nothing new). Every snapshot from the earliest of them on
    changes (running totals), up to the data's last date; when the snapshots end before that
    date (``last_ds``), the days after them are built too.
    """
    if max_event_date is None:
        return None, None
    candidates = [lo for lo, _ in changed if lo is not None]
    if last_ds is None or last_ds < max_event_date:
        # Days without snapshots yet: from the day after the last one (or every day of new data).
        candidates.append(last_ds + timedelta(days=1) if last_ds else min(candidates, default=max_event_date))
    return (min(candidates) if candidates else None), max_event_date


def auto_range(ctx: JobContext) -> tuple[date | None, date | None, list[str]]:
    """(start, end, batch ids to mark consumed), from the bookkeeping alone.

    Pending batches are those ``silver.fct_events`` has recorded and this table has not; each one
    carries the event dates it brought into silver, including those of an earlier silver run that
    was stopped before its bookkeeping (see :func:`lakehouse.silver.fct_events.batch_effects`), so
    a crash between two commits cannot hide a late event. No scan of silver's history.
    """
    work = INPUTS.pending_work(ctx)
    upstream = batches.consumed(ctx, SILVER_EVENTS.full_name)
    mine = batches.consumed(ctx, CONSUMER)
    _, max_date = batches.data_dates(ctx)
    # The snapshots reach the latest date of the batches this table consumed (none yet: no snapshot).
    removed = batches.undone(ctx)
    covered = [upstream[b].max_event_date_inserted for b in mine if b in upstream and b not in removed]
    last_ds = max((d for d in covered if d), default=None)
    if mine and last_ds is None and max_date is not None:  # consumed before the bookkeeping had dates
        last_ds = delta_io.read(ctx.spark, SILVER_DIM_USERS, ctx.config).agg(F.max("ds")).first()[0]
    changed = [(c.min_event_date_inserted, c.max_event_date_inserted) for c in work.recorded.values()]
    start, end = stale_range(changed, last_ds, max_date)
    return start, end, work.batches


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


def write_range(
    spark: SparkSession, config: LakehouseConfig, start: date, end: date, delete_missing: bool = False
) -> dict[str, int]:
    """Upsert the snapshots of ``start``..``end``. ``delete_missing``: also delete the stored snapshots of
    those days the rebuilt ones lack (a batch was undone: a user may have had events only in it), and
    every snapshot after ``end`` (the data may end earlier than it did)."""
    snapshots = build_range(spark, config, start, end)
    prune = f"t.ds >= DATE'{start.isoformat()}' AND t.ds <= DATE'{end.isoformat()}'"
    keys = list(SILVER_DIM_USERS.keys)
    if delete_missing:
        return delta_io.merge_upsert(snapshots, SILVER_DIM_USERS, config, keys, f"t.ds >= DATE'{start}'",
                                     delete_missing=True)  # fmt: skip
    return delta_io.merge_upsert(snapshots, SILVER_DIM_USERS, config, keys, prune)


def written_without_first_negative_date(spark: SparkSession, config: LakehouseConfig) -> bool:
    """The stored table predates ``first_negative_date`` (written by an earlier version of the project).

    Its value on a day needs every snapshot before that day, so such a table is rebuilt once rather than
    given the column empty (as :func:`lakehouse.delta_io.ensure_table` would: its rows would read null).
    Checked before this job writes: its writes are the only ones that add the column.
    """
    if not delta_io.exists(SILVER_DIM_USERS, config):
        return False
    return "first_negative_date" not in delta_io.read(spark, SILVER_DIM_USERS, config).columns


@dataclass(frozen=True)
class Params:
    ds: date | None = param(None, "build one day's snapshot")
    start_date: date | None = param(None, "first ds of a range (with --end-date)")
    end_date: date | None = param(None, "last ds of a range (with --start-date)")
    full_refresh: bool = param(False, "rebuild every snapshot from silver events")

    def __post_init__(self) -> None:
        if self.ds and (self.start_date or self.end_date):
            raise ValueError("give either --ds or --start-date/--end-date, not both")
        if bool(self.start_date) != bool(self.end_date):
            raise ValueError("--start-date and --end-date go together")
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise ValueError(f"--start-date {self.start_date} is after --end-date {self.end_date}")


def run(ctx: JobContext, params: Params) -> None:
    spark, config = ctx.spark, ctx.config
    if not params.full_refresh and written_without_first_negative_date(spark, config):
        log.warning("silver_dim_users: the table was written by an earlier version, without first_negative_date: "
                    "rebuilding every snapshot once (a full refresh of this table)")  # fmt: skip
        params = Params(full_refresh=True)
    ds, start, end = params.ds, params.start_date, params.end_date
    if params.full_refresh:
        batches.full_refresh(ctx, CONSUMER, SILVER_DIM_USERS)

    consumed: list[str] = []
    removed: list[str] = []
    if ds:
        start = end = ds
    elif not start:
        start, end, consumed = auto_range(ctx)
        undone = batches.undone(ctx)
        removed = [b for b in consumed if b in undone]
        if removed and start is not None and end is not None and start > end:
            start = end  # rows removed after the data's new last day: rebuild it, delete what follows
        if start is None or end is None or start > end:
            log.info("silver_dim_users: snapshots are up to date")
            ctx.run.rows_out = 0
            batches.record(ctx, CONSUMER, [batches.Consumption(b) for b in consumed])
            return
    assert start is not None and end is not None
    log.info("silver_dim_users: building snapshots %s .. %s", start, end)
    metrics = write_range(spark, config, start, end, delete_missing=bool(consumed) and bool(removed))
    ctx.run.rows_out = metrics.get("numTargetRowsInserted", 0) + metrics.get("numTargetRowsUpdated", 0)
    batches.record(ctx, CONSUMER, [batches.Consumption(b) for b in consumed])
    ctx.run.parameters.update({"resolved_start": str(start), "resolved_end": str(end)})
    log.info("silver_dim_users: %s .. %s merged (%s)", start, end, metrics)


JOB = Job(
    "silver_dim_users",
    "silver.fct_events -> silver.dim_users daily snapshots, MERGEd on (user_id, ds)",
    Params,
    run,
    inputs=INPUTS,
)
