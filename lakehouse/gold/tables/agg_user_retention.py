"""``gold.agg_user_retention``: weekly cohort retention.

Grain: one row per ``(cohort_week, week_offset, acq_source, country)`` for ``week_offset`` in
``0..max_week_offset`` whose week starts on or before the data's last date; cells with nobody
retained are rows with 0. ``unbounded_retained_users`` counts cohort users active in that week or
any later week.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.gold.activity import LABEL_FORMAT, SEGMENT, GoldInputs, partial, week_start
from lakehouse.gold.checks import Measure, rows_where
from lakehouse.gold.table import GoldTable, reading
from lakehouse.gold.tables.agg_user_lifecycle_weekly import SPEC as GOLD_LIFECYCLE
from lakehouse.registry import BOOL, DATE, DOUBLE, INT, LONG, STRING, RatioMetric, TableSpec, column

SPEC = TableSpec(
    "gold", "agg_user_retention",
    T.StructType([
        column("cohort_week", DATE, False), column("cohort_label", STRING, False), column("week_offset", INT, False),
        column("period_start_date", DATE, False, "cohort_week + 7 * week_offset"),
        column("acq_source", STRING, False), column("country", STRING, False, "country of the user's first event"),
        column("cohort_size", LONG, False),
        column("retained_users", LONG, False, "cohort users active in week cohort_week + 7 * week_offset"),
        column("retention_rate", DOUBLE, False), column("unbounded_retained_users", LONG, False),
        column("is_partial_period", BOOL, False),
    ]),
    "One row per (cohort_week, week_offset, acq_source, country), zero cells included.",
    metrics=(RatioMetric("retention_rate", ("retained_users",), ("cohort_size",),
                         "share of the cohorts' users active in the offset week"),),
    keys=("cohort_week", "week_offset", "acq_source", "country"),
)  # fmt: skip


def _rows(joined: DataFrame, max_event_date: date) -> DataFrame:
    """The table's columns from cells (cohort_week, segment, week_offset, cohort_size) joined with
    their retained_users and unbounded_retained_users (missing: 0)."""
    period_start = F.date_add("cohort_week", F.col("week_offset") * 7)
    retained_users = F.coalesce("retained_users", F.lit(0)).cast("long")
    return joined.select(
        "cohort_week",
        F.date_format("cohort_week", LABEL_FORMAT).alias("cohort_label"),
        F.col("week_offset").cast("int").alias("week_offset"),
        period_start.alias("period_start_date"),
        *SEGMENT,
        F.col("cohort_size").cast("long").alias("cohort_size"),
        retained_users.alias("retained_users"),
        (retained_users.cast("double") / F.col("cohort_size")).alias("retention_rate"),
        F.coalesce("unbounded_retained_users", F.lit(0)).cast("long").alias("unbounded_retained_users"),
        partial(F.date_add(period_start, 6), max_event_date).alias("is_partial_period"),
    )


def retention(grid_df: DataFrame, max_event_date: date, max_week_offset: int) -> DataFrame:
    """gold.agg_user_retention: cohort x week offset x segment, zero cells included."""
    cohort_week = F.col("first_week")
    offset = (F.datediff("week", "first_week") / 7).cast("int")
    user_weeks = grid_df.select(
        "user_id", *SEGMENT, cohort_week.alias("cohort_week"), offset.alias("week_offset"), "is_active"
    )
    last_offset = (
        user_weeks.where("is_active")
        .groupBy("user_id", *SEGMENT, "cohort_week")
        .agg(F.max("week_offset").alias("last_offset"))
    )
    cohorts = last_offset.groupBy("cohort_week", *SEGMENT).agg(F.count(F.lit(1)).alias("cohort_size"))
    cells = cohorts.select("*", F.explode(F.sequence(F.lit(0), F.lit(max_week_offset))).alias("week_offset")).where(
        F.date_add("cohort_week", F.col("week_offset") * 7) <= F.lit(max_event_date)
    )
    retained = (
        user_weeks.where("is_active")
        .groupBy("cohort_week", *SEGMENT, "week_offset")
        .agg(F.count(F.lit(1)).alias("retained_users"))
    )
    unbounded = (
        last_offset.select(
            "cohort_week",
            *SEGMENT,
            F.explode(F.sequence(F.lit(0), F.least("last_offset", F.lit(max_week_offset)))).alias("week_offset"),
        )
        .groupBy("cohort_week", *SEGMENT, "week_offset")
        .agg(F.count(F.lit(1)).alias("unbounded_retained_users"))
    )
    keys = ["cohort_week", *SEGMENT, "week_offset"]
    joined = cells.join(retained, on=keys, how="left").join(unbounded, on=keys, how="left")
    return _rows(joined, max_event_date)


def _cohorts(users_df: DataFrame, max_event_date: date, max_week_offset: int, first_day: str) -> DataFrame:
    """Every cell's ``cohort_size`` and ``unbounded_retained_users``, from one row per user.

    ``users_df`` needs ``first_event_date`` and ``last_event_date`` (the ``silver.dim_users``
    snapshot of ``max_event_date``): a user of cohort ``c`` whose last active week is ``c + 7 * L``
    counts as unbounded-retained at the offsets ``0..min(L, max_week_offset)``.
    """
    cohort = week_start(F.col("first_event_date"), first_day)
    last = (F.datediff(week_start(F.col("last_event_date"), first_day), cohort) / 7).cast("int")
    users = users_df.select(*SEGMENT, cohort.alias("cohort_week"), last.alias("last_offset"))
    sizes = users.groupBy("cohort_week", *SEGMENT).agg(F.count(F.lit(1)).alias("cohort_size"))
    unbounded = (
        users.select(
            "cohort_week", *SEGMENT,
            F.explode(F.sequence(F.lit(0), F.least("last_offset", F.lit(max_week_offset)))).alias("week_offset"),
        )
        .groupBy("cohort_week", *SEGMENT, "week_offset")
        .agg(F.count(F.lit(1)).alias("unbounded_retained_users"))
    )  # fmt: skip
    cells = sizes.select("*", F.explode(F.sequence(F.lit(0), F.lit(max_week_offset))).alias("week_offset")).where(
        F.date_add("cohort_week", F.col("week_offset") * 7) <= F.lit(max_event_date)
    )
    return cells.join(unbounded, on=["cohort_week", *SEGMENT, "week_offset"], how="left")


def retention_from_previous(inputs: GoldInputs, previous: DataFrame) -> DataFrame:
    """The whole table after new data, without reading the whole history (``inputs.since`` set).

    What new events from ``since`` on can change, and where each figure comes from:

    - ``retained_users`` of a cell whose week starts on or after ``since``'s week: recomputed from
      the recent user-week grid. Cells of earlier weeks keep their previous value: their week's
      activity is unchanged (a late event dated in it would have made ``since`` that early), and so
      is the cohort membership of every user active in it (a user whose first event moves starts
      on or after ``since``). Their ``is_partial_period`` is false before and after (they end
      before ``since``, which is at most the previous last date + 1).
    - ``cohort_size`` and ``unbounded_retained_users`` of *every* cell: recomputed from one row per
      user (:func:`_cohorts`). An old cohort's unbounded count rises whenever one of its users is
      active again, however late.
    """
    since_week = inputs.since_week
    recent = retention(inputs.grid_df, inputs.max_event_date, inputs.max_week_offset).where(
        F.col("period_start_date") >= F.lit(since_week)
    )
    keys = ["cohort_week", *SEGMENT, "week_offset"]
    old = previous.where(F.col("period_start_date") < F.lit(since_week)).select(*keys, "retained_users")
    new = recent.select(*keys, "retained_users")
    retained = old.unionByName(new)
    cells = _cohorts(inputs.users_df, inputs.max_event_date, inputs.max_week_offset, inputs.week_start)
    joined = cells.join(retained, on=keys, how="left")
    return _rows(joined, inputs.max_event_date)


def scope(inputs: GoldInputs) -> str | None:
    """Every row: any cohort's ``unbounded_retained_users`` can change (the table is small:
    cohorts x offsets x segments); an incremental run computes it with :func:`build_from_previous`."""
    return None


def build(inputs: GoldInputs) -> DataFrame:
    """Full rebuild from the user-week grid (``inputs.since`` None)."""
    return retention(inputs.grid_df, inputs.max_event_date, inputs.max_week_offset)


def build_from_previous(inputs: GoldInputs, previous: DataFrame) -> DataFrame:
    """Incremental run: see :func:`retention_from_previous`."""
    return retention_from_previous(inputs, previous)


# Checks (error-level, attributed to this table; see lakehouse.gold.checks)


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
    return rows_where(SPEC.full_name, "offset_zero_retained_equals_cohort_size_equals_new", joined, bad,
                   "week_offset 0: retained_users = cohort_size = lifecycle new")  # fmt: skip


def retention_bounds(retention: DataFrame) -> list[Measure]:
    rate = (F.col("retention_rate") < 0) | (F.col("retention_rate") > 1) | F.isnan("retention_rate")
    unbounded = F.col("unbounded_retained_users") < F.col("retained_users")
    return [
        rows_where(SPEC.full_name, "retention_rate_between_0_and_1", retention, rate, "0 <= rate <= 1"),
        rows_where(SPEC.full_name, "unbounded_at_least_retained", retention, unbounded,
                "unbounded_retained_users >= retained_users"),
    ]  # fmt: skip


GOLD = GoldTable(
    SPEC,
    build,
    scope,
    checks=(
        lambda t, i: [retention_offset_zero_matches(t(SPEC.full_name), t(GOLD_LIFECYCLE.full_name), i.since_week)],
        lambda t, i: retention_bounds(t(SPEC.full_name)),
    ),
    build_from_previous=build_from_previous,
    reads=reading("grid"),
)
