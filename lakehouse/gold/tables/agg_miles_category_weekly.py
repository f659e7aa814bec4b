"""``gold.agg_miles_category_weekly``: where miles are earned, searched for and spent.

Grain: one row per ``(week_start, event_type, transaction_category, acq_source, country)`` with
``events > 0``, for ``event_type`` in ``miles_earned`` (dining / ecommerce / shopping),
``miles_redeemed`` (flight / hotel) and ``reward_search`` (apple / lululemon / shopee; miles 0).
``events`` counts the week's events, ``users`` the distinct users, ``miles`` sums ``miles_amount``.
Summed over categories, the earned and redeemed rows equal ``gold.agg_miles_weekly`` (checked).
Incremental: the weeks from since's week on, from their events.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.gold.activity import LABEL_FORMAT, SEGMENT, GoldInputs, partial, week_start
from lakehouse.gold.checks import Measure, rows_where
from lakehouse.gold.table import GoldTable, reading
from lakehouse.gold.tables.agg_miles_weekly import SPEC as GOLD_MILES_WEEKLY
from lakehouse.registry import BOOL, DATE, LONG, MILES_SUM, STRING, TableSpec, column

SPEC = TableSpec(
    "gold", "agg_miles_category_weekly",
    T.StructType([
        column("week_start", DATE, False), column("week_label", STRING, False),
        column("event_type", STRING, False, "miles_earned | miles_redeemed | reward_search"),
        column("transaction_category", STRING, False),
        column("acq_source", STRING, False), column("country", STRING, False),
        column("events", LONG, False, "events of the week"),
        column("users", LONG, False, "distinct users with such an event"),
        column("miles", MILES_SUM, False, "sum of miles_amount; 0 for reward_search"),
        column("is_partial_period", BOOL, False),
    ]),
    "One row per (week_start, event_type, transaction_category, acq_source, country) with events > 0.",
    keys=("week_start", "event_type", "transaction_category", "acq_source", "country"),
)  # fmt: skip

MILES = "decimal(18,2)"


def miles_category_weekly(events_df: DataFrame, users_df: DataFrame, max_event_date: date, first_day: str) -> DataFrame:
    """gold.agg_miles_category_weekly from miles events (user_id, event_date, event_type, category, miles)."""
    week = week_start(F.col("event_date"), first_day)
    return (
        events_df.join(users_df.select("user_id", *SEGMENT), on="user_id", how="inner")
        .groupBy(week.alias("week_start"), "event_type", "transaction_category", *SEGMENT)
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.countDistinct("user_id").alias("users"),
            F.coalesce(F.sum("miles_amount"), F.lit(0)).alias("miles"),
        )
        .select(
            "week_start",
            F.date_format("week_start", LABEL_FORMAT).alias("week_label"),
            "event_type",
            "transaction_category",
            *SEGMENT,
            F.col("events").cast("long").alias("events"),
            F.col("users").cast("long").alias("users"),
            F.col("miles").cast(MILES).alias("miles"),
            partial(F.date_add("week_start", 6), max_event_date).alias("is_partial_period"),
        )
    )


def scope(inputs: GoldInputs) -> str | None:
    """The rows recomputed from ``inputs.since``: the weeks from since's week on."""
    return None if inputs.since is None else f"week_start >= DATE'{inputs.since_week}'"


def build(inputs: GoldInputs) -> DataFrame:
    return miles_category_weekly(inputs.miles_events_df, inputs.users_df, inputs.max_event_date, inputs.week_start)


# Checks (error-level, attributed to this table; see lakehouse.gold.checks)


def categories_sum_to_weekly(category: DataFrame, weekly: DataFrame) -> Measure:
    """Earned and redeemed rows, summed over categories, equal the weekly table's flows (weeks with events)."""
    sums = (
        category.where(F.col("event_type").isin("miles_earned", "miles_redeemed"))
        .groupBy("week_start", *SEGMENT)
        .pivot("event_type", ["miles_earned", "miles_redeemed"])
        .agg(F.sum("miles").alias("miles"), F.sum("events").alias("events"))
    )
    flows = weekly.where((F.col("earn_events") > 0) | (F.col("redeem_events") > 0)).select(
        "week_start", *SEGMENT, "miles_earned", "miles_redeemed", "earn_events", "redeem_events"
    )
    joined = sums.join(flows, on=["week_start", *SEGMENT], how="full_outer")
    pairs = [
        ("miles_earned_miles", "miles_earned"),
        ("miles_redeemed_miles", "miles_redeemed"),
        ("miles_earned_events", "earn_events"),
        ("miles_redeemed_events", "redeem_events"),
    ]
    bad = F.lit(False)
    for mine, theirs in pairs:
        bad = bad | (F.coalesce(F.col(mine), F.lit(0)) != F.coalesce(F.col(theirs), F.lit(0)))
    details = ("per week and segment: sum over categories of miles and events of miles_earned / miles_redeemed "
               "= agg_miles_weekly miles_earned, earn_events / miles_redeemed, redeem_events")  # fmt: skip
    return rows_where(SPEC.full_name, "categories_sum_to_agg_miles_weekly", joined, bad, details)


def category_bounds(category: DataFrame) -> Measure:
    bad = (
        (F.col("events") <= 0)
        | (F.col("users") > F.col("events"))
        | ((F.col("event_type") == "reward_search") & (F.col("miles") != 0))
        | ((F.col("event_type") != "reward_search") & (F.col("miles") <= 0))
    )
    return rows_where(SPEC.full_name, "events_users_and_miles_consistent", category, bad,
                      "0 < users <= events; miles 0 for reward_search, > 0 for earned and redeemed")  # fmt: skip


GOLD = GoldTable(
    SPEC,
    build,
    scope,
    checks=(
        lambda t, i: [categories_sum_to_weekly(t(SPEC.full_name), t(GOLD_MILES_WEEKLY.full_name))],
        lambda t, i: [category_bounds(t(SPEC.full_name))],
    ),
    reads=reading("miles"),
)
