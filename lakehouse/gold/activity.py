"""Compact gold inputs and the calendar maths every gold table shares.

- ``activity_df``: ``user_id, event_date`` (distinct), from :func:`user_activity`.
- ``users_df``: ``user_id, acq_source, country, first_event_date`` from :func:`user_segments`;
  attributes are those of the user's first event (ties on event_time: smallest event_id), so each
  user sits in exactly one segment and segment rows add up to totals.
- ``grid_df``: one row per user and calendar week from the user's first week to the data's last
  week (:func:`user_week_grid`), shared by the weekly tables.

Weeks start on ``week_start`` from conf ("sunday" by default: ``d - (dayofweek(d) - 1)``). A period
is partial when its last day is after ``max_event_date``, the largest event_date in silver.
Everything here is pure: DataFrames and parameters in, a DataFrame out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

SEGMENT = ("acq_source", "country")
LABEL_FORMAT = "yyyy-MM-dd"


@dataclass(frozen=True)
class GoldInputs:
    """Everything a gold table is computed from (the job builds it once per silver version)."""

    activity_df: DataFrame
    users_df: DataFrame
    grid_df: DataFrame
    max_event_date: date
    #: conf ``week_start``, ``gold.lookback_weeks``, ``gold.max_week_offset`` (no defaults here: config owns them).
    week_start: str
    lookback_weeks: int
    max_week_offset: int


def gold_inputs(
    activity_df: DataFrame,
    users_df: DataFrame,
    max_event_date: date,
    first_day: str,
    lookback_weeks: int,
    max_week_offset: int,
) -> GoldInputs:
    grid_df = user_week_grid(activity_df, users_df, max_event_date, first_day)
    return GoldInputs(activity_df, users_df, grid_df, max_event_date, first_day, lookback_weeks, max_week_offset)


def week_start(d: Column, first_day: str) -> Column:
    """First day of d's week. Spark's dayofweek is 1 for Sunday .. 7 for Saturday."""
    if first_day == "sunday":
        return F.date_sub(d, F.dayofweek(d) - 1)
    return F.date_sub(d, (F.dayofweek(d) + 5) % 7)


def user_activity(events_df: DataFrame) -> DataFrame:
    return events_df.select("user_id", "event_date").distinct()


def user_segments(events_df: DataFrame) -> DataFrame:
    first = F.min(F.struct("event_time", "event_id", "utm_source", "country"))
    return (
        events_df.groupBy("user_id")
        .agg(first.alias("first"))
        .select(
            "user_id",
            F.col("first.utm_source").alias("acq_source"),
            F.col("first.country").alias("country"),
            F.to_date("first.event_time").alias("first_event_date"),
        )
    )


def partial(period_end: Column, max_event_date: date) -> Column:
    return period_end > F.lit(max_event_date)


def user_week_grid(activity_df: DataFrame, users_df: DataFrame, max_event_date: date, first_day: str) -> DataFrame:
    """One row per user and calendar week from the user's first week to the data's last week.

    Columns: user_id, segment, first_week, week, is_active. Weeks without any activity are rows
    too (the calendar spine has no gaps), so window functions over rows are window over weeks.
    """
    weeks = activity_df.select("user_id", week_start(F.col("event_date"), first_day).alias("week")).distinct()
    last_week = week_start(F.lit(max_event_date), first_day)
    firsts = weeks.groupBy("user_id").agg(F.min("week").alias("first_week"))
    grid = firsts.select(
        "user_id", "first_week", F.explode(F.sequence("first_week", last_week, F.expr("INTERVAL 7 DAYS"))).alias("week")
    )
    return (
        grid.join(weeks.withColumn("is_active", F.lit(True)), on=["user_id", "week"], how="left")
        .join(users_df.select("user_id", *SEGMENT), on="user_id", how="inner")
        .select("user_id", *SEGMENT, "first_week", "week", F.coalesce("is_active", F.lit(False)).alias("is_active"))
    )
