"""``gold.user_status_weekly``: the users behind the lifecycle counts, one row per user and week.

Grain: one row per ``(user_id, cutoff_week)`` for every user whose first active week ``f <= W``, for every
week ``W`` from ``f`` to the week of the data's last date (no gaps). Who is new, retained, resurrected,
dormant or churned each week (the lifecycle rule of :func:`lakehouse.gold.activity.user_statuses`,
``gold.lookback_weeks`` from conf) and their status the week before, with the week's activity and miles and
where they stand at its end:

- ``events_in_week``, ``miles_earned_in_week``, ``miles_redeemed_in_week``: the week's events and miles sums
  (0 when none), as the difference of the user's running totals in ``silver.dim_users`` at the week's end and
  at the previous week's end;
- ``last_active_date`` (the user's latest event_date on or before ``W + 6``) and ``miles_balance``: the
  ``silver.dim_users`` snapshot of ``ds = min(W + 6, max_event_date)`` (its ``last_event_date`` is exactly
  that date); ``weeks_since_active = (W - week_of(last_active_date)) / 7``, 0 when active in ``W``.

``gold.agg_user_lifecycle_weekly`` counts the same statuses (``user_statuses``, one computation shared
by both tables), so the two cannot disagree; the identity is still an error-level check of this table, on the
published rows of the recomputed weeks. Incremental: a run recomputes the weeks from ``since``'s week on (a
late event changes its week and the weeks after it for its user; a new day changes the latest week) and
replaces exactly those weeks (partitioned by ``cutoff_week``); equal to a full rebuild.

The table holds user ids: it is restricted (``TableSpec.restricted``): over the SQL endpoint only a user
granted it by name reads it (``gold.*`` does not include it), and it is the input of the audiences
(:mod:`lakehouse.audiences`).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.gold.activity import LABEL_FORMAT, SEGMENT, GoldInputs, partial, week_start
from lakehouse.gold.checks import Measure, rows_where
from lakehouse.gold.table import GoldTable, reading
from lakehouse.registry import BOOL, DATE, INT, LONG, MILES_SUM, STRING, TableSpec, column

SPEC = TableSpec(
    "gold", "user_status_weekly",
    T.StructType([
        column("user_id", STRING, False), column("cutoff_week", DATE, False, "first day of the week"),
        column("cutoff_week_label", STRING, False), column("acq_source", STRING, False),
        column("country", STRING, False),
        column("user_status", STRING, False, "new | retained | resurrected | dormant | churned (the lifecycle rule)"),
        column("previous_status", STRING, True, "user_status in the week before; null in the user's first week"),
        column("events_in_week", LONG, False, "the user's events of the week"),
        column("miles_earned_in_week", MILES_SUM, False, "sum of miles_amount of the user's miles_earned events of "
               "the week (0 when none)"),
        column("miles_redeemed_in_week", MILES_SUM, False, "sum of miles_amount of the user's miles_redeemed "
               "events of the week (0 when none)"),
        column("last_active_date", DATE, False, "the user's latest event_date on or before the week's last day"),
        column("weeks_since_active", INT, False, "(cutoff_week - week of last_active_date) / 7; 0 when active"),
        column("miles_balance", T.DecimalType(20, 2), False, "silver.dim_users.miles_balance at "
               "ds = min(cutoff_week + 6, the data's last date)"),
        column("is_partial_period", BOOL, False),
    ]),
    "One row per (user_id, cutoff_week) for every user whose first active week is <= cutoff_week, every week "
    "to the week of the data's last date.",
    ("cutoff_week",),
    keys=("user_id", "cutoff_week"),
    restricted=True,
)  # fmt: skip

ACTIVE_STATUSES = ("new", "retained", "resurrected")


def _in_week(total: str, by_user: Window) -> Column:
    """The week's share of a running total: its value at the week's end minus the previous week's end."""
    return F.col(total) - F.coalesce(F.lag(total).over(by_user), F.lit(0))


