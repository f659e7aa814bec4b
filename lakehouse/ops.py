"""Run bookkeeping: the row types of every ops table, ``ops.job_runs`` (one row per job run) and
``ops.dq_results`` (one per check), and the sink that writes them.

Every ops table has a row type with named fields here (:class:`OpsRecord`: ``FileRecord``,
``IntentRecord``, ``ConsumptionRecord``, ``JobRunRecord``, ``DqRecord``), declared in the table's column
order and checked against the registry when this module is imported; rows are built and read as those
types (here and in :mod:`lakehouse.batches`), never as positional tuples. Check results themselves
(``DqResult``) are plain values from :mod:`lakehouse.quality`.

Bookkeeping rows go through an :class:`OpsSink` and are written when it is flushed: one Delta
commit per ops table for a whole DAG run (``lakehouse run``), or for one job run alone, instead of
several small commits per job. On a local warehouse they are appended by delta-rs
(:mod:`lakehouse.delta_rs`), with or without a Spark session; on object storage through Spark. The
sink is flushed at the end of the run, also when a job failed; a process killed before the flush
loses its bookkeeping rows, and the next run redoes the work they would have recorded (every write
is idempotent), so the tables come out the same.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from pyspark.sql import SparkSession

from lakehouse import delta_io, delta_rs
from lakehouse.config import LakehouseConfig
from lakehouse.quality import DqResult
from lakehouse.registry import (
    OPS_ALERT_DELIVERIES,
    OPS_AUDIENCE_EXPORTS,
    OPS_BATCH_INTENTS,
    OPS_DQ_RESULTS,
    OPS_INGESTED_FILES,
    OPS_JOB_RUNS,
    OPS_PROCESSED_BATCHES,
    TableSpec,
)

log = logging.getLogger("lakehouse")


def utc_now() -> datetime:
    """Wall clock for bookkeeping only (run times, ingestion time); never for business logic."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(job: str) -> str:
    return f"{utc_now():%Y%m%dT%H%M%S}-{job}-{uuid.uuid4().hex[:8]}"


class OpsRecord:
    """A row of an ops table: a frozen dataclass whose fields are the table's columns, in order."""

    SPEC: ClassVar[TableSpec]

    def as_row(self) -> tuple:
        """The values in the table's column order (what a DataFrame of ``SPEC.schema`` takes)."""
        return astuple(self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]):
        """From a dict of the table's columns (a column an older table lacks: None)."""
        return cls(**{f.name: row.get(f.name) for f in fields(cls)})


def _columns_of(spec: TableSpec):
    """Class decorator: bind a record type to its table and check its fields are the table's columns."""

    def bind(cls):
        names, columns = [f.name for f in fields(cls)], [f.name for f in spec.schema.fields]
        if names != columns:
            raise TypeError(f"{cls.__name__} fields {names} are not the columns of {spec.full_name}: {columns}")
        cls.SPEC = spec
        return cls

    return bind


@_columns_of(OPS_INGESTED_FILES)
@dataclass(frozen=True)
class FileRecord(OpsRecord):
    """One file of the landing folder the bronze job decided on (``ops.ingested_files``)."""

    batch_id: str
    run_id: str
    source_file: str
    file_name: str
    content_sha256: str
    file_size: int
    lines_read: int
    rows_accepted: int
    rows_quarantined: int
    status: str
    ingested_at: datetime
    file_modified_at: datetime | None = None
    min_event_date: date | None = None
    max_event_date: date | None = None
    status_reason: str | None = None

    @property
    def fingerprint(self) -> tuple[str, int, datetime | None]:
        """Name, size and modification time: a file that still has them is not read again."""
        return self.file_name, self.file_size, self.file_modified_at


@_columns_of(OPS_BATCH_INTENTS)
@dataclass(frozen=True)
class IntentRecord(OpsRecord):
    """A run is about to write a batch's rows (``ops.batch_intents``, committed before them)."""

    batch_id: str
    run_id: str
    file_name: str
    content_sha256: str
    min_event_date: date | None
    max_event_date: date | None
    started_at: datetime = field(default_factory=lambda: utc_now())


@_columns_of(OPS_PROCESSED_BATCHES)
@dataclass(frozen=True)
class ConsumptionRecord(OpsRecord):
    """A consumer table loaded a batch (``ops.processed_batches``)."""

    consumer: str
    batch_id: str
    run_id: str
    rows_in: int
    rows_inserted: int
    min_event_date_inserted: date | None
    processed_at: datetime
    max_event_date_inserted: date | None


