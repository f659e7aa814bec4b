"""Run the DAG from conf (or a subset of it) in one Spark application: ``lakehouse run``.

Each job keeps its own run id, ``ops.job_runs`` row and exit status; the first failing job stops
the run (its downstream jobs would read inconsistent inputs) and the summary is printed anyway. A
job that ends ``partial`` (bronze with a refused or rejected file, ``bronze.on_bad_file:
continue``) committed its good input: the DAG goes on, and the run exits 1.
All jobs share one :class:`~lakehouse.jobkit.JobContext` ``shared`` store (the bookkeeping ledger
is read once, the gold jobs compute their common inputs once) and one
:class:`~lakehouse.ops.OpsSink`: the run's bookkeeping is written at the end, one commit per ops
table, also when a job failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lakehouse.config import ConfigError, LakehouseConfig
from lakehouse.jobkit import EXIT_OK, EXIT_USAGE, Job, base_parser, config_from_args, setup_logging
from lakehouse.jobs import check_dag, job

log = logging.getLogger("lakehouse")


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = base_parser("Run the lakehouse DAG (bronze -> silver -> gold) in one Spark application.", prog)
    p.add_argument("--input", help="CSV file or folder of CSV files (default: paths.input)")
    p.add_argument("--full-refresh", action="store_true", help="rebuild every table from all input files")
    p.add_argument(
        "--retry-bad-files",
        action="store_true",
        help="process refused and rejected input files again even if unchanged (e.g. after raising a threshold)",
    )
    p.add_argument("--jobs", help="comma-separated subset of the DAG to run, in DAG order")
    p.add_argument("--no-summary", action="store_true", help="do not print the summary at the end")
    p.add_argument(
        "--table-counts", action="store_true", help="add every table's row count to the summary (reads every table)"
    )
    return p


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    setup_logging()
    args = parser(prog).parse_args(argv)
    try:
        config = config_from_args(args)
        check_dag(config)
        dag = list(config.dag)
        wanted = [j.strip() for j in args.jobs.split(",")] if args.jobs else dag
        unknown = [j for j in wanted if j not in dag]
        if unknown:
            raise ConfigError(f"--jobs names jobs not in the DAG: {unknown}; DAG: {dag}")
        jobs = [job(name) for name in dag if name in wanted]
    except (ConfigError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from lakehouse.lock import run_locked
    from lakehouse.summary import build_summary

    def body(spark: Any) -> int:
        runs: list = []
        values = {"full_refresh": args.full_refresh, "input": args.input, "retry_bad_files": args.retry_bad_files}
        exit_code = run_jobs(spark, config, jobs, values, runs=runs)
        if not args.no_summary:
            print("\n" + build_summary(spark, config, runs, table_counts=args.table_counts) + "\n", flush=True)
        return exit_code

    return run_locked(config, f"{config.app_name}:pipeline", "lakehouse run", body)


def run_jobs(
    spark: Any,
    config: LakehouseConfig,
    jobs: Sequence[Job],
    values: dict[str, Any],
    around: Callable[[str, Callable[[], int]], int] | None = None,
    runs: list | None = None,
) -> int:
    """Run ``jobs`` in order in one application; stop at the first failure; write the bookkeeping once.

    ``values``: parameters offered to every job (each keeps the ones it declares). ``around`` wraps
    each step (the benchmark times them): it gets the step name and a callable that runs it.
    ``runs`` receives each job's :class:`~lakehouse.ops.JobRun` (the summary reports them).
    """
    from lakehouse.ops import OpsSink

    step = around or (lambda _name, fn: fn())
    shared: dict = {}
    sink = OpsSink()
    exit_code = EXIT_OK
    try:
        for j in jobs:
            log.info("=== %s", j.name)
            params = j.params_from(values)
            mine: list = []
            code = step(j.name, lambda j=j, p=params, mine=mine: j.execute(spark, config, p, shared, sink, mine))
            if runs is not None:
                runs.extend(mine)
            if code and mine and mine[-1].status == "partial":
                # Its good input is committed and consistent: the rest of the DAG builds on it.
                log.error("%s completed with problems (above); the DAG goes on with the committed data", j.name)
                exit_code = code
                continue
            if code:
                exit_code = code
                log.error("stopping the DAG: %s failed (see the message above and ops.job_runs)", j.name)
                break
    finally:
        step("ops bookkeeping", lambda: sink.flush(spark, config) or EXIT_OK)
    return exit_code
