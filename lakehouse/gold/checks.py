"""Metric validation of the gold tables (docs/contract.md, "Checks on the gold tables").

Error-level checks run on freshly computed gold DataFrames *before* they are published: a failure
stops the job and leaves the published table as it was. Each check belongs to one table (the one
whose job enforces it) and may compare it with other gold tables of the same computation; it
returns a :class:`DqResult` whose ``failed_rows`` counts the offending rows (0 = pass). Checks
count; they never write (the job records the results). Each check is one aggregation (a
:class:`Measure`: rows checked and rows failing counted together), and all the checks of a table
are measured in one Spark action (:func:`measure`: their one-row aggregates unioned), not one
action each. On an incremental run the tables are the recomputed slices (see
:mod:`lakehouse.gold.activity`), so the checks cover what changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.gold.activity import SEGMENT, GoldInputs, week_start
from lakehouse.quality import DqResult
from lakehouse.registry import GOLD_ACTIVE_USER, GOLD_ENGAGEMENT, GOLD_GROWTH, GOLD_LIFECYCLE, GOLD_RETENTION

#: Grain keys of the checked tables, as the registry declares them.
GRAIN_KEYS = {
    spec.full_name: list(spec.keys)
    for spec in (GOLD_ACTIVE_USER, GOLD_LIFECYCLE, GOLD_RETENTION, GOLD_GROWTH, GOLD_ENGAGEMENT)
}


@dataclass(frozen=True)
class Measure:
    """One check's aggregation: a one-row DataFrame of three counts ``a, b, c`` (longs), and how
    those become its results. Measured with the table's other checks in one action."""

    df: DataFrame
    results: Callable[[int, int, int], list[DqResult]]


def measure(measures: Sequence[Measure]) -> list[DqResult]:
    """Every measure's results, from one Spark action over the union of their aggregates."""
    if not measures:
        return []
    frames = [
        m.df.select(F.lit(i).alias("i"), *[F.coalesce(F.col(c).cast("long"), F.lit(0)).alias(c) for c in "abc"])
        for i, m in enumerate(measures)
    ]
    rows = {r["i"]: (int(r["a"]), int(r["b"]), int(r["c"])) for r in reduce(DataFrame.unionByName, frames).collect()}
    return [result for i, m in enumerate(measures) for result in m.results(*rows[i])]


def _result(table: str, name: str, df: DataFrame, bad: Column, details: str) -> Measure:
    """Rows of ``df`` and rows where ``bad`` holds, in one aggregation."""
    counts = df.agg(F.count(F.lit(1)).alias("a"), F.count(F.when(bad, 1)).alias("b"), F.lit(0).alias("c"))
    return Measure(counts, lambda n, failed, _: [DqResult(table, name, "error", n, failed, details)])


