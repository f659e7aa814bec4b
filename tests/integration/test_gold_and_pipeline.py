"""Gold on real data: the sample against the independent reference, identities over several seeds,
an idempotent re-run of the whole DAG, and a failed check that must not publish."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import shutil
from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakehouse import delta_io, generator, launcher
from lakehouse.gold.activity import gold_inputs, user_activity, user_segments
from lakehouse.gold.refresh import GOLD_TABLES, run_all_checks
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.gold.tables.agg_engagement_daily import SPEC as GOLD_ENGAGEMENT
from lakehouse.gold.tables.agg_growth_accounting_weekly import SPEC as GOLD_GROWTH
from lakehouse.gold.tables.agg_metric_anomalies import SPEC as GOLD_METRIC_ANOMALIES
from lakehouse.gold.tables.agg_miles_category_weekly import SPEC as GOLD_MILES_CATEGORY
from lakehouse.gold.tables.agg_miles_weekly import SPEC as GOLD_MILES_WEEKLY
from lakehouse.gold.tables.agg_user_lifecycle_weekly import SPEC as GOLD_LIFECYCLE
from lakehouse.gold.tables.agg_user_retention import SPEC as GOLD_RETENTION
from lakehouse.gold.tables.user_status_weekly import SPEC as GOLD_USER_STATUS
from lakehouse.registry import GOLD_NEGATIVE_BALANCE, OPS_DQ_RESULTS, SILVER_DIM_USERS, SILVER_EVENTS
from lakehouse.silver.dim_users import build_snapshots, state_from_events
from lakehouse.tables import TABLES
from tests.conftest import history, job_context, pipeline_args
from tests.reference import spec_reference

pytestmark = pytest.mark.e2e


MILES_WEEKLY_COLUMNS = [
    "week_start",
    "acq_source",
    "country",
    "miles_earned",
    "miles_redeemed",
    "net_miles",
    "earn_events",
    "redeem_events",
    "earning_users",
    "redeeming_users",
    "outstanding_miles",
    "liability_miles",
    "negative_balance_users",
    "redemption_rate",
    "is_partial_period",
]
ANOMALY_COLUMNS = [
    "metric",
    "grain",
    "segment_type",
    "segment_value",
    "period_start",
    "value",
    "expected",
    "lower_bound",
    "upper_bound",
    "score",
    "training_periods",
    "is_anomaly",
    "direction",
]
MILES_CATEGORY_COLUMNS = [
    "week_start",
    "event_type",
    "transaction_category",
    "acq_source",
    "country",
    "events",
    "users",
    "miles",
    "is_partial_period",
]


def _rows(spark, config, spec, columns):
    return {tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in
            delta_io.read(spark, spec, config).select(*columns).collect()}  # fmt: skip


def assert_anomalies_equal(df, expected: set[tuple]) -> None:
    """The anomaly rows equal the reference's: same points and flags, doubles equal to 1e-9 (relative)."""
    got = {tuple(r[:5]): tuple(r[5:]) for r in df.select(*ANOMALY_COLUMNS).collect()}
    want = {tuple(r[:5]): tuple(r[5:]) for r in expected}
    assert set(got) == set(want), (sorted(set(got) - set(want))[:5], sorted(set(want) - set(got))[:5])
    for key, values in want.items():
        for a, b in zip(got[key], values, strict=True):
            close = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) if isinstance(b, float) else a == b
            assert close, (key, got[key], values)


#: gold.user_status_weekly's columns in the reference's tuple order.
USER_STATUS_COLUMNS = ["user_id", "cutoff_week", "acq_source", "country", "user_status", "previous_status",
                       "events_in_week", "miles_earned_in_week", "miles_redeemed_in_week", "last_active_date",
                       "weeks_since_active", "miles_balance", "is_partial_period"]  # fmt: skip


