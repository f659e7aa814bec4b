"""Table registration: every registry table that exists, as ``<layer>.<name>`` in a SQL catalog.

The one place that turns the registry into catalog entries, for every engine that needs them:

- the Spark Thrift Server, whose catalog is in-memory (``lakehouse.serving.thrift``): the server
  runs these statements itself, from the registrations file its start writes (its clients are
  read-only and cannot);
- a local Spark session (``scripts/sql.sh --local``): statements go to ``spark.sql``.

The statements are ``CREATE DATABASE IF NOT EXISTS <layer>`` and ``CREATE TABLE IF NOT EXISTS
<layer>.<name> USING DELTA LOCATION '<path>'``: the table's schema, partitioning and comment come
from its Delta log, so nothing here can drift from what the jobs wrote. A table whose path holds
no Delta table yet is skipped (Delta refuses a schema-less ``CREATE TABLE`` on an empty location)
and is picked up by the next registration once a job has created it.

An executor is any ``Callable[[str], list[tuple]]`` that runs one statement and returns its rows:
:func:`spark_executor` adapts a SparkSession.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.config import LakehouseConfig
from lakehouse.registry import TableSpec
from lakehouse.tables import TABLES

#: Runs one SQL statement, returns its rows (empty for DDL).
Executor = Callable[[str], list[tuple[Any, ...]]]


class RegistrationError(RuntimeError):
    """A table that exists could not be registered; the message names it and says why."""


@dataclass(frozen=True)
class Registration:
    """Full table names by outcome of one registration pass."""

    new: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def served(self) -> list[str]:
        """Every table the catalog now answers for."""
        return [*self.present, *self.new]

    def summary(self) -> list[str]:
        labels = (("new", "registered"), ("present", "already registered"), ("missing", "not created yet"))
        return [f"{label}: {', '.join(getattr(self, key))}" for key, label in labels if getattr(self, key)]


def sql_string(value: str) -> str:
    """A Spark SQL string literal (backslash escapes, as Spark's parser reads them)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def create_database_statement(layer: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {layer}"


def create_table_statement(spec: TableSpec, config: LakehouseConfig) -> str:
    return f"CREATE TABLE IF NOT EXISTS {spec.full_name} USING DELTA LOCATION {sql_string(spec.path(config))}"


def table_exists_locally(path: str) -> bool | None:
    """True/False for a local Delta table path; None for a URI this process cannot look into."""
    if "://" in path and not path.startswith("file:"):
        return None
    local = Path(path.removeprefix("file://").removeprefix("file:"))
    log_dir = local / "_delta_log"
    return log_dir.is_dir() and any(log_dir.glob("*.json"))


def register_tables(
    execute: Executor,
    config: LakehouseConfig,
    specs: Sequence[TableSpec] = TABLES,
    on_skip: Callable[[str, str], None] | None = None,
    describe_error: Callable[[BaseException], str] = str,
) -> Registration:
    """Register every existing table of ``specs`` through ``execute``; idempotent.

    A table the catalog already lists is left as it is (``SHOW TABLES`` is cheaper than a
    ``CREATE TABLE IF NOT EXISTS``, which reads the Delta log). A local path without a Delta log
    is skipped without a statement; a remote path (``s3a://``...) is tried, and a failure there
    counts as not created yet (``on_skip(table, message)`` hears why). A local table that exists
    but fails to register raises :class:`RegistrationError`. ``describe_error`` turns a client's
    exception into the message used (PyHive's carry the whole Java stack).
    """
    result = Registration()
    known: set[str] = set()
    for layer in dict.fromkeys(spec.layer for spec in specs):
        execute(create_database_statement(layer))
        # Rows are (namespace, tableName, isTemporary) in Spark 3+ and 4.
        known.update(f"{layer}.{row[1]}" for row in execute(f"SHOW TABLES IN {layer}"))
    for spec in specs:
        if spec.full_name in known:
            result.present.append(spec.full_name)
            continue
        exists = table_exists_locally(spec.path(config))
        if exists is False:
            result.missing.append(spec.full_name)
            continue
        try:
            execute(create_table_statement(spec, config))
        except Exception as exc:
            if exists is None:
                result.missing.append(spec.full_name)
                if on_skip:
                    on_skip(spec.full_name, describe_error(exc))
                continue
            raise RegistrationError(f"could not register {spec.full_name}: {describe_error(exc)}") from exc
        result.new.append(spec.full_name)
    return result


def spark_executor(spark: Any) -> Executor:
    """Statements through a SparkSession's ``spark.sql`` (rows as tuples)."""

    def execute(statement: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in spark.sql(statement).collect()]

    return execute
