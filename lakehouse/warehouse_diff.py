"""Compare two warehouses table by table: ``lakehouse diff --left URI --right URI``.

For a move to object storage or a cluster (is the copy, or the cluster's run, the same as the local
one?), and for the cluster tests. Every data table of the registry (ops tables hold run ids and
times, so they are left out unless named) is read from both sides and compared as a multiset of
rows (one aggregation per table: rows grouped by every column, counted per side). Columns set by
the run, not by the data, are ignored: ``_ingested_at``, and ``_source_file`` is compared by file
name (the folder or bucket differs).
Exit 0 when every table is equal, 1 otherwise. Runs with ``spark-submit`` too
(``lakehouse cluster submit lakehouse/warehouse_diff.py --left ... --right ...``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.config import LakehouseConfig
from lakehouse.delta_io import latest_version
from lakehouse.job_runtime import base_parser, config_from_args, setup_logging
from lakehouse.registry import TableSpec
from lakehouse.tables import TABLES, table

RUN_COLUMNS = ("_ingested_at",)


def _normalised(df: DataFrame) -> DataFrame:
    if "_source_file" in df.columns:
        df = df.withColumn("_source_file", F.regexp_extract("_source_file", r"[^/]+$", 0))
    return df.drop(*RUN_COLUMNS)


def _counts(a: DataFrame, b: DataFrame) -> dict[str, int]:
    """Rows on each side and rows only on one side (as multisets), in one aggregation."""
    columns = a.columns
    side = F.col("_side")
    both = a.withColumn("_side", F.lit(1)).unionByName(b.select(*columns).withColumn("_side", F.lit(-1)))
    per_row = both.groupBy(*columns).agg(
        F.sum(F.when(side == 1, 1).otherwise(0)).alias("l"), F.sum(F.when(side == -1, 1).otherwise(0)).alias("r")
    )
    totals = per_row.agg(
        F.sum("l").alias("rows_left"),
        F.sum("r").alias("rows_right"),
        F.sum(F.greatest(F.col("l") - F.col("r"), F.lit(0))).alias("only_left"),
        F.sum(F.greatest(F.col("r") - F.col("l"), F.lit(0))).alias("only_right"),
    ).first()
    return {k: int(totals[k] or 0) for k in ("rows_left", "rows_right", "only_left", "only_right")}


def _table(spark, path: str, spec: TableSpec, config: LakehouseConfig | None) -> DataFrame:
    """The table at ``path``; a table not created on that side reads as empty (its rows are all on the other)."""
    if latest_version(path, config) is None:
        return spark.createDataFrame([], spec.schema)
    return spark.read.format("delta").load(path)


def compare(
    spark, left: str, right: str, specs: Sequence[TableSpec], config: LakehouseConfig | None = None
) -> dict[str, dict]:
    """Every table of ``specs`` on both sides (``config``: how this process reaches the stores, e.g. s3a's keys)."""
    out = {}
    for spec in specs:
        lpath, rpath = (f"{root.rstrip('/')}/{spec.layer}/{spec.name}" for root in (left, right))
        a = _normalised(_table(spark, lpath, spec, config))
        b = _normalised(_table(spark, rpath, spec, config))
        out[spec.full_name] = {
            **_counts(a, b),
            "version_left": latest_version(lpath, config),
            "version_right": latest_version(rpath, config),
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    p = base_parser("Compare the tables of two warehouses (rows as multisets).", "lakehouse diff")
    p.add_argument("--left", required=True, help="warehouse URI or folder")
    p.add_argument("--right", required=True, help="warehouse URI or folder")
    p.add_argument("--tables", help="comma-separated tables (default: every bronze, silver and gold table)")
    p.add_argument("--json", help="also write the result as JSON to this local file")
    args = p.parse_args(argv)
    config = config_from_args(args)
    specs = [table(t.strip()) for t in args.tables.split(",")] if args.tables else [
        s for s in TABLES if s.layer != "ops"
    ]  # fmt: skip
    from lakehouse.engine import spark_session

    # The engine's session when one serves this config (engine.use), else a classic one.
    with spark_session(config, f"{config.app_name}:diff") as spark:
        result = compare(spark, args.left, args.right, specs, config)
    different = [name for name, r in result.items() if r["only_left"] or r["only_right"]]
    for name, r in result.items():
        state = "DIFFERENT" if name in different else "equal"
        print(f"{name:40} {state:9} rows {r['rows_left']:>9,} / {r['rows_right']:>9,}  "
              f"only left {r['only_left']:,}, only right {r['only_right']:,}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
