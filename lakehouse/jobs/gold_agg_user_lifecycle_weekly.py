"""Job: silver.fct_events -> gold table, validated then replaced atomically (see lakehouse.jobs.gold)."""

from __future__ import annotations

import argparse

from pyspark.sql import SparkSession

from lakehouse.config import LakehouseConfig
from lakehouse.jobs.common import run_job
from lakehouse.jobs.gold import no_arguments as add_arguments
from lakehouse.jobs.gold import publish
from lakehouse.ops import JobRun
from lakehouse.registry import GOLD_LIFECYCLE

JOB = "gold_agg_user_lifecycle_weekly"


def execute(spark: SparkSession, config: LakehouseConfig, run: JobRun, args: argparse.Namespace) -> None:
    publish(spark, config, run, GOLD_LIFECYCLE)


def main(argv: list[str] | None = None) -> int:
    return run_job(JOB, __doc__.splitlines()[0], add_arguments, execute, argv)
