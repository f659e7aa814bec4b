"""Gold metrics on a hand-built story: each user is a named case, expected rows computed by hand.

Weeks are Sunday weeks W0 = 2025-01-05 .. W9 = 2025-03-09; the data's last date is Wednesday
2025-03-12, so W9 and March are partial. Lookback is 4 weeks.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from chispa import assert_column_equality, assert_df_equality
from pyspark.sql import functions as F

from lakehouse.gold import activity as metrics
from lakehouse.gold.refresh import GOLD_TABLES, run_all_checks
from lakehouse.gold.table import OPTIONAL_INPUTS
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.gold.tables.agg_engagement_daily import SPEC as GOLD_ENGAGEMENT
from lakehouse.gold.tables.agg_engagement_daily import engagement_daily
from lakehouse.gold.tables.agg_growth_accounting_weekly import SPEC as GOLD_GROWTH
from lakehouse.gold.tables.agg_metric_anomalies import SPEC as GOLD_METRIC_ANOMALIES
from lakehouse.gold.tables.agg_miles_category_weekly import SPEC as GOLD_MILES_CATEGORY
from lakehouse.gold.tables.agg_miles_weekly import SPEC as GOLD_MILES_WEEKLY
from lakehouse.gold.tables.agg_user_lifecycle_weekly import SPEC as GOLD_LIFECYCLE
from lakehouse.gold.tables.agg_user_retention import SPEC as GOLD_RETENTION
from lakehouse.gold.tables.user_status_weekly import SPEC as GOLD_USER_STATUS

W = [date(2025, 1, 5) + timedelta(weeks=k) for k in range(10)]
MAX_DATE = date(2025, 3, 12)
G, FB = ("google", "SG"), ("facebook", "MY")

ACTIVITY = {
    "u_new": [W[0]],  # new in W0, dormant W1-W4, churned from W5
    "u_gap3": [W[0] + timedelta(days=1), W[4]],  # 3 idle weeks, still retained in W4 with lookback 4
    "u_res": [W[0] + timedelta(days=6), W[6]],  # 5 idle weeks: resurrected in W6
    "u_month": [date(2025, 1, 31), date(2025, 2, 1)],  # W3 spans January and February
    "u_late": [W[8], date(2025, 3, 10)],  # new in W8, retained in partial W9
}  # nobody is active in W7: the spine still has it
SEGMENTS = {"u_new": G, "u_gap3": G, "u_res": G, "u_late": G, "u_month": FB}


@pytest.fixture(scope="module")
def story(spark):
    activity = spark.createDataFrame(
        [(u, d) for u, days in ACTIVITY.items() for d in days], "user_id string, event_date date"
    )
    users = spark.createDataFrame(
        [(u, *SEGMENTS[u], min(ACTIVITY[u])) for u in ACTIVITY],
        "user_id string, acq_source string, country string, first_event_date date",
    )
    inputs = metrics.gold_inputs(activity, users, MAX_DATE, "sunday", lookback_weeks=4, max_week_offset=16,
                                 snapshots_df=_snapshots(spark))  # fmt: skip
    return {"inputs": inputs, **{name: m.build(inputs).cache() for name, m in GOLD_TABLES.items()}}


def _snapshots(spark):
    """silver.dim_users of the story, as its running totals go: one event per active day, each earning 100
    miles; u_res also redeems 500 on its comeback day (W6)."""
    rows = []
    for user, days in ACTIVITY.items():
        day = min(days)
        while day <= MAX_DATE:
            done = [d for d in days if d <= day]
            redeemed = 500 if user == "u_res" and day >= W[6] else 0
            rows.append((user, day, max(done), len(done) + (user == "u_res" and day >= W[6]),
                         Decimal(100 * len(done)), Decimal(redeemed), Decimal(100 * len(done) - redeemed)))  # fmt: skip
            day += timedelta(days=1)
    schema = ("user_id string, ds date, last_event_date date, total_events long, total_miles_earned decimal(20,2), "
              "total_miles_redeemed decimal(20,2), miles_balance decimal(20,2)")  # fmt: skip
    return spark.createDataFrame(rows, schema)


def test_week_start_saturday_night_vs_sunday_midnight(spark):
    df = spark.createDataFrame(
        [
            # the last microsecond of Saturday 2025-01-11: still the Sunday week of 01-05
            (datetime(2025, 1, 11, 23, 59, 59, 999999), date(2025, 1, 5), date(2025, 1, 6)),
            # Sunday midnight opens a Sunday week; for Monday weeks it is the last day of the week of 01-06
            (datetime(2025, 1, 12, 0, 0, 0), date(2025, 1, 12), date(2025, 1, 6)),
        ],
        "ts timestamp, expected_sunday date, expected_monday date",
    ).select(
        "*",
        metrics.week_start(F.to_date("ts"), "sunday").alias("sunday"),
        metrics.week_start(F.to_date("ts"), "monday").alias("monday"),
    )
    assert_column_equality(df, "sunday", "expected_sunday")
    assert_column_equality(df, "monday", "expected_monday")


def test_user_status_weekly_names_the_users_behind_each_count(spark, story):
    users = story[GOLD_USER_STATUS.full_name]
    columns = ["user_id", "cutoff_week", "user_status", "previous_status", "events_in_week",
               "miles_earned_in_week", "miles_redeemed_in_week", "last_active_date", "weeks_since_active",
               "miles_balance", "is_partial_period"]  # fmt: skip
    rows = {(r["user_id"], r["cutoff_week"]): r for r in users.select(*columns).collect()}
    # u_res: new in W0 (active on its Saturday), dormant W1-W4, churned W5, resurrected in W6 (a 500 redemption).
    assert [rows[("u_res", W[k])]["user_status"] for k in range(10)] == [
        "new",
        "dormant",
        "dormant",
        "dormant",
        "dormant",
        "churned",
        "resurrected",
        "dormant",
        "dormant",
        "dormant",
    ]
    comeback = rows[("u_res", W[6])]
    assert (comeback["previous_status"], comeback["events_in_week"], comeback["miles_earned_in_week"],
            comeback["miles_redeemed_in_week"], comeback["weeks_since_active"], comeback["miles_balance"]) == \
        ("churned", 2, 100, 500, 0, -300)  # fmt: skip
    assert rows[("u_res", W[0])]["previous_status"] is None
    quiet = rows[("u_res", W[5])]  # last active on W0's Saturday: 5 weeks before
    assert (quiet["events_in_week"], quiet["last_active_date"], quiet["weeks_since_active"]) == \
        (0, W[0] + timedelta(days=6), 5)  # fmt: skip
    # u_late: new in W8; W9 is partial (the data ends on its Wednesday) and holds its snapshot of that day.
    late = rows[("u_late", W[9])]
    assert late["is_partial_period"] and late["last_active_date"] == date(2025, 3, 10)
    assert ("u_late", W[7]) not in rows  # no row before the user's first week
    assert len(rows) == sum(10 - W.index(metrics.week_start_of(min(days), "sunday")) for days in ACTIVITY.values())
    # Grouped, they are the lifecycle table, row for row.
    counted = users.groupBy("cutoff_week", "acq_source", "country", "user_status").count()
    lifecycle = story[GOLD_LIFECYCLE.full_name].select("cutoff_week", "acq_source", "country", "user_status",
                                                       F.col("user_count").alias("count"))  # fmt: skip
    assert_df_equality(counted, lifecycle, ignore_row_order=True, ignore_nullable=True)


def test_lifecycle_statuses(spark, story):
    g = {  # google/SG: u_new, u_gap3, u_res from W0; u_late from W8
        0: {"new": 3}, 1: {"dormant": 3}, 2: {"dormant": 3}, 3: {"dormant": 3},
        4: {"retained": 1, "dormant": 2}, 5: {"dormant": 1, "churned": 2},
        6: {"resurrected": 1, "dormant": 1, "churned": 1}, 7: {"dormant": 2, "churned": 1},
        8: {"new": 1, "dormant": 2, "churned": 1}, 9: {"retained": 1, "dormant": 1, "churned": 2},
    }  # fmt: skip
    fb = {3: {"new": 1}, 4: {"dormant": 1}, 5: {"dormant": 1}, 6: {"dormant": 1}, 7: {"dormant": 1},
          8: {"churned": 1}, 9: {"churned": 1}}  # fmt: skip
    expected = [
        (W[k], W[k].isoformat(), *seg, status, n, k == 9)
        for seg, table in ((G, g), (FB, fb))
        for k, statuses in table.items()
        for status, n in statuses.items()
    ]
    actual = story[GOLD_LIFECYCLE.full_name]
    assert_df_equality(actual, spark.createDataFrame(expected, actual.schema), ignore_row_order=True)


def test_active_users_daily_weekly_monthly(spark, story):
    actual = story[GOLD_ACTIVE_USER.full_name]

    def period(kind: str, start: date, end: date, segment: tuple, users: int, partial: bool = False) -> tuple:
        return (kind, start, end, start.isoformat(), *segment, users, partial)

    def day(d: date, segment: tuple) -> tuple:
        return period("daily", d, d, segment, 1)

    def week(k: int, segment: tuple, users: int, partial: bool = False) -> tuple:
        return period("weekly", W[k], W[k] + timedelta(days=6), segment, users, partial)

    expected = [
        # daily: one row per active day and segment, nine in all; all complete (no day after 2025-03-12)
        day(W[0], G),  # u_new
        day(W[0] + timedelta(days=1), G),  # u_gap3
        day(W[0] + timedelta(days=6), G),  # u_res
        day(W[4], G),  # u_gap3
        day(W[6], G),  # u_res
        day(W[8], G),  # u_late
        day(date(2025, 3, 10), G),  # u_late
        day(date(2025, 1, 31), FB),  # u_month
        day(date(2025, 2, 1), FB),  # u_month
        # weekly: no row for W1-W3, W5 or W7 in google/SG (no activity: no row, the grain has active_users > 0)
        week(0, G, 3),  # u_new, u_gap3, u_res
        week(4, G, 1),
        week(6, G, 1),
        week(8, G, 1),
        week(9, G, 1, partial=True),  # partial last week: it ends 2025-03-15, after the last date
        week(3, FB, 1),  # u_month's two days in W3 count once
        # monthly
        period("monthly", date(2025, 1, 1), date(2025, 1, 31), G, 3),
        period("monthly", date(2025, 2, 1), date(2025, 2, 28), G, 2),  # u_gap3, u_res
        period("monthly", date(2025, 3, 1), date(2025, 3, 31), G, 1, partial=True),  # March ends after the last date
        period("monthly", date(2025, 1, 1), date(2025, 1, 31), FB, 1),  # month boundary: u_month in January
        period("monthly", date(2025, 2, 1), date(2025, 2, 28), FB, 1),  # ... and in February
    ]
    assert_df_equality(actual, spark.createDataFrame(expected, actual.schema), ignore_row_order=True)


def test_retention_cells_including_zeros(spark, story):
    actual = story[GOLD_RETENTION.full_name]
    cohort_w0_retained = {0: 3, 4: 1, 6: 1}
    cohort_w0_unbounded = {0: 3, 1: 2, 2: 2, 3: 2, 4: 2, 5: 1, 6: 1}
    expected = [
        (W[0], W[0].isoformat(), k, W[k], *G, 3, cohort_w0_retained.get(k, 0), cohort_w0_retained.get(k, 0) / 3,
         cohort_w0_unbounded.get(k, 0), k == 9)
        for k in range(10)  # offsets up to W9, the last week starting on or before 2025-03-12
    ] + [
        (W[8], W[8].isoformat(), k, W[8 + k], *G, 1, 1, 1.0, 1, k == 1) for k in range(2)
    ] + [
        (W[3], W[3].isoformat(), k, W[3 + k], *FB, 1, int(k == 0), float(k == 0), int(k == 0), k == 6)
        for k in range(7)
    ]  # fmt: skip
    assert_df_equality(actual, spark.createDataFrame(expected, actual.schema), ignore_row_order=True)


def test_retention_from_previous_equals_full_rebuild(spark):
    """An incremental run keeps old cells' retained_users and recomputes the rest: equal to a rebuild."""
    old_max, new_max = date(2025, 3, 3), MAX_DATE
    late = {"u_new": [date(2025, 3, 11)], "u_fresh": [date(2025, 3, 12)], "u_gap3": [date(2025, 3, 5)]}
    everything = {u: ACTIVITY.get(u, []) + late.get(u, []) for u in {*ACTIVITY, *late}}
    segments = {**SEGMENTS, "u_fresh": FB}

    def inputs(max_date, since=None):
        days = {u: [d for d in ds if d <= max_date] for u, ds in everything.items()}
        days = {u: ds for u, ds in days.items() if ds}
        activity = spark.createDataFrame(
            [(u, d) for u, ds in days.items() for d in ds if since is None or d >= since - timedelta(weeks=8)],
            "user_id string, event_date date",
        )
        users = spark.createDataFrame(
            [(u, *segments[u], min(ds), max(ds)) for u, ds in days.items()],
            "user_id string, acq_source string, country string, first_event_date date, last_event_date date",
        )
        return metrics.gold_inputs(activity, users, max_date, "sunday", 4, 16, since)

    retention = GOLD_TABLES[GOLD_RETENTION.full_name]
    previous = retention.build(inputs(old_max))
    incremental = retention.build_from_previous(inputs(new_max, since=old_max + timedelta(days=1)), previous)
    assert_df_equality(incremental, retention.build(inputs(new_max)), ignore_row_order=True)


