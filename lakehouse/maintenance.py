"""Table maintenance and repair: ``lakehouse maintain`` and ``lakehouse restore``.

Both are jobs (``ops.job_runs`` rows, ``spark-submit jobs/<name>.py``) and both take the warehouse's
writer lock, like every writing run; analysts' SQL endpoints never run them.

``maintain_tables`` (a periodic command, not part of the daily DAG: run it weekly, or after a
backfill). For each table of the registry that exists:

- ``OPTIMIZE``: bin-packs the small files that daily runs leave (one file per touched partition per
  run; several per run in the ops tables). Delta only rewrites partitions holding more than one
  file, so a compact table costs a metadata read. The rewrite is a ``dataChange = false`` commit:
  readers and incremental consumers see the same rows.
- ``VACUUM`` with ``operations.vacuum_retention_hours`` (at least 168, Delta's safety check stays
  on): deletes data files that no table version younger than the retention references. Time
  travel works within that window, never beyond it. Delta 4 takes the retention from the table
  property ``delta.deletedFileRetentionDuration`` (a retention argument is ignored): a value other
  than the default week is written there, so a VACUUM run by hand keeps it too.

It reports, per table, the live files (those of the current version) before and after OPTIMIZE and
the data files on storage before and after VACUUM.

``restore_table`` puts a gold table back to an earlier version (after a bad publish), with
Delta's ``RESTORE``, and forgets that table's consumer bookkeeping so the next run rebuilds it
whole from silver (otherwise the restored table would miss the batches of the undone versions).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from lakehouse import batches, delta_io
from lakehouse.config import LakehouseConfig
from lakehouse.delta_io import sql_string, table_ref
from lakehouse.job_runtime import Job, JobContext, JobFailed, param
from lakehouse.registry import TableSpec
from lakehouse.storage import storage_for
from lakehouse.tables import TABLES, table

log = logging.getLogger("lakehouse")


@dataclass(frozen=True)
class MaintainParams:
    tables: str | None = param(None, "comma-separated tables (layer.name) to maintain (default: every table)")
    no_optimize: bool = param(False, "skip OPTIMIZE")
    no_vacuum: bool = param(False, "skip VACUUM")


@dataclass(frozen=True)
class TableMaintenance:
    table: str
    live_files_before: int
    live_files_after: int
    stored_files_before: int
    stored_files_after: int
    seconds: float


def live_files(spark, path: str) -> int:
    """Files of the table's current version (``DESCRIBE DETAIL``)."""
    return int(spark.sql(f"DESCRIBE DETAIL {table_ref(path)}").first()["numFiles"])


def stored_files(path: str, config: LakehouseConfig | None) -> int:
    """Data files on storage, referenced or not (the table's folder without ``_delta_log``), listed by this
    process (:mod:`lakehouse.storage`)."""
    root = path.rstrip("/")
    count = 0
    for f in storage_for(path, config).walk(path):
        relative = f.path.removeprefix("file:")[len(root.removeprefix("file:")) :]
        if "/_delta_log/" not in f"{relative}/" and not f.name.startswith((".", "_")):
            count += 1
    return count


def _selected(spec_names: str | None) -> list[TableSpec]:
    if not spec_names:
        return list(TABLES)
    try:
        return [table(name.strip()) for name in spec_names.split(",") if name.strip()]
    except KeyError as exc:
        raise JobFailed(str(exc.args[0])) from None


#: Spark's default (10,000) makes every VACUUM listing a 10,000-task job: about 20 s per table even
#: for a tiny one here (measured: 2 s with 8). Used unless ``spark.extra_conf`` sets it.
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
VACUUM_LISTING_TASKS = 8
RETENTION_PROPERTY = "delta.deletedFileRetentionDuration"


def _retention(spark, path: str, hours: int, properties: dict) -> None:
    """Delta 4 VACUUM ignores a retention argument (other than 0) and uses the table's
    ``delta.deletedFileRetentionDuration`` (default one week): conf's value is set there, once."""
    wanted = f"interval {hours} hours"
    current = properties.get(RETENTION_PROPERTY)
    if current == wanted or (current is None and hours == 168):
        return
    spark.sql(f"ALTER TABLE {table_ref(path)} SET TBLPROPERTIES ('{RETENTION_PROPERTY}' = '{wanted}')")


