"""Audiences: named, reproducible user lists from ``gold.user_status_weekly`` (docs/contract.md, "Audiences").

An audience is a name and a condition (Spark SQL on the table's columns) declared in conf's ``audiences``; the
config refuses, when it is loaded, a condition that does not parse, names an unknown column, reads another table
or depends on the clock (:func:`lakehouse.config.audience_problem`). Its members for a week are the table's rows
of that week matching the condition: the same on every run over the same data. The week is ``latest`` unless
given: the newest complete week (``cutoff_week + 6 <= max_event_date``: ``is_partial_period`` false).

``lakehouse audience list`` (each audience's size for the latest complete week and the week before, and the
change), ``show NAME [--week W] [--limit N]``, ``export NAME [--week W] [--columns a,b] --out FILE.csv|.parquet``.
An export reads one version of the table (recorded), orders the members by ``user_id`` and writes the file with
Python (csv, or pyarrow for Parquet) to a temporary name, then renames it: the same audience and week give the
same bytes, and a failed export leaves no file and no ``ops.audience_exports`` row. The commands read the
restricted table directly (a writer's tool, like the jobs): analysts reach it through the SQL endpoint's grants.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import delta_io, engine
from lakehouse.config import ConfigError, LakehouseConfig
from lakehouse.gold.tables.user_status_weekly import SPEC as USER_STATUS
from lakehouse.job_runtime import add_config_args, config_from_args, setup_logging
from lakehouse.ops import AudienceExportRecord, append_records, utc_now

log = logging.getLogger("lakehouse")

FORMATS = {".csv": "csv", ".parquet": "parquet"}


class AudienceError(RuntimeError):
    """An unknown audience, a week without data, a bad column, an unwritable path: nothing was written."""


@dataclass(frozen=True)
class Audience:
    name: str
    condition: str


def audiences(config: LakehouseConfig) -> list[Audience]:
    return [Audience(name, condition) for name, condition in config.audiences.items()]


def audience(config: LakehouseConfig, name: str) -> Audience:
    if name not in config.audiences:
        known = ", ".join(config.audiences) or "none (conf's audiences is empty)"
        raise AudienceError(f"unknown audience {name!r}; known: {known}")
    return Audience(name, config.audiences[name])


def _table(spark: Any, config: LakehouseConfig, version: int | None = None) -> DataFrame:
    path = USER_STATUS.path(config)
    if delta_io.latest_version(path, config) is None:
        raise AudienceError(f"{USER_STATUS.full_name} does not exist yet: run the pipeline first (lakehouse run)")
    reader = spark.read.format("delta")
    return (reader.option("versionAsOf", version) if version is not None else reader).load(path)


def complete_weeks(users: DataFrame, last: int = 2) -> list[date]:
    """The newest ``last`` complete weeks, newest first."""
    weeks = users.where(~F.col("is_partial_period")).select("cutoff_week").distinct()
    return [r[0] for r in weeks.orderBy(F.col("cutoff_week").desc()).limit(last).collect()]


def resolve_week(users: DataFrame, week: str | None) -> date:
    """``latest`` (default): the newest complete week; else the given week, which must have rows."""
    if week in (None, "", "latest"):
        found = complete_weeks(users, 1)
        if not found:
            raise AudienceError(f"{USER_STATUS.full_name} has no complete week yet (every week ends after the data)")
        return found[0]
    try:
        wanted = date.fromisoformat(str(week))
    except ValueError:
        raise AudienceError(f"--week must be a date (YYYY-MM-DD: a week's first day) or latest, got {week!r}") from None
    if users.where(F.col("cutoff_week") == F.lit(wanted)).isEmpty():
        raise AudienceError(f"{USER_STATUS.full_name} has no rows for the week {wanted} (cutoff_week is a week's first "
                            f"day; see lakehouse audience list)")  # fmt: skip
    return wanted


def members(users: DataFrame, aud: Audience, week: date) -> DataFrame:
    """The audience's rows of ``week``, ordered by user_id."""
    return users.where((F.col("cutoff_week") == F.lit(week)) & F.expr(f"({aud.condition})")).orderBy("user_id")


def sizes(users: DataFrame, auds: Sequence[Audience], weeks: Sequence[date]) -> dict[str, dict[date, int]]:
    """Each audience's members in each week, in one aggregation."""
    if not auds or not weeks:
        return {a.name: {} for a in auds}
    counts = (
        users.where(F.col("cutoff_week").isin(list(weeks)))
        .groupBy("cutoff_week")
        .agg(*[F.count(F.when(F.expr(f"({a.condition})"), 1)).alias(f"a{i}") for i, a in enumerate(auds)])
    )
    rows = {r["cutoff_week"]: r for r in counts.collect()}
    return {a.name: {w: int(rows[w][f"a{i}"]) if w in rows else 0 for w in weeks} for i, a in enumerate(auds)}


# --------------------------------------------------------------------------- the files