def test_growth_accounting(spark, story):
    # (active, prev, new, retained, resurrected, churned, quick_ratio) per week
    g = {0: (3, 0, 3, 0, 0, 0, None), 1: (0, 3, 0, 0, 0, 3, 0.0), 2: (0, 0, 0, 0, 0, 0, None),
         3: (0, 0, 0, 0, 0, 0, None), 4: (1, 0, 0, 0, 1, 0, None), 5: (0, 1, 0, 0, 0, 1, 0.0),
         6: (1, 0, 0, 0, 1, 0, None), 7: (0, 1, 0, 0, 0, 1, 0.0), 8: (1, 0, 1, 0, 0, 0, None),
         9: (1, 1, 0, 1, 0, 0, None)}  # fmt: skip
    fb = {3: (1, 0, 1, 0, 0, 0, None), 4: (0, 1, 0, 0, 0, 1, 0.0),
          **{k: (0, 0, 0, 0, 0, 0, None) for k in range(5, 10)}}  # fmt: skip
    expected = [(W[k], W[k].isoformat(), *seg, *v, k == 9) for seg, t in ((G, g), (FB, fb)) for k, v in t.items()]
    actual = story[GOLD_GROWTH.full_name]
    assert_df_equality(actual, spark.createDataFrame(expected, actual.schema), ignore_row_order=True)


