"""Delta I/O without a JVM, for the bookkeeping tables of a local warehouse (delta-rs: the ``deltalake`` package).

:mod:`lakehouse.delta_io` is every other Delta read and write (through Spark). The bookkeeping
tables (``ops.*``) are small and read or appended by every run, also by runs and jobs that have
nothing to do and start no JVM at all; here they are read and appended by delta-rs. On a local
warehouse every append to an ops table goes through here, also in runs that do start Spark (one side
only: delta-rs writes no ``.crc`` checksum files, and a Spark commit after a delta-rs one rebuilds the
table's whole state first). Spark still creates those tables (schema, comment) and runs their rare
deletes (a full refresh, the undo of a stopped run's batches). A warehouse on object storage keeps
all of it in Spark (delta-rs would need the store's credentials configured a second time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from lakehouse.config import LakehouseConfig, local_path
from lakehouse.registry import TableSpec


def installed() -> bool:
    try:
        import deltalake  # noqa: F401
    except ImportError:
        return False
    return True


def usable(config: LakehouseConfig) -> bool:
    """The bookkeeping of this warehouse is read and appended here: a local warehouse, delta-rs installed."""
    return local_path(config.paths.warehouse) is not None and installed()


def exists(spec: TableSpec, config: LakehouseConfig) -> bool:
    """The table has a Delta log (a local path only)."""
    path = local_path(spec.path(config))
    return path is not None and (path / "_delta_log").is_dir()


def _naive_utc(value: Any) -> Any:
    """delta-rs returns zoned UTC timestamps; the project's bookkeeping values are naive UTC."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def read_rows(spec: TableSpec, config: LakehouseConfig, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Rows of a small table as dicts of ``columns`` (default: the registry's; a column the table lacks
    reads as None). A table not created yet reads as empty."""
    names = list(columns) if columns is not None else [f.name for f in spec.schema.fields]
    if not exists(spec, config):
        return []
    from deltalake import DeltaTable

    table = DeltaTable(spec.path(config))
    present = [c for c in names if c in {f.name for f in table.schema().fields}]
    rows = table.to_pyarrow_table(columns=present).to_pylist()
    return [{c: _naive_utc(r.get(c)) for c in names} for r in rows]


def column_max(spec: TableSpec, config: LakehouseConfig, column: str) -> Any:
    """The largest value of ``column`` from the log's file statistics (no data file is read; zoned
    timestamps as naive UTC); None when the table does not exist, is empty or has no statistics for it."""
    if not exists(spec, config):
        return None
    import pyarrow as pa
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(spec.path(config)).get_add_actions(flatten=True))
    if f"max.{column}" not in actions.column_names:
        return None
    values = [v for v in actions.column(f"max.{column}").to_pylist() if v is not None]
    return _naive_utc(max(values)) if values else None


def append_rows(spec: TableSpec, rows: Sequence[tuple], config: LakehouseConfig) -> None:
    """Append rows (registry column order) to an existing table: one commit."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    path = spec.path(config)
    schema = pa.schema(DeltaTable(path).schema().to_arrow())
    names = [f.name for f in spec.schema.fields]
    records = [dict(zip(names, row, strict=True)) for row in rows]
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in records], schema=schema)
    write_deltalake(path, table, mode="append")
    # Spark checkpoints the log every delta.checkpointInterval commits (10 by default); so does this
    # writer, so that a stretch of delta-rs commits does not leave Spark a long log to replay.
    written = DeltaTable(path)
    interval = int(written.metadata().configuration.get("delta.checkpointInterval", 10))
    if written.version() % interval == 0:
        written.create_checkpoint()