def grain_checks(name: str, df: DataFrame) -> list[Measure]:
    keys = GRAIN_KEYS[name]
    any_null = F.lit(False)
    for k in keys:
        any_null = any_null | F.col(k).isNull()
    groups = df.groupBy(*keys).count()
    counts = groups.agg(
        F.coalesce(F.sum("count"), F.lit(0)).alias("a"),
        F.coalesce(F.sum(F.when(F.col("count") > 1, F.col("count"))), F.lit(0)).alias("b"),
        F.coalesce(F.sum(F.when(any_null, F.col("count"))), F.lit(0)).alias("c"),
    )

    def results(rows: int, duplicates: int, nulls: int) -> list[DqResult]:
        return [
            DqResult(name, "unique_grain_keys", "error", rows, duplicates, f"keys {keys}"),
            DqResult(name, "no_null_keys", "error", rows, nulls, f"keys {keys}"),
        ]

    return [Measure(counts, results)]


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
    return _result(GOLD_LIFECYCLE.full_name, "weekly_active_equals_new_retained_resurrected", joined, bad,
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
    return _result(GOLD_LIFECYCLE.full_name, "lifecycle_total_equals_users_acquired", joined, bad,
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
        return [DqResult(GOLD_LIFECYCLE.full_name, "week_spine_has_no_gaps", "error", expected, expected - present,
                         f"{present} of {expected} weeks present")]  # fmt: skip

    return Measure(counts, results)


def retention_offset_zero_matches(retention: DataFrame, lifecycle: DataFrame, from_week: date | None = None) -> Measure:
    """``from_week``: compare the weeks from there on (both slices of an incremental run hold them)."""
    if from_week is not None:
        retention = retention.where(F.col("cohort_week") >= F.lit(from_week))
        lifecycle = lifecycle.where(F.col("cutoff_week") >= F.lit(from_week))
    zero = retention.where(F.col("week_offset") == 0).select(
        F.col("cohort_week").alias("week"), *SEGMENT, "cohort_size", "retained_users"
    )
    new = lifecycle.where(F.col("user_status") == "new").select(
        F.col("cutoff_week").alias("week"), *SEGMENT, F.col("user_count").alias("new_users")
    )
    joined = zero.join(new, on=["week", *SEGMENT], how="full_outer")
    bad = (F.coalesce("retained_users", F.lit(-1)) != F.coalesce("cohort_size", F.lit(-2))) | (
        F.coalesce("cohort_size", F.lit(0)) != F.coalesce("new_users", F.lit(0))
    )
    return _result(GOLD_RETENTION.full_name, "offset_zero_retained_equals_cohort_size_equals_new", joined, bad,
                   "week_offset 0: retained_users = cohort_size = lifecycle new")  # fmt: skip


def retention_bounds(retention: DataFrame) -> list[Measure]:
    rate = (F.col("retention_rate") < 0) | (F.col("retention_rate") > 1) | F.isnan("retention_rate")
    unbounded = F.col("unbounded_retained_users") < F.col("retained_users")
    return [
        _result(GOLD_RETENTION.full_name, "retention_rate_between_0_and_1", retention, rate, "0 <= rate <= 1"),
        _result(GOLD_RETENTION.full_name, "unbounded_at_least_retained", retention, unbounded,
                "unbounded_retained_users >= retained_users"),
    ]  # fmt: skip


def daily_within_week_and_month(active: DataFrame, first_day: str) -> Measure:
    daily = active.where(F.col("period_type") == "daily").select(
        *SEGMENT,
        F.col("period_start_date").alias("day"),
        F.col("active_users").alias("daily_active"),
        week_start(F.col("period_start_date"), first_day).alias("week"),
        F.trunc("period_start_date", "month").alias("month"),
    )
    weekly = active.where(F.col("period_type") == "weekly").select(
        *SEGMENT, F.col("period_start_date").alias("week"), F.col("active_users").alias("weekly_active")
    )
    monthly = active.where(F.col("period_type") == "monthly").select(
        *SEGMENT, F.col("period_start_date").alias("month"), F.col("active_users").alias("monthly_active")
    )
    joined = daily.join(weekly, on=[*SEGMENT, "week"], how="left").join(monthly, on=[*SEGMENT, "month"], how="left")
    bad = (F.col("daily_active") > F.coalesce("weekly_active", F.lit(0))) | (
        F.col("daily_active") > F.coalesce("monthly_active", F.lit(0))
    )
    return _result(GOLD_ACTIVE_USER.full_name, "daily_active_within_week_and_month", joined, bad,
                   "daily active <= active of the containing week and month")  # fmt: skip


def growth_identities(growth: DataFrame, active: DataFrame) -> list[Measure]:
    identity = F.col("active_users") != (
        F.col("prev_active_users") + F.col("new_users") + F.col("resurrected_users") - F.col("churned_users")
    )
    weekly = active.where(F.col("period_type") == "weekly").select(
        F.col("period_start_date").alias("week_start"), *SEGMENT, F.col("active_users").alias("weekly_active")
    )
    joined = growth.join(weekly, on=["week_start", *SEGMENT], how="full_outer")
    mismatch = F.coalesce("active_users", F.lit(0)) != F.coalesce("weekly_active", F.lit(0))
    return [
        _result(GOLD_GROWTH.full_name, "active_equals_prev_plus_new_plus_resurrected_minus_churned", growth,
                identity, "active(W) = active(W-1) + new + resurrected - churned"),
        _result(GOLD_GROWTH.full_name, "active_equals_agg_active_user_weekly", joined, mismatch,
                "growth active_users = agg_active_user weekly active_users"),
    ]  # fmt: skip


def engagement_windows_nested(engagement: DataFrame) -> Measure:
    bad = (F.col("dau") > F.col("wau_7d")) | (F.col("wau_7d") > F.col("mau_30d")) | (F.col("dau") < 0)
    return _result(GOLD_ENGAGEMENT.full_name, "dau_within_wau_within_mau", engagement, bad,
                   "0 <= dau <= wau_7d <= mau_30d")  # fmt: skip


def engagement_dau_equals_daily_active(engagement: DataFrame, active: DataFrame) -> Measure:
    daily = active.where(F.col("period_type") == "daily").select(
        F.col("period_start_date").alias("activity_date"), *SEGMENT, F.col("active_users").alias("daily_active")
    )
    joined = engagement.where(F.col("dau") > 0).join(daily, on=["activity_date", *SEGMENT], how="full_outer")
    bad = F.coalesce("dau", F.lit(0)) != F.coalesce("daily_active", F.lit(0))
    return _result(GOLD_ENGAGEMENT.full_name, "dau_equals_agg_active_user_daily", joined, bad,
                   "dau = agg_active_user daily active_users per day and segment")  # fmt: skip


#: A gold table by full name (the job computes it from the same inputs on first use).
Tables = Callable[[str], DataFrame]
Check = Callable[[Tables, GoldInputs], list[Measure]]

#: The error-level checks each gold job enforces, by the table it publishes.
CHECKS: Mapping[str, tuple[Check, ...]] = {
    GOLD_ACTIVE_USER.full_name: (
        lambda t, i: [daily_within_week_and_month(t(GOLD_ACTIVE_USER.full_name), i.week_start)],
    ),
    GOLD_LIFECYCLE.full_name: (
        lambda t, i: [weekly_active_equals_lifecycle(t(GOLD_ACTIVE_USER.full_name), t(GOLD_LIFECYCLE.full_name))],
        lambda t, i: [lifecycle_total_equals_acquired(t(GOLD_LIFECYCLE.full_name), i.grid_df)],
        lambda t, i: [lifecycle_spine_has_no_gaps(t(GOLD_LIFECYCLE.full_name))],
    ),
    GOLD_RETENTION.full_name: (
        lambda t, i: [
            retention_offset_zero_matches(t(GOLD_RETENTION.full_name), t(GOLD_LIFECYCLE.full_name), i.since_week)
        ],
        lambda t, i: retention_bounds(t(GOLD_RETENTION.full_name)),
    ),
    GOLD_GROWTH.full_name: (lambda t, i: growth_identities(t(GOLD_GROWTH.full_name), t(GOLD_ACTIVE_USER.full_name)),),
    GOLD_ENGAGEMENT.full_name: (
        lambda t, i: [engagement_windows_nested(t(GOLD_ENGAGEMENT.full_name))],
        lambda t, i: [engagement_dau_equals_daily_active(t(GOLD_ENGAGEMENT.full_name), t(GOLD_ACTIVE_USER.full_name))],
    ),
}


def run_checks(table_name: str, tables: Tables, inputs: GoldInputs) -> list[DqResult]:
    """Every error-level check of ``table_name``: its grain, then the checks attributed to it (one action)."""
    measures = grain_checks(table_name, tables(table_name))
    for check in CHECKS[table_name]:
        measures += check(tables, inputs)
    return measure(measures)


def run_all_checks(tables: Mapping[str, DataFrame], inputs: GoldInputs) -> list[DqResult]:
    """Every gold table's checks over already computed tables (tests and ad-hoc validation)."""
    return [result for name in CHECKS for result in run_checks(name, tables.__getitem__, inputs)]
