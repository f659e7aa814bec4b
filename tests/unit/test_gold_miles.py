"""The miles economy on a hand-built story: each user and event is a named case, expected rows by hand.

Sunday weeks W0 = 2025-01-05 .. W7 = 2025-02-23; the data's last date is Wednesday 2025-02-26, so W7
is partial. Segment G = (google, SG): ``u_neg`` redeems more than they earned (balance -200 from W1),
``u_pos`` earns, searches a reward, likes (W3: no miles event in the segment), earns again in W7.
Segment FB = (facebook, MY): ``u_mid`` arrives mid-history (W4), with a share, an earn and a redemption.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakehouse.gold import activity as metrics
from lakehouse.gold.checks import run_checks
from lakehouse.gold.tables.agg_miles_category_weekly import GOLD as CATEGORY
from lakehouse.gold.tables.agg_miles_weekly import GOLD as WEEKLY

W = [date(2025, 1, 5) + timedelta(weeks=k) for k in range(8)]
MAX_DATE = date(2025, 2, 26)
G, FB = ("google", "SG"), ("facebook", "MY")
SEGMENTS = {"u_neg": G, "u_pos": G, "u_mid": FB}

EVENTS = [
    ("u_neg", date(2025, 1, 6), "miles_earned", "dining", "100.00"),
    ("u_neg", date(2025, 1, 14), "miles_redeemed", "flight", "300.00"),  # redeems more than earned: -200
    ("u_pos", date(2025, 1, 7), "miles_earned", "shopping", "500.00"),
    ("u_pos", date(2025, 1, 8), "reward_search", "apple", None),  # a search: miles 0 in the category table
    ("u_pos", date(2025, 1, 28), "like", None, None),  # W3: active, but no miles event in the segment
    ("u_pos", date(2025, 2, 25), "miles_earned", "ecommerce", "50.00"),
    ("u_mid", date(2025, 2, 3), "share", None, None),  # the FB segment's first user arrives in W4
    ("u_mid", date(2025, 2, 4), "miles_earned", "dining", "200.00"),
    ("u_mid", date(2025, 2, 18), "miles_redeemed", "hotel", "80.00"),
]
#: Arrives late, 6 weeks back: turns u_neg's balance positive from W1 on.
LATE_EARN = ("u_neg", date(2025, 1, 13), "miles_earned", "dining", "1000.00")

WEEKLY_COLUMNS = (
    "week_start acq_source country miles_earned miles_redeemed net_miles earn_events redeem_events earning_users "
    "redeeming_users outstanding_miles liability_miles negative_balance_users redemption_rate is_partial_period"
)


def _d(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def _inputs(spark, events, since=None, base=None):
    df = spark.createDataFrame(
        [(u, d, t, c, _d(m) if m else None) for u, d, t, c, m in events],
        "user_id string, event_date date, event_type string, transaction_category string, miles_amount decimal(10,2)",
    )
    activity = df.select("user_id", "event_date").distinct()
    users = spark.createDataFrame(
        [(u, *SEGMENTS[u], min(d for uu, d, *_ in events if uu == u)) for u in SEGMENTS],
        "user_id string, acq_source string, country string, first_event_date date",
    )
    if since is not None and base is not None:
        df = df.where(F.col("event_date") >= F.lit(metrics.week_start_of(since, "sunday")))
    return metrics.gold_inputs(activity, users, MAX_DATE, "sunday", 4, 16, since, events_df=df, miles_base_df=base)


def _weekly_rows(df):
    return {tuple(r) for r in df.select(*WEEKLY_COLUMNS.split()).collect()}


def _row(week, seg, earned, redeemed, earn_n, redeem_n, earners, redeemers, outstanding, liability, negative):
    earned, redeemed = _d(earned), _d(redeemed)
    rate = float(redeemed / earned) if earned else None
    return (week, *seg, earned, redeemed, earned - redeemed, earn_n, redeem_n, earners, redeemers, _d(outstanding),
            _d(liability), negative, rate, week + timedelta(days=6) > MAX_DATE)  # fmt: skip


#: G: W0 earns 600 (two earners); W1 u_neg redeems 300 -> -200, counted negative, not in the liability;
#: W2-W6 nothing (zeros, stocks carried); W7 earns 50. FB: rows start at W4 (its first user).
EXPECTED = {
    _row(W[0], G, 600, 0, 2, 0, 2, 0, 600, 600, 0),
    _row(W[1], G, 0, 300, 0, 1, 0, 1, 300, 500, 1),
    *[_row(W[k], G, 0, 0, 0, 0, 0, 0, 300, 500, 1) for k in range(2, 7)],
    _row(W[7], G, 50, 0, 1, 0, 1, 0, 350, 550, 1),
    _row(W[4], FB, 200, 0, 1, 0, 1, 0, 200, 200, 0),
    _row(W[5], FB, 0, 0, 0, 0, 0, 0, 200, 200, 0),
    _row(W[6], FB, 0, 80, 0, 1, 0, 1, 120, 120, 0),
    _row(W[7], FB, 0, 0, 0, 0, 0, 0, 120, 120, 0),
}
#: With the late earn of 1000 in W1: u_neg ends W1 at +800, no negative user, every later week's stocks move.
EXPECTED_LATE = (EXPECTED - {r for r in EXPECTED if r[1:3] == G and r[0] >= W[1]}) | {
    _row(W[1], G, 1000, 300, 1, 1, 1, 1, 1300, 1300, 0),
    *[_row(W[k], G, 0, 0, 0, 0, 0, 0, 1300, 1300, 0) for k in range(2, 7)],
    _row(W[7], G, 50, 0, 1, 0, 1, 0, 1350, 1350, 0),
}


@pytest.fixture(scope="module")
def story(spark):
    inputs = _inputs(spark, EVENTS)
    return inputs, WEEKLY.build(inputs).cache(), CATEGORY.build(inputs).cache()


def test_miles_weekly_story(story):
    assert _weekly_rows(story[1]) == EXPECTED


def test_redemption_rate_is_a_ratio_of_sums_and_null_without_earnings(story):
    rates = {(r["week_start"], r["acq_source"]): r["redemption_rate"] for r in story[1].collect()}
    assert rates[(W[0], "google")] == 0.0 and rates[(W[1], "google")] is None and rates[(W[6], "facebook")] is None


def test_miles_category_story(story):
    got = {tuple(r) for r in story[2].drop("week_label").collect()}
    assert got == {
        (W[0], "miles_earned", "dining", *G, 1, 1, _d(100), False),
        (W[0], "miles_earned", "shopping", *G, 1, 1, _d(500), False),
        (W[0], "reward_search", "apple", *G, 1, 1, _d(0), False),  # a search: miles 0
        (W[1], "miles_redeemed", "flight", *G, 1, 1, _d(300), False),
        (W[7], "miles_earned", "ecommerce", *G, 1, 1, _d(50), True),
        (W[4], "miles_earned", "dining", *FB, 1, 1, _d(200), False),
        (W[6], "miles_redeemed", "hotel", *FB, 1, 1, _d(80), False),
    }  # share and like are not in the table


def test_late_earn_six_weeks_back_changes_every_later_week(spark, story):
    full = WEEKLY.build(_inputs(spark, [*EVENTS, LATE_EARN]))
    assert _weekly_rows(full) == EXPECTED_LATE
    # Incremental: the weeks from the late event's week, from the balances before it (as the job
    # passes them from the dim_users snapshot of 2025-01-11) and the events from W1 on.
    base = spark.createDataFrame(
        [("u_neg", _d(100)), ("u_pos", _d(500))], "user_id string, miles_balance decimal(20,2)"
    )
    since = LATE_EARN[1]
    recomputed = WEEKLY.build(_inputs(spark, [*EVENTS, LATE_EARN], since=since, base=base))
    assert WEEKLY.scope(_inputs(spark, [*EVENTS, LATE_EARN], since=since)) == f"week_start >= DATE'{W[1]}'"
    kept = story[1].where(F.col("week_start") < F.lit(W[1]))
    assert_df_equality(kept.unionByName(recomputed), full, ignore_row_order=True, ignore_nullable=True)
    # The same from balances summed from the events (no snapshot given).
    summed = WEEKLY.build(_inputs(spark, [*EVENTS, LATE_EARN], since=since))
    assert_df_equality(summed, recomputed, ignore_row_order=True, ignore_nullable=True)


def test_checks_pass_on_the_story_and_catch_broken_tables(story):
    inputs, weekly, category = story
    tables = {WEEKLY.full_name: weekly, CATEGORY.full_name: category}
    results = run_checks(WEEKLY, tables.__getitem__, inputs) + run_checks(CATEGORY, tables.__getitem__, inputs)
    assert [r.check_name for r in results if r.status != "pass"] == []
    assert len(results) == 2 * 2 + len(WEEKLY.checks) + len(CATEGORY.checks)
    # One week's outstanding off by a mile: the recursion breaks at that week and the next; liability
    # below outstanding there. A liability below zero elsewhere.
    broken = weekly.withColumn(
        "outstanding_miles",
        F.when(F.col("week_start") == F.lit(W[7]), F.col("outstanding_miles") + 1000).otherwise(
            F.col("outstanding_miles")
        ),
    )
    failed = {r.check_name: r.failed_rows for r in run_checks(WEEKLY, {**tables, WEEKLY.full_name: broken}.__getitem__,
                                                              inputs) if r.status == "fail"}  # fmt: skip
    assert failed == {
        "outstanding_equals_previous_plus_net": 2,  # W7 of G and of FB
        "liability_at_least_outstanding_and_zero": 2,
        "last_week_equals_dim_users_snapshot": 2,
    }
    lost = category.where(F.col("transaction_category") != "hotel")
    failed = {r.check_name for r in run_checks(CATEGORY, {**tables, CATEGORY.full_name: lost}.__getitem__, inputs)
              if r.status == "fail"}  # fmt: skip
    assert failed == {"categories_sum_to_agg_miles_weekly"}