def _brute_force_engagement(day: date, users: list[str], window: int) -> int:
    return sum(any(day - timedelta(days=window - 1) <= a <= day for a in ACTIVITY[u]) for u in users)


def test_engagement_daily_rolling_windows(spark, story):
    actual = story[GOLD_ENGAGEMENT.full_name]
    # Named cases: u_month (facebook/MY) is active on Jan 31 and Feb 1 only.
    rows = {(r["activity_date"], r["acq_source"]): r for r in actual.collect()}
    fb = lambda d: tuple(rows[(d, "facebook")][c] for c in ("dau", "wau_7d", "mau_30d", "dau_mau_rate"))  # noqa: E731
    assert fb(date(2025, 1, 31)) == (1, 1, 1, 1.0)  # first day of the segment
    assert fb(date(2025, 2, 7)) == (0, 1, 1, 0.0)  # Feb 1 is still inside [d-6, d]
    assert fb(date(2025, 2, 8)) == (0, 0, 1, 0.0)  # ... and no longer: the week-window drops it
    assert fb(date(2025, 3, 2)) == (0, 0, 1, 0.0)  # Feb 1 = d-29: last day inside the 30-day window
    assert fb(date(2025, 3, 3)) == (0, 0, 0, None)  # no one in the window: rate is null, the row exists
    assert (date(2025, 1, 30), "facebook") not in rows  # before the segment's first user
    # Whole table against a brute-force count over the story.
    segments = {seg: [u for u in ACTIVITY if SEGMENTS[u] == seg] for seg in (G, FB)}
    expected = []
    for seg, users in segments.items():
        day = min(min(ACTIVITY[u]) for u in users)
        while day <= MAX_DATE:
            dau, wau, mau = (_brute_force_engagement(day, users, n) for n in (1, 7, 30))
            expected.append((day, *seg, dau, wau, mau, dau / mau if mau else None, dau / wau if wau else None, False))
            day += timedelta(days=1)
    assert_df_equality(actual, spark.createDataFrame(expected, actual.schema), ignore_row_order=True)


