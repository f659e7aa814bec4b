"""Run bookkeeping: ``ops.job_runs`` (one row per job run) and ``ops.dq_results`` (one per check).

Check results themselves (``DqResult``) are plain values from :mod:`lakehouse.quality`.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

from lakehouse import delta_io
from lakehouse.config import LakehouseConfig
from lakehouse.quality import DqResult
from lakehouse.registry import OPS_DQ_RESULTS, OPS_JOB_RUNS

log = logging.getLogger("lakehouse")


def utc_now() -> datetime:
    """Wall clock for bookkeeping only (run times, ingestion time); never for business logic."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(job: str) -> str:
    return f"{utc_now():%Y%m%dT%H%M%S}-{job}-{uuid.uuid4().hex[:8]}"


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

    def __post_init__(self) -> None:
        self.run_id = self.run_id or new_run_id(self.job)

    def record_dq(self, results: list[DqResult]) -> None:
        """Persist DQ results now (a failing job must still leave its findings behind)."""
        if not results:
            return
        self.dq_results.extend(results)
        now = utc_now()
        rows = [
            (self.run_id, self.job, r.table_name, r.batch_id, r.check_name, r.severity,
             int(r.rows_checked), int(r.failed_rows), r.status, r.details, now)
            for r in results
        ]  # fmt: skip
        delta_io.append(self.spark.createDataFrame(rows, OPS_DQ_RESULTS.schema), OPS_DQ_RESULTS, self.config)

    def finish(self, status: str, message: str | None = None) -> None:
        row = (
            self.run_id, self.job, json.dumps(self.parameters, default=str, sort_keys=True),
            self.started_at, utc_now(), status, self.rows_in, self.rows_out, message,
        )  # fmt: skip
        delta_io.append(self.spark.createDataFrame([row], OPS_JOB_RUNS.schema), OPS_JOB_RUNS, self.config)
        log.info("%s %s: %s (rows in %s, out %s)", self.job, self.run_id, status, self.rows_in, self.rows_out)
