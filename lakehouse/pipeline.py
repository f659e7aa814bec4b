"""The jobs of a run in one Spark application (:func:`run_jobs`): ``lakehouse run``, a job alone, the benchmark.

Each job keeps its own run id, ``ops.job_runs`` row and exit status; the first failing job stops
the run (its downstream jobs would read inconsistent inputs). A job that ends ``partial`` (bronze
with a refused or rejected file, ``bronze.on_bad_file: continue``) committed its good input: the DAG
goes on, and the run exits 1. All jobs share one :class:`~lakehouse.job_runtime.RunCaches` (the
bookkeeping ledger is read once, the gold jobs compute their common inputs once) and one
:class:`~lakehouse.ops.OpsSink`: the run's bookkeeping is written at the end, one commit per ops
table, also when a job failed. :mod:`lakehouse.launcher` starts runs (lock, decision, session).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lakehouse.config import LakehouseConfig
from lakehouse.job_runtime import EXIT_OK, Job, RunCaches
from lakehouse.ops import JobRun, OpsSink

log = logging.getLogger("lakehouse")

T = TypeVar("T")
#: Wraps each step of a run (the benchmark times them): gets the step's name and a callable that runs it.
Step = Callable[[str, Callable[[], T]], T]


def side_by_side(jobs: Sequence[Job]) -> list[list[Job]]:
    """``jobs`` in order, consecutive jobs of one :attr:`~lakehouse.job_runtime.Job.group` together."""
    groups: list[list[Job]] = []
    for j in jobs:
        if groups and j.group and groups[-1][-1].group == j.group:
            groups[-1].append(j)
        else:
            groups.append([j])
    return groups


def _run_group(group: Sequence[Job], step: Step, execute: Callable[[Job], int]) -> list[int]:
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
    around: Step | None = None,
    runs: list[JobRun] | None = None,
    caches: RunCaches | None = None,
) -> int:
    """Run ``jobs`` in order in one application; stop at the first failure; write the bookkeeping once.

    ``values``: parameters offered to every job (each keeps the ones it declares). ``around`` wraps
    each step (:data:`Step`). ``runs`` receives each job's :class:`~lakehouse.ops.JobRun` (the summary
    reports them). ``caches`` seeds the jobs' caches (the launcher hands in the ledger it read).
    """
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
    finally:
        step("ops bookkeeping", lambda: sink.flush(spark, config) or EXIT_OK)
    return exit_code
