"""Every table and column is documented, and the documentation reaches the Delta table itself."""

from __future__ import annotations

from chispa import assert_df_equality
from pyspark.sql import types as T

from lakehouse import delta_io
from lakehouse.gold.tables.agg_user_retention import SPEC as GOLD_RETENTION
from lakehouse.tables import TABLES, table
from tests.conftest import make_config


def test_every_table_states_its_grain_and_every_column_is_documented():
    undocumented = [f"{t.full_name}.{f.name}" for t in TABLES for f in t.schema.fields if not f.metadata.get("comment")]
    assert undocumented == []
    assert all(t.grain.startswith("One row per") for t in TABLES)
    assert len({t.full_name for t in TABLES}) == len(TABLES)
    assert table("gold.agg_user_retention") is GOLD_RETENTION


def test_created_delta_table_carries_grain_and_column_comments(spark, tmp_path):
    config = make_config(tmp_path / "wh")
    delta_io.ensure_table(spark, GOLD_RETENTION, config)
    # A publish overwrites the table with a DataFrame that carries no comments: they must survive it.
    bare = T.StructType([T.StructField(f.name, f.dataType, f.nullable) for f in GOLD_RETENTION.schema.fields])
    delta_io.overwrite(spark.createDataFrame([], bare), GOLD_RETENTION, config)
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{GOLD_RETENTION.path(config)}`").first()
    assert detail["description"] == GOLD_RETENTION.grain
    described = spark.sql(f"DESCRIBE delta.`{GOLD_RETENTION.path(config)}`").select("col_name", "data_type", "comment")
    comments = {r["col_name"]: r["comment"] for r in described.collect()}
    assert comments["retention_rate"] == "retained_users / cohort_size, 0..1"
    assert comments["week_offset"] == "weeks since cohort_week"
    # Every column, in table order, with the registry's type and comment.
    expected = spark.createDataFrame(
        [(f.name, f.dataType.simpleString(), f.metadata["comment"]) for f in GOLD_RETENTION.schema.fields],
        described.schema,
    )
    assert_df_equality(described, expected)
