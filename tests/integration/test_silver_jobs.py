"""silver.fct_events and silver.dim_users jobs: sample vs reference, re-runs, late data, backfills."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse import delta_io
from lakehouse.bronze import fct_event_stream as bronze
from lakehouse.bronze.sources import SourceFile
from lakehouse.registry import SILVER_DIM_USERS, SILVER_EVENTS
from lakehouse.silver import dim_users as silver_dim_users
from lakehouse.silver import fct_events as silver_fct_events
from tests.conftest import SAMPLE_FILES, history, make_config, run_step
from tests.reference import spec_reference

pytestmark = pytest.mark.e2e
INGESTED_AT = datetime(2025, 7, 10)
HEADER = "event_time,user_id,event_type,transaction_category,miles_amount,platform,utm_source,country\n"


def _dim_args(**kwargs) -> silver_dim_users.Params:
    return silver_dim_users.Params(**kwargs)


def run_all(spark, config, **dim_kwargs) -> None:
    run_step(spark, config, bronze.ingest, ingested_at=INGESTED_AT)
    run_step(spark, config, silver_fct_events.load)
    run_step(spark, config, silver_dim_users.run, _dim_args(**dim_kwargs))


def _version(spark, config, spec) -> int:
    return history(spark, spec.path(config), 1).first()["version"]


def _batch_ids(paths: Iterable[Path]) -> dict[str, str]:
    """File name -> bronze batch id, from the file's name and content as the bronze job derives it."""
    return {p.name: SourceFile("", p.name, 0, hashlib.sha256(p.read_bytes()).hexdigest()).batch_id for p in paths}


def _reference(paths: Iterable[Path]) -> spec_reference.Reference:
    return spec_reference.compute([str(p) for p in paths], ingested_at=INGESTED_AT)


def _expected_events(spark, events: list[dict], batch_ids: dict[str, str]) -> DataFrame:
    """silver.fct_events from the reference's events; _batch_id is the batch of the file that delivered each first."""
    columns = [f.name for f in SILVER_EVENTS.schema.fields if f.name != "_batch_id"]
    rows = [(*(e[c] for c in columns), batch_ids[e["source_file"]]) for e in events]
    return spark.createDataFrame(rows, SILVER_EVENTS.schema)


#: dim_users columns the reference computes (it has no first_event_id).
DIM_COLUMNS = [f.name for f in SILVER_DIM_USERS.schema.fields if f.name != "first_event_id"]


def _dim_rows(spark, users: Iterable[dict]) -> DataFrame:
    rows = [tuple({**u, "last_event_date": u["last_event_time"].date()}[c] for c in DIM_COLUMNS) for u in users]
    return spark.createDataFrame(rows, T.StructType([SILVER_DIM_USERS.schema[c] for c in DIM_COLUMNS]))


def _expected_dim(spark, events: list[dict], start: date, end: date) -> DataFrame:
    """silver.dim_users by the reference for every ds of [start, end]."""
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return _dim_rows(spark, [u for ds in days for u in spec_reference.dim_users_as_of(events, ds).values()])


def _dim(spark, config) -> DataFrame:
    return delta_io.read(spark, SILVER_DIM_USERS, config).select(*DIM_COLUMNS)


def _grain(dim: DataFrame) -> DataFrame:
    """Per user: rows, distinct days, first and last ds (rows = days: one row per user and day)."""
    return dim.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct("ds").alias("days"), F.min("ds").alias("first_ds"),
        F.max("ds").alias("last_ds"),
    )  # fmt: skip


def test_sample_silver_matches_reference(spark, sample_pipeline, sample_reference):
    config, ref = sample_pipeline, sample_reference
    events = delta_io.read(spark, SILVER_EVENTS, config)
    assert_df_equality(events, _expected_events(spark, ref.events, _batch_ids(SAMPLE_FILES)), ignore_row_order=True)

    # The latest snapshot, every user and column the reference computes.
    dim = delta_io.read(spark, SILVER_DIM_USERS, config)
    latest = dim.where(F.col("ds") == F.lit(ref.max_event_date)).select(*DIM_COLUMNS)
    assert_df_equality(latest, _dim_rows(spark, ref.dim_users_latest.values()), ignore_row_order=True)
    # Grain: every user has one row per day from their first event date to the data's last date.
    grain = _grain(dim)
    expected_grain = [
        (u, days, days, row["first_event_date"], ref.max_event_date)
        for u, row in ref.dim_users_latest.items()
        for days in [(ref.max_event_date - row["first_event_date"]).days + 1]
    ]
    assert_df_equality(grain, spark.createDataFrame(expected_grain, grain.schema), ignore_row_order=True)