def _text(value: Any) -> str:
    """One CSV cell: ISO dates, plain decimals, lower-case booleans, empty for null (stable across runs)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def render(rows: list[dict[str, Any]], columns: Sequence[str], file_format: str, schema: Any) -> bytes:
    """The file's bytes: CSV with a header row, or Parquet (pyarrow, snappy, no wall-clock metadata)."""
    if file_format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_text(row[c]) for c in columns])
        return out.getvalue().encode("utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = {f.name: f for f in schema.fields}
    arrow_schema = pa.schema([pa.field(c, _arrow_type(fields[c].dataType), fields[c].nullable) for c in columns])
    table = pa.Table.from_pylist([{c: row[c] for c in columns} for row in rows], schema=arrow_schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def _arrow_type(spark_type: Any) -> Any:
    import pyarrow as pa
    from pyspark.sql import types as T

    if isinstance(spark_type, T.DecimalType):
        return pa.decimal128(spark_type.precision, spark_type.scale)
    return {T.StringType: pa.string(), T.LongType: pa.int64(), T.IntegerType: pa.int32(), T.DateType: pa.date32(),
            T.BooleanType: pa.bool_(), T.DoubleType: pa.float64()}[type(spark_type)]  # fmt: skip


def _writable(out: Path) -> Path:
    """The temporary file the export writes before renaming it to ``out`` (checked writable before any query)."""
    if out.suffix.lower() not in FORMATS:
        raise AudienceError(f"--out must end in .csv or .parquet, got {out.name}")
    folder = out.resolve().parent
    if not folder.is_dir():
        raise AudienceError(f"cannot write {out}: the folder {folder} does not exist")
    if out.exists() and out.is_dir():
        raise AudienceError(f"cannot write {out}: it is a folder")
    tmp = folder / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.write_bytes(b"")
    except OSError as exc:
        raise AudienceError(f"cannot write {out}: {exc.strerror or exc}") from None
    return tmp


def export(
    spark: Any, config: LakehouseConfig, name: str, out: Path, week: str | None = None,
    columns: Sequence[str] = (),
) -> AudienceExportRecord:  # fmt: skip
    """Write the audience's members of ``week`` to ``out`` and record the export (module docstring)."""
    aud = audience(config, name)
    wanted = ["user_id", *[c for c in columns if c != "user_id"]]
    unknown = [c for c in wanted if c not in USER_STATUS.schema.fieldNames()]
    if unknown:
        names = ", ".join(USER_STATUS.schema.fieldNames())
        raise AudienceError(f"unknown columns {unknown}; {USER_STATUS.full_name} has {names}")
    tmp = _writable(out)
    try:
        version = delta_io.latest_version(USER_STATUS.path(config), config)
        users = _table(spark, config, version)
        the_week = resolve_week(users, week)
        rows = [r.asDict() for r in members(users, aud, the_week).select(*wanted).collect()]
        file_format = FORMATS[out.suffix.lower()]
        data = render(rows, wanted, file_format, USER_STATUS.schema)
        tmp.write_bytes(data)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    record = AudienceExportRecord(uuid.uuid4().hex, aud.name, aud.condition, the_week, ",".join(wanted), len(rows),
                                  str(out.resolve()), file_format, hashlib.sha256(data).hexdigest(), int(version),
                                  _os_user(), utc_now())  # fmt: skip
    append_records([record], spark, config)
    return record


def _os_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "unknown")


# --------------------------------------------------------------------------- command line


def render_list(auds: Sequence[Audience], counts: dict[str, dict[date, int]], weeks: Sequence[date]) -> str:
    latest, before = [*weeks, None, None][:2]
    head = f"{'audience':24}{latest or '-'!s:>12}{before or '-'!s:>12}{'change':>9}  condition"
    lines = [f"Audiences of {USER_STATUS.full_name}, the latest complete week and the week before:", head]
    for a in auds:
        now, then = counts[a.name].get(latest, 0) if latest else 0, counts[a.name].get(before, 0) if before else 0
        change = f"{now - then:+d}" if before else ""
        lines.append(f"{a.name:24}{now:>12,}{then if before else '':>12}{change:>9}  {a.condition}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(prog="lakehouse audience", description="Named user lists from gold.user_status_weekly "
                                "(conf's audiences): list, show, export.")  # fmt: skip
    sub = p.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="each audience's size: the latest complete week, the week before, change")
    show = sub.add_parser("show", help="an audience's members")
    show.add_argument("name")
    show.add_argument("--week", default="latest", help="the week's first day (YYYY-MM-DD), or latest (default)")
    show.add_argument("--limit", type=int, default=20, help="members shown (default 20)")
    exp = sub.add_parser("export", help="write an audience's members to a CSV or Parquet file (recorded)")
    exp.add_argument("name")
    exp.add_argument("--week", default="latest", help="the week's first day (YYYY-MM-DD), or latest (default)")
    exp.add_argument("--columns", default="", help="columns written after user_id, comma-separated")
    exp.add_argument("--out", required=True, type=Path, help="FILE.csv or FILE.parquet")
    for parser in (listing, show, exp):
        add_config_args(parser)
    args = p.parse_args(argv)
    try:
        config = config_from_args(args)
        if args.action in ("show", "export"):
            audience(config, args.name)  # an unknown name: refused before any Spark
        if args.action == "export":
            _writable(args.out).unlink()
        with engine.spark_session(config, f"{config.app_name}:audience") as spark:
            if args.action == "list":
                users = _table(spark, config)
                weeks = complete_weeks(users, 2)
                auds = audiences(config)
                print(render_list(auds, sizes(users, auds, weeks), weeks))
            elif args.action == "show":
                users = _table(spark, config)
                week = resolve_week(users, args.week)
                rows = members(users, audience(config, args.name), week)
                print(f"{args.name} in the week of {week}: {rows.count():,} members")
                rows.select("user_id", "user_status", "previous_status", "weeks_since_active", "miles_balance",
                            "acq_source", "country").show(args.limit, truncate=False)  # fmt: skip
            else:
                columns = [c.strip() for c in args.columns.split(",") if c.strip()]
                record = export(spark, config, args.name, args.out, args.week, columns)
                print(f"exported {record.rows:,} members of {record.audience} (week {record.cutoff_week}, "
                      f"{USER_STATUS.full_name} version {record.table_version}) to {record.file}, sha256 "
                      f"{record.file_sha256}; recorded in ops.audience_exports ({record.export_id})")  # fmt: skip
    except (AudienceError, ConfigError, engine.EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, AudienceError) else 2
    return 0
