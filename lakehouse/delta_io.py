"""All Delta I/O through Spark goes through here: create, read, append, replace a slice, merge, overwrite.

Its sibling :mod:`lakehouse.delta_rs` reads and appends the bookkeeping tables of a local warehouse
without a JVM. Every write first conforms the DataFrame to the registry schema (missing columns are an
error, the column order and types are the registry's), so a transform cannot publish a table with a
drifted schema. Each Delta commit is atomic: readers see the table before or after a write, never half
of it. A write's operation metrics (rows written, inserted, updated) come from the commit itself: the
``commitInfo`` of its ``_delta_log`` entry, or what a MERGE returns; never from a query of the table's
history (a Spark job and a snapshot load each).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import LakehouseConfig, local_path
from lakehouse.registry import TableSpec


class SchemaMismatchError(ValueError):
    """A DataFrame lacks columns that its target table requires."""


def conform(df: DataFrame, spec: TableSpec, keep: Sequence[str] = ()) -> DataFrame:
    """``df`` as ``spec``'s columns, in order and cast to their types (plus the columns named in ``keep``)."""
    missing = [f.name for f in spec.schema.fields if f.name not in df.columns]
    if missing:
        raise SchemaMismatchError(f"{spec.full_name}: DataFrame lacks columns {missing}")
    current = {f.name: f.dataType for f in df.schema.fields}

    def column(field) -> Column:
        # Casting a type to itself with other nullability (array<string> containsNull) is refused.
        if current[field.name].simpleString() == field.dataType.simpleString():
            return F.col(field.name)
        return F.col(field.name).cast(field.dataType).alias(field.name)

    return df.select(*[column(f) for f in spec.schema.fields], *keep)


def exists(spark: SparkSession, spec: TableSpec, config: LakehouseConfig) -> bool:
    """The table has a Delta log with at least one commit (a listing, no snapshot load)."""
    return latest_version(spark, spec.path(config)) is not None


_COMMIT = re.compile(r"^(\d{20})\.json$")


def _log_names(spark: SparkSession, path: str) -> list[str]:
    """File names in ``<path>/_delta_log`` ([] when there is none): a local listing, or one through Hadoop."""
    local = local_path(path)
    if local is not None:
        log_dir = local / "_delta_log"
        return [p.name for p in log_dir.iterdir()] if log_dir.is_dir() else []
    jvm = spark.sparkContext._jvm
    log_dir = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/_delta_log")
    fs = log_dir.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return [s.getPath().getName() for s in fs.listStatus(log_dir)] if fs.exists(log_dir) else []


def latest_version(spark: SparkSession, path: str) -> int | None:
    """The table's latest committed version (the highest ``<version>.json`` of its log), None without one."""
    versions = [int(m.group(1)) for name in _log_names(spark, path) if (m := _COMMIT.match(name))]
    return max(versions) if versions else None


def commit_metrics(spark: SparkSession, path: str, version: int) -> dict[str, int]:
    """The ``operationMetrics`` of one commit, as ints, from its ``_delta_log`` entry."""
    name = f"{path.rstrip('/')}/_delta_log/{version:020d}.json"
    local = local_path(name)
    if local is not None:
        text = local.read_text()
    else:
        jvm = spark.sparkContext._jvm
        jpath = jvm.org.apache.hadoop.fs.Path(name)
        stream = jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).open(jpath)
        try:
            text = str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()
    for line in text.splitlines():
        if '"commitInfo"' in line:
            metrics = json.loads(line)["commitInfo"].get("operationMetrics") or {}
            return {k: int(v) for k, v in metrics.items() if str(v).lstrip("-").isdigit()}
    return {}


#: Tables this application has created or checked (path, registry name): checked once per application,
#: not before every write (each check resolves the table and compares its schema: Spark jobs).
_ensured: set[tuple[str, str]] = set()
_ensured_lock = threading.Lock()


def _log_dir_exists(spark: SparkSession, path: str) -> bool:
    """``<path>/_delta_log`` exists (one file-system call through the JVM, no Spark job)."""
    jvm = spark.sparkContext._jvm
    log_dir = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/_delta_log")
    return bool(log_dir.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(log_dir))


def ensure_table(spark: SparkSession, spec: TableSpec, config: LakehouseConfig) -> DeltaTable:
    """Create the table (schema, partitioning, comment) at its path if it does not exist yet.

    A table created by an earlier version of the project gets the registry's new nullable columns
    added (``ALTER TABLE ... ADD COLUMNS``; existing rows read them as null). Done once per table
    per application: later calls only check that the table's log is still there (a table removed
    in between, as tests do, is created again).
    """
    path = spec.path(config)
    key = (path, spec.full_name)
    if key in _ensured and _log_dir_exists(spark, path):
        return DeltaTable.forPath(spark, path)
    table = _create_or_migrate(spark, spec, config)
    with _ensured_lock:
        _ensured.add(key)
    return table


def _create_or_migrate(spark: SparkSession, spec: TableSpec, config: LakehouseConfig) -> DeltaTable:
    builder = (
        DeltaTable.createIfNotExists(spark).location(spec.path(config)).addColumns(spec.schema).comment(spec.grain)
    )
    if spec.partition_by:
        builder = builder.partitionedBy(*spec.partition_by)
    table = builder.execute()
    present = set(table.toDF().columns)
    missing = [f for f in spec.schema.fields if f.name not in present]
    if missing:
        added = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" + _comment(f) for f in missing)
        spark.sql(f"ALTER TABLE delta.`{spec.path(config)}` ADD COLUMNS ({added})")
    return table