def test_sample_gold_equals_reference(spark, sample_pipeline, sample_reference):
    config, ref = sample_pipeline, sample_reference
    assert _rows(spark, config, GOLD_USER_STATUS, USER_STATUS_COLUMNS) == ref.user_status
    assert (
        _rows(
            spark,
            config,
            GOLD_ACTIVE_USER,
            ["period_type", "period_start_date", "acq_source", "country", "active_users", "is_partial_period"],
        )
        == ref.active_user
    )
    assert (
        _rows(
            spark,
            config,
            GOLD_LIFECYCLE,
            ["cutoff_week", "acq_source", "country", "user_status", "user_count", "is_partial_period"],
        )
        == ref.lifecycle
    )
    assert (
        _rows(
            spark,
            config,
            GOLD_RETENTION,
            [
                "cohort_week",
                "week_offset",
                "acq_source",
                "country",
                "cohort_size",
                "retained_users",
                "retention_rate",
                "unbounded_retained_users",
                "is_partial_period",
            ],
        )
        == ref.retention
    )
    assert (
        _rows(
            spark,
            config,
            GOLD_GROWTH,
            [
                "week_start",
                "acq_source",
                "country",
                "active_users",
                "prev_active_users",
                "new_users",
                "retained_users",
                "resurrected_users",
                "churned_users",
                "quick_ratio",
            ],
        )
        == ref.growth
    )
    assert (
        _rows(
            spark,
            config,
            GOLD_ENGAGEMENT,
            ["activity_date", "acq_source", "country", "dau", "wau_7d", "mau_30d", "dau_mau_rate", "dau_wau_rate",
             "is_partial_period"],
        )
        == ref.engagement
    )  # fmt: skip
    assert _rows(spark, config, GOLD_MILES_WEEKLY, MILES_WEEKLY_COLUMNS) == ref.miles_weekly
    assert _rows(spark, config, GOLD_MILES_CATEGORY, MILES_CATEGORY_COLUMNS) == ref.miles_category
    assert any(r[12] > 0 for r in ref.miles_weekly) and len(ref.miles_category) > 0
    assert_anomalies_equal(delta_io.read(spark, GOLD_METRIC_ANOMALIES, config), ref.anomalies)
    flags = {(r[1], r[12]) for r in ref.anomalies if r[11]}
    assert {("day", "spike"), ("day", "drop")} <= flags  # both directions occur on the sample
    report = delta_io.read(spark, GOLD_NEGATIVE_BALANCE, config).orderBy("user_id").collect()
    negative = [(r["user_id"], r["first_negative_date"]) for r in report]
    expected = [(u, ref.dim_users_latest[u]["first_negative_date"]) for u in ref.negative_balance_users]
    assert negative == expected and len(negative) > 0
    # Some went negative before their latest event day (the first day is history, not the last snapshot's).
    assert any(d < ref.dim_users_latest[u]["last_event_time"].date() for u, d in expected)
    statuses = {r[3] for r in ref.lifecycle}
    assert statuses == {"new", "retained", "resurrected", "dormant", "churned"}


def test_sample_checks_recorded_and_warnings_present(spark, sample_pipeline):
    dq = delta_io.read(spark, OPS_DQ_RESULTS, sample_pipeline)
    failed = dq.where(F.col("status") == "fail").collect()
    assert failed == []
    warned = {r["check_name"]: r["failed_rows"] for r in dq.where(F.col("status") == "warn").collect()}
    assert warned["users_with_negative_miles_balance"] > 0
    gold_checks = {
        (r["table_name"], r["check_name"], r["severity"])
        for r in dq.where(F.col("table_name").startswith("gold.")).select("table_name", "check_name", "severity")
        .distinct().collect()
    }  # fmt: skip
    # Every declared error-level check of every gold table ran (and passed, see above), plus 2 warnings.
    error_checks = {(t, c, "error") for t, c, s in gold_checks if s == "error"}
    assert {t for t, _, _ in error_checks} == set(GOLD_TABLES)
    assert len(error_checks) == 2 * len(GOLD_TABLES) + sum(len(t.checks) for t in GOLD_TABLES.values()) + 2
    assert {(t, c) for t, c, s in gold_checks if s == "warn"} == {
        ("gold.rpt_negative_balance_users", "users_with_negative_miles_balance"),
        ("gold.agg_active_user", "weekly_active_users_jump"),
        ("gold.agg_metric_anomalies", "metric_anomaly"),
    }
    # The anomalies of the sample's last 7 days (2025-06-29 .. 07-05), one warning each, newest first, and
    # the freshness warning (the sample's newest event is from 2025-07-05, long before any run).
    alerts = [r["details"] for r in dq.where(F.col("check_name") == "metric_anomaly").orderBy("details").collect()]
    assert "events in all on 2025-07-05: 290, expected 211 [145, 276] (spike, score 5.5)" in alerts
    assert all(" on 2025-0" in a or " in the week of " in a for a in alerts) and len(alerts) == len(set(alerts))
    (fresh,) = dq.where(F.col("check_name") == "data_freshness").collect()
    assert (fresh["status"], fresh["table_name"]) == ("warn", "silver.fct_events")
    assert fresh["details"].startswith("newest event_time 2025-07-05 ")