def _csv(rows: list[tuple[str, str, str]]) -> str:
    """rows of (event_time, user_id, event_type) -> CSV text with valid other fields."""
    other = {"miles_earned": "dining,100.0", "miles_redeemed": "flight,900.0", "share": ","}
    return HEADER + "".join(f"{t}.000000,{u},{e},{other[e]},ios,google,SG\n" for t, u, e in rows)


FIRST_FILE = [
    ("2025-03-01 10:00:00", "u_0001", "miles_earned"),
    ("2025-03-02 10:00:00", "u_0002", "share"),
    ("2025-03-15 10:00:00", "u_0001", "miles_redeemed"),
    ("2025-04-10 10:00:00", "u_0002", "miles_earned"),
    ("2025-04-30 10:00:00", "u_0003", "share"),
]
LATE_DAY = date(2025, 3, 21)  # 40 days before the data's last date, 2025-04-30
LATE_FILE = [
    ("2025-03-21 08:00:00", "u_0001", "miles_redeemed"),
    ("2025-03-25 09:00:00", "u_0009", "share"),
    ("2025-03-01 10:00:00", "u_0001", "miles_earned"),  # delivered again: adds nothing
]


def test_late_file_recomputes_exactly_from_its_day_and_equals_full_rebuild(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "a.csv").write_text(_csv(FIRST_FILE))
    config = make_config(tmp_path / "wh", input_dir)
    run_all(spark, config)
    before = {(r["user_id"], r["ds"]): r.asDict() for r in delta_io.read(spark, SILVER_DIM_USERS, config).collect()}

    (input_dir / "b_late.csv").write_text(_csv(LATE_FILE))
    run_all(spark, config)
    after_df = delta_io.read(spark, SILVER_DIM_USERS, config)
    after = {(r["user_id"], r["ds"]): r.asDict() for r in after_df.collect()}
    # Two new events; the one delivered again keeps its first delivery (a.csv's batch).
    files = [input_dir / "a.csv", input_dir / "b_late.csv"]
    ref = _reference(files)
    assert len(ref.events) == len(FIRST_FILE) + 2
    assert_df_equality(
        delta_io.read(spark, SILVER_EVENTS, config),
        _expected_events(spark, ref.events, _batch_ids(files)),
        ignore_row_order=True,
    )
    assert_df_equality(
        _dim(spark, config),
        _expected_dim(spark, ref.events, date(2025, 3, 1), date(2025, 4, 30)),
        ignore_row_order=True,
    )

    changed = {k for k in after if before.get(k) != after[k]}
    expected_changed = {
        ("u_0001", LATE_DAY + timedelta(days=i)) for i in range((date(2025, 4, 30) - LATE_DAY).days + 1)
    }
    expected_changed |= {("u_0009", date(2025, 3, 25) + timedelta(days=i)) for i in range(37)}
    assert changed == expected_changed
    assert after[("u_0001", date(2025, 4, 30))]["total_miles_redeemed"] == Decimal("1800.00")
    assert after[("u_0001", LATE_DAY - timedelta(days=1))] == before[("u_0001", LATE_DAY - timedelta(days=1))]

    rebuild_input = tmp_path / "rebuild_input"
    shutil.copytree(input_dir, rebuild_input)
    rebuilt = make_config(tmp_path / "wh_rebuild", rebuild_input)
    run_all(spark, rebuilt)
    assert_df_equality(after_df, delta_io.read(spark, SILVER_DIM_USERS, rebuilt), ignore_row_order=True)