def test_engagement_daily_counts_are_the_pure_function(story):
    inputs = story["inputs"]
    again = engagement_daily(inputs.activity_df, inputs.users_df, MAX_DATE)
    assert_df_equality(again, story[GOLD_ENGAGEMENT.full_name], ignore_row_order=True)


#: Every error-level check of lakehouse/gold/checks.py, by the table it belongs to (docs/contract.md,
#: "Checks on the gold tables").
EXPECTED_CHECKS = [
    *[
        (t.full_name, c)
        for t in (
            GOLD_ACTIVE_USER,
            GOLD_LIFECYCLE,
            GOLD_RETENTION,
            GOLD_GROWTH,
            GOLD_ENGAGEMENT,
            GOLD_MILES_WEEKLY,
            GOLD_MILES_CATEGORY,
            GOLD_METRIC_ANOMALIES,
            GOLD_USER_STATUS,
        )
        for c in ("unique_grain_keys", "no_null_keys")
    ],
    (GOLD_USER_STATUS.full_name, "user_counts_equal_agg_user_lifecycle_weekly"),
    (GOLD_USER_STATUS.full_name, "active_status_iff_events_in_week"),
    (GOLD_ACTIVE_USER.full_name, "daily_active_within_week_and_month"),
    (GOLD_LIFECYCLE.full_name, "weekly_active_equals_new_retained_resurrected"),
    (GOLD_LIFECYCLE.full_name, "lifecycle_total_equals_users_acquired"),
    (GOLD_LIFECYCLE.full_name, "week_spine_has_no_gaps"),
    (GOLD_RETENTION.full_name, "offset_zero_retained_equals_cohort_size_equals_new"),
    (GOLD_RETENTION.full_name, "retention_rate_between_0_and_1"),
    (GOLD_RETENTION.full_name, "unbounded_at_least_retained"),
    (GOLD_GROWTH.full_name, "active_equals_prev_plus_new_plus_resurrected_minus_churned"),
    (GOLD_GROWTH.full_name, "active_equals_agg_active_user_weekly"),
    (GOLD_ENGAGEMENT.full_name, "dau_within_wau_within_mau"),
    (GOLD_ENGAGEMENT.full_name, "dau_equals_agg_active_user_daily"),
    (GOLD_MILES_WEEKLY.full_name, "outstanding_equals_previous_plus_net"),
    (GOLD_MILES_WEEKLY.full_name, "liability_at_least_outstanding_and_zero"),
    (GOLD_MILES_WEEKLY.full_name, "last_week_equals_dim_users_snapshot"),
    (GOLD_MILES_CATEGORY.full_name, "categories_sum_to_agg_miles_weekly"),
    (GOLD_MILES_CATEGORY.full_name, "events_users_and_miles_consistent"),
    (GOLD_METRIC_ANOMALIES.full_name, "lower_bound_le_expected_le_upper_bound"),
    (GOLD_METRIC_ANOMALIES.full_name, "is_anomaly_equals_abs_score_above_sensitivity"),
    (GOLD_METRIC_ANOMALIES.full_name, "training_periods_between_min_and_max"),
]


