"""All Delta I/O goes through here: create, read, append, replace a slice, merge, overwrite.

Every write first conforms the DataFrame to the registry schema (missing columns are an error, the
column order and types are the registry's), so a transform cannot publish a table with a drifted
schema. Each Delta commit is atomic: readers see the table before or after a write, never half of it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import LakehouseConfig
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
    return DeltaTable.isDeltaTable(spark, spec.path(config))


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
        added = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE delta.`{spec.path(config)}` ADD COLUMNS ({added})")
    return table


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
    table = ensure_table(df.sparkSession, spec, config)
    before = _version(table)
    _writer(conform(df, spec), spec, "overwrite").option("replaceWhere", condition).save(spec.path(config))
    return last_operation_metrics(table) if _version(table) != before else {}


def _version(table: DeltaTable) -> int:
    return int(table.history(1).select("version").first()["version"])


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
    (
        target.alias("t")
        .merge(conform(df, spec).alias("s"), _merge_condition(keys, target_filter))
        .whenNotMatchedInsertAll()
        .execute()
    )
    return last_operation_metrics(target)


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
    (
        target.alias("t")
        .merge(source.alias("s"), _merge_condition(keys, target_filter))
        .whenMatchedUpdate(condition=f"s.`{replace_flag}`", set=columns)
        .whenNotMatchedInsert(values=columns)
        .execute()
    )
    return last_operation_metrics(target)


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
    merge.execute()
    return last_operation_metrics(target)


def last_operation_metrics(target: DeltaTable) -> dict[str, int]:
    row = target.history(1).select("operationMetrics").first()
    metrics = (row["operationMetrics"] if row else None) or {}
    return {k: int(v) for k, v in metrics.items() if str(v).lstrip("-").isdigit()}
