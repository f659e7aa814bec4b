"""``gold.agg_engagement_daily``: daily stickiness over rolling windows.

Grain: one row per ``(activity_date, acq_source, country)`` for every day from the segment's first
acquired user's ``first_event_date`` to the data's last date; days without activity are rows with 0.
``dau`` counts the segment's users active on the day, ``wau_7d`` those active on a day of
``[d-6, d]``, ``mau_30d`` of ``[d-29, d]``; ``dau_mau_rate = dau / mau_30d`` and ``dau_wau_rate =
dau / wau_7d`` (null when the denominator is 0). Rolling windows, not calendar months, so a
stickiness figure does not jump on the first of a month. The counts equal the number of
``silver.dim_users`` rows of that ``ds`` with ``last_event_date = ds``, ``is_active_7d`` and
``is_active_30d``.

How the windows are counted without expanding every user x day: an active day ``a`` of a user
followed by their next active day ``n`` keeps the user inside an N-day window on the days
``[a, min(n, a + N) - 1]``. Those intervals never overlap for one user, so the window count of a
day is a running sum of +1 at each interval start and -1 after each interval end, over a calendar
spine per segment.
"""

from __future__ import annotations

from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.gold.activity import SEGMENT, GoldInputs
from lakehouse.gold.checks import Measure, rows_where
from lakehouse.gold.table import GoldTable
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.registry import BOOL, DATE, DOUBLE, LONG, STRING, RatioMetric, TableSpec, column

SPEC = TableSpec(
    "gold", "agg_engagement_daily",
    T.StructType([
        column("activity_date", DATE, False, "the day the rolling windows end on"),
        column("acq_source", STRING, False), column("country", STRING, False),
        column("dau", LONG, False, "users of the segment active on activity_date"),
        column("wau_7d", LONG, False, "users of the segment active on a day of [activity_date-6, activity_date]"),
        column("mau_30d", LONG, False, "users of the segment active on a day of [activity_date-29, activity_date]"),
        column("dau_mau_rate", DOUBLE, True, "stickiness: dau / mau_30d, 0..1; null when mau_30d = 0"),
        column("dau_wau_rate", DOUBLE, True, "dau / wau_7d, 0..1; null when wau_7d = 0"),
        column("is_partial_period", BOOL, False, "always false: every day up to the data's last date is complete"),
    ]),
    "One row per (activity_date, acq_source, country) for every day from the segment's first acquired user's "
    "first_event_date to the data's last date, days without activity included.",
    metrics=(
        RatioMetric("dau_mau_rate", ("dau",), ("mau_30d",), "stickiness: daily over rolling 30-day active users"),
        RatioMetric("dau_wau_rate", ("dau",), ("wau_7d",), "daily over rolling 7-day active users"),
    ),
    keys=("activity_date", "acq_source", "country"),
)  # fmt: skip

WINDOWS = {"dau": 1, "wau_7d": 7, "mau_30d": 30}


def _rate(numerator: str, denominator: str) -> Column:
    return F.when(F.col(denominator) > 0, F.col(numerator).cast("double") / F.col(denominator))


def engagement_daily(
    activity_df: DataFrame, users_df: DataFrame, max_event_date: date, from_day: date | None = None
) -> DataFrame:
    """gold.agg_engagement_daily from user x active day and the user segments.

    With ``from_day`` (activity_df starting there), only the days from ``from_day + 29`` on are
    exact: an interval that starts before ``from_day`` ends before that day, and its +1 and -1 are
    both missing, so the running sums agree from there. The caller keeps those days.
    """
    next_day = Window.partitionBy("user_id").orderBy("event_date")
    days = activity_df.join(users_df.select("user_id", *SEGMENT), on="user_id", how="inner").select(
        "user_id", *SEGMENT, "event_date", F.lead("event_date").over(next_day).alias("next_date")
    )
    # One +1 on the first day an interval covers and one -1 on the day after its last, per window
    # (least() skips the null next_date of a user's last active day).
    deltas = [
        days.select(*SEGMENT, day.alias("day"), F.lit(name).alias("metric"), F.lit(sign).alias("delta"))
        for name, n in WINDOWS.items()
        for day, sign in ((F.col("event_date"), 1), (F.least("next_date", F.date_add("event_date", n)), -1))
    ]
    changes = (
        reduce(DataFrame.unionByName, deltas)
        .where(F.col("day") <= F.lit(max_event_date))
        .groupBy(*SEGMENT, "day")
        .pivot("metric", list(WINDOWS))
        .agg(F.sum("delta"))
    )
    spine = (
        users_df.groupBy(*SEGMENT)
        .agg(F.min("first_event_date").alias("first_day"))
        .select(*SEGMENT, F.explode(F.sequence(_spine_start(from_day), F.lit(max_event_date))).alias("day"))
    )
    running = Window.partitionBy(*SEGMENT).orderBy("day").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    counts = spine.join(changes, on=[*SEGMENT, "day"], how="left").select(
        F.col("day").alias("activity_date"),
        *SEGMENT,
        *[F.sum(F.coalesce(name, F.lit(0))).over(running).cast("long").alias(name) for name in WINDOWS],
    )
    return counts.select(
        "activity_date",
        *SEGMENT,
        "dau",
        "wau_7d",
        "mau_30d",
        _rate("dau", "mau_30d").alias("dau_mau_rate"),
        _rate("dau", "wau_7d").alias("dau_wau_rate"),
        (F.col("activity_date") > F.lit(max_event_date)).alias("is_partial_period"),
    )


def _spine_start(from_day: date | None) -> Column:
    return F.col("first_day") if from_day is None else F.greatest("first_day", F.lit(from_day))


def scope(inputs: GoldInputs) -> str | None:
    """The rows recomputed from ``inputs.since``: the days from since on."""
    return None if inputs.since is None else f"activity_date >= DATE'{inputs.since}'"


def build(inputs: GoldInputs) -> DataFrame:
    df = engagement_daily(inputs.activity_df, inputs.users_df, inputs.max_event_date, inputs.activity_from)
    where = scope(inputs)
    return df if where is None else df.where(where)


# Checks (error-level, attributed to this table; see lakehouse.gold.checks)


def engagement_windows_nested(engagement: DataFrame) -> Measure:
    bad = (F.col("dau") > F.col("wau_7d")) | (F.col("wau_7d") > F.col("mau_30d")) | (F.col("dau") < 0)
    return rows_where(SPEC.full_name, "dau_within_wau_within_mau", engagement, bad,
                   "0 <= dau <= wau_7d <= mau_30d")  # fmt: skip


def engagement_dau_equals_daily_active(engagement: DataFrame, active: DataFrame) -> Measure:
    daily = active.where(F.col("period_type") == "daily").select(
        F.col("period_start_date").alias("activity_date"), *SEGMENT, F.col("active_users").alias("daily_active")
    )
    joined = engagement.where(F.col("dau") > 0).join(daily, on=["activity_date", *SEGMENT], how="full_outer")
    bad = F.coalesce("dau", F.lit(0)) != F.coalesce("daily_active", F.lit(0))
    return rows_where(SPEC.full_name, "dau_equals_agg_active_user_daily", joined, bad,
                   "dau = agg_active_user daily active_users per day and segment")  # fmt: skip


GOLD = GoldTable(
    SPEC,
    build,
    scope,
    checks=(
        lambda t, i: [engagement_windows_nested(t(SPEC.full_name))],
        lambda t, i: [engagement_dau_equals_daily_active(t(SPEC.full_name), t(GOLD_ACTIVE_USER.full_name))],
    ),
)