def test_error_checks_pass_on_the_story_and_catch_a_broken_table(story):
    tables = {k: v for k, v in story.items() if k != "inputs"}
    results = run_all_checks(tables, story["inputs"])
    assert [r.check_name for r in results if r.status != "pass"] == []
    assert sorted((r.table_name, r.check_name) for r in results) == sorted(EXPECTED_CHECKS)
    broken = dict(tables)
    broken[GOLD_LIFECYCLE.full_name] = tables[GOLD_LIFECYCLE.full_name].withColumn(
        "user_count", F.when(F.col("user_status") == "new", F.col("user_count") + 1).otherwise(F.col("user_count"))
    )
    failed = {r.check_name for r in run_all_checks(broken, story["inputs"]) if r.status == "fail"}
    assert failed == {
        "weekly_active_equals_new_retained_resurrected",
        "lifecycle_total_equals_users_acquired",
        "offset_zero_retained_equals_cohort_size_equals_new",
        "user_counts_equal_agg_user_lifecycle_weekly",
    }
    # A user row dropped, one made active without events: the user table's own checks catch them.
    users = tables[GOLD_USER_STATUS.full_name].where("NOT (user_id = 'u_new' AND cutoff_week = DATE'2025-01-12')")
    status = F.when(F.col("user_id") == "u_month", "retained").otherwise(F.col("user_status"))
    broken = {**tables, GOLD_USER_STATUS.full_name: users.withColumn("user_status", status)}
    failed = {r.check_name for r in run_all_checks(broken, story["inputs"]) if r.status == "fail"}
    assert failed == {"user_counts_equal_agg_user_lifecycle_weekly", "active_status_iff_events_in_week"}


