"""The gold job: recompute one gold table from silver, check it, then replace it atomically.

Every gold table is data here, not a copy of a job: :data:`GOLD_TABLES` maps a table to the pure
function that builds it, and :func:`gold_job` turns a table into a runnable :class:`Job` named
``gold_<table>`` (``jobs/gold_<table>.py`` runs one alone). The job

1. reads the compact inputs from ``silver.fct_events`` (one row per user and active day, one per
   user) and the calendar grid the weekly tables share;
2. builds its table, plus the other gold tables its checks compare it with;
3. runs the error-level checks attributed to its table (:mod:`lakehouse.gold.checks`) and records
   them; on a failure it exits 1 and the published table stays as it was;
4. overwrites the table in one Delta commit, or commits nothing when the content is unchanged.

Jobs of one application (the DAG runner) share the computation through the job context: the
inputs and every table built from them are kept per silver version, so the gold jobs of a run
compute each table once. A job run alone computes what it needs itself.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from delta.tables import DeltaTable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.gold import (
    agg_active_user,
    agg_engagement_daily,
    agg_growth_accounting_weekly,
    agg_user_lifecycle_weekly,
    agg_user_retention,
    checks,
)
from lakehouse.gold.activity import GoldInputs, gold_inputs, user_activity, user_segments
from lakehouse.jobkit import Job, JobContext, JobFailed, NoParams
from lakehouse.registry import SILVER_EVENTS, TableSpec

log = logging.getLogger("lakehouse")

#: Every gold table computed from silver events, in DAG order, with its pure build function.
GOLD_TABLES: dict[str, tuple[TableSpec, Callable[[GoldInputs], DataFrame]]] = {
    m.TABLE.full_name: (m.TABLE, m.build)
    for m in (
        agg_active_user,
        agg_user_lifecycle_weekly,
        agg_user_retention,
        agg_growth_accounting_weekly,
        agg_engagement_daily,
    )
}


@dataclass
class GoldComputation:
    """The inputs of one silver version and the gold tables built from them so far."""

    inputs: GoldInputs
    activity_rows: int
    built: dict[str, DataFrame] = field(default_factory=dict)

    def table(self, full_name: str) -> DataFrame:
        if full_name not in self.built:
            # Checkpointed: the checks and the publish read each table several times.
            self.built[full_name] = GOLD_TABLES[full_name][1](self.inputs).localCheckpoint()
        return self.built[full_name]


def compute_inputs(ctx: JobContext) -> GoldComputation:
    """The compact inputs from silver, built once per silver version and gold parameters per application."""
    spark, config = ctx.spark, ctx.config
    if not delta_io.exists(spark, SILVER_EVENTS, config):
        raise JobFailed("silver.fct_events does not exist yet: run bronze_fct_event_stream and silver_fct_events first")
    version = DeltaTable.forPath(spark, SILVER_EVENTS.path(config)).history(1).first()["version"]
    gold = config.gold
    key = ("gold", SILVER_EVENTS.path(config), version, config.week_start, gold.lookback_weeks, gold.max_week_offset)
    if key in ctx.shared:
        return ctx.shared[key]
    for stale in [k for k in ctx.shared if isinstance(k, tuple) and k[:1] == ("gold",)]:
        del ctx.shared[stale]  # keep only the newest computation alive
    events = delta_io.read(spark, SILVER_EVENTS, config).select(
        "event_id", "event_time", "event_date", "user_id", "utm_source", "country"
    )
    activity = user_activity(events).localCheckpoint()
    users = user_segments(events).localCheckpoint()
    max_event_date = activity.agg(F.max("event_date")).first()[0]
    if max_event_date is None:
        raise JobFailed("silver.fct_events is empty: nothing to aggregate")
    inputs = gold_inputs(activity, users, max_event_date, config.week_start, gold.lookback_weeks, gold.max_week_offset)
    inputs = dataclasses.replace(inputs, grid_df=inputs.grid_df.localCheckpoint())
    computation = GoldComputation(inputs, activity.count())
    ctx.shared[key] = computation
    return computation


def publish(ctx: JobContext, spec: TableSpec) -> None:
    computation = compute_inputs(ctx)
    results = checks.run_checks(spec.full_name, computation.table, computation.inputs)
    ctx.run.record_dq(results)
    failed = [c for c in results if c.status == "fail"]
    if failed:
        listed = "; ".join(f"{c.check_name}: {c.failed_rows} of {c.rows_checked} rows ({c.details})" for c in failed)
        raise JobFailed(f"{spec.full_name} not published, metric checks failed: {listed}")
    df = computation.table(spec.full_name)
    changed = delta_io.overwrite_if_changed(df, spec, ctx.config)
    ctx.run.rows_in, ctx.run.rows_out = computation.activity_rows, df.count()
    log.info("%s %s: %d rows (data up to %s)", spec.full_name, "published" if changed else "unchanged",
             ctx.run.rows_out, computation.inputs.max_event_date)  # fmt: skip


def gold_job(spec: TableSpec) -> Job[NoParams]:
    def body(ctx: JobContext, params: NoParams) -> None:
        publish(ctx, spec)

    return Job(f"gold_{spec.name}", f"silver.fct_events -> {spec.full_name}: {spec.grain}", NoParams, body)


#: One job per gold table, by job name.
JOBS: dict[str, Job[NoParams]] = {job.name: job for job in (gold_job(spec) for spec, _ in GOLD_TABLES.values())}