def test_a_table_written_before_first_negative_date_is_rebuilt_once(spark, tmp_path):
    """silver.dim_users written by an earlier version (no ``first_negative_date``): the next run with new data
    rebuilds every snapshot, so the column is right on every day, not null on the days before the upgrade."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "a.csv").write_text(_csv(FIRST_FILE))
    config = make_config(tmp_path / "wh", input_dir)
    run_all(spark, config)
    path = SILVER_DIM_USERS.path(config)
    old_schema = T.StructType([f for f in SILVER_DIM_USERS.schema.fields if f.name != "first_negative_date"])
    old = spark.createDataFrame(delta_io.read(spark, SILVER_DIM_USERS, config).drop("first_negative_date").collect(),
                                old_schema)  # fmt: skip
    shutil.rmtree(path)  # the table as an earlier version created it: the registry's columns but that one
    spark.sql(delta_io.create_table_statement(dataclasses.replace(SILVER_DIM_USERS, schema=old_schema), path))
    old.write.format("delta").mode("append").save(path)
    delta_io._ensured.discard((path, SILVER_DIM_USERS.full_name))  # a new application: the table is checked again
    assert silver_dim_users.written_without_first_negative_date(spark, config)

    (input_dir / "b_late.csv").write_text(_csv(LATE_FILE))
    run_all(spark, config)
    assert not silver_dim_users.written_without_first_negative_date(spark, config)
    events = _reference([input_dir / "a.csv", input_dir / "b_late.csv"]).events
    assert_df_equality(_dim(spark, config), _expected_dim(spark, events, date(2025, 3, 1), date(2025, 4, 30)),
                       ignore_row_order=True)  # fmt: skip
    negative = _dim(spark, config).where("user_id = 'u_0001' AND ds < DATE'2025-03-21'")
    assert {r["first_negative_date"] for r in negative.where("ds >= DATE'2025-03-15'").collect()} == {date(2025, 3, 15)}


def test_range_backfill_equals_day_by_day_runs(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "a.csv").write_text(_csv(FIRST_FILE))
    ranged = make_config(tmp_path / "wh_range", input_dir)
    run_all(spark, ranged, start_date=date(2025, 3, 1), end_date=date(2025, 3, 5))
    daily = make_config(tmp_path / "wh_daily", input_dir)
    run_step(spark, daily, bronze.ingest, ingested_at=INGESTED_AT)
    run_step(spark, daily, silver_fct_events.load)
    for offset in range(5):
        ds = date(2025, 3, 1) + timedelta(days=offset)
        run_step(spark, daily, silver_dim_users.run, _dim_args(ds=ds))
    # Re-running a day updates in place: no duplicates.
    run_step(spark, daily, silver_dim_users.run, _dim_args(ds=date(2025, 3, 3)))
    range_df = delta_io.read(spark, SILVER_DIM_USERS, ranged)
    # 5 + 4 rows: u_0001 from 03-01, u_0002 from 03-02; nothing after the range's end.
    expected = _expected_dim(spark, _reference([input_dir / "a.csv"]).events, date(2025, 3, 1), date(2025, 3, 5))
    assert_df_equality(range_df.select(*DIM_COLUMNS), expected, ignore_row_order=True)
    assert_df_equality(range_df, delta_io.read(spark, SILVER_DIM_USERS, daily), ignore_row_order=True)


def test_bronze_full_refresh_with_a_relaxed_rule_reaches_silver(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    text = _csv(FIRST_FILE) + "2025-04-01 10:00:00.000000,u_0004,share,,,IOS,google,SG\n"
    (input_dir / "a.csv").write_text(text)
    batch_ids = _batch_ids([input_dir / "a.csv"])
    strict = make_config(tmp_path / "wh", input_dir, bronze__max_quarantine_rate=0.5)
    run_all(spark, strict)
    # The reference quarantines u_0004 (platform_allowed) as the strict job does: silver lacks it.
    ref = _reference([input_dir / "a.csv"])
    assert [q["source_line"] for q in ref.quarantined] == [7]
    assert_df_equality(
        delta_io.read(spark, SILVER_EVENTS, strict),
        _expected_events(spark, ref.events, batch_ids),
        ignore_row_order=True,
    )

    relaxed = make_config(tmp_path / "wh", input_dir, bronze__max_quarantine_rate=0.5,
                          bronze__rule_severity={"platform_allowed": "warn"})  # fmt: skip
    run_step(spark, relaxed, bronze.ingest, refresh=True, ingested_at=INGESTED_AT)
    run_step(spark, relaxed, silver_fct_events.load)
    run_step(spark, relaxed, silver_dim_users.run, _dim_args())
    # A warning keeps the record as read: the reference's accepted records plus u_0004 with platform "IOS".
    u_0004 = {"event_time": datetime(2025, 4, 1, 10), "user_id": "u_0004", "event_type": "share",
              "transaction_category": None, "miles_amount": None, "platform": "IOS", "utm_source": "google",
              "country": "SG", "source_file": "a.csv", "source_line": 7}  # fmt: skip
    events = spec_reference.to_events([*ref.accepted, u_0004])
    assert len(events) == len(FIRST_FILE) + 1
    assert_df_equality(
        delta_io.read(spark, SILVER_EVENTS, relaxed), _expected_events(spark, events, batch_ids), ignore_row_order=True
    )
    # Every user and day, u_0004 included from 2025-04-01 to 2025-04-30 (30 rows, one per day).
    assert_df_equality(
        _dim(spark, relaxed), _expected_dim(spark, events, date(2025, 3, 1), date(2025, 4, 30)), ignore_row_order=True
    )