def user_status_weekly(
    status_df: DataFrame, week_ends_df: DataFrame, first_day: str, max_event_date: date
) -> DataFrame:
    """gold.user_status_weekly from the statuses and the week-end snapshots (``status_df``, ``week_ends_df`` of
    :class:`~lakehouse.gold.activity.GoldInputs`); every week of ``status_df`` must have its snapshot and the one
    before."""
    by_user = Window.partitionBy("user_id").orderBy("week")
    ends = week_ends_df.select(
        "user_id", "week", "last_event_date", "miles_balance",
        _in_week("total_events", by_user).alias("events_in_week"),
        _in_week("total_miles_earned", by_user).alias("miles_earned_in_week"),
        _in_week("total_miles_redeemed", by_user).alias("miles_redeemed_in_week"),
    )  # fmt: skip
    rows = status_df.join(ends, on=["user_id", "week"], how="left")
    return rows.select(
        "user_id",
        F.col("week").alias("cutoff_week"),
        F.date_format("week", LABEL_FORMAT).alias("cutoff_week_label"),
        *SEGMENT,
        "user_status",
        "previous_status",
        F.col("events_in_week").cast("long").alias("events_in_week"),
        F.col("miles_earned_in_week").cast(MILES_SUM).alias("miles_earned_in_week"),
        F.col("miles_redeemed_in_week").cast(MILES_SUM).alias("miles_redeemed_in_week"),
        F.col("last_event_date").alias("last_active_date"),
        (F.datediff(F.col("week"), week_start(F.col("last_event_date"), first_day)) / 7)
        .cast("int")
        .alias("weeks_since_active"),
        "miles_balance",
        partial(F.date_add("week", 6), max_event_date).alias("is_partial_period"),
    )


def scope(inputs: GoldInputs) -> str | None:
    """The rows recomputed from ``inputs.since``: the weeks from since's week on."""
    return None if inputs.since is None else f"cutoff_week >= DATE'{inputs.since_week}'"


def build(inputs: GoldInputs) -> DataFrame:
    statuses = inputs.status_df
    if inputs.since_week is not None:
        statuses = statuses.where(F.col("week") >= F.lit(inputs.since_week))
    return user_status_weekly(statuses, inputs.week_ends_df, inputs.week_start, inputs.max_event_date)


# Checks (error-level, attributed to this table; see lakehouse.gold.checks)


def counts_equal_the_lifecycle(users: DataFrame, lifecycle: DataFrame) -> Measure:
    """Grouped by (cutoff_week, segment, status), the rows equal gold.agg_user_lifecycle_weekly.user_count, row for
    row, and no group is missing on either side."""
    keys = ["cutoff_week", *SEGMENT, "user_status"]
    counted = users.groupBy(*keys).agg(F.count(F.lit(1)).alias("users"))
    joined = counted.join(lifecycle.select(*keys, "user_count"), on=keys, how="full_outer")
    bad = F.coalesce("users", F.lit(-1)) != F.coalesce("user_count", F.lit(-2))
    return rows_where(SPEC.full_name, "user_counts_equal_agg_user_lifecycle_weekly", joined, bad,
                      "rows per (cutoff_week, segment, user_status) = the lifecycle table's user_count")  # fmt: skip


def activity_matches_status(users: DataFrame) -> Measure:
    """Active statuses are exactly the weeks with events, and those have weeks_since_active 0."""
    active = F.col("user_status").isin(*ACTIVE_STATUSES)
    bad = (active != (F.col("events_in_week") > 0)) | (active != (F.col("weeks_since_active") == 0)) | \
        F.col("last_active_date").isNull() | (F.col("weeks_since_active") < 0)  # fmt: skip
    return rows_where(SPEC.full_name, "active_status_iff_events_in_week", users, bad,
                      "new/retained/resurrected <=> events_in_week > 0 <=> weeks_since_active = 0")  # fmt: skip


#: The lifecycle table counts this table's statuses (it imports this module: named, not imported, here).
LIFECYCLE = "gold.agg_user_lifecycle_weekly"


GOLD = GoldTable(
    SPEC,
    build,
    scope,
    checks=(
        lambda t, i: [counts_equal_the_lifecycle(t(SPEC.full_name), t(LIFECYCLE))],
        lambda t, i: [activity_matches_status(t(SPEC.full_name))],
    ),
    reads=reading("status", "week_ends"),
)
