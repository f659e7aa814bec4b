"""Run bookkeeping: ``ops.job_runs`` (one row per job run) and ``ops.dq_results`` (one per check).

Check results themselves (``DqResult``) are plain values from :mod:`lakehouse.quality`.

Bookkeeping rows go through an :class:`OpsSink` and are written when it is flushed: one Delta
commit per ops table for a whole DAG run (``lakehouse run``), or for one job run alone, instead of
several small commits per job. The sink is flushed at the end of the run, also when a job failed;
a process killed before the flush loses its bookkeeping rows, and the next run redoes the work they
would have recorded (every write is idempotent), so the tables come out the same.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

from lakehouse import delta_io
from lakehouse.config import LakehouseConfig
from lakehouse.quality import DqResult
from lakehouse.registry import OPS_DQ_RESULTS, OPS_JOB_RUNS, TableSpec

log = logging.getLogger("lakehouse")


def utc_now() -> datetime:
    """Wall clock for bookkeeping only (run times, ingestion time); never for business logic."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(job: str) -> str:
    return f"{utc_now():%Y%m%dT%H%M%S}-{job}-{uuid.uuid4().hex[:8]}"


class OpsSink:
    """Bookkeeping rows waiting to be written, per ops table, in the order they were added."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[TableSpec, list[tuple]]] = {}
        self._lock = threading.Lock()  # jobs of one run may add from several threads

    def add(self, spec: TableSpec, rows: list[tuple]) -> None:
        if rows:
            with self._lock:
                self._rows.setdefault(spec.full_name, (spec, []))[1].extend(rows)

    def discard(self, spec: TableSpec, matches: Callable[[tuple], bool] | None = None) -> None:
        """Drop waiting rows of ``spec`` (all, or those ``matches`` selects): their table was reset."""
        if spec.full_name in self._rows:
            kept = [r for r in self._rows[spec.full_name][1] if matches is not None and not matches(r)]
            self._rows[spec.full_name] = (spec, kept)

    def __len__(self) -> int:
        return sum(len(rows) for _, rows in self._rows.values())

    def clear(self) -> None:
        self._rows.clear()

    def flush(self, spark: SparkSession, config: LakehouseConfig) -> None:
        """One append per ops table, the tables written side by side (independent commits).

        Without Spark (:class:`~lakehouse.jobkit.NoSpark`: a run with nothing to do) the rows are
        appended by delta-rs (:func:`lakehouse.idle.append_rows`).
        """
        from lakehouse.jobkit import has_spark

        waiting = [(spec, rows) for spec, rows in self._rows.values() if rows]
        self._rows.clear()

        def write(item: tuple[TableSpec, list[tuple]]) -> None:
            spec, rows = item
            if not has_spark(spark):
                from lakehouse.idle import append_rows

                append_rows(spec, rows, config)
                return
            delta_io.append(spark.createDataFrame(rows, spec.schema), spec, config)

        with ThreadPoolExecutor(max(1, len(waiting))) as pool:
            list(pool.map(write, waiting))


def scheduler_context() -> tuple[str | None, str | None, int | None]:
    """(dag id, run id, try number) of the Airflow task running this process, from the environment
    Airflow gives its tasks (the DAG passes them to spark-submit explicitly too); Nones elsewhere."""
    dag_id, run_id = os.environ.get("AIRFLOW_CTX_DAG_ID") or None, os.environ.get("AIRFLOW_CTX_DAG_RUN_ID") or None
    try:
        try_number = int(os.environ["AIRFLOW_CTX_TRY_NUMBER"])
    except (KeyError, ValueError):
        try_number = None
    return dag_id, run_id, try_number


@dataclass
class JobRun:
    """One job run: collects DQ results and row counts, then writes the ops rows."""

    spark: SparkSession
    config: LakehouseConfig
    job: str
    parameters: dict[str, Any]
    run_id: str = ""
    started_at: datetime = field(default_factory=utc_now)
    rows_in: int | None = None
    rows_out: int | None = None
    dq_results: list[DqResult] = field(default_factory=list)
    sink: OpsSink = field(default_factory=OpsSink)
    status: str | None = None
    message: str | None = None
    ended_at: datetime | None = None
    #: Problems that do not stop the job (a refused input file): the run ends ``partial``, exit 1.
    problems: list[str] = field(default_factory=list)
    #: Things a person should know that are not new problems (a known bad file still in the folder).
    reminders: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run_id = self.run_id or new_run_id(self.job)

    def record_dq(self, results: list[DqResult]) -> None:
        """Queue DQ results (written with the run's bookkeeping, also when the job then fails)."""
        if not results:
            return
        self.dq_results.extend(results)
        now = utc_now()
        rows = [
            (self.run_id, self.job, r.table_name, r.batch_id, r.check_name, r.severity,
             int(r.rows_checked), int(r.failed_rows), r.status, r.details, now)
            for r in results
        ]  # fmt: skip
        self.sink.add(OPS_DQ_RESULTS, rows)

    def finish(self, status: str, message: str | None = None) -> None:
        self.status, self.message, self.ended_at = status, message, utc_now()
        row = (
            self.run_id, self.job, json.dumps(self.parameters, default=str, sort_keys=True),
            self.started_at, self.ended_at, status, self.rows_in, self.rows_out, message, *scheduler_context(),
        )  # fmt: skip
        self.sink.add(OPS_JOB_RUNS, [row])
        log.info("%s %s: %s (rows in %s, out %s)", self.job, self.run_id, status, self.rows_in, self.rows_out)
