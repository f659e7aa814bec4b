"""Ad-hoc Spark SQL over every lakehouse table, printed as a readable table (``scripts/sql.sh``).

    scripts/sql.sh "SELECT period_type, COUNT(*) FROM gold.agg_active_user GROUP BY 1"
    scripts/sql.sh --local --warehouse /tmp/wh "SHOW TABLES IN silver"
    echo "SELECT 1" | scripts/sql.sh

Where the query runs:
- the Spark Thrift Server started by ``scripts/start_thrift_server.sh``, when it is running and
  serves the warehouse asked for (the default: it is not asked for), as the project's client user
  ``lakehouse`` (password from the server's state dir). The endpoint is read-only: statements
  that write are refused. The server registers tables jobs create after its start within
  seconds; this waits until every existing table answers;
- otherwise (or with ``--local``) a local Spark session that registers every existing registry
  table of the configured warehouse as ``<layer>.<name>`` first (about 15-30 s to start).

Each statement's result is printed as an aligned text table, NULL for nulls, at most
``--max-rows`` rows (default 200) with a note when there were more.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from lakehouse.config import PROJECT_ROOT, ConfigError, LakehouseConfig
from lakehouse.serving import thrift
from lakehouse.serving.catalog import register_tables, spark_executor
from lakehouse.serving.options import add_config_args, asks_for_warehouse, config_from_args
from lakehouse.serving.thrift.auth import service_credentials

Result = tuple[list[str], list[tuple[Any, ...]], bool]  # columns, rows, truncated


def format_value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return str(value)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def render_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], truncated: bool = False) -> str:
    """An aligned plain-text table: numbers right-aligned, everything else left-aligned."""
    if not columns:
        return "OK"
    cells = [[format_value(v).replace("\n", "\\n") for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [bool(rows) and all(_is_number(r[i]) or r[i] is None for r in rows) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return " | ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(list(columns)), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    count = f"({len(rows)} row{'s' if len(rows) != 1 else ''}"
    out.append(count + (", more not shown: raise --max-rows)" if truncated else ")"))
    return "\n".join(out)


def split_statements(text: str) -> list[str]:
    """Split on semicolons outside quotes and backticks; drops empty statements."""
    statements, current, quote = [], [], ""
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in ("'", '"', "`"):
            quote = ch
            current.append(ch)
        elif ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def run_over_thrift(server: thrift.ServerState, statements: Sequence[str], max_rows: int) -> Iterator[Result]:
    conn = thrift.connect(server.host, server.port, service_credentials(Path(server.state_dir)), ca_file=server.ca_file)
    try:
        cursor = conn.cursor()
        for statement in statements:
            cursor.execute(statement)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(max_rows + 1) if columns else []
            yield columns, [tuple(r) for r in rows[:max_rows]], len(rows) > max_rows
    finally:
        conn.close()


def run_locally(config: LakehouseConfig, statements: Sequence[str], max_rows: int) -> Iterator[Result]:
    from lakehouse.session import get_spark

    # The in-memory catalog makes a folder per database under the SQL warehouse dir; keep it
    # out of the work tree (the tables themselves stay where the registry says).
    scratch = PROJECT_ROOT / ".cache" / "sql" / "spark-warehouse"
    config = config.with_overrides(
        **{"spark.extra_conf": {"spark.sql.warehouse.dir": str(scratch), **config.spark.extra_conf}}
    )
    spark = get_spark(config, app_name=f"{config.app_name}:sql")
    register_tables(spark_executor(spark), config)
    for statement in statements:
        df = spark.sql(statement)
        rows = df.limit(max_rows + 1).collect() if df.columns else []
        yield list(df.columns), [tuple(r) for r in rows[:max_rows]], len(rows) > max_rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Ad-hoc Spark SQL over the lakehouse tables.")
    p.add_argument("sql", nargs="*", help="statements (several per argument with ';'); stdin if none")
    p.add_argument("--local", action="store_true", help="always use a local Spark session")
    p.add_argument("--max-rows", type=int, default=200, help="rows printed per statement (default 200)")
    p.add_argument("--state-dir", help="Thrift server state dir (default .cache/thrift or THRIFT_STATE_DIR)")
    add_config_args(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    text = ";".join(args.sql) if args.sql else sys.stdin.read()
    statements = split_statements(text)
    if not statements:
        print("error: no SQL given", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = None if args.local else thrift.running_server(thrift.state_dir_from(args.state_dir))
    asked_for_warehouse = asks_for_warehouse(args)
    if server and asked_for_warehouse and server.warehouse != config.paths.warehouse:
        print(
            f"[sql] the Thrift server serves {server.warehouse}; running locally on {config.paths.warehouse}",
            file=sys.stderr,
        )
        server = None
    began = time.monotonic()
    exit_code, where = 0, "nowhere"
    try:
        if server:
            if not asked_for_warehouse:
                config = config.with_overrides(**{"paths.warehouse": server.warehouse})
            where = f"Thrift server {server.host}:{server.port}"
            thrift.register(
                server.host,
                server.port,
                config,
                service_credentials(Path(server.state_dir)),
                quiet=True,
                ca_file=server.ca_file,
            )
            results = run_over_thrift(server, statements, args.max_rows)
        else:
            where = "local Spark session"
            results = run_locally(config, statements, args.max_rows)
        # Printed as each statement finishes; the first failing statement stops the rest.
        for statement, (columns, rows, truncated) in zip(statements, results, strict=False):
            if len(statements) > 1:
                print(f"-- {statement}")
            print(render_table(columns, rows, truncated) + "\n", flush=True)
    except Exception as exc:
        print(f"error: {thrift.error_message(exc)}", file=sys.stderr)
        exit_code = 1
    print(f"[sql] {where}, warehouse {config.paths.warehouse}, {time.monotonic() - began:.1f} s", file=sys.stderr)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