def _events_from_csv(spark, path):
    rows = []
    with open(path) as handle:
        for rec in csv.DictReader(handle):
            t = datetime.strptime(rec["event_time"], "%Y-%m-%d %H:%M:%S.%f")
            eid = hashlib.md5(f"{rec['event_time']}-{rec['user_id']}-{rec['event_type']}".encode()).hexdigest()
            miles = Decimal(rec["miles_amount"]) if rec["miles_amount"] else None
            rows.append((eid, t, t.date(), rec["user_id"], rec["utm_source"], rec["country"], rec["event_type"],
                         rec["transaction_category"] or None, miles))  # fmt: skip
    schema = ("event_id string, event_time timestamp, event_date date, user_id string, utm_source string, "
              "country string, event_type string, transaction_category string, miles_amount decimal(10,2)")  # fmt: skip
    return spark.createDataFrame(rows, schema).dropDuplicates(["event_id"])


@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_identities_and_reference_over_generated_data(spark, tmp_path, seed):
    path = tmp_path / "events.csv"
    generator.generate(path, users=60, days=120, seed=seed, events_per_day=2.0)
    events = _events_from_csv(spark, path)
    activity, users = user_activity(events).cache(), user_segments(events).cache()
    max_date = activity.agg(F.max("event_date")).first()[0]
    first_date = activity.agg(F.min("event_date")).first()[0]
    events = events.withColumn("platform", F.lit("web"))  # what the snapshots' latest event carries
    snapshots = build_snapshots(state_from_events(events.limit(0)), events, first_date, max_date).localCheckpoint()
    inputs = gold_inputs(activity, users, max_date, "sunday", 4, 16, events_df=events, snapshots_df=snapshots)
    inputs = dataclasses.replace(inputs, grid_df=inputs.grid_df.localCheckpoint())
    # Checkpointed as the gold job does: every check reads its tables again.
    tables = {name: m.build(inputs).localCheckpoint() for name, m in GOLD_TABLES.items()}
    assert [r.check_name for r in run_all_checks(tables, inputs) if r.status != "pass"] == []
    ref = spec_reference.compute([str(path)], ingested_at=datetime(2030, 1, 1))
    columns = ["cutoff_week", "acq_source", "country", "user_status", "user_count", "is_partial_period"]
    lifecycle = {tuple(r) for r in tables[GOLD_LIFECYCLE.full_name].select(*columns).collect()}
    assert lifecycle == ref.lifecycle
    users_weekly = {tuple(r) for r in tables[GOLD_USER_STATUS.full_name].select(*USER_STATUS_COLUMNS).collect()}
    assert users_weekly == ref.user_status
    columns = ["activity_date", "acq_source", "country", "dau", "wau_7d", "mau_30d", "dau_mau_rate", "dau_wau_rate",
               "is_partial_period"]  # fmt: skip
    engagement = {tuple(round(v, 6) if isinstance(v, float) else v for v in r)
                  for r in tables[GOLD_ENGAGEMENT.full_name].select(*columns).collect()}  # fmt: skip
    assert engagement == ref.engagement
    for spec, columns, expected in (
        (GOLD_MILES_WEEKLY, MILES_WEEKLY_COLUMNS, ref.miles_weekly),
        (GOLD_MILES_CATEGORY, MILES_CATEGORY_COLUMNS, ref.miles_category),
    ):
        got = {
            tuple(round(v, 6) if isinstance(v, float) else v for v in r)
            for r in tables[spec.full_name].select(*columns).collect()
        }
        assert got == expected, spec.full_name  # fmt: skip
    assert len(ref.anomalies) > 0
    assert_anomalies_equal(tables[GOLD_METRIC_ANOMALIES.full_name], ref.anomalies)


