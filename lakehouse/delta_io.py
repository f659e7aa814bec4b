"""All Delta I/O through Spark goes through here: create, read, append, replace a slice, merge, overwrite, delete.

It speaks only what a classic session and a Spark Connect client share: DataFrames, the writer's
options and SQL (``CREATE TABLE``, ``MERGE INTO``, ``DELETE FROM`` on ``delta.`<path>```); a table's
``_delta_log`` is listed and read by this process (:mod:`lakehouse.storage`), never through a JVM.

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
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField

from lakehouse.config import LakehouseConfig
from lakehouse.registry import TableSpec
from lakehouse.storage import join, storage_for


class SchemaMismatchError(ValueError):
    """A DataFrame lacks columns that its target table requires."""


def sql_string(value: str) -> str:
    """A Spark SQL string literal (backslash escapes, as Spark's parser reads them)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def table_ref(path: str) -> str:
    """A Delta table by path in SQL: ``delta.`<path>```."""
    return "delta.`" + path.replace("`", "``") + "`"


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


def exists(spec: TableSpec, config: LakehouseConfig) -> bool:
    """The table has a Delta log with at least one commit (a listing by this process, no Spark)."""
    return latest_version(spec.path(config), config) is not None


_COMMIT = re.compile(r"^(\d{20})\.json$")


def _log_names(path: str, config: LakehouseConfig | None) -> list[str]:
    """File names in ``<path>/_delta_log`` ([] when there is none), listed by this process."""
    return [s.name for s in storage_for(path, config).list(join(path, "_delta_log")) if not s.is_dir]


def latest_version(path: str, config: LakehouseConfig | None) -> int | None:
    """The table's latest committed version (the highest ``<version>.json`` of its log), None without one."""
    versions = [int(m.group(1)) for name in _log_names(path, config) if (m := _COMMIT.match(name))]
    return max(versions) if versions else None


def commit_metrics(path: str, version: int, config: LakehouseConfig | None) -> dict[str, int]:
    """The ``operationMetrics`` of one commit, as ints, from its ``_delta_log`` entry."""
    text = storage_for(path, config).read_text(join(path, "_delta_log", f"{version:020d}.json")) or ""
    for line in text.splitlines():
        if '"commitInfo"' in line:
            metrics = json.loads(line)["commitInfo"].get("operationMetrics") or {}
            return {k: int(v) for k, v in metrics.items() if str(v).lstrip("-").isdigit()}
    return {}


#: Tables this process has created or checked (path, registry name): checked once per process, not before
#: every write (each check resolves the table and compares its schema: Spark jobs).
_ensured: set[tuple[str, str]] = set()
_ensured_lock = threading.Lock()


def ensure_table(spark: SparkSession, spec: TableSpec, config: LakehouseConfig) -> None:
    """Create the table (schema, partitioning, comment) at its path if it does not exist yet.

    A table created by an earlier version of the project gets the registry's new nullable columns
    added (``ALTER TABLE ... ADD COLUMNS``; existing rows read them as null). Done once per table
    per process: later calls only check that the table's log is still there (a table removed
    in between, as tests do, is created again). SQL only, so that a Spark Connect client runs it too.
    """
    path = spec.path(config)
    key = (path, spec.full_name)
    if key in _ensured and exists(spec, config):
        return
    _create_or_migrate(spark, spec, config)
    with _ensured_lock:
        _ensured.add(key)


def _column_ddl(field: StructField) -> str:
    return (f"`{field.name}` {field.dataType.simpleString()}" + ("" if field.nullable else " NOT NULL")
            + _comment(field))  # fmt: skip


def create_table_statement(spec: TableSpec, path: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of the registry's schema, partitioning and grain (the table comment)."""
    columns = ", ".join(_column_ddl(f) for f in spec.schema.fields)
    partitioned = f" PARTITIONED BY ({', '.join(f'`{c}`' for c in spec.partition_by)})" if spec.partition_by else ""
    return (f"CREATE TABLE IF NOT EXISTS {table_ref(path)} ({columns}) USING DELTA{partitioned} "
            f"COMMENT {sql_string(spec.grain)}")  # fmt: skip


def _create_or_migrate(spark: SparkSession, spec: TableSpec, config: LakehouseConfig) -> None:
    path = spec.path(config)
    spark.sql(create_table_statement(spec, path))
    present = set(spark.read.format("delta").load(path).columns)
    missing = [f for f in spec.schema.fields if f.name not in present]
    if missing:
        added = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" + _comment(f) for f in missing)
        spark.sql(f"ALTER TABLE {table_ref(path)} ADD COLUMNS ({added})")


def _comment(field) -> str:
    comment = (field.metadata or {}).get("comment")
    return f" COMMENT {sql_string(comment)}" if comment else ""


def read(spark: SparkSession, spec: TableSpec, config: LakehouseConfig) -> DataFrame:
    """The table as a DataFrame; an empty DataFrame with the registry schema if it does not exist."""
    if not exists(spec, config):
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
    before = latest_version(path, config)
    _writer(conform(df, spec), spec, "overwrite").option("replaceWhere", condition).save(path)
    after = latest_version(path, config)
    return commit_metrics(path, after, config) if after is not None and after != before else {}


def overwrite(df: DataFrame, spec: TableSpec, config: LakehouseConfig) -> None:
    """Atomically replace the whole table (schema kept as the registry's)."""
    ensure_table(df.sparkSession, spec, config)
    _writer(conform(df, spec), spec, "overwrite").save(spec.path(config))


def overwrite_if_changed(df: DataFrame, spec: TableSpec, config: LakehouseConfig) -> bool:
    """Overwrite unless the table already holds exactly these rows (a re-run then commits nothing).

    Meant for small derived tables (gold): the comparison reads both sides once.
    """
    conformed = conform(df, spec)
    if exists(spec, config):
        current = read(df.sparkSession, spec, config)
        if conformed.exceptAll(current).isEmpty() and current.exceptAll(conformed).isEmpty():
            return False
    overwrite(conformed, spec, config)
    return True


def delete_where(spark: SparkSession, spec: TableSpec, config: LakehouseConfig, condition: str | None = None) -> None:
    """``DELETE FROM`` the table the rows matching ``condition`` (all rows when None); creates the table first."""
    ensure_table(spark, spec, config)
    spark.sql(f"DELETE FROM {table_ref(spec.path(config))}" + (f" WHERE {condition}" if condition else ""))


def in_list(column: str, values: Sequence[str]) -> str:
    """``column IN ('a', 'b')`` as SQL text (values quoted as SQL string literals)."""
    return f"`{column}` IN ({', '.join(sql_string(v) for v in values)})"


@contextmanager
def temp_view(df: DataFrame) -> Iterator[str]:
    """``df`` under a unique temporary view name for the block (a MERGE's source): jobs running side by side
    in one session never see each other's view."""
    name = f"lakehouse_src_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(name)
    try:
        yield name
    finally:
        df.sparkSession.catalog.dropTempView(name)


def _merge_condition(keys: Sequence[str], target_filter: str | None) -> str:
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    return f"({target_filter}) AND {on}" if target_filter else on


def _merge(
    df: DataFrame, spec: TableSpec, config: LakehouseConfig, keys: Sequence[str], target_filter: str | None,
    clauses: Sequence[str],
) -> dict[str, int]:  # fmt: skip
    """``MERGE INTO`` the table by path with ``df`` as source ``s`` and the table as ``t``: SQL, the one MERGE
    a classic session and a Spark Connect client both run (Delta's Python builder needs a JVM of its own)."""
    spark = df.sparkSession
    ensure_table(spark, spec, config)
    with temp_view(df) as source:
        statement = (f"MERGE INTO {table_ref(spec.path(config))} t USING {source} s "
                     f"ON {_merge_condition(keys, target_filter)} " + " ".join(clauses))  # fmt: skip
        return _merge_metrics(spark.sql(statement))


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
    return _merge(conform(df, spec), spec, config, keys, target_filter, ["WHEN NOT MATCHED THEN INSERT *"])


def _assignments(spec: TableSpec) -> tuple[str, str, str]:
    """(``SET`` list, insert column list, insert values) naming every registry column of the source ``s``."""
    names = [f"`{f.name}`" for f in spec.schema.fields]
    return ", ".join(f"t.{n} = s.{n}" for n in names), ", ".join(names), ", ".join(f"s.{n}" for n in names)


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
    update, columns, values = _assignments(spec)
    return _merge(conform(df, spec, keep=(replace_flag,)), spec, config, keys, target_filter, [
        f"WHEN MATCHED AND s.`{replace_flag}` THEN UPDATE SET {update}",
        f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})",
    ])  # fmt: skip


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
    clauses = ["WHEN MATCHED THEN UPDATE SET *", "WHEN NOT MATCHED THEN INSERT *"]
    if delete_missing:
        clauses.append("WHEN NOT MATCHED BY SOURCE" + (f" AND ({target_filter})" if target_filter else "")
                       + " THEN DELETE")  # fmt: skip
    return _merge(conform(df, spec), spec, config, keys, target_filter, clauses)


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
