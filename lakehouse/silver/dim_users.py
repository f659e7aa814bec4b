"""Pure transforms for ``silver.dim_users``: one row per user per day ``ds``, as of the end of ``ds``.

Every column is a running value that can be carried forward: first event (acquisition attributes),
latest event, totals. ``is_active_Nd`` follows from the last event date: a user has an event in
``[ds-N+1, ds]`` exactly when their last event at or before ``ds`` is on or after ``ds-N+1``.

So a range ``[start, end]`` is built from a *base* state as of ``start - 1`` (the previous snapshot,
or an aggregate of older events when there is none) plus one aggregate per user and day of the
range, combined with running window functions over a user x day grid: one Spark job for any number
of days, and for a single day the cost grows with the number of users, not with history.

Tie-breaks (documented in the README): the first event is the smallest ``(event_time, event_id)``,
as SPEC.md says; the latest event is the largest ``(event_time, event_id)``.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.silver.events import EVENT_TIME_FORMAT

ACTIVE_WINDOWS = (7, 30, 90)
MILES = "decimal(20,2)"
STATE_COLUMNS = (
    "user_id", "first_event", "latest_event_struct", "total_events", "total_miles_earned", "total_miles_redeemed",
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


def state_from_events(events_df: DataFrame) -> DataFrame:
    """The base state (STATE_COLUMNS) computed from raw events, when no previous snapshot exists."""
    return (
        events_df.groupBy("user_id")
        .agg(*_state_aggregates("all_"))
        .select(
            "user_id",
            F.col("all_first").alias("first_event"),
            F.col("all_latest").alias("latest_event_struct"),
            F.col("all_events").alias("total_events"),
            F.col("all_earned").alias("total_miles_earned"),
            F.col("all_redeemed").alias("total_miles_redeemed"),
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
            F.to_timestamp(latest["event_time"], EVENT_TIME_FORMAT).alias("event_time"),
            latest["event_id"].alias("event_id"),
            latest["event_type"].alias("event_type"),
            latest["transaction_category"].alias("transaction_category"),
            latest["miles_amount"].alias("miles_amount"),
            latest["platform"].alias("platform"),
        ).alias("latest_event_struct"),
        "total_events",
        F.col("total_miles_earned").cast(MILES).alias("total_miles_earned"),
        F.col("total_miles_redeemed").cast(MILES).alias("total_miles_redeemed"),
    )  # fmt: skip


def latest_event_json(latest: Column) -> Column:
    return F.to_json(
        F.struct(
            latest["event_id"].alias("event_id"),
            F.date_format(latest["event_time"], EVENT_TIME_FORMAT).alias("event_time"),
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
        )
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
    )
