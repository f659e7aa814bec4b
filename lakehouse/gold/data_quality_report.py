"""Job ``gold_data_quality_report``: warning-level findings and ``gold.rpt_negative_balance_users``.

Grain of ``gold.rpt_negative_balance_users``: one row per user whose ``miles_balance`` is negative
in the latest ``silver.dim_users`` snapshot, with the first day it went negative.

Warnings are recorded in ``ops.dq_results`` and never fail the job: users with a negative miles
balance in the latest snapshot, users whose utm_source or country changes between events, and
week-over-week jumps in weekly active users above ``gold.wau_jump_threshold``.

Incremental like the tables it reads: the job runs its checks only when ``silver.dim_users`` has
recorded batches the report has not (otherwise nothing changed and nothing is committed). The
attribute-change check looks at the events of those batches: a user is flagged when one of them
carries another utm_source or country than the user's first event (on the first run that is
every event, i.e. the contract's "changes between events").
"""

from __future__ import annotations

import logging
from itertools import pairwise

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import batches, delta_io
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.job_runtime import Consumes, Job, JobContext, JobFailed, NoParams
from lakehouse.quality import DqResult
from lakehouse.registry import GOLD_NEGATIVE_BALANCE, SILVER_DIM_USERS, SILVER_EVENTS

CONSUMER = GOLD_NEGATIVE_BALANCE.full_name
#: The report reads the snapshots, the new events and the published weekly actives.
INPUTS = Consumes(CONSUMER, (SILVER_DIM_USERS.full_name,), SILVER_EVENTS.full_name,
                  reads=(SILVER_DIM_USERS, SILVER_EVENTS, GOLD_ACTIVE_USER, GOLD_NEGATIVE_BALANCE))  # fmt: skip

log = logging.getLogger("lakehouse")


def negative_balance_users(latest_df: DataFrame) -> DataFrame:
    """Users whose balance is negative in the latest snapshot ``latest_df``, with the first day it went negative.

    That day is the snapshot's own running ``first_negative_date``: no history is read, so the report
    costs the same on a year of snapshots as on a week.
    """
    latest = latest_df.where(F.col("miles_balance") < 0)
    return latest.select(
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


def attribute_change_warning(events_df: DataFrame, users_df: DataFrame) -> DqResult:
    """Users of ``events_df`` with an event whose utm_source or country is not their first event's.

    ``users_df``: user_id, acq_source, country (the first event's, from the latest snapshot).
    """
    first = users_df.select(
        "user_id", F.col("acq_source").alias("_first_source"), F.col("country").alias("_first_country")
    )
    per_user = (
        events_df.join(first, on="user_id", how="inner")
        .groupBy("user_id")
        .agg(
            F.max(
                (F.col("utm_source") != F.col("_first_source")) | (F.col("country") != F.col("_first_country"))
            ).alias("changed")
        )
    )
    stats = per_user.agg(
        F.count(F.lit(1)).alias("users"),
        F.count(F.when(F.col("changed"), 1)).alias("changed"),
        F.sort_array(F.collect_list(F.when(F.col("changed"), F.col("user_id")))).alias("ids"),
    ).first()
    sample = list(stats["ids"] or [])[:5]
    return DqResult(SILVER_EVENTS.full_name, "users_whose_utm_source_or_country_changes", "warn", int(stats["users"]),
                    int(stats["changed"]), f"attributed to their first event; e.g. {sample}")  # fmt: skip


def wau_jump_warning(active_df: DataFrame, threshold: float) -> DqResult:
    """Week-over-week relative change in total weekly active users above ``threshold`` (complete weeks)."""
    weekly = (
        active_df.where((F.col("period_type") == "weekly") & ~F.col("is_partial_period"))
        .groupBy("period_start_date")
        .agg(F.sum("active_users").alias("wau"))
        .orderBy("period_start_date")
        .collect()
    )  # one row per week: small
    changes = list(pairwise(weekly))
    jumps = [(a, b) for a, b in changes if abs(b["wau"] - a["wau"]) / a["wau"] > threshold]
    listed = [f"{b['period_start_date']}: {a['wau']} -> {b['wau']}" for a, b in jumps[:10]]
    return DqResult(GOLD_ACTIVE_USER.full_name, "weekly_active_users_jump", "warn", len(changes), len(jumps),
                    f"threshold {threshold:.0%}; {listed}")  # fmt: skip


def run(ctx: JobContext, params: NoParams) -> None:
    spark, config = ctx.spark, ctx.config
    work = INPUTS.pending_work(ctx)
    pending = work.batches
    if not pending:
        log.info("gold_data_quality_report: nothing new since the last report")
        ctx.run.rows_out = 0
        return
    _, latest_ds = batches.data_dates(ctx)
    if latest_ds is None:
        # Every file so far was empty (or refused / rejected): the report waits for the first events.
        log.warning("gold_data_quality_report: no events ingested yet, nothing to report")
        ctx.run.rows_out = 0
        return
    for spec in (SILVER_EVENTS, SILVER_DIM_USERS, GOLD_ACTIVE_USER):
        if not delta_io.exists(spec, config):
            raise JobFailed(f"{spec.full_name} does not exist yet: run the jobs before this one in the DAG")
    dim_users = delta_io.read(spark, SILVER_DIM_USERS, config)
    latest = dim_users.where(F.col("ds") == F.lit(latest_ds)).localCheckpoint()
    negative = negative_balance_users(latest).localCheckpoint()
    delta_io.overwrite_if_changed(negative, GOLD_NEGATIVE_BALANCE, config)
    new_events = delta_io.read(spark, SILVER_EVENTS, config).where(F.col("_batch_id").isin(pending))
    if work.dated:
        new_events = new_events.where(F.col("event_date").between(F.lit(work.first_day), F.lit(work.last_day)))
    warnings = [
        negative_balance_warning(negative, latest.count()),
        attribute_change_warning(new_events, latest),
        wau_jump_warning(delta_io.read(spark, GOLD_ACTIVE_USER, config), config.gold.wau_jump_threshold),
    ]
    ctx.run.record_dq(warnings)
    for w in warnings:
        log.info("%s: %s (%d of %d) %s", w.status, w.check_name, w.failed_rows, w.rows_checked, w.details or "")
    batches.record(ctx, CONSUMER, [batches.Consumption(b) for b in pending])
    ctx.run.rows_out = negative.count()


JOB = Job(
    "gold_data_quality_report",
    "warning-level findings on silver and gold (ops.dq_results) and gold.rpt_negative_balance_users",
    NoParams,
    run,
    inputs=INPUTS,
)