def test_user_status_weekly_and_lifecycle_equal_the_reference_with_monday_weeks_and_lookback_2(spark, tmp_path):
    """gold.week_start_day = monday, gold.lookback_weeks = 2, on generated events with duplicated and late rows
    (late rows in one file are out of order): the users behind the counts and the counts, against the reference."""
    path = tmp_path / "events.csv"
    generator.generate(path, users=60, days=90, seed=11, events_per_day=2.0, duplicate_rate=0.05, late_rate=0.05)
    events = _events_from_csv(spark, path)
    activity, users = user_activity(events).cache(), user_segments(events).cache()
    max_date = activity.agg(F.max("event_date")).first()[0]
    first_date = activity.agg(F.min("event_date")).first()[0]
    events = events.withColumn("platform", F.lit("web"))
    snapshots = build_snapshots(state_from_events(events.limit(0)), events, first_date, max_date).localCheckpoint()
    inputs = gold_inputs(activity, users, max_date, "monday", 2, 16, events_df=events, snapshots_df=snapshots)
    ref = spec_reference.compute([str(path)], ingested_at=datetime(2030, 1, 1), lookback_weeks=2,
                                 week_starts_on="monday")  # fmt: skip
    statuses = GOLD_TABLES[GOLD_USER_STATUS.full_name].build(inputs).select(*USER_STATUS_COLUMNS).collect()
    assert {tuple(r) for r in statuses} == ref.user_status
    assert {r.cutoff_week.weekday() for r in statuses} == {0}  # Mondays
    columns = ["cutoff_week", "acq_source", "country", "user_status", "user_count", "is_partial_period"]
    lifecycle = GOLD_TABLES[GOLD_LIFECYCLE.full_name].build(inputs).select(*columns).collect()
    assert {tuple(r) for r in lifecycle} == ref.lifecycle


def test_injected_anomalies_are_flagged_and_the_table_equals_the_reference(spark, tmp_path):
    """The injected set of data/sample/README.md: the Spark table equals the reference and flags each injection."""
    path = tmp_path / "events.csv"
    injections = ["drop:country=PH:2025-05-20", "redemption_wave:acq_source=organic:2025-06-04",
                  "acquisition_spike:acq_source=tiktok:2025-06-17"]  # fmt: skip
    generator.generate(path, users=2000, days=182, start_date="2025-01-05", seed=42, inject=injections)
    events = _events_from_csv(spark, path).localCheckpoint()
    activity, users = user_activity(events).localCheckpoint(), user_segments(events).localCheckpoint()
    max_date = activity.agg(F.max("event_date")).first()[0]
    first_date = activity.agg(F.min("event_date")).first()[0]
    events = events.withColumn("platform", F.lit("web"))  # what the snapshots' latest event carries
    snapshots = build_snapshots(state_from_events(events.limit(0)), events, first_date, max_date).localCheckpoint()
    inputs = gold_inputs(activity, users, max_date, "sunday", 4, 16, events_df=events, snapshots_df=snapshots)
    table = GOLD_TABLES[GOLD_METRIC_ANOMALIES.full_name].build(inputs).localCheckpoint()
    expected = spec_reference.compute_anomalies([str(path)], ingested_at=datetime(2030, 1, 1))
    assert_anomalies_equal(table, expected)
    flagged = {tuple(r[:5]): r["direction"] for r in table.where(F.col("is_anomaly")).collect()}
    assert flagged[("events", "day", "country", "PH", date(2025, 5, 20))] == "drop"
    assert flagged[("redeem_events", "day", "acq_source", "organic", date(2025, 6, 4))] == "spike"
    assert flagged[("new_users", "week", "acq_source", "tiktok", date(2025, 6, 15))] == "spike"


