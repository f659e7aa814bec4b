"""Trend anomalies on tiny hand-built series: each series is a named case, expected rows worked out by hand.

Defaults of conf's ``anomaly`` section: ``K = 8`` training periods, ``M = 4``, ``S = 4.5``, ``min_expected = 5``.
Daily points of one series are 7 days apart (the same weekday: the only days a point is compared with);
``W[k]`` is the k-th Monday from 2025-01-06.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from lakehouse.config import AnomalyConfig
from lakehouse.gold import activity
from lakehouse.gold import activity as activity_module
from lakehouse.gold.checks import run_checks
from lakehouse.gold.tables import agg_metric_anomalies as anomalies
from lakehouse.gold.tables.agg_metric_anomalies import SPEC as GOLD_METRIC_ANOMALIES

W = [date(2025, 1, 6) + timedelta(weeks=k) for k in range(12)]
PARAMS = AnomalyConfig()
SERIES = "metric string, grain string, segment_type string, segment_value string, period_start date, value double"
FLAGS = ["metric", "segment_type", "segment_value", "period_start", "value", "training_periods", "is_anomaly",
         "direction"]  # fmt: skip


def _series(spark, cases: dict[tuple[str, str], list[float | None]], metric: str = "events"):
    """One daily series per segment: the k-th value on W[k] (None: no such period)."""
    rows = [(metric, "day", *segment, W[k], float(v)) for segment, values in cases.items()
            for k, v in enumerate(values) if v is not None]  # fmt: skip
    return spark.createDataFrame(rows, SERIES)


def _point(segment, k, value, expected, spread, n, direction=None, metric="events"):
    """The row of the point W[k]: band expected +- 4.5 * spread, score (value - expected) / spread."""
    score = (value - expected) / spread
    return (metric, "day", *segment, W[k], float(value), float(expected), expected - 4.5 * spread,
            expected + 4.5 * spread, score, n, direction is not None, direction)  # fmt: skip


def _expected_df(spark, rows, like):
    return spark.createDataFrame(rows, like.schema)


def test_flat_and_steadily_growing_series_flag_nothing(spark):
    flat, growing = ("country", "SG"), ("country", "MY")
    series = _series(spark, {flat: [20] * 9, growing: [10 + 5 * k for k in range(9)]})
    got = anomalies.score_points(series, PARAMS)
    # Flat: slope 0, level 20, MAD 0, so the spread is the Poisson floor sqrt(20); score 0 everywhere.
    # Growing by 5 a week: every pair slope is 5, the line meets each point exactly (MAD 0), expected = value.
    # The first point with 4 training points is W[4]; W[8] has all 8.
    expected = [_point(flat, k, 20, 20, math.sqrt(20), k) for k in range(4, 9)]
    expected += [_point(growing, k, 10 + 5 * k, 10 + 5 * k, math.sqrt(10 + 5 * k), k) for k in range(4, 9)]
    assert_approx_df_equality(got, _expected_df(spark, expected, got), 1e-9, ignore_row_order=True)


def test_one_drop_and_one_spike_are_flagged_with_their_direction(spark):
    # PH's export loses most rows on W[8]: 40 a week, then 5. referral: 30 a week, then a campaign's 80.
    # Expected 40 (spread sqrt(40) = 6.32): score -35 / 6.32 = -5.53 < -4.5. Expected 30: score 50 / 5.48 = 9.13.
    # Inside the band on W[8] of SG: 30 expected, 51 is score 3.83, not flagged.
    drop, spike, inside = ("country", "PH"), ("acq_source", "referral"), ("country", "SG")
    series = _series(spark, {drop: [40] * 8 + [5], spike: [30] * 8 + [80], inside: [30] * 8 + [51]})
    got = anomalies.score_points(series, PARAMS)
    expected = [_point(s, k, 40 if s == drop else 30, 40 if s == drop else 30, math.sqrt(40 if s == drop else 30), k)
                for s in (drop, spike, inside) for k in range(4, 8)]  # fmt: skip
    expected += [
        _point(drop, 8, 5, 40, math.sqrt(40), 8, "drop"),
        _point(spike, 8, 80, 30, math.sqrt(30), 8, "spike"),
        _point(inside, 8, 51, 30, math.sqrt(30), 8),
    ]
    assert_approx_df_equality(got, _expected_df(spark, expected, got), 1e-9, ignore_row_order=True)


def test_one_past_outlier_in_the_training_window_does_not_hide_the_next(spark):
    # google: 50 a week, 150 on W[4] (flagged itself), and 150 again on W[9]. W[9]'s training points are
    # W[1..8]: seven 50s and one 150. Of the 28 pair slopes, 21 are 0, four negative, three positive: the
    # median slope is 0; level = median(50 x7, 150) = 50; MAD = median(0 x7, 100) = 0; spread sqrt(50):
    # score 100 / 7.07 = 14.1. (A mean and standard deviation would give 62.5 +- 35, z = 2.5: hidden.)
    google = ("acq_source", "google")
    series = _series(spark, {google: [50, 50, 50, 50, 150, 50, 50, 50, 50, 150]})
    got = anomalies.score_points(series, PARAMS).where(F.col("period_start").isin(W[4], W[9]))
    expected = [_point(google, 4, 150, 50, math.sqrt(50), 4, "spike"), _point(google, 9, 150, 50, math.sqrt(50), 8,
                                                                             "spike")]  # fmt: skip
    assert_approx_df_equality(got, _expected_df(spark, expected, got), 1e-9, ignore_row_order=True)
    # The points after the outlier are not flagged: its one vote moves neither the line nor the MAD.
    after = anomalies.score_points(series, PARAMS).where(F.col("period_start").between(W[5], W[8]))
    assert after.where(F.col("is_anomaly")).count() == 0 and after.count() == 4


def test_too_few_training_points_or_a_small_expected_value_give_no_row(spark):
    # ID starts on W[0] and has 4 points: W[3] has 3 training points (< M = 4): no row at all.
    # TH counts 2-3 a week: expected < 5, never a row, even where its value (9) would be far out.
    # VN has a gap: W[6] sees W[5], W[4], W[2], W[1], W[0] (no W[3]): 5 training points.
    short, small, gap = ("country", "ID"), ("country", "TH"), ("country", "VN")
    series = _series(spark, {short: [20] * 4, small: [2, 3] * 4 + [9], gap: [20, 20, 20, None, 20, 20, 20]})
    got = anomalies.score_points(series, PARAMS).select(*FLAGS)
    # (W[4] sees only W[2], W[1], W[0]: 3 training points, no row.)
    expected = [("events", *gap, W[5], 20.0, 4, False, None), ("events", *gap, W[6], 20.0, 5, False, None)]
    assert_df_equality(got, spark.createDataFrame(expected, got.schema), ignore_row_order=True, ignore_nullable=True)


def test_weekday_seasonality_a_quiet_sunday_is_not_a_drop(spark):
    # Every day of six weeks: 100 events on weekdays and Saturdays, 20 on Sundays (the last Sunday 18).
    # A Sunday is compared with the Sundays before it: expected 20, not 100.
    days = [date(2025, 1, 6) + timedelta(days=n) for n in range(42)]
    values = {d: (18 if d == days[-1] else 20) if d.isoweekday() == 7 else 100 for d in days}
    series = spark.createDataFrame([("events", "day", "all", "all", d, float(v)) for d, v in values.items()], SERIES)
    got = anomalies.score_points(series, PARAMS)
    assert got.where(F.col("is_anomaly")).count() == 0
    last_sunday = got.where(F.col("period_start") == F.lit(days[-1])).select(*FLAGS, "expected")
    expected = [("events", "all", "all", days[-1], 18.0, 5, False, None, 20.0)]  # the 5 Sundays before it
    assert_df_equality(last_sunday, spark.createDataFrame(expected, last_sunday.schema), ignore_nullable=True)
    # Every day from the fifth week on is evaluated (4 training points), each against its own weekday.
    assert got.count() == 42 - 28
    assert got.where(F.col("expected") != F.col("value")).count() == 1  # only the 18


# --- the series from events and users -------------------------------------------------------------

SEG = {"u_sg": ("google", "SG"), "u_my": ("referral", "MY"), "u_new": ("google", "MY")}
FIRST = {"u_sg": date(2025, 1, 6), "u_my": date(2025, 1, 7), "u_new": date(2025, 1, 8)}
EVENTS = [
    ("u_sg", date(2025, 1, 6), "miles_earned"),
    ("u_sg", date(2025, 1, 6), "like"),
    ("u_my", date(2025, 1, 7), "miles_redeemed"),
    # 2025-01-08: u_new's first day, u_sg earns; nobody has an event on 2025-01-09 (a zero day)
    ("u_new", date(2025, 1, 8), "share"),
    ("u_sg", date(2025, 1, 8), "miles_earned"),
    ("u_my", date(2025, 1, 10), "miles_earned"),
]


def test_daily_series_count_every_day_of_each_segment_from_its_first_user(spark):
    schema = "user_id string, acq_source string, country string, first_event_date date"
    users = spark.createDataFrame([(u, *SEG[u], FIRST[u]) for u in SEG], schema)
    events = spark.createDataFrame(EVENTS, "user_id string, event_date date, event_type string")
    got = anomalies.daily_series(anomalies.user_day_counts(events, date(2025, 1, 10)), users, date(2025, 1, 10))
    d = [date(2025, 1, 6) + timedelta(days=n) for n in range(5)]
    # (segment, day): events, active_users, new_users, earn_events, redeem_events
    counts = {
        ("all", "all"): [(2, 1, 1, 1, 0), (1, 1, 1, 0, 1), (2, 2, 1, 1, 0), (0, 0, 0, 0, 0), (1, 1, 0, 1, 0)],
        ("country", "SG"): [(2, 1, 1, 1, 0), (0, 0, 0, 0, 0), (1, 1, 0, 1, 0), (0, 0, 0, 0, 0), (0, 0, 0, 0, 0)],
        # MY's first user arrives on 01-07: its days start there
        ("country", "MY"): [None, (1, 1, 1, 0, 1), (1, 1, 1, 0, 0), (0, 0, 0, 0, 0), (1, 1, 0, 1, 0)],
        ("acq_source", "google"): [(2, 1, 1, 1, 0), (0, 0, 0, 0, 0), (2, 2, 1, 1, 0), (0, 0, 0, 0, 0),
                                   (0, 0, 0, 0, 0)],
        ("acq_source", "referral"): [None, (1, 1, 1, 0, 1), (0, 0, 0, 0, 0), (0, 0, 0, 0, 0), (1, 1, 0, 1, 0)],
    }  # fmt: skip
    expected = [(metric, "day", *seg, d[i], float(values[m])) for seg, days in counts.items()
                for i, values in enumerate(days) if values is not None
                for m, metric in enumerate(anomalies.DAILY_METRICS)]  # fmt: skip
    assert_df_equality(got, spark.createDataFrame(expected, SERIES), ignore_row_order=True, ignore_nullable=True)


def test_checks_pass_on_scored_points_and_catch_broken_rows(spark):
    series = _series(spark, {("country", "PH"): [40] * 8 + [5], ("country", "SG"): [20] * 9})
    points = anomalies.score_points(series, PARAMS).localCheckpoint()
    inputs = activity.GoldInputs(*([None] * 3), date(2025, 3, 3), "sunday", 4, 16, anomaly=PARAMS)
    gold = anomalies.GOLD

    def failed(df):
        return {r.check_name: r.failed_rows for r in run_checks(gold, lambda _: df, inputs) if r.status == "fail"}

    assert failed(points) == {}
    broken = (
        points.withColumn("is_anomaly", F.lit(False))  # the drop loses its flag
        .withColumn("lower_bound", F.when(F.col("segment_value") == "SG", F.col("upper_bound") + 1)
                    .otherwise(F.col("lower_bound")))
        .withColumn("training_periods", F.when(F.col("period_start") == F.lit(W[4]), 3)
                    .otherwise(F.col("training_periods")))
    )  # fmt: skip
    assert failed(broken) == {
        "is_anomaly_equals_abs_score_above_sensitivity": 1,
        "lower_bound_le_expected_le_upper_bound": 5,
        "training_periods_between_min_and_max": 2,
    }
    assert failed(points.unionByName(points.limit(1))) == {"unique_grain_keys": 2}
    assert GOLD_METRIC_ANOMALIES.keys == ("metric", "grain", "segment_type", "segment_value", "period_start")


# --- alerts and freshness (pure) ------------------------------------------------------------------


def _row(grain, period, is_anomaly=True, value=29.0, score=-6.2):
    return {"metric": "events", "grain": grain, "segment_type": "country", "segment_value": "PH",
            "period_start": period, "value": value, "expected": 188.4, "lower_bound": 111.6, "upper_bound": 264.3,
            "score": score, "is_anomaly": is_anomaly, "direction": "drop" if is_anomaly else None}  # fmt: skip


def test_alerts_name_series_segment_period_value_and_band(spark):
    results = anomalies.alert_results(
        [_row("day", date(2025, 4, 15)), _row("day", date(2025, 4, 14), is_anomaly=False),
         {**_row("week", date(2025, 4, 6)), "metric": "churned_users", "segment_type": "all", "segment_value": "all"}],
        date(2025, 4, 15), 7,
    )  # fmt: skip
    assert [(r.table_name, r.check_name, r.severity, r.status, r.details) for r in results] == [
        ("gold.agg_metric_anomalies", "metric_anomaly", "warn", "warn",
         "events in country=PH on 2025-04-15: 29, expected 188 [112, 264] (drop, score -6.2)"),
        ("gold.agg_metric_anomalies", "metric_anomaly", "warn", "warn",
         "churned_users in all in the week of 2025-04-06: 29, expected 188 [112, 264] (drop, score -6.2)"),
    ]  # fmt: skip
    (none,) = anomalies.alert_results([_row("day", date(2025, 4, 15), is_anomaly=False)], date(2025, 4, 15), 7)
    assert (none.status, none.rows_checked, none.details) == ("pass", 1, "none in the last 7 days (2025-04-09 .. "
                                                                          "2025-04-15)")  # fmt: skip


def test_alert_window_holds_the_last_days_and_the_weeks_ending_in_them(spark):
    last = date(2025, 4, 15)  # a Tuesday; the window is 04-09 .. 04-15
    rows = [("day", date(2025, 4, 8)), ("day", date(2025, 4, 9)), ("day", last),
            ("week", date(2025, 3, 30)),  # ends 04-05: before the window
            ("week", date(2025, 4, 6))]  # ends 04-12: inside  # fmt: skip
    df = spark.createDataFrame(rows, "grain string, period_start date")
    got = anomalies.alert_window(df, last, 7)
    expected = spark.createDataFrame(rows[1:3] + rows[4:], df.schema)
    assert_df_equality(got, expected, ignore_row_order=True)


@pytest.mark.parametrize(
    ("newest", "failed"),
    [
        (datetime(2025, 7, 4, 12, 0, 0), 0),  # 36 h before the run's start: not older than the threshold
        (datetime(2025, 7, 4, 11, 59, 59), 1),  # a second more
        (None, 1),  # no event at all
    ],
)
def test_freshness_warns_when_the_newest_event_is_older_than_the_threshold(newest, failed):
    result = anomalies.freshness_result(newest, datetime(2025, 7, 6, 0, 0, 0), 36)
    assert (result.table_name, result.check_name, result.severity, result.failed_rows) == (
        "silver.fct_events", "data_freshness", "warn", failed,
    )  # fmt: skip
    if newest is not None:
        assert result.details.startswith(f"newest event_time {newest:%Y-%m-%d %H:%M:%S} is 36.0 h old")


def test_a_run_with_nothing_new_still_warns_of_stale_data(spark, tmp_path):
    """No new data is when data goes stale: the anomaly job's idle run (no JVM) judges freshness from
    silver.fct_events's file statistics, as a reminder in its run's message, not an ops.dq_results row."""
    from lakehouse.gold.refresh import JOBS
    from lakehouse.job_runtime import Decision, NoParams
    from lakehouse.ops import OpsSink
    from lakehouse.registry import SILVER_EVENTS
    from tests.conftest import make_config

    # Session time zone UTC (the conf default here): 23:30 UTC is 07:30 the next day in Singapore.
    newest = datetime(2025, 7, 5, 23, 30, 0)
    rows = [(newest - timedelta(days=d)).isoformat(sep=" ") for d in (0, 3)]
    events = spark.createDataFrame([(t,) for t in rows], "t string").select(F.to_timestamp("t").alias("event_time"))
    config = make_config(tmp_path / "wh")
    events.write.format("delta").save(SILVER_EVENTS.path(config))
    job = JOBS["gold_agg_metric_anomalies"]
    assert job.idle_reminders is anomalies.stale_data
    (reminder,) = anomalies.stale_data(config)
    assert reminder.startswith("data_freshness: newest event_time 2025-07-05 23:30:00 is ")
    assert reminder.endswith("threshold 36 h")
    singapore = make_config(tmp_path / "wh", timezone="Asia/Singapore")
    assert anomalies.stale_data(singapore)[0].startswith("data_freshness: newest event_time 2025-07-06 07:30:00 ")
    hours_since = (datetime.now() - newest).total_seconds() / 3600  # the machine's clock runs in UTC here
    assert anomalies.stale_data(make_config(tmp_path / "wh", anomaly__freshness_hours=int(hours_since) + 48)) == []
    assert anomalies.stale_data(make_config(tmp_path / "empty")) == []  # no silver table: nothing to judge

    sink = OpsSink()
    run = job.record_idle(config, NoParams(), Decision(False, "nothing to do: no batch pending"), sink)
    (said,) = run.reminders  # its own moment: the age and the start may have moved on by a second
    assert run.status == "succeeded" and said.startswith("data_freshness: newest event_time 2025-07-05 23:30:00 is ")
    assert run.message == f"nothing to do: no batch pending; {said}"
    assert len(sink) == 1 and sink._rows.keys() == {"ops.job_runs"}  # no ops.dq_results row


# --- incremental: the points from since, from inputs that start at input_start -----------------------


def test_incremental_points_equal_the_full_rebuild_on_their_scope(spark, tmp_path):
    """Six generated weeks; K = 3, M = 2 so that weeks and days have rows. From a Saturday that completes a
    week (weekly points recomputed from the user-days of the weeks they need), a Tuesday two weeks back (a
    late file: every later day and week) and the last day (one new day: its events and the same weekday's)."""
    import csv
    import hashlib

    from lakehouse import generator

    path = tmp_path / "events.csv"
    generator.generate(path, users=60, days=42, start_date="2025-01-05", seed=3, events_per_day=2.5)
    rows = []
    with open(path) as handle:
        for rec in csv.DictReader(handle):
            t = datetime.strptime(rec["event_time"], "%Y-%m-%d %H:%M:%S.%f")
            eid = hashlib.md5(f"{rec['event_time']}-{rec['user_id']}-{rec['event_type']}".encode()).hexdigest()
            rows.append((eid, t, t.date(), rec["user_id"], rec["event_type"], rec["utm_source"], rec["country"]))
    schema = ("event_id string, event_time timestamp, event_date date, user_id string, event_type string, "
              "utm_source string, country string")  # fmt: skip
    events = (
        spark.createDataFrame(rows, schema)  # the miles columns only matter to the miles tables' inputs
        .withColumn("transaction_category", F.lit(None).cast("string"))
        .withColumn("miles_amount", F.lit(None).cast("decimal(10,2)"))
        .localCheckpoint()
    )
    activity = activity_module.user_activity(events).localCheckpoint()
    users = activity_module.user_segments(events).localCheckpoint()
    last = date(2025, 2, 15)
    params = AnomalyConfig(training_periods=3, min_training_periods=2, min_expected=1.0)
    full_inputs = activity_module.gold_inputs(activity, users, last, "sunday", 4, 16, events_df=events, anomaly=params)
    full = anomalies.metric_anomalies(full_inputs).localCheckpoint()
    assert full.where(F.col("grain") == "week").count() > 0 and full.count() > 100
    for since in (date(2025, 2, 15), date(2025, 2, 4), last):
        first = anomalies.input_start(since, "sunday", params.training_periods)
        inputs = activity_module.gold_inputs(
            activity, users, last, "sunday", 4, 16, since, events_df=events, anomaly=params,
            anomaly_events_df=events.where(F.col("event_date") >= F.lit(first)),
            anomaly_activity_df=activity.where(F.col("event_date") >= F.lit(first)),
        )  # fmt: skip
        recomputed = anomalies.metric_anomalies(inputs)
        expected = full.where(anomalies.scope(inputs))
        assert expected.count() > 0, since
        assert_df_equality(recomputed, expected, ignore_row_order=True, ignore_nullable=True)
