"""Job: warning-level findings on silver and gold, and ``gold.rpt_negative_balance_users``.

Warnings are recorded in ``ops.dq_results`` and never fail the job: users with a negative miles
balance in the latest snapshot (also listed, with the first day it went negative), users whose
utm_source or country changes between events, and week-over-week jumps in weekly active users
above ``gold.wau_jump_threshold``.
"""

from __future__ import annotations

import argparse
import logging

from pyspark.sql import SparkSession

from lakehouse import delta_io
from lakehouse.config import LakehouseConfig
from lakehouse.gold import report
from lakehouse.jobs.common import JobFailed, run_job
from lakehouse.jobs.gold import no_arguments as add_arguments
from lakehouse.ops import JobRun
from lakehouse.registry import GOLD_ACTIVE_USER, GOLD_NEGATIVE_BALANCE, SILVER_DIM_USERS, SILVER_EVENTS

JOB = "gold_data_quality_report"
log = logging.getLogger("lakehouse")


def execute(spark: SparkSession, config: LakehouseConfig, run: JobRun, args: argparse.Namespace) -> None:
    for spec in (SILVER_EVENTS, SILVER_DIM_USERS, GOLD_ACTIVE_USER):
        if not delta_io.exists(spark, spec, config):
            raise JobFailed(f"{spec.full_name} does not exist yet: run the jobs before this one in the DAG")
    dim_users = delta_io.read(spark, SILVER_DIM_USERS, config)
    negative = report.negative_balance_users(dim_users).localCheckpoint()
    delta_io.overwrite_if_changed(negative, GOLD_NEGATIVE_BALANCE, config)
    latest_users = dim_users.where(dim_users.ds == dim_users.agg({"ds": "max"}).first()[0]).count()
    warnings = [
        report.negative_balance_warning(negative, latest_users),
        report.attribute_change_warning(delta_io.read(spark, SILVER_EVENTS, config)),
        report.wau_jump_warning(delta_io.read(spark, GOLD_ACTIVE_USER, config), config.gold.wau_jump_threshold),
    ]
    run.record_dq(warnings)
    for w in warnings:
        log.info("%s: %s (%d of %d) %s", w.status, w.check_name, w.failed_rows, w.rows_checked, w.details or "")
    run.rows_out = negative.count()


def main(argv: list[str] | None = None) -> int:
    return run_job(JOB, __doc__.splitlines()[0], add_arguments, execute, argv)