#: The fields of GoldInputs each optional input sets.
OPTIONAL_FIELDS = {"grid": ("grid_df",), "miles": ("miles_events_df", "miles_base_df"), "status": ("status_df",),
                   "week_ends": ("week_ends_df",)}  # fmt: skip


@pytest.mark.parametrize("since", [None, date(2025, 3, 2)], ids=["full", "incremental"])
def test_each_table_reads_only_the_optional_inputs_it_declares(story, since):
    """The gold job computes the grid and the miles inputs only for the tables that declare them
    (``GoldTable.reads``, the others get None there): building and checking each table from such
    inputs must not touch the others (the DataFrames are built, not run)."""
    assert tuple(OPTIONAL_FIELDS) == OPTIONAL_INPUTS
    story_inputs = story["inputs"]
    users = story_inputs.users_df.withColumn("last_event_date", F.col("first_event_date"))  # what silver gives
    full = dataclasses.replace(story_inputs, since=since, users_df=users)

    def only_declared(tables, name):
        reads = tables[name].reads(since)
        return dataclasses.replace(full, **{f: None for k, fs in OPTIONAL_FIELDS.items() if k not in reads for f in fs})

    def build_and_check(tables):
        built = {}

        def table(name):
            if name not in built:
                built[name] = tables[name].compute(only_declared(tables, name), lambda: story[name])
            return built[name]

        for name, gold in tables.items():
            table(name)
            for check in gold.checks:
                check(table, only_declared(tables, name))

    build_and_check(GOLD_TABLES)
    # The test sees an undeclared read: lifecycle without its statuses fails.
    undeclared = dict(GOLD_TABLES)
    undeclared[GOLD_LIFECYCLE.full_name] = dataclasses.replace(
        GOLD_TABLES[GOLD_LIFECYCLE.full_name], reads=lambda since: frozenset()
    )
    with pytest.raises(AttributeError):
        build_and_check(undeclared)
