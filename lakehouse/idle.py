"""Runs with nothing to do, decided and recorded without starting Spark.

A daily run on a day without new files, or a scheduler's task whose inputs have no pending batch,
reads two small bookkeeping tables, finds nothing pending and records its run. Under Spark that
costs a whole application: a JVM, a SparkContext, the first Delta reads of a cold JVM (measured in
docs/performance.md). Here the **same job bodies** run with a stand-in for the session
(:class:`~lakehouse.job_runtime.NoSpark`) over the bookkeeping read by delta-rs (the ``deltalake``
package, no JVM):

- a job whose inputs have nothing pending never touches its session: it decides from the ledger
  (:mod:`lakehouse.batches`) exactly as it does under Spark, and its run is recorded the same way
  (``ops.job_runs``, appended by delta-rs, one commit per ops table);
- the first thing that does need Spark (a new or changed file, a pending batch, a table to read, a
  full refresh) raises :class:`~lakehouse.job_runtime.NeedsSpark`; nothing has been written then, and the
  run starts over under Spark as before.

So the decision is the jobs' own code, not a second copy of it. Used for local warehouses and
inputs only (delta-rs would need an object store's credentials configured a second time), and
switched off with ``operations.idle_without_spark: false``.

The end-of-run summary reads the gold tables; :mod:`lakehouse.summary` keeps its rendered sections
with the table versions they were read at, and a run that changed no table prints those again. When
they are out of date (or ``--table-counts`` is asked), Spark is started for the summary alone, after
the jobs' runs are recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse import batches
from lakehouse.config import LakehouseConfig
from lakehouse.job_runtime import Job, NeedsSpark, NoSpark, RunCaches
from lakehouse.registry import OPS_INGESTED_FILES, OPS_JOB_RUNS, OPS_PROCESSED_BATCHES, TableSpec

log = logging.getLogger("lakehouse")


def _local_path(uri: str) -> Path | None:
    if "://" in uri and not uri.startswith("file:"):
        return None
    return Path(uri.removeprefix("file://").removeprefix("file:"))


def available(config: LakehouseConfig, input_path: str | None = None) -> bool:
    """Local warehouse and input, the switch on, delta-rs importable, the bookkeeping tables there."""
    if not config.operations.idle_without_spark:
        return False
    warehouse = _local_path(config.paths.warehouse)
    if warehouse is None or _local_path(input_path or config.paths.input) is None:
        return False
    try:
        import deltalake  # noqa: F401
    except ImportError:
        return False
    needed = (OPS_JOB_RUNS, OPS_INGESTED_FILES, OPS_PROCESSED_BATCHES)
    return all((Path(spec.path(config)) / "_delta_log").is_dir() for spec in needed)


def _naive_utc(value: Any) -> Any:
    """delta-rs returns zoned UTC timestamps; the project's bookkeeping values are naive UTC."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def read_rows(spec: TableSpec, config: LakehouseConfig, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of a small table as dicts of ``columns`` (a column the table lacks reads as None)."""
    from deltalake import DeltaTable

    table = DeltaTable(spec.path(config))
    present = [c for c in columns if c in {f.name for f in table.schema().fields}]
    rows = table.to_pyarrow_table(columns=present).to_pylist()
    return [{c: _naive_utc(r.get(c)) for c in columns} for r in rows]


def load_ledger(config: LakehouseConfig) -> batches.Ledger:
    """The same :class:`~lakehouse.batches.Ledger` the jobs read under Spark, read by delta-rs (a table not
    created yet reads as empty)."""
    rows = [
        read_rows(spec, config, [f.name for f in spec.schema.fields]) if _has_log(spec, config) else []
        for spec in batches.LEDGER_TABLES
    ]
    return batches.ledger_from_rows(*rows)


def _has_log(spec: TableSpec, config: LakehouseConfig) -> bool:
    local = _local_path(spec.path(config))
    return local is None or (local / "_delta_log").is_dir()


