"""``gold.agg_user_lifecycle_weekly``: weekly lifecycle status of every acquired user.

Grain: one row per ``(cutoff_week, acq_source, country, user_status)`` with ``user_count > 0``, for
every calendar week from the first week with an event to the week of the data's last date. With
``N = lookback_weeks``: new (first active week), retained (active, and active in one of the N
weeks before), resurrected (active, not in those N weeks), dormant (inactive, active in those N
weeks), churned (inactive, not active in those N weeks). The users behind each count are the rows of
``gold.user_status_weekly``: both tables come from one computation of the statuses.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.gold.activity import LABEL_FORMAT, SEGMENT, GoldInputs, partial
from lakehouse.gold.checks import Measure, rows_where
from lakehouse.gold.table import GoldTable, reading
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.quality import DqResult
from lakehouse.registry import BOOL, DATE, LONG, STRING, TableSpec, column

SPEC = TableSpec(
    "gold", "agg_user_lifecycle_weekly",
    T.StructType([
        column("cutoff_week", DATE, False, "first day of the week"),
        column("cutoff_week_label", STRING, False), column("acq_source", STRING, False),
        column("country", STRING, False),
        column("user_status", STRING, False, "new | retained | resurrected | dormant | churned"),
        column("user_count", LONG, False), column("is_partial_period", BOOL, False),
    ]),
    "One row per (cutoff_week, acq_source, country, user_status) with user_count > 0.",
    keys=("cutoff_week", "acq_source", "country", "user_status"),
)  # fmt: skip


def lifecycle_weekly(status_df: DataFrame, max_event_date: date) -> DataFrame:
    """gold.agg_user_lifecycle_weekly: the users of each status per week and segment, counted from the users'
    weekly statuses (:func:`lakehouse.gold.tables.user_status_weekly.user_statuses`): the same rows
    gold.user_status_weekly holds, so the two tables never disagree."""
    return (
        status_df.groupBy(F.col("week").alias("cutoff_week"), *SEGMENT, "user_status")
        .agg(F.count(F.lit(1)).alias("user_count"))
        .select(
            "cutoff_week",
            F.date_format("cutoff_week", LABEL_FORMAT).alias("cutoff_week_label"),
            *SEGMENT,
            "user_status",
            F.col("user_count").cast("long").alias("user_count"),
            partial(F.date_add("cutoff_week", 6), max_event_date).alias("is_partial_period"),
        )
    )


def scope(inputs: GoldInputs) -> str | None:
    """The rows recomputed from ``inputs.since``: the weeks from since's week on."""
    return None if inputs.since is None else f"cutoff_week >= DATE'{inputs.since_week}'"


def build(inputs: GoldInputs) -> DataFrame:
    df = lifecycle_weekly(inputs.status_df, inputs.max_event_date)
    where = scope(inputs)
    return df if where is None else df.where(where)


# Checks (error-level, attributed to this table; see lakehouse.gold.checks)


def _weekly_lifecycle_active(lifecycle: DataFrame) -> DataFrame:
    return (
        lifecycle.where(F.col("user_status").isin("new", "retained", "resurrected"))
        .groupBy(F.col("cutoff_week").alias("week"), *SEGMENT)
        .agg(F.sum("user_count").alias("lifecycle_active"))
    )


def weekly_active_equals_lifecycle(active: DataFrame, lifecycle: DataFrame) -> Measure:
    weekly = active.where(F.col("period_type") == "weekly").select(
        F.col("period_start_date").alias("week"), *SEGMENT, "active_users"
    )
    joined = weekly.join(_weekly_lifecycle_active(lifecycle), on=["week", *SEGMENT], how="full_outer")
    bad = F.coalesce("active_users", F.lit(0)) != F.coalesce("lifecycle_active", F.lit(0))
    return rows_where(SPEC.full_name, "weekly_active_equals_new_retained_resurrected", joined, bad,
                   "agg_active_user weekly = new + retained + resurrected per week and segment")  # fmt: skip


def lifecycle_total_equals_acquired(lifecycle: DataFrame, grid: DataFrame) -> Measure:
    weeks = lifecycle.select("cutoff_week").distinct()
    firsts = grid.select("user_id", *SEGMENT, "first_week").distinct()
    acquired = (
        weeks.join(firsts, on=F.col("first_week") <= F.col("cutoff_week"), how="inner")
        .groupBy("cutoff_week", *SEGMENT)
        .agg(F.count(F.lit(1)).alias("acquired"))
    )
    totals = lifecycle.groupBy("cutoff_week", *SEGMENT).agg(F.sum("user_count").alias("total"))
    joined = totals.join(acquired, on=["cutoff_week", *SEGMENT], how="full_outer")
    bad = F.coalesce("total", F.lit(0)) != F.coalesce("acquired", F.lit(0))
    return rows_where(SPEC.full_name, "lifecycle_total_equals_users_acquired", joined, bad,
                   "sum of the five statuses = users whose first week <= W, per segment")  # fmt: skip


def lifecycle_spine_has_no_gaps(lifecycle: DataFrame) -> Measure:
    epoch = F.lit(date(1970, 1, 1))
    counts = lifecycle.agg(
        F.datediff(F.min("cutoff_week"), epoch).alias("a"),
        F.datediff(F.max("cutoff_week"), epoch).alias("b"),
        F.countDistinct("cutoff_week").alias("c"),
    )

    def results(lo: int, hi: int, present: int) -> list[DqResult]:
        expected = 0 if present == 0 else (hi - lo) // 7 + 1
        return [DqResult(SPEC.full_name, "week_spine_has_no_gaps", "error", expected, expected - present,
                         f"{present} of {expected} weeks present")]  # fmt: skip

    return Measure(counts, results)


GOLD = GoldTable(
    SPEC,
    build,
    scope,
    checks=(
        lambda t, i: [weekly_active_equals_lifecycle(t(GOLD_ACTIVE_USER.full_name), t(SPEC.full_name))],
        lambda t, i: [lifecycle_total_equals_acquired(t(SPEC.full_name), i.grid_df)],
        lambda t, i: [lifecycle_spine_has_no_gaps(t(SPEC.full_name))],
    ),
    reads=reading("status", "grid"),
)