def _comment(field) -> str:
    comment = (field.metadata or {}).get("comment")
    return " COMMENT '" + comment.replace("\\", "\\\\").replace("'", "\\'") + "'" if comment else ""


def read(spark: SparkSession, spec: TableSpec, config: LakehouseConfig) -> DataFrame:
    """The table as a DataFrame; an empty DataFrame with the registry schema if it does not exist."""
    if not exists(spark, spec, config):
        return spark.createDataFrame([], spec.schema)
    return spark.read.format("delta").load(spec.path(config))


def _writer(df: DataFrame, spec: TableSpec, mode: str):
    writer = df.write.format("delta").mode(mode)
    if spec.partition_by:
        writer = writer.partitionBy(*spec.partition_by)
    return writer


def append(df: DataFrame, spec: TableSpec, config: LakehouseConfig) -> None:
    ensure_table(df.sparkSession, spec, config)
    _writer(conform(df, spec), spec, "append").save(spec.path(config))


def replace_where(df: DataFrame, spec: TableSpec, config: LakehouseConfig, condition: str) -> dict[str, int]:
    """Atomically replace the rows matching ``condition`` by ``df`` (all of whose rows must match).

    Returns the commit's operation metrics (``numOutputRows``: rows written); empty when Delta made
    no commit (nothing to delete, nothing to write).
    """
    spark, path = df.sparkSession, spec.path(config)
    ensure_table(spark, spec, config)
    before = latest_version(spark, path)
    _writer(conform(df, spec), spec, "overwrite").option("replaceWhere", condition).save(path)
    after = latest_version(spark, path)
    return commit_metrics(spark, path, after) if after is not None and after != before else {}


def overwrite(df: DataFrame, spec: TableSpec, config: LakehouseConfig) -> None:
    """Atomically replace the whole table (schema kept as the registry's)."""
    ensure_table(df.sparkSession, spec, config)
    _writer(conform(df, spec), spec, "overwrite").save(spec.path(config))


def overwrite_if_changed(df: DataFrame, spec: TableSpec, config: LakehouseConfig) -> bool:
    """Overwrite unless the table already holds exactly these rows (a re-run then commits nothing).

    Meant for small derived tables (gold): the comparison reads both sides once.
    """
    conformed = conform(df, spec)
    if exists(df.sparkSession, spec, config):
        current = read(df.sparkSession, spec, config)
        if conformed.exceptAll(current).isEmpty() and current.exceptAll(conformed).isEmpty():
            return False
    overwrite(conformed, spec, config)
    return True


def _merge_condition(keys: Sequence[str], target_filter: str | None) -> str:
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    return f"({target_filter}) AND {on}" if target_filter else on


def merge_insert_new(
    df: DataFrame,
    spec: TableSpec,
    config: LakehouseConfig,
    keys: Sequence[str],
    target_filter: str | None = None,
) -> dict[str, int]:
    """MERGE: insert source rows whose keys are not in the target; existing rows are left as they are.

    ``target_filter`` (on ``t.``) prunes the target scan, e.g. to the partitions the source touches.
    Returns Delta's operation metrics as ints.
    """
    target = ensure_table(df.sparkSession, spec, config)
    return _merge_metrics(
        target.alias("t")
        .merge(conform(df, spec).alias("s"), _merge_condition(keys, target_filter))
        .whenNotMatchedInsertAll()
        .execute()
    )


def merge_insert_or_replace(
    df: DataFrame,
    spec: TableSpec,
    config: LakehouseConfig,
    keys: Sequence[str],
    replace_flag: str,
    target_filter: str | None = None,
) -> dict[str, int]:
    """MERGE: insert source rows whose keys are not in the target; overwrite the matched target row
    with the source row where the source's boolean column ``replace_flag`` is true (not stored)."""
    target = ensure_table(df.sparkSession, spec, config)
    source = conform(df, spec, keep=(replace_flag,))
    columns = {f.name: f"s.`{f.name}`" for f in spec.schema.fields}
    return _merge_metrics(
        target.alias("t")
        .merge(source.alias("s"), _merge_condition(keys, target_filter))
        .whenMatchedUpdate(condition=f"s.`{replace_flag}`", set=columns)
        .whenNotMatchedInsert(values=columns)
        .execute()
    )


def merge_upsert(
    df: DataFrame,
    spec: TableSpec,
    config: LakehouseConfig,
    keys: Sequence[str],
    target_filter: str | None = None,
    delete_missing: bool = False,
) -> dict[str, int]:
    """MERGE: update matched rows in place, insert the others (re-running a slice never duplicates).

    ``delete_missing``: also delete the target rows within ``target_filter`` that the source lacks (the
    source is then the whole content of that slice)."""
    target = ensure_table(df.sparkSession, spec, config)
    merge = (
        target.alias("t")
        .merge(conform(df, spec).alias("s"), _merge_condition(keys, target_filter))
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
    )
    if delete_missing:
        merge = merge.whenNotMatchedBySourceDelete(condition=target_filter)
    return _merge_metrics(merge.execute())


#: What a MERGE returns (one row, computed on the driver) -> the names of its commit's operation metrics.
_MERGE_METRICS = {
    "num_affected_rows": "numTargetRowsAffected",
    "num_updated_rows": "numTargetRowsUpdated",
    "num_deleted_rows": "numTargetRowsDeleted",
    "num_inserted_rows": "numTargetRowsInserted",
}


def _merge_metrics(result: DataFrame) -> dict[str, int]:
    row = result.first()
    values = row.asDict() if row is not None else {}
    return {name: int(values[key]) for key, name in _MERGE_METRICS.items() if values.get(key) is not None}
