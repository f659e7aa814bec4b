"""Warning-level findings (recorded, never failing) and the negative-balance report table."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.ops import DqResult
from lakehouse.registry import GOLD_ACTIVE_USER, GOLD_NEGATIVE_BALANCE, SILVER_EVENTS


def negative_balance_users(dim_users_df: DataFrame) -> DataFrame:
    """Users whose balance is negative in the latest snapshot, with the first day it went negative."""
    latest_ds = dim_users_df.agg(F.max("ds")).first()[0]
    latest = dim_users_df.where(F.col("ds") == F.lit(latest_ds)).where(F.col("miles_balance") < 0)
    first_negative = (
        dim_users_df.where(F.col("miles_balance") < 0).groupBy("user_id").agg(F.min("ds").alias("first_negative_date"))
    )
    return latest.join(first_negative, on="user_id", how="left").select(
        "user_id",
        F.col("ds").alias("as_of_ds"),
        "miles_balance",
        "total_miles_earned",
        "total_miles_redeemed",
        "first_negative_date",
        "acq_source",
        "country",
    )


def negative_balance_warning(report_df: DataFrame, users_checked: int) -> DqResult:
    return DqResult(GOLD_NEGATIVE_BALANCE.full_name, "users_with_negative_miles_balance", "warn", users_checked,
                    report_df.count(), "redeemed more miles than earned as of the latest snapshot")  # fmt: skip


def attribute_change_warning(events_df: DataFrame) -> DqResult:
    per_user = events_df.groupBy("user_id").agg(
        F.countDistinct("utm_source").alias("sources"), F.countDistinct("country").alias("countries")
    )
    changed = per_user.where((F.col("sources") > 1) | (F.col("countries") > 1))
    sample = [r["user_id"] for r in changed.orderBy("user_id").limit(5).collect()]
    return DqResult(SILVER_EVENTS.full_name, "users_whose_utm_source_or_country_changes", "warn", per_user.count(),
                    changed.count(), f"attributed to their first event; e.g. {sample}")  # fmt: skip


def wau_jump_warning(active_df: DataFrame, threshold: float) -> DqResult:
    """Week-over-week relative change in total weekly active users above ``threshold`` (complete weeks)."""
    weekly = (
        active_df.where((F.col("period_type") == "weekly") & ~F.col("is_partial_period"))
        .groupBy("period_start_date")
        .agg(F.sum("active_users").alias("wau"))
    )
    ordered = Window.orderBy("period_start_date")
    changes = weekly.select("period_start_date", "wau", F.lag("wau").over(ordered).alias("prev")).where(
        F.col("prev").isNotNull()
    )
    jumps = changes.where(F.abs(F.col("wau") - F.col("prev")) / F.col("prev") > threshold).orderBy("period_start_date")
    listed = [f"{r['period_start_date']}: {r['prev']} -> {r['wau']}" for r in jumps.limit(10).collect()]
    return DqResult(GOLD_ACTIVE_USER.full_name, "weekly_active_users_jump", "warn", changes.count(), jumps.count(),
                    f"threshold {threshold:.0%}; {listed}")  # fmt: skip
