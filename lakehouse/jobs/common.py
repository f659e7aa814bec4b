"""What every job shares: argument parsing, config, session, run bookkeeping and exit codes.

A job module defines ``JOB`` (its name), ``add_arguments(parser)`` and
``execute(spark, config, run, args)``. ``run_job`` wraps it for ``spark-submit jobs/<job>.py``;
``lakehouse.jobs.pipeline`` runs several of them in one application.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.config import ConfigError, LakehouseConfig, load_config
from lakehouse.ops import JobRun
from lakehouse.session import get_spark

log = logging.getLogger("lakehouse")

Execute = Callable[[SparkSession, LakehouseConfig, JobRun, argparse.Namespace], None]


class JobFailed(RuntimeError):
    """A job ended on purpose with an error a person should read (bad input, failed check)."""


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("py4j", "py4j.clientserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--conf", help="base config file (default conf/lakehouse.yaml)")
    parser.add_argument("--env", help="environment overlay conf/env/<ENV>.yaml (or LAKEHOUSE_ENV)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)"
    )
    parser.add_argument("--warehouse", help="shortcut for --set paths.warehouse=DIR")
    return parser


def config_from_args(args: argparse.Namespace) -> LakehouseConfig:
    overrides = list(args.set)
    if getattr(args, "warehouse", None):
        overrides.append(f"paths.warehouse={args.warehouse}")
    if getattr(args, "input", None):
        overrides.append(f"paths.input={args.input}")
    return load_config(args.conf, args.env, overrides)


def execute_with_bookkeeping(
    spark: SparkSession,
    config: LakehouseConfig,
    job: str,
    execute: Execute,
    args: argparse.Namespace,
) -> int:
    """Run one job body, record it in ops.job_runs, and turn the outcome into an exit code."""
    parameters: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in ("func",)}
    run = JobRun(spark, config, job, parameters)
    log.info("%s: starting run %s", job, run.run_id)
    try:
        execute(spark, config, run, args)
    except JobFailed as exc:
        log.error("%s failed: %s", job, exc)
        run.finish("failed", str(exc))
        return 1
    except Exception as exc:
        log.exception("%s failed unexpectedly", job)
        run.finish("failed", f"{type(exc).__name__}: {exc}")
        return 1
    run.finish("succeeded")
    return 0


def run_job(
    job: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    execute: Execute,
    argv: Sequence[str] | None = None,
) -> int:
    setup_logging()
    parser = base_parser(description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spark = get_spark(config, app_name=f"{config.app_name}:{job}")
    return execute_with_bookkeeping(spark, config, job, execute, args)