@_columns_of(OPS_AUDIENCE_EXPORTS)
@dataclass(frozen=True)
class AudienceExportRecord(OpsRecord):
    """An audience written to a file (``ops.audience_exports``)."""

    export_id: str
    audience: str
    condition: str
    cutoff_week: date
    columns: str
    rows: int
    file: str
    file_format: str
    file_sha256: str
    table_version: int
    os_user: str
    exported_at: datetime


@_columns_of(OPS_ALERT_DELIVERIES)
@dataclass(frozen=True)
class AlertDeliveryRecord(OpsRecord):
    """One delivery of a run's brief to a channel (``ops.alert_deliveries``)."""

    delivery_id: str
    run_id: str
    channel: str
    message_key: str
    item_keys: list[str]
    attempts: int
    status: str
    error: str | None
    sent_at: datetime


@_columns_of(OPS_JOB_RUNS)
@dataclass(frozen=True)
class JobRunRecord(OpsRecord):
    """One job run (``ops.job_runs``)."""

    run_id: str
    job: str
    parameters: str
    started_at: datetime
    ended_at: datetime
    status: str
    rows_in: int | None
    rows_out: int | None
    message: str | None
    airflow_dag_id: str | None = None
    airflow_run_id: str | None = None
    airflow_try_number: int | None = None


@_columns_of(OPS_DQ_RESULTS)
@dataclass(frozen=True)
class DqRecord(OpsRecord):
    """One data-quality check of one run (``ops.dq_results``)."""

    run_id: str
    job: str
    table_name: str
    batch_id: str | None
    check_name: str
    severity: str
    rows_checked: int
    failed_rows: int
    status: str
    details: str | None
    checked_at: datetime


class OpsSink:
    """Bookkeeping records waiting to be written, per ops table, in the order they were added."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[TableSpec, list[OpsRecord]]] = {}
        self._lock = threading.Lock()  # jobs of one run may add from several threads

    def add(self, records: Sequence[OpsRecord]) -> None:
        with self._lock:
            for record in records:
                self._rows.setdefault(record.SPEC.full_name, (record.SPEC, []))[1].append(record)

    def discard(self, spec: TableSpec, matches: Callable[[Any], bool] | None = None) -> None:
        """Drop waiting records of ``spec`` (all, or those ``matches`` selects): their table was reset."""
        if spec.full_name in self._rows:
            kept = [r for r in self._rows[spec.full_name][1] if matches is not None and not matches(r)]
            self._rows[spec.full_name] = (spec, kept)

    def __len__(self) -> int:
        return sum(len(rows) for _, rows in self._rows.values())

    def clear(self) -> None:
        self._rows.clear()

    def flush(self, spark: SparkSession | None, config: LakehouseConfig) -> None:
        """One append per ops table (:func:`append_records`), the tables written side by side
        (independent commits). ``spark`` None: a run without a JVM (every table must exist)."""
        waiting = [records for _, records in self._rows.values() if records]
        self._rows.clear()
        with ThreadPoolExecutor(max(1, len(waiting))) as pool:
            list(pool.map(lambda records: append_records(records, spark, config), waiting))


def append_records(records: Sequence[OpsRecord], spark: SparkSession | None, config: LakehouseConfig) -> None:
    """Append records of one ops table in one commit: by delta-rs on a local warehouse where the table
    exists (:mod:`lakehouse.delta_rs`), else through Spark (which creates the table first)."""
    if not records:
        return
    spec = records[0].SPEC
    rows = [r.as_row() for r in records]
    if delta_rs.usable(config) and delta_rs.exists(spec, config):
        delta_rs.append_rows(spec, rows, config)
    elif spark is None:
        raise RuntimeError(f"{spec.full_name} does not exist yet: it is created by a run with Spark")
    else:
        delta_io.append(spark.createDataFrame(rows, spec.schema), spec, config)


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
        self.sink.add([
            DqRecord(self.run_id, self.job, r.table_name, r.batch_id, r.check_name, r.severity,
                     int(r.rows_checked), int(r.failed_rows), r.status, r.details, now)
            for r in results
        ])  # fmt: skip

    def finish(self, status: str, message: str | None = None) -> None:
        self.status, self.message, self.ended_at = status, message, utc_now()
        parameters = json.dumps(self.parameters, default=str, sort_keys=True)
        self.sink.add([JobRunRecord(self.run_id, self.job, parameters, self.started_at, self.ended_at, status,
                                    self.rows_in, self.rows_out, message, *scheduler_context())])  # fmt: skip
        log.info("%s %s: %s (rows in %s, out %s)", self.job, self.run_id, status, self.rows_in, self.rows_out)
