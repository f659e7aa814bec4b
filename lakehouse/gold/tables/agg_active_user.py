"""``gold.agg_active_user``: DAU / WAU / MAU.

Grain: one row per ``(period_type, period_start_date, acq_source, country)`` with ``active_users > 0``;
``period_type`` in daily, weekly (weeks start on conf ``week_start``), monthly (calendar months).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.gold.activity import LABEL_FORMAT, SEGMENT, GoldInputs, partial, week_start, week_start_of
from lakehouse.gold.checks import Measure, rows_where
from lakehouse.gold.table import GoldTable
from lakehouse.registry import BOOL, DATE, LONG, STRING, TableSpec, column

SPEC = TableSpec(
    "gold", "agg_active_user",
    T.StructType([
        column("period_type", STRING, False, "daily | weekly | monthly"),
        column("period_start_date", DATE, False), column("period_end_date", DATE, False),
        column("period_label", STRING, False, "period_start_date as yyyy-MM-dd"),
        column("acq_source", STRING, False), column("country", STRING, False),
        column("active_users", LONG, False), column("is_partial_period", BOOL, False),
    ]),
    "One row per (period_type, period_start_date, acq_source, country) with active_users > 0.",
    keys=("period_type", "period_start_date", "acq_source", "country"),
)  # fmt: skip


def active_users(activity_df: DataFrame, users_df: DataFrame, max_event_date: date, first_day: str) -> DataFrame:
    """gold.agg_active_user: distinct active users per period type, period and segment."""
    d = F.col("event_date")
    periods = [
        ("daily", d, d),
        ("weekly", week_start(d, first_day), F.date_add(week_start(d, first_day), 6)),
        ("monthly", F.trunc(d, "month"), F.last_day(d)),
    ]
    per_period = None
    for name, start, end in periods:
        df = activity_df.select(
            "user_id",
            F.lit(name).alias("period_type"),
            start.alias("period_start_date"),
            end.alias("period_end_date"),
        ).distinct()
        per_period = df if per_period is None else per_period.unionByName(df)
    return (
        per_period.join(users_df, on="user_id", how="inner")
        .groupBy("period_type", "period_start_date", "period_end_date", *SEGMENT)
        .agg(F.countDistinct("user_id").alias("active_users"))
        .select(
            "period_type",
            "period_start_date",
            "period_end_date",
            F.date_format("period_start_date", LABEL_FORMAT).alias("period_label"),
            *SEGMENT,
            F.col("active_users").cast("long").alias("active_users"),
            partial(F.col("period_end_date"), max_event_date).alias("is_partial_period"),
        )
    )


def scope(inputs: GoldInputs) -> str | None:
    """The rows recomputed from ``inputs.since``: every period that ends on or after it."""
    if inputs.since is None:
        return None
    week = week_start_of(inputs.since, inputs.week_start)
    month = inputs.since.replace(day=1)
    return (f"(period_type = 'daily' AND period_start_date >= DATE'{inputs.since}') OR "
            f"(period_type = 'weekly' AND period_start_date >= DATE'{week}') OR "
            f"(period_type = 'monthly' AND period_start_date >= DATE'{month}')")  # fmt: skip


def build(inputs: GoldInputs) -> DataFrame:
    df = active_users(inputs.activity_df, inputs.users_df, inputs.max_event_date, inputs.week_start)
    where = scope(inputs)
    return df if where is None else df.where(where)


# Checks (error-level, attributed to this table; see lakehouse.gold.checks)


def daily_within_week_and_month(active: DataFrame, first_day: str) -> Measure:
    daily = active.where(F.col("period_type") == "daily").select(
        *SEGMENT,
        F.col("period_start_date").alias("day"),
        F.col("active_users").alias("daily_active"),
        week_start(F.col("period_start_date"), first_day).alias("week"),
        F.trunc("period_start_date", "month").alias("month"),
    )
    weekly = active.where(F.col("period_type") == "weekly").select(
        *SEGMENT, F.col("period_start_date").alias("week"), F.col("active_users").alias("weekly_active")
    )
    monthly = active.where(F.col("period_type") == "monthly").select(
        *SEGMENT, F.col("period_start_date").alias("month"), F.col("active_users").alias("monthly_active")
    )
    joined = daily.join(weekly, on=[*SEGMENT, "week"], how="left").join(monthly, on=[*SEGMENT, "month"], how="left")
    bad = (F.col("daily_active") > F.coalesce("weekly_active", F.lit(0))) | (
        F.col("daily_active") > F.coalesce("monthly_active", F.lit(0))
    )
    return rows_where(SPEC.full_name, "daily_active_within_week_and_month", joined, bad,
                   "daily active <= active of the containing week and month")  # fmt: skip


GOLD = GoldTable(
    SPEC,
    build,
    scope,
    checks=(lambda t, i: [daily_within_week_and_month(t(SPEC.full_name), i.week_start)],),
)
