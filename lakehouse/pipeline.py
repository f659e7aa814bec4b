"""Run the DAG from conf (or a subset of it) in one Spark application: ``lakehouse run``.

Each job keeps its own run id, ``ops.job_runs`` row and exit status; the first failing job stops
the run (its downstream jobs would read inconsistent inputs) and the summary is printed anyway. A
job that ends ``partial`` (bronze with a refused or rejected file, ``bronze.on_bad_file:
continue``) committed its good input: the DAG goes on, and the run exits 1.
All jobs share one :class:`~lakehouse.job_runtime.JobContext` ``shared`` store (the bookkeeping ledger
is read once, the gold jobs compute their common inputs once) and one
:class:`~lakehouse.ops.OpsSink`: the run's bookkeeping is written at the end, one commit per ops
table, also when a job failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lakehouse.config import ConfigError, LakehouseConfig
from lakehouse.job_catalog import check_dag, job
from lakehouse.job_runtime import EXIT_OK, EXIT_USAGE, Job, RunCaches, base_parser, config_from_args, setup_logging

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
    from lakehouse import idle
    from lakehouse.lock import run_locked
    from lakehouse.summary import build_summary

    values = {"full_refresh": args.full_refresh, "input": args.input, "retry_bad_files": args.retry_bad_files}
    app_name = f"{config.app_name}:pipeline"

    def body(spark: Any) -> int:
        runs: list = []
        exit_code = run_jobs(spark, config, jobs, values, runs=runs)
        if not args.no_summary:
            print("\n" + build_summary(spark, config, runs, table_counts=args.table_counts) + "\n", flush=True)
        return exit_code

    def without_spark() -> int | None:
        summary = None if args.no_summary else {"table_counts": args.table_counts}
        return idle.run_dag(config, jobs, values, app_name, summary=summary)

    def full_jit() -> bool:
        return idle.heavy(config, args.input, args.full_refresh)

    return run_locked(config, app_name, "lakehouse run", body, without_spark=without_spark, full_jit=full_jit)


def side_by_side(jobs: Sequence[Job]) -> list[list[Job]]:
    """``jobs`` in order, consecutive jobs of one :attr:`~lakehouse.job_runtime.Job.group` together."""
    groups: list[list[Job]] = []
    for j in jobs:
        if groups and j.group and groups[-1][-1].group == j.group:
            groups[-1].append(j)
        else:
            groups.append([j])
    return groups


def _run_group(
    group: Sequence[Job], step: Callable[[str, Callable[[], int]], int], execute: Callable[[Job], int]
) -> list[int]:
    """Run one group (one step for ``around``); the exit codes of its jobs in group order.

    A group of several jobs runs in threads of this application: Spark takes jobs from several
    threads, and most of a small job's time is driver-side (planning, Delta's log, Python), which
    one thread at a time leaves the second core idle for.
    """
    if len(group) == 1:
        log.info("=== %s", group[0].name)
        return [step(group[0].name, lambda: execute(group[0]))]
    log.info("=== side by side: %s", ", ".join(j.name for j in group))
    codes: list[int] = []

    def run() -> int:
        with ThreadPoolExecutor(len(group)) as pool:
            codes.extend(pool.map(execute, group))
        return max(codes)

    step(f"{group[0].group} side by side ({len(group)} jobs)", run)
    return codes


def run_jobs(
    spark: Any,
    config: LakehouseConfig,
    jobs: Sequence[Job],
    values: dict[str, Any],
    around: Callable[[str, Callable[[], int]], int] | None = None,
    runs: list | None = None,
    caches: RunCaches | None = None,
) -> int:
    """Run ``jobs`` in order in one application; stop at the first failure; write the bookkeeping once.

    ``values``: parameters offered to every job (each keeps the ones it declares). ``around`` wraps
    each step (the benchmark times them): it gets the step name and a callable that runs it.
    ``runs`` receives each job's :class:`~lakehouse.ops.JobRun` (the summary reports them).
    ``caches`` seeds the jobs' caches (:mod:`lakehouse.idle` hands in the ledger it read).
    When ``spark`` is a :class:`~lakehouse.job_runtime.NoSpark` and a job needs Spark after all,
    :class:`~lakehouse.job_runtime.NeedsSpark` propagates and nothing is written.
    """
    from lakehouse.job_runtime import NeedsSpark
    from lakehouse.ops import OpsSink

    step = around or (lambda _name, fn: fn())
    caches = caches if caches is not None else RunCaches()
    sink = OpsSink()
    exit_code = EXIT_OK
    try:
        for group in side_by_side(jobs):
            mine: dict[str, list] = {j.name: [] for j in group}
            codes = _run_group(group, step, lambda j, out=mine: j.execute(spark, config, j.params_from(values),
                                                                          caches, sink, out[j.name]))  # fmt: skip
            failed = False
            for j, code in zip(group, codes, strict=True):
                if runs is not None:
                    runs.extend(mine[j.name])
                if code and mine[j.name] and mine[j.name][-1].status == "partial":
                    # Its good input is committed and consistent: the rest of the DAG builds on it.
                    log.error("%s completed with problems (above); the DAG goes on with the committed data", j.name)
                    exit_code = code
                elif code:
                    exit_code, failed = code, True
                    log.error("stopping the DAG: %s failed (see the message above and ops.job_runs)", j.name)
            if failed:
                break
    except NeedsSpark:
        sink.clear()  # the run starts over with Spark: none of this attempt's bookkeeping is written
        raise
    finally:
        step("ops bookkeeping", lambda: sink.flush(spark, config) or EXIT_OK)
    return exit_code
