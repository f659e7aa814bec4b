"""Job ``gold_data_quality_report``: warning-level findings and ``gold.rpt_negative_balance_users``.

Grain of ``gold.rpt_negative_balance_users``: one row per user whose ``miles_balance`` is negative
in the latest ``silver.dim_users`` snapshot, with the first day it went negative.

Warnings are recorded in ``ops.dq_results`` and never fail the job: users with a negative miles
balance in the latest snapshot, users whose utm_source or country changes between events, and
week-over-week jumps in weekly active users above ``gold.wau_jump_threshold``.
"""

from __future__ import annotations

import logging
from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.jobkit import Job, JobContext, JobFailed, NoParams
from lakehouse.quality import DqResult
from lakehouse.registry import GOLD_ACTIVE_USER, GOLD_NEGATIVE_BALANCE, SILVER_DIM_USERS, SILVER_EVENTS

log = logging.getLogger("lakehouse")


def negative_balance_users(dim_users_df: DataFrame, latest_ds: date) -> DataFrame:
    """Users whose balance is negative in the ``latest_ds`` snapshot, with the first day it went negative."""
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


def run(ctx: JobContext, params: NoParams) -> None:
    spark, config = ctx.spark, ctx.config
    for spec in (SILVER_EVENTS, SILVER_DIM_USERS, GOLD_ACTIVE_USER):
        if not delta_io.exists(spark, spec, config):
            raise JobFailed(f"{spec.full_name} does not exist yet: run the jobs before this one in the DAG")
    dim_users = delta_io.read(spark, SILVER_DIM_USERS, config)
    latest_ds = dim_users.agg(F.max("ds")).first()[0]
    negative = negative_balance_users(dim_users, latest_ds).localCheckpoint()
    delta_io.overwrite_if_changed(negative, GOLD_NEGATIVE_BALANCE, config)
    latest_users = dim_users.where(F.col("ds") == F.lit(latest_ds)).count()
    warnings = [
        negative_balance_warning(negative, latest_users),
        attribute_change_warning(delta_io.read(spark, SILVER_EVENTS, config)),
        wau_jump_warning(delta_io.read(spark, GOLD_ACTIVE_USER, config), config.gold.wau_jump_threshold),
    ]
    ctx.run.record_dq(warnings)
    for w in warnings:
        log.info("%s: %s (%d of %d) %s", w.status, w.check_name, w.failed_rows, w.rows_checked, w.details or "")
    ctx.run.rows_out = negative.count()


JOB = Job(
    "gold_data_quality_report",
    "warning-level findings on silver and gold (ops.dq_results) and gold.rpt_negative_balance_users",
    NoParams,
    run,
)