def _versions(spark, config):
    return {s.full_name: history(spark, s.path(config), 1).first()["version"]
            for s in TABLES if s.layer != "ops" and delta_io.exists(s, config)}  # fmt: skip


def test_rerun_of_the_whole_dag_changes_no_table(spark, sample_pipeline):
    before = _versions(spark, sample_pipeline)
    assert launcher.run_main(pipeline_args(sample_pipeline.paths.input, sample_pipeline.paths.warehouse)) == 0
    assert _versions(spark, sample_pipeline) == before
    assert {SILVER_EVENTS.full_name, SILVER_DIM_USERS.full_name, GOLD_RETENTION.full_name} <= set(before)


def test_failed_metric_check_does_not_publish(spark, sample_pipeline, monkeypatch, tmp_path):
    from lakehouse import batches
    from lakehouse.gold import checks
    from lakehouse.gold.refresh import consumer
    from lakehouse.quality import DqResult

    # On a copy of the sample warehouse whose retention table must be rebuilt (its bookkeeping reset).
    shutil.copytree(sample_pipeline.paths.warehouse, tmp_path / "warehouse")
    config = dataclasses.replace(sample_pipeline, paths=dataclasses.replace(sample_pipeline.paths,
                                 warehouse=str(tmp_path / "warehouse")))  # fmt: skip
    ctx = job_context(spark, config)
    batches.reset(ctx, consumer(GOLD_RETENTION, config))
    real = checks.run_checks

    def with_a_failure(table, tables, inputs):
        return [*real(table, tables, inputs),
                DqResult(table.spec.full_name, "injected_failure", "error", 10, 1, "test")]  # fmt: skip

    monkeypatch.setattr(checks, "run_checks", with_a_failure)
    before = _versions(spark, config)[GOLD_RETENTION.full_name]
    args = [*pipeline_args(config.paths.input, config.paths.warehouse), "--jobs", "gold_agg_user_retention"]
    assert launcher.run_main(args) == 1
    assert _versions(spark, config)[GOLD_RETENTION.full_name] == before


def test_engagement_equals_counts_of_dim_users_snapshots(spark, sample_pipeline):
    """The contract's cross-definition: dau / wau_7d / mau_30d are counts of that day's snapshots."""
    config = sample_pipeline
    snapshots = delta_io.read(spark, SILVER_DIM_USERS, config)
    from_snapshots = snapshots.groupBy(F.col("ds").alias("activity_date"), "acq_source", "country").agg(
        F.count(F.when(F.col("last_event_date") == F.col("ds"), 1)).cast("long").alias("dau"),
        F.count(F.when(F.col("is_active_7d"), 1)).cast("long").alias("wau_7d"),
        F.count(F.when(F.col("is_active_30d"), 1)).cast("long").alias("mau_30d"),
    )
    engagement = delta_io.read(spark, GOLD_ENGAGEMENT, config).select(
        "activity_date", "acq_source", "country", "dau", "wau_7d", "mau_30d"
    )
    assert_df_equality(engagement, from_snapshots, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)


def test_registry_metrics_over_one_row_equal_the_stored_rates(spark, sample_pipeline):
    """The dashboards' re-aggregated rates are the gold columns' definitions (one row: the same value)."""
    for spec in (s for s in TABLES if s.metrics):
        keys = list(GOLD_TABLES[spec.full_name].spec.keys)
        delta_io.read(spark, spec, sample_pipeline).createOrReplaceTempView("metric_table")
        for metric in spec.metrics:
            grouped = spark.sql(
                f"SELECT {', '.join(keys)}, {metric.sql()} AS value, FIRST({metric.name}) AS stored "
                f"FROM metric_table GROUP BY {', '.join(keys)}"
            )
            mismatched = grouped.where(
                ~F.col("value").eqNullSafe(F.col("stored"))
                & ~F.coalesce(F.abs(F.col("value") - F.col("stored")) < 1e-9, F.lit(False))
            )
            assert mismatched.count() == 0, (spec.full_name, metric.name, mismatched.limit(5).collect())
            assert grouped.where(F.col("stored").isNotNull()).count() > 0