def maintain(ctx: JobContext, params: MaintainParams) -> list[TableMaintenance]:
    spark, config = ctx.spark, ctx.config
    hours = config.operations.vacuum_retention_hours
    previous = spark.conf.get(LISTING_PARALLELISM, None)
    if LISTING_PARALLELISM not in config.spark.extra_conf:
        spark.conf.set(LISTING_PARALLELISM, str(VACUUM_LISTING_TASKS))
    try:
        report = [_maintain_table(spark, config, spec, params, hours) for spec in _selected(params.tables)
                  if delta_io.exists(spec, config)]  # fmt: skip
    finally:
        if previous is None:
            spark.conf.unset(LISTING_PARALLELISM)
        else:
            spark.conf.set(LISTING_PARALLELISM, previous)
    ctx.run.rows_in = sum(r.live_files_before for r in report)
    ctx.run.rows_out = sum(r.live_files_after for r in report)
    ctx.run.parameters.update({"vacuum_retention_hours": hours})
    print(render(report, hours), flush=True)
    return report


def _maintain_table(spark, config, spec: TableSpec, params: MaintainParams, hours: int) -> TableMaintenance:
    started = time.monotonic()
    path = spec.path(config)
    detail = spark.sql(f"DESCRIBE DETAIL {table_ref(path)}").first()
    live_before, stored_before = int(detail["numFiles"]), stored_files(path, config)
    if not params.no_optimize:
        spark.sql(f"OPTIMIZE {table_ref(path)}").collect()
    live_after = live_files(spark, path)
    if not params.no_vacuum:
        _retention(spark, path, hours, dict(detail["properties"] or {}))
        spark.sql(f"VACUUM {table_ref(path)}").collect()
    stored_after = stored_files(path, config)
    item = TableMaintenance(spec.full_name, live_before, live_after, stored_before, stored_after,
                            time.monotonic() - started)  # fmt: skip
    log.info("%s: live files %d -> %d, files on storage %d -> %d (%.1f s)", item.table, live_before, live_after,
             stored_before, stored_after, item.seconds)  # fmt: skip
    return item


def render(report: list[TableMaintenance], hours: int) -> str:
    lines = [f"Table maintenance (OPTIMIZE, then VACUUM keeping {hours} h of history):",
             f"  {'table':44} {'live files':>16} {'files on storage':>18} {'seconds':>8}"]  # fmt: skip
    for r in report:
        live = f"{r.live_files_before} -> {r.live_files_after}"
        stored = f"{r.stored_files_before} -> {r.stored_files_after}"
        lines.append(f"  {r.table:44} {live:>16} {stored:>18} {r.seconds:8.1f}")
    return "\n".join(lines)


@dataclass(frozen=True)
class RestoreParams:
    table: str | None = param(None, "the gold table to restore (layer.name), e.g. gold.agg_active_user")
    version: int | None = param(None, "the version to restore (DESCRIBE HISTORY lists them)")
    timestamp: str | None = param(None, "or the table as of this time, e.g. '2026-11-26 08:00:00'")

    def __post_init__(self) -> None:
        if not self.table:
            raise ValueError("--table is required")
        if (self.version is None) == (self.timestamp is None):
            raise ValueError("give exactly one of --version and --timestamp")


def restore(ctx: JobContext, params: RestoreParams) -> None:
    from lakehouse.gold.refresh import GOLD_TABLES, consumer

    spark, config = ctx.spark, ctx.config
    try:
        spec = table(params.table or "")
    except KeyError as exc:
        raise JobFailed(str(exc.args[0])) from None
    if spec.full_name not in GOLD_TABLES:
        raise JobFailed(
            f"{spec.full_name}: only gold tables computed from silver are restored by this command "
            f"({', '.join(GOLD_TABLES)}); bronze and silver feed other tables: repair them with a normal run "
            f"or lakehouse run --full-refresh"
        )
    if not delta_io.exists(spec, config):
        raise JobFailed(f"{spec.full_name} does not exist")
    # Forget the bookkeeping first: a restore killed half-way still leads to a full rebuild next run.
    batches.reset(ctx, consumer(spec, config))
    to = (
        f"VERSION AS OF {int(params.version)}"
        if params.version is not None
        else f"TIMESTAMP AS OF {sql_string(params.timestamp or '')}"
    )
    metrics = spark.sql(f"RESTORE TABLE {table_ref(spec.path(config))} TO {to}").first()
    target = f"version {params.version}" if params.version is not None else f"timestamp {params.timestamp}"
    log.info("%s restored to %s (%s); the next run rebuilds it whole from silver", spec.full_name, target,
             metrics.asDict() if metrics else {})  # fmt: skip
    ctx.run.parameters.update({"restored_to": target})


MAINTAIN_JOB = Job(
    "maintain_tables",
    "OPTIMIZE small files and VACUUM old ones in every table (operations.vacuum_retention_hours)",
    MaintainParams,
    lambda ctx, params: maintain(ctx, params) and None,
)
RESTORE_JOB = Job(
    "restore_table",
    "restore a gold table to an earlier version (Delta RESTORE); its next run rebuilds it whole",
    RestoreParams,
    restore,
)
