"""``gold.agg_user_lifecycle_weekly``: weekly lifecycle status of every acquired user.

Grain: one row per ``(cutoff_week, acq_source, country, user_status)`` with ``user_count > 0``, for
every calendar week from the first week with an event to the week of the data's last date. With
``N = lookback_weeks``: new (first active week), retained (active, and active in one of the N
weeks before), resurrected (active, not in those N weeks), dormant (inactive, active in those N
weeks), churned (inactive, not active in those N weeks).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.gold.activity import LABEL_FORMAT, SEGMENT, GoldInputs, partial
from lakehouse.registry import GOLD_LIFECYCLE

TABLE = GOLD_LIFECYCLE


def lifecycle_weekly(grid_df: DataFrame, max_event_date: date, lookback_weeks: int) -> DataFrame:
    """gold.agg_user_lifecycle_weekly: one status per acquired user and week (docs/contract.md table)."""
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
            partial(F.date_add("cutoff_week", 6), max_event_date).alias("is_partial_period"),
        )
    )


def scope(inputs: GoldInputs) -> str | None:
    """The rows recomputed from ``inputs.since``: the weeks from since's week on."""
    return None if inputs.since is None else f"cutoff_week >= DATE'{inputs.since_week}'"


def build(inputs: GoldInputs) -> DataFrame:
    df = lifecycle_weekly(inputs.grid_df, inputs.max_event_date, inputs.lookback_weeks)
    where = scope(inputs)
    return df if where is None else df.where(where)
