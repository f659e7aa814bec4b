"""Pure gold transforms. Input is compact: one row per user and active day, plus one per user.

- ``activity_df``: ``user_id, event_date`` (distinct), from :func:`user_activity`.
- ``users_df``: ``user_id, acq_source, country, first_event_date`` from :func:`user_segments`;
  attributes are those of the user's first event (ties on event_time: smallest event_id), so each
  user sits in exactly one segment and segment rows add up to totals.

Weeks start on ``week_start`` ("sunday" by default: ``d - (dayofweek(d) - 1)``). A period is
partial when its last day is after ``max_event_date``, the largest event_date in silver.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

SEGMENT = ("acq_source", "country")
LIFECYCLE_STATUSES = ("new", "retained", "resurrected", "dormant", "churned")
LABEL_FORMAT = "yyyy-MM-dd"


def week_start(d: Column, first_day: str = "sunday") -> Column:
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


def _partial(period_end: Column, max_event_date: date) -> Column:
    return period_end > F.lit(max_event_date)


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
            _partial(F.col("period_end_date"), max_event_date).alias("is_partial_period"),
        )
    )


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


def lifecycle_weekly(grid_df: DataFrame, max_event_date: date, lookback_weeks: int) -> DataFrame:
    """gold.agg_user_lifecycle_weekly: one status per acquired user and week (SPEC.md table)."""
    lookback = Window.partitionBy("user_id").orderBy("week").rowsBetween(-lookback_weeks, -1)
    recently = F.coalesce(F.max(F.col("is_active").cast("int")).over(lookback), F.lit(0)) == 1
    status = (
        F.when(F.col("is_active") & (F.col("week") == F.col("first_week")), "new")
        .when(F.col("is_active") & recently, "retained")
        .when(F.col("is_active"), "resurrected")
        .when(recently, "dormant")
        .otherwise("churned")
    )
    return (
        grid_df.withColumn("user_status", status)
        .groupBy(F.col("week").alias("cutoff_week"), *SEGMENT, "user_status")
        .agg(F.count(F.lit(1)).alias("user_count"))
        .select(
            "cutoff_week",
            F.date_format("cutoff_week", LABEL_FORMAT).alias("cutoff_week_label"),
            *SEGMENT,
            "user_status",
            F.col("user_count").cast("long").alias("user_count"),
            _partial(F.date_add("cutoff_week", 6), max_event_date).alias("is_partial_period"),
        )
    )


def growth_accounting_weekly(grid_df: DataFrame, max_event_date: date) -> DataFrame:
    """gold.agg_growth_accounting_weekly: active(W) = active(W-1) + new + resurrected - churned."""
    previous = Window.partitionBy("user_id").orderBy("week")
    prev_active = F.coalesce(F.lag("is_active").over(previous), F.lit(False))
    flags = grid_df.select(
        "week",
        *SEGMENT,
        "is_active",
        prev_active.alias("was_active"),
        (F.col("week") == F.col("first_week")).alias("is_first"),
    )
    count_if = lambda cond: F.sum(F.when(cond, 1).otherwise(0)).cast("long")  # noqa: E731
    a, p, first = F.col("is_active"), F.col("was_active"), F.col("is_first")
    agg = flags.groupBy(F.col("week").alias("week_start"), *SEGMENT).agg(
        count_if(a).alias("active_users"),
        count_if(p).alias("prev_active_users"),
        count_if(a & first).alias("new_users"),
        count_if(a & p).alias("retained_users"),
        count_if(a & ~p & ~first).alias("resurrected_users"),
        count_if(~a & p).alias("churned_users"),
    )
    return agg.select(
        "week_start",
        F.date_format("week_start", LABEL_FORMAT).alias("week_label"),
        *SEGMENT,
        "active_users",
        "prev_active_users",
        "new_users",
        "retained_users",
        "resurrected_users",
        "churned_users",
        F.when(
            F.col("churned_users") > 0,
            (F.col("new_users") + F.col("resurrected_users")).cast("double") / F.col("churned_users"),
        ).alias("quick_ratio"),
        _partial(F.date_add("week_start", 6), max_event_date).alias("is_partial_period"),
    )


def retention(grid_df: DataFrame, max_event_date: date, max_week_offset: int) -> DataFrame:
    """gold.agg_user_retention: cohort x week offset x segment, zero cells included."""
    cohort_week = F.col("first_week")
    offset = (F.datediff("week", "first_week") / 7).cast("int")
    user_weeks = grid_df.select(
        "user_id", *SEGMENT, cohort_week.alias("cohort_week"), offset.alias("week_offset"), "is_active"
    )
    last_offset = (
        user_weeks.where("is_active")
        .groupBy("user_id", *SEGMENT, "cohort_week")
        .agg(F.max("week_offset").alias("last_offset"))
    )
    cohorts = last_offset.groupBy("cohort_week", *SEGMENT).agg(F.count(F.lit(1)).alias("cohort_size"))
    cells = cohorts.select("*", F.explode(F.sequence(F.lit(0), F.lit(max_week_offset))).alias("week_offset")).where(
        F.date_add("cohort_week", F.col("week_offset") * 7) <= F.lit(max_event_date)
    )
    retained = (
        user_weeks.where("is_active")
        .groupBy("cohort_week", *SEGMENT, "week_offset")
        .agg(F.count(F.lit(1)).alias("retained_users"))
    )
    unbounded = (
        last_offset.select(
            "cohort_week",
            *SEGMENT,
            F.explode(F.sequence(F.lit(0), F.least("last_offset", F.lit(max_week_offset)))).alias("week_offset"),
        )
        .groupBy("cohort_week", *SEGMENT, "week_offset")
        .agg(F.count(F.lit(1)).alias("unbounded_retained_users"))
    )
    keys = ["cohort_week", *SEGMENT, "week_offset"]
    joined = cells.join(retained, on=keys, how="left").join(unbounded, on=keys, how="left")
    period_start = F.date_add("cohort_week", F.col("week_offset") * 7)
    retained_users = F.coalesce("retained_users", F.lit(0)).cast("long")
    return joined.select(
        "cohort_week",
        F.date_format("cohort_week", LABEL_FORMAT).alias("cohort_label"),
        F.col("week_offset").cast("int").alias("week_offset"),
        period_start.alias("period_start_date"),
        *SEGMENT,
        F.col("cohort_size").cast("long").alias("cohort_size"),
        retained_users.alias("retained_users"),
        (retained_users.cast("double") / F.col("cohort_size")).alias("retention_rate"),
        F.coalesce("unbounded_retained_users", F.lit(0)).cast("long").alias("unbounded_retained_users"),
        _partial(F.date_add(period_start, 6), max_event_date).alias("is_partial_period"),
    )


def gold_tables(
    activity_df: DataFrame,
    users_df: DataFrame,
    max_event_date: date,
    first_day: str,
    lookback_weeks: int,
    max_week_offset: int,
) -> tuple[dict[str, DataFrame], DataFrame]:
    """The four gold tables by full name, and the user x week grid they share (for the checks)."""
    from lakehouse.registry import GOLD_ACTIVE_USER, GOLD_GROWTH, GOLD_LIFECYCLE, GOLD_RETENTION

    grid = user_week_grid(activity_df, users_df, max_event_date, first_day).localCheckpoint()
    tables = {
        GOLD_ACTIVE_USER.full_name: active_users(activity_df, users_df, max_event_date, first_day),
        GOLD_LIFECYCLE.full_name: lifecycle_weekly(grid, max_event_date, lookback_weeks),
        GOLD_RETENTION.full_name: retention(grid, max_event_date, max_week_offset),
        GOLD_GROWTH.full_name: growth_accounting_weekly(grid, max_event_date),
    }
    return tables, grid
