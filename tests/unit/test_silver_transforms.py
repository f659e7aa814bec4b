"""silver.fct_events and silver.dim_users transforms on hand-built events, one named case per user."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakehouse.registry import BRONZE_EVENTS, SILVER_EVENTS
from lakehouse.silver.dim_users import build_snapshots, state_from_events, state_from_snapshot
from lakehouse.silver.fct_events import build_events
from tests.reference.spec_reference import json_object

INGESTED = datetime(2025, 6, 1)
CATEGORY = {"miles_earned": "dining", "miles_redeemed": "flight", "reward_search": "apple"}


def md5_id(ts: str, user: str, event_type: str) -> str:
    return hashlib.md5(f"{ts}.000000-{user}-{event_type}".encode()).hexdigest()


def bronze_row(ts, user, event_type, miles=None, utm="google", country="SG", platform="ios", line=2, file="f.csv"):
    t = datetime.fromisoformat(ts)
    return (t, user, event_type, CATEGORY.get(event_type), None if miles is None else Decimal(miles), platform,
            utm, country, t.date(), file, line, INGESTED, "b1", [])  # fmt: skip


@pytest.fixture(scope="module")
def events(spark):
    rows = [
        # u_first: one event; snapshots start on its day.
        bronze_row("2025-01-10 09:00:00", "u_first", "share"),
        # u_gap: one event on 01-01, nothing after: the 7/30/90-day flags switch off one by one.
        bronze_row("2025-01-01 12:00:00", "u_gap", "miles_earned", "100.00"),
        # u_neg: earns 100 then redeems 300: a negative balance, a finding not an error.
        bronze_row("2025-01-02 08:00:00", "u_neg", "miles_earned", "100.00"),
        bronze_row("2025-01-05 10:00:00", "u_neg", "miles_redeemed", "300.00"),
        # u_tie: two events at the same event_time; the smaller event_id is the first event.
        bronze_row("2025-01-03 07:00:00", "u_tie", "share", utm="google", country="SG"),
        bronze_row("2025-01-03 07:00:00", "u_tie", "like", utm="tiktok", country="MY"),
        # u_switch: utm_source changes later; attribution stays with the first event.
        bronze_row("2025-01-04 10:00:00", "u_switch", "reward_search", utm="google"),
        bronze_row("2025-01-20 10:00:00", "u_switch", "miles_earned", "50.50", utm="facebook"),
        # u_dup: the same event delivered twice (another line): one silver row, first line wins.
        bronze_row("2025-01-06 10:00:00", "u_dup", "miles_earned", "10.00", platform="web", line=7),
        bronze_row("2025-01-06 10:00:00", "u_dup", "miles_earned", "10.00", platform="android", line=3),
    ]
    return build_events(spark.createDataFrame(rows, BRONZE_EVENTS.schema)).cache()


def silver_row(ts, user, event_type, miles=None, utm="google", country="SG", platform="ios"):
    """The silver event of ``bronze_row``: id from hashlib, event_data as the reference writes JSON."""
    t = datetime.fromisoformat(ts)
    category, amount = CATEGORY.get(event_type), None if miles is None else Decimal(miles)
    data = json_object([("transaction_category", category), ("miles_amount", amount), ("platform", platform)])
    return (md5_id(ts, user, event_type), t, t.date(), user, event_type, category, amount, platform, utm, country,
            data, "b1")  # fmt: skip


def test_fct_events_ids_json_and_dedup(spark, events):
    dup = events.where(F.col("user_id") == "u_dup").collect()
    assert len(dup) == 1
    assert dup[0]["event_id"] == md5_id("2025-01-06 10:00:00", "u_dup", "miles_earned")
    assert json.loads(dup[0]["event_data"]) == {"transaction_category": "dining", "miles_amount": 10.0,
                                                "platform": "android"}  # fmt: skip
    share = events.where(F.col("user_id") == "u_first").first()
    assert json.loads(share["event_data"]) == {"transaction_category": None, "miles_amount": None, "platform": "ios"}
    # The whole table: one row per event, each bronze row of the fixture but u_dup's second delivery.
    expected = [
        silver_row("2025-01-10 09:00:00", "u_first", "share"),
        silver_row("2025-01-01 12:00:00", "u_gap", "miles_earned", "100.00"),
        silver_row("2025-01-02 08:00:00", "u_neg", "miles_earned", "100.00"),
        silver_row("2025-01-05 10:00:00", "u_neg", "miles_redeemed", "300.00"),
        silver_row("2025-01-03 07:00:00", "u_tie", "share", utm="google", country="SG"),
        silver_row("2025-01-03 07:00:00", "u_tie", "like", utm="tiktok", country="MY"),
        silver_row("2025-01-04 10:00:00", "u_switch", "reward_search", utm="google"),
        silver_row("2025-01-20 10:00:00", "u_switch", "miles_earned", "50.50", utm="facebook"),
        # u_dup: line 3 (android) is the first delivery of the same file and ingestion time; line 7 is dropped.
        silver_row("2025-01-06 10:00:00", "u_dup", "miles_earned", "10.00", platform="android"),
    ]  # fmt: skip
    assert_df_equality(
        events, spark.createDataFrame(expected, SILVER_EVENTS.schema), ignore_row_order=True, ignore_metadata=True
    )


def _snapshots(events, start: date, end: date):
    empty = state_from_events(events.limit(0))
    return build_snapshots(empty, events, start, end)


COLUMNS = ["user_id", "ds", "acq_source", "country", "total_events", "total_miles_earned", "total_miles_redeemed",
           "miles_balance", "is_active_7d", "is_active_30d", "is_active_90d"]  # fmt: skip


def test_dim_users_named_cases(spark, events):
    snaps = _snapshots(events, date(2025, 1, 1), date(2025, 4, 2))
    picks = [("u_first", "2025-01-09"), ("u_first", "2025-01-10"), ("u_gap", "2025-01-01"),
             ("u_gap", "2025-01-07"), ("u_gap", "2025-01-08"), ("u_gap", "2025-01-30"), ("u_gap", "2025-01-31"),
             ("u_gap", "2025-03-31"), ("u_gap", "2025-04-01"), ("u_neg", "2025-01-05"), ("u_tie", "2025-01-03"),
             ("u_switch", "2025-01-20")]  # fmt: skip
    wanted = spark.createDataFrame([(u, date.fromisoformat(d)) for u, d in picks], "user_id string, ds date")
    actual = snaps.join(wanted, ["user_id", "ds"], "inner").select(*COLUMNS)
    d = Decimal
    tie_first_utm = "google" if md5_id("2025-01-03 07:00:00", "u_tie", "share") < md5_id(
        "2025-01-03 07:00:00", "u_tie", "like") else "tiktok"  # fmt: skip
    tie_country = "SG" if tie_first_utm == "google" else "MY"
    expected = [
        # no row for u_first on 01-09: not acquired yet
        ("u_first", date(2025, 1, 10), "google", "SG", 1, d("0.00"), d("0.00"), d("0.00"), True, True, True),
        ("u_gap", date(2025, 1, 1), "google", "SG", 1, d("100.00"), d("0.00"), d("100.00"), True, True, True),
        ("u_gap", date(2025, 1, 7), "google", "SG", 1, d("100.00"), d("0.00"), d("100.00"), True, True, True),
        # 7 days after the event: [01-02, 01-08] has nothing -> 7-day flag off, 30-day on
        ("u_gap", date(2025, 1, 8), "google", "SG", 1, d("100.00"), d("0.00"), d("100.00"), False, True, True),
        ("u_gap", date(2025, 1, 30), "google", "SG", 1, d("100.00"), d("0.00"), d("100.00"), False, True, True),
        ("u_gap", date(2025, 1, 31), "google", "SG", 1, d("100.00"), d("0.00"), d("100.00"), False, False, True),
        ("u_gap", date(2025, 3, 31), "google", "SG", 1, d("100.00"), d("0.00"), d("100.00"), False, False, True),
        ("u_gap", date(2025, 4, 1), "google", "SG", 1, d("100.00"), d("0.00"), d("100.00"), False, False, False),
        ("u_neg", date(2025, 1, 5), "google", "SG", 2, d("100.00"), d("300.00"), d("-200.00"), True, True, True),
        ("u_tie", date(2025, 1, 3), tie_first_utm, tie_country, 2, d("0.00"), d("0.00"), d("0.00"), True, True, True),
        ("u_switch", date(2025, 1, 20), "google", "SG", 2, d("50.50"), d("0.00"), d("50.50"), True, True, True),
    ]  # fmt: skip
    assert_df_equality(actual, spark.createDataFrame(expected, actual.schema), ignore_row_order=True)


def test_dim_users_grain_and_latest_event(spark, events):
    snaps = _snapshots(events, date(2025, 1, 1), date(2025, 1, 31))
    # Grain: one row per user and day from the user's first event date to the range's end, no duplicates
    # (rows = distinct days = days in [first, 01-31]).
    grain = snaps.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct("ds").alias("days"), F.min("ds").alias("first_ds"),
        F.max("ds").alias("last_ds"),
    )  # fmt: skip
    end = date(2025, 1, 31)
    expected_grain = [  # (user, rows, distinct days, first ds = first event date, last ds)
        ("u_first", 22, 22, date(2025, 1, 10), end),  # snapshots start on its only event's day
        ("u_gap", 31, 31, date(2025, 1, 1), end),  # no event after 01-01: still one row every day
        ("u_neg", 30, 30, date(2025, 1, 2), end),
        ("u_tie", 29, 29, date(2025, 1, 3), end),  # two events on its first day: still one row that day
        ("u_switch", 28, 28, date(2025, 1, 4), end),
        ("u_dup", 26, 26, date(2025, 1, 6), end),
    ]
    assert_df_equality(grain, spark.createDataFrame(expected_grain, grain.schema), ignore_row_order=True)
    latest = snaps.where("user_id = 'u_neg' AND ds = DATE'2025-01-31'").first()
    assert json.loads(latest["latest_event"]) == {
        "event_id": md5_id("2025-01-05 10:00:00", "u_neg", "miles_redeemed"),
        "event_time": "2025-01-05 10:00:00.000000",
        "event_type": "miles_redeemed",
        "transaction_category": "flight",
        "miles_amount": 300.0,
        "platform": "ios",
    }
    assert latest["last_event_time"] == datetime(2025, 1, 5, 10, 0)


def test_carrying_state_forward_equals_one_range(events):
    """Day-by-day from the previous snapshot (the --ds mode) equals one range build (backfill mode)."""
    start, end = date(2025, 1, 1), date(2025, 1, 12)
    whole = _snapshots(events, start, end)
    previous = _snapshots(events, start, date(2025, 1, 2)).localCheckpoint()
    rows = previous.collect()
    day = date(2025, 1, 3)
    while day <= end:
        base = state_from_snapshot(previous.where(F.col("ds") == F.lit(day - timedelta(days=1))))
        # localCheckpoint cuts the lineage, as a real daily run that reads the stored snapshot would.
        previous = build_snapshots(base, events.where(F.col("event_date") == F.lit(day)), day, day).localCheckpoint()
        rows.extend(previous.collect())
        day += timedelta(days=1)
    assert_df_equality(whole.sparkSession.createDataFrame(rows, whole.schema), whole, ignore_row_order=True)


def test_first_negative_date_is_the_first_negative_day_so_far(spark):
    """``first_negative_date``: null until the end-of-day balance first goes negative, then that day for good
    (back above zero and negative again keeps the first); the same from a base state of older events."""
    rows = [
        bronze_row("2025-01-07 09:00:00", "u_back", "miles_earned", "50.00"),
        bronze_row("2025-01-08 09:00:00", "u_back", "miles_redeemed", "80.00"),  # -30: negative from 01-08
        bronze_row("2025-01-09 09:00:00", "u_back", "miles_earned", "100.00"),  # 70: positive again
        bronze_row("2025-01-15 09:00:00", "u_back", "miles_redeemed", "100.00"),  # -30 again
        # Earned and redeemed on one day, negative only at the end of the next: the day's net counts.
        bronze_row("2025-01-10 08:00:00", "u_day", "miles_redeemed", "20.00"),
        bronze_row("2025-01-10 09:00:00", "u_day", "miles_earned", "30.00"),
        bronze_row("2025-01-11 09:00:00", "u_day", "miles_redeemed", "15.00"),
        bronze_row("2025-01-07 10:00:00", "u_never", "miles_earned", "5.00"),
    ]
    events = build_events(spark.createDataFrame(rows, BRONZE_EVENTS.schema)).cache()
    start, end = date(2025, 1, 7), date(2025, 1, 20)
    whole = _snapshots(events, start, end).localCheckpoint()
    got = {(r["user_id"], r["ds"]): r["first_negative_date"] for r in whole.collect()}
    jan = partial(date, 2025, 1)
    assert [got[("u_back", jan(d))] for d in (7, 8, 9, 14, 15, 20)] == [None, *[jan(8)] * 5]
    assert [got[("u_day", jan(d))] for d in (10, 11, 20)] == [None, jan(11), jan(11)]
    assert {got[("u_never", jan(d))] for d in range(7, 21)} == {None}
    # From a base of older events (no snapshot before the range), as from the stored snapshot of the day before.
    split = jan(12)
    for base in (state_from_events(events.where(F.col("event_date") < F.lit(split))),
                 state_from_snapshot(whole.where(F.col("ds") == F.lit(split - timedelta(days=1))))):  # fmt: skip
        later = build_snapshots(base, events.where(F.col("event_date") >= F.lit(split)), split, end)
        # (nullability and column metadata differ by base; the rows must not)
        assert_df_equality(later, whole.where(F.col("ds") >= F.lit(split)), ignore_row_order=True,
                           ignore_nullable=True, ignore_metadata=True)  # fmt: skip
