"""``gold.agg_user_retention``: weekly cohort retention.

Grain: one row per ``(cohort_week, week_offset, acq_source, country)`` for ``week_offset`` in
``0..max_week_offset`` whose week starts on or before the data's last date; cells with nobody
retained are rows with 0. ``unbounded_retained_users`` counts cohort users active in that week or
any later week.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.gold.activity import LABEL_FORMAT, SEGMENT, GoldInputs, partial
from lakehouse.registry import GOLD_RETENTION

TABLE = GOLD_RETENTION


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
        partial(F.date_add(period_start, 6), max_event_date).alias("is_partial_period"),
    )


#: Rebuilt whole on every run with new data: ``unbounded_retained_users`` of *any* cohort rises when one
#: of its users is active again, however late (a user last seen at offset 2 and active again a year
#: later counts at offsets 3..max_week_offset), so no slice of cohorts is safe to keep.
INCREMENTAL = False


def scope(inputs: GoldInputs) -> str | None:
    """Every row (see :data:`INCREMENTAL`)."""
    return None


def build(inputs: GoldInputs) -> DataFrame:
    df = retention(inputs.grid_df, inputs.max_event_date, inputs.max_week_offset)
    where = scope(inputs)
    return df if where is None else df.where(where)
