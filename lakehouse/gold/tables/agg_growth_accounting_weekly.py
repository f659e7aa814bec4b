"""``gold.agg_growth_accounting_weekly``: weekly growth accounting.

Grain: one row per ``(week_start, acq_source, country)`` for every week from the week of the
segment's first acquired user to the week of the data's last date (all-zero weeks are rows).
Identity on every row: ``active = prev_active + new + resurrected - churned``; ``quick_ratio =
(new + resurrected) / churned``, null when nobody churned.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.gold.activity import LABEL_FORMAT, SEGMENT, GoldInputs, partial
from lakehouse.gold.checks import Measure, rows_where
from lakehouse.gold.table import GoldTable, reading
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.registry import BOOL, DATE, DOUBLE, LONG, STRING, RatioMetric, TableSpec, column

SPEC = TableSpec(
    "gold", "agg_growth_accounting_weekly",
    T.StructType([
        column("week_start", DATE, False), column("week_label", STRING, False),
        column("acq_source", STRING, False), column("country", STRING, False),
        column("active_users", LONG, False, "users of the segment active this week"),
        column("prev_active_users", LONG, False),
        column("new_users", LONG, False),
        column("retained_users", LONG, False, "active this week and the previous week"),
        column("resurrected_users", LONG, False), column("churned_users", LONG, False),
        column("quick_ratio", DOUBLE, True, "(new + resurrected) / churned; null when churned = 0"),
        column("is_partial_period", BOOL, False),
    ]),
    "One row per (week_start, acq_source, country) for every week once the segment has a user.",
    metrics=(RatioMetric("quick_ratio", ("new_users", "resurrected_users"), ("churned_users",),
                         "users gained (new + resurrected) per user churned"),),
    keys=("week_start", "acq_source", "country"),
)  # fmt: skip


def growth_accounting_weekly(grid_df: DataFrame, max_event_date: date) -> DataFrame:
    """gold.agg_growth_accounting_weekly: active(W) = active(W-1) + new + resurrected - churned."""
    previous = Window.partitionBy("user_id").orderBy("week")
    prev_active = F.coalesce(F.lag("is_active").over(previous), F.lit(False))
    flags = grid_df.select(
        "week",
        *SEGMENT,
        "is_active",
        prev_active.alias("was_active"),
        (F.col("week") == F.col("first_week")).alias("is_first"),
    )
    count_if = lambda cond: F.sum(F.when(cond, 1).otherwise(0)).cast("long")  # noqa: E731
    a, p, first = F.col("is_active"), F.col("was_active"), F.col("is_first")
    agg = flags.groupBy(F.col("week").alias("week_start"), *SEGMENT).agg(
        count_if(a).alias("active_users"),
        count_if(p).alias("prev_active_users"),
        count_if(a & first).alias("new_users"),
        count_if(a & p).alias("retained_users"),
        count_if(a & ~p & ~first).alias("resurrected_users"),
        count_if(~a & p).alias("churned_users"),
    )
    return agg.select(
        "week_start",
        F.date_format("week_start", LABEL_FORMAT).alias("week_label"),
        *SEGMENT,
        "active_users",
        "prev_active_users",
        "new_users",
        "retained_users",
        "resurrected_users",
        "churned_users",
        F.when(
            F.col("churned_users") > 0,
            (F.col("new_users") + F.col("resurrected_users")).cast("double") / F.col("churned_users"),
        ).alias("quick_ratio"),
        partial(F.date_add("week_start", 6), max_event_date).alias("is_partial_period"),
    )


def scope(inputs: GoldInputs) -> str | None:
    """The rows recomputed from ``inputs.since``: the weeks from since's week on."""
    return None if inputs.since is None else f"week_start >= DATE'{inputs.since_week}'"


def build(inputs: GoldInputs) -> DataFrame:
    df = growth_accounting_weekly(inputs.grid_df, inputs.max_event_date)
    where = scope(inputs)
    return df if where is None else df.where(where)


# Checks (error-level, attributed to this table; see lakehouse.gold.checks)


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
        rows_where(SPEC.full_name, "active_equals_prev_plus_new_plus_resurrected_minus_churned", growth,
                identity, "active(W) = active(W-1) + new + resurrected - churned"),
        rows_where(SPEC.full_name, "active_equals_agg_active_user_weekly", joined, mismatch,
                "growth active_users = agg_active_user weekly active_users"),
    ]  # fmt: skip


GOLD = GoldTable(
    SPEC,
    build,
    scope,
    checks=(lambda t, i: growth_identities(t(SPEC.full_name), t(GOLD_ACTIVE_USER.full_name)),),
    reads=reading("grid"),
)
