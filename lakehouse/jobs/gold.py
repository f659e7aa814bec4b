"""Gold jobs: recompute a gold table from silver, validate it, then replace it atomically.

The input is compact (one row per user and active day, one per user), never a rescan of every
event column. The four tables are computed together once per silver version in a process (the
single-application pipeline runs four gold jobs on one computation), because the cross-metric checks
compare them. Each job enforces the error-level checks attributed to its own table: on a failure
it exits non-zero and the published table stays as it was (Delta overwrite is one atomic commit).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from datetime import date

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.config import LakehouseConfig
from lakehouse.gold import metrics
from lakehouse.gold.checks import run_error_checks
from lakehouse.jobs.common import JobFailed
from lakehouse.ops import DqResult, JobRun
from lakehouse.registry import SILVER_EVENTS, TableSpec

log = logging.getLogger("lakehouse")


@dataclass
class GoldBuild:
    max_event_date: date
    activity_rows: int
    tables: dict[str, DataFrame]
    checks: list[DqResult]


_BUILDS: dict[tuple, GoldBuild] = {}


def _silver_version(spark: SparkSession, config: LakehouseConfig) -> int:
    if not delta_io.exists(spark, SILVER_EVENTS, config):
        raise JobFailed("silver.fct_events does not exist yet: run bronze_fct_event_stream and silver_fct_events first")
    return DeltaTable.forPath(spark, SILVER_EVENTS.path(config)).history(1).first()["version"]


def build_gold(spark: SparkSession, config: LakehouseConfig) -> GoldBuild:
    gold = config.gold
    key = (config.paths.warehouse, _silver_version(spark, config), config.week_start, gold.lookback_weeks,
           gold.max_week_offset)  # fmt: skip
    if key in _BUILDS:
        return _BUILDS[key]
    events = delta_io.read(spark, SILVER_EVENTS, config).select("event_id", "event_time", "event_date", "user_id",
                                                                "utm_source", "country")  # fmt: skip
    activity = metrics.user_activity(events).localCheckpoint()
    users = metrics.user_segments(events).localCheckpoint()
    max_event_date = activity.agg(F.max("event_date")).first()[0]
    if max_event_date is None:
        raise JobFailed("silver.fct_events is empty: nothing to aggregate")
    tables, grid = metrics.gold_tables(
        activity, users, max_event_date, config.week_start, gold.lookback_weeks, gold.max_week_offset
    )
    tables = {name: df.localCheckpoint() for name, df in tables.items()}
    checks = run_error_checks(tables, grid, config.week_start)
    build = GoldBuild(max_event_date, activity.count(), tables, checks)
    _BUILDS.clear()  # keep only the newest build alive
    _BUILDS[key] = build
    return build


def publish(spark: SparkSession, config: LakehouseConfig, run: JobRun, spec: TableSpec) -> None:
    build = build_gold(spark, config)
    own = [c for c in build.checks if c.table_name == spec.full_name]
    run.record_dq(own)
    failed = [c for c in own if c.status == "fail"]
    if failed:
        listed = "; ".join(f"{c.check_name}: {c.failed_rows} of {c.rows_checked} rows ({c.details})" for c in failed)
        raise JobFailed(f"{spec.full_name} not published, metric checks failed: {listed}")
    df = build.tables[spec.full_name]
    changed = delta_io.overwrite_if_changed(df, spec, config)
    run.rows_in, run.rows_out = build.activity_rows, df.count()
    log.info("%s %s: %d rows (data up to %s)", spec.full_name, "published" if changed else "unchanged",
             run.rows_out, build.max_event_date)  # fmt: skip


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """Gold jobs take only the common arguments (config, env, overrides, warehouse)."""