def append_rows(spec: TableSpec, rows: list[tuple], config: LakehouseConfig) -> None:
    """Append bookkeeping rows (registry column order) to an existing table with delta-rs: one commit."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    path = spec.path(config)
    schema = pa.schema(DeltaTable(path).schema().to_arrow())
    names = [f.name for f in spec.schema.fields]
    records = [dict(zip(names, row, strict=True)) for row in rows]
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in records], schema=schema)
    write_deltalake(path, table, mode="append")
    # Spark checkpoints the log every delta.checkpointInterval commits (10 by default); so does this
    # writer, so that a stretch of runs without Spark does not leave Spark a long log to replay.
    written = DeltaTable(path)
    interval = int(written.metadata().configuration.get("delta.checkpointInterval", 10))
    if written.version() % interval == 0:
        written.create_checkpoint()


def heavy(config: LakehouseConfig, input_path: str | None = None, full_refresh: bool = False) -> bool:
    """Much new input for a JVM this process launches: a full refresh, or at least
    ``spark.full_jit_from_new_input_mb`` MB of CSV files in a local landing folder that are not
    committed batches yet (by name, size and modification time, as bronze decides). The JVM then
    gets the full tiered JIT (:func:`lakehouse.session.get_spark`)."""
    if full_refresh:
        return True
    path = _local_path(input_path or config.paths.input)
    if path is None or not path.exists():
        return False
    from lakehouse.bronze.sources import list_input_files

    listed, _ = list_input_files(NoSpark(), str(path))
    try:
        known = {f.fingerprint for f in load_ledger(config).committed().values()} if available(config) else set()
    except Exception:  # an unreadable ledger: count every file
        known = set()
    new_bytes = sum(f.size for f in listed if f.fingerprint not in known)
    return new_bytes >= config.spark.full_jit_from_new_input_mb * 2**20


def _attempt(config: LakehouseConfig, label: str, attempt: Any) -> Any:
    """``attempt(caches)`` with the ledger read by delta-rs; None when Spark is needed after all."""
    try:
        caches = RunCaches(ledgers={config.paths.warehouse: load_ledger(config)})
    except Exception as exc:  # an unreadable table: Spark reads it (and says what is wrong)
        log.info("%s: bookkeeping not readable without Spark (%s): starting Spark", label, exc)
        return None
    try:
        return attempt(caches)
    except NeedsSpark as exc:
        log.info("%s: there is work to do (%s): starting Spark", label, exc)
        return None


def run_job(job: Job, config: LakehouseConfig, params: Any) -> int | None:
    """One job without Spark if it has nothing to do: its exit code, or None to run it under Spark."""
    if not available(config, getattr(params, "input", None)):
        return None

    def attempt(caches: RunCaches) -> int:
        from lakehouse.ops import OpsSink

        sink = OpsSink()
        code = job.execute(NoSpark(), config, params, caches, sink)
        sink.flush(NoSpark(), config)
        log.info("%s: nothing to do; recorded without starting Spark", job.name)
        return code

    return _attempt(config, job.name, attempt)


def run_dag(
    config: LakehouseConfig,
    jobs: Sequence[Job],
    values: dict[str, Any],
    app_name: str,
    summary: dict[str, Any] | None = None,
) -> int | None:
    """``lakehouse run`` without Spark when no job has anything to do: exit code, or None (use Spark).

    ``summary``: print the end-of-run summary (its options), from the kept sections when no table
    changed since they were rendered, else with a Spark session started for it alone.
    """
    if not available(config, values.get("input")):
        return None
    from lakehouse.pipeline import run_jobs

    runs: list = []
    code = _attempt(config, "lakehouse run", lambda caches: run_jobs(NoSpark(), config, jobs, values,
                                                                     runs=runs, caches=caches))  # fmt: skip
    if code is None:
        return None
    log.info("lakehouse run: nothing to do; recorded without starting Spark")
    if summary is not None:
        from lakehouse.summary import build_summary

        try:
            text = build_summary(NoSpark(), config, runs, **summary)
        except NeedsSpark:
            from lakehouse.session import get_spark

            text = build_summary(get_spark(config, app_name=app_name), config, runs, **summary)
        print("\n" + text + "\n", flush=True)
    return code
