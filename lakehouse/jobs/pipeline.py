"""Single-application mode: run the DAG from conf (or a subset) in one Spark session.

Each job keeps its own run id, ``ops.job_runs`` row and exit status; the first failing job stops
the run (its downstream jobs would read inconsistent inputs) and the summary is printed anyway.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from lakehouse.config import ConfigError
from lakehouse.jobs import job_module
from lakehouse.jobs.common import base_parser, config_from_args, execute_with_bookkeeping, setup_logging
from lakehouse.session import get_spark
from lakehouse.summary import build_summary

log = logging.getLogger("lakehouse")


def parser() -> argparse.ArgumentParser:
    p = base_parser("Run the lakehouse DAG (bronze -> silver -> gold) in one Spark application.")
    p.add_argument("--input", help="CSV file or folder of CSV files (default: paths.input)")
    p.add_argument("--full-refresh", action="store_true", help="rebuild every table from all input files")
    p.add_argument("--jobs", help="comma-separated subset of the DAG to run, in DAG order")
    p.add_argument("--no-summary", action="store_true", help="do not print the summary at the end")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    args = parser().parse_args(argv)
    try:
        config = config_from_args(args)
        dag = list(config.dag)
        wanted = [j.strip() for j in args.jobs.split(",")] if args.jobs else dag
        unknown = [j for j in wanted if j not in dag]
        if unknown:
            raise ConfigError(f"--jobs names jobs not in the DAG: {unknown}; DAG: {dag}")
        modules = [job_module(name) for name in dag if name in wanted]
    except (ConfigError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spark = get_spark(config, app_name=f"{config.app_name}:pipeline")
    exit_code = 0
    for module in modules:
        log.info("=== %s", module.JOB)
        exit_code = execute_with_bookkeeping(spark, config, module.JOB, module.execute, args)
        if exit_code:
            log.error("stopping the DAG: %s failed (see the message above and ops.job_runs)", module.JOB)
            break
    if not args.no_summary:
        print("\n" + build_summary(spark, config) + "\n", flush=True)
    return exit_code
