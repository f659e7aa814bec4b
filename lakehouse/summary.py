"""The readable end-of-run summary printed by ``scripts/run_pipeline.sh``."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.config import LakehouseConfig
from lakehouse.registry import BRONZE_QUARANTINE, TABLES


def _table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    cells = [tuple(str(c) for c in headers), *[tuple("" if c is None else str(c) for c in r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


def table_counts(spark: SparkSession, config: LakehouseConfig) -> str:
    rows = []
    for spec in TABLES:
        if delta_io.exists(spark, spec, config):
            rows.append((spec.full_name, delta_io.read(spark, spec, config).count()))
    return _table(rows, ("table", "rows"))


def quarantine_by_rule(spark: SparkSession, config: LakehouseConfig) -> str:
    if not delta_io.exists(spark, BRONZE_QUARANTINE, config):
        return "  (no quarantine table yet)"
    rows = (
        delta_io.read(spark, BRONZE_QUARANTINE, config)
        .select(F.explode("failed_checks").alias("rule"))
        .groupBy("rule")
        .count()
        .orderBy(F.desc("count"), "rule")
        .collect()
    )
    return _table([(r["rule"], r["count"]) for r in rows], ("rule", "quarantined rows")) if rows else "  none"


def build_summary(spark: SparkSession, config: LakehouseConfig) -> str:
    sections = [
        f"Warehouse: {config.paths.warehouse}",
        "Rows per table:\n" + table_counts(spark, config),
        "Quarantined rows per rule (a row may break several):\n" + quarantine_by_rule(spark, config),
    ]
    return "\n\n".join(sections)
