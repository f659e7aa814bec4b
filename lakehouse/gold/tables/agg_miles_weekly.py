"""``gold.agg_miles_weekly``: the miles economy, issued, burned and owed, per week and segment.

Grain: one row per ``(week_start, acq_source, country)`` for every week from the week of the
segment's first acquired user to the week of the data's last date; weeks without miles events are
rows with zeros (their outstanding and liability carried). Miles are ``decimal(18,2)``.

The week's flows (earned, redeemed, events, users) come from that week's events. The stocks, as of
the week's end ``e = min(week_start + 6, max_event_date)``, depend on every earlier event of the
segment's users: ``outstanding_miles`` is the sum of their balances, ``liability_miles`` the sum of
the positive ones, ``negative_balance_users`` the count of negative ones. They are computed without
rescanning history: each user's balance before the recomputed weeks comes from one row per user
(``inputs.miles_base_df``, the ``silver.dim_users`` snapshot of the day before since's week), and a
user's contribution to the stocks changes only in the weeks of the user's miles events. So per user
and week with events: the balance after the week (base + running net), and the change it makes to
each stock (the new positive part minus the old one, etc.); per segment, a stock is its base plus the
running sum of those changes over a calendar spine of weeks.

Incremental recomputation: new events from ``since`` on change the rows from since's week on (a late
event changes every later week's stocks); those weeks are rebuilt from their events and the base.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.gold.activity import LABEL_FORMAT, SEGMENT, GoldInputs, partial, signed_miles, week_start
from lakehouse.gold.checks import Measure, rows_where
from lakehouse.gold.table import GoldTable, reading
from lakehouse.registry import BOOL, DATE, DOUBLE, LONG, MILES_SUM, STRING, RatioMetric, TableSpec, column

SPEC = TableSpec(
    "gold", "agg_miles_weekly",
    T.StructType([
        column("week_start", DATE, False), column("week_label", STRING, False),
        column("acq_source", STRING, False), column("country", STRING, False),
        column("miles_earned", MILES_SUM, False), column("miles_redeemed", MILES_SUM, False),
        column("net_miles", MILES_SUM, False),
        column("earn_events", LONG, False), column("redeem_events", LONG, False),
        column("earning_users", LONG, False), column("redeeming_users", LONG, False),
        column("outstanding_miles", MILES_SUM, False), column("liability_miles", MILES_SUM, False),
        column("negative_balance_users", LONG, False), column("redemption_rate", DOUBLE, True),
        column("is_partial_period", BOOL, False),
    ]),
    "One row per (week_start, acq_source, country) for every week once the segment has a user, weeks without "
    "miles events included (zeros, outstanding carried).",
    metrics=(RatioMetric("redemption_rate", ("miles_redeemed",), ("miles_earned",),
                         "miles burned per mile issued"),),
    keys=("week_start", "acq_source", "country"),
)  # fmt: skip

MILES = "decimal(18,2)"
STOCKS = ("outstanding_miles", "liability_miles", "negative_balance_users")


def _positive(c: Column) -> Column:
    return F.greatest(c, F.lit(0).cast("decimal(20,2)"))


def _negative(c: Column) -> Column:
    return F.when(c < 0, 1).otherwise(0)


def miles_weekly(
    events_df: DataFrame,
    base_df: DataFrame,
    users_df: DataFrame,
    max_event_date: date,
    first_day: str,
    from_week: date | None = None,
) -> DataFrame:
    """gold.agg_miles_weekly for the weeks from ``from_week`` on (every week when None).

    ``events_df``: miles events (user_id, event_date, event_type, miles_amount) of those weeks;
    ``base_df``: user_id, miles_balance before ``from_week`` (empty when None); ``users_df``: every
    user's segment and ``first_event_date``.
    """
    segments = users_df.select("user_id", *SEGMENT)
    events = events_df.join(segments, on="user_id", how="inner").select(
        "user_id", *SEGMENT, week_start(F.col("event_date"), first_day).alias("week"), "event_type",
        "miles_amount", signed_miles().alias("signed"),
    )  # fmt: skip
    earned, redeemed = F.col("event_type") == "miles_earned", F.col("event_type") == "miles_redeemed"
    zero = F.lit(0).cast(MILES)
    flows = events.groupBy("week", *SEGMENT).agg(
        F.coalesce(F.sum(F.when(earned, F.col("miles_amount"))), zero).alias("miles_earned"),
        F.coalesce(F.sum(F.when(redeemed, F.col("miles_amount"))), zero).alias("miles_redeemed"),
        F.count(F.when(earned, 1)).alias("earn_events"),
        F.count(F.when(redeemed, 1)).alias("redeem_events"),
        F.countDistinct(F.when(earned, F.col("user_id"))).alias("earning_users"),
        F.countDistinct(F.when(redeemed, F.col("user_id"))).alias("redeeming_users"),
    )
    # One row per user and week with a miles event: the balance before and after the week.
    base = base_df.select("user_id", F.col("miles_balance").cast("decimal(20,2)").alias("base"))
    user_weeks = (
        events.groupBy("user_id", *SEGMENT, "week")
        .agg(F.sum("signed").cast("decimal(20,2)").alias("net"))
        .join(base, on="user_id", how="left")
    )
    running = Window.partitionBy("user_id").orderBy("week").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    after = F.coalesce(F.col("base"), F.lit(0)) + F.sum("net").over(running)
    changes = (
        user_weeks.select("user_id", *SEGMENT, "week", "net", after.cast("decimal(20,2)").alias("after"))
        .select(*SEGMENT, "week", "net", "after", (F.col("after") - F.col("net")).alias("before"))
        .groupBy("week", *SEGMENT)
        .agg(
            F.sum("net").alias("d_outstanding"),
            F.sum(_positive(F.col("after")) - _positive(F.col("before"))).alias("d_liability"),
            F.sum(_negative(F.col("after")) - _negative(F.col("before"))).alias("d_negative"),
        )
    )
    # The stocks at the end of the week before from_week, per segment.
    opening = (
        base.join(segments, on="user_id", how="inner")
        .groupBy(*SEGMENT)
        .agg(
            F.sum("base").alias("open_outstanding"),
            F.sum(_positive(F.col("base"))).alias("open_liability"),
            F.sum(_negative(F.col("base"))).alias("open_negative"),
        )
    )
    last_week = week_start(F.lit(max_event_date), first_day)
    first_week = week_start(F.min("first_event_date"), first_day)
    start = F.col("first_week") if from_week is None else F.greatest("first_week", F.lit(from_week))
    spine = (
        users_df.groupBy(*SEGMENT)
        .agg(first_week.alias("first_week"))
        .select(*SEGMENT, F.explode(F.sequence(start, last_week, F.expr("INTERVAL 7 DAYS"))).alias("week"))
    )
    weeks = Window.partitionBy(*SEGMENT).orderBy("week").rowsBetween(Window.unboundedPreceding, Window.currentRow)

    def stock(opening_column: str, change: str) -> Column:
        return F.coalesce(F.col(opening_column), F.lit(0)) + F.sum(F.coalesce(change, F.lit(0))).over(weeks)

    rows = (
        spine.join(flows, on=["week", *SEGMENT], how="left")
        .join(changes, on=["week", *SEGMENT], how="left")
        .join(opening, on=list(SEGMENT), how="left")
        .select(
            "week",
            *SEGMENT,
            *[F.coalesce(c, zero).alias(c) for c in ("miles_earned", "miles_redeemed")],
            *[F.coalesce(c, F.lit(0)).cast("long").alias(c)
              for c in ("earn_events", "redeem_events", "earning_users", "redeeming_users")],
            stock("open_outstanding", "d_outstanding").alias("outstanding_miles"),
            stock("open_liability", "d_liability").alias("liability_miles"),
            stock("open_negative", "d_negative").alias("negative_balance_users"),
        )
    )  # fmt: skip
    return rows.select(
        F.col("week").alias("week_start"),
        F.date_format("week", LABEL_FORMAT).alias("week_label"),
        *SEGMENT,
        F.col("miles_earned").cast(MILES).alias("miles_earned"),
        F.col("miles_redeemed").cast(MILES).alias("miles_redeemed"),
        (F.col("miles_earned") - F.col("miles_redeemed")).cast(MILES).alias("net_miles"),
        "earn_events",
        "redeem_events",
        "earning_users",
        "redeeming_users",
        F.col("outstanding_miles").cast(MILES).alias("outstanding_miles"),
        F.col("liability_miles").cast(MILES).alias("liability_miles"),
        F.col("negative_balance_users").cast("long").alias("negative_balance_users"),
        F.when(
            F.col("miles_earned") > 0, F.col("miles_redeemed").cast("double") / F.col("miles_earned").cast("double")
        ).alias("redemption_rate"),
        partial(F.date_add("week", 6), max_event_date).alias("is_partial_period"),
    )


def scope(inputs: GoldInputs) -> str | None:
    """The rows recomputed from ``inputs.since``: the weeks from since's week on."""
    return None if inputs.since is None else f"week_start >= DATE'{inputs.since_week}'"


def build(inputs: GoldInputs) -> DataFrame:
    return miles_weekly(inputs.miles_events_df, inputs.miles_base_df, inputs.users_df, inputs.max_event_date,
                        inputs.week_start, inputs.since_week)  # fmt: skip


# Checks (error-level, attributed to this table; see lakehouse.gold.checks)


def outstanding_recursion(miles: DataFrame, base_df: DataFrame, users_df: DataFrame) -> Measure:
    """``outstanding(W) = outstanding(W-1) + net(W)``; before a segment's first row: 0, or on an
    incremental slice the segment's balances before its first week (``base_df``)."""
    opening = (
        base_df.join(users_df.select("user_id", *SEGMENT), on="user_id", how="inner")
        .groupBy(*SEGMENT)
        .agg(F.sum("miles_balance").alias("opening"))
    )
    previous = F.lag("outstanding_miles").over(Window.partitionBy(*SEGMENT).orderBy("week_start"))
    rows = miles.join(opening, on=list(SEGMENT), how="left").select(
        "outstanding_miles", "net_miles", F.coalesce(previous, F.col("opening"), F.lit(0)).alias("before")
    )
    bad = F.col("outstanding_miles") != F.col("before") + F.col("net_miles")
    details = "outstanding_miles(W) = outstanding_miles(W-1) + net_miles(W), 0 before the first week"
    return rows_where(SPEC.full_name, "outstanding_equals_previous_plus_net", rows, bad, details)


def liability_bounds(miles: DataFrame) -> Measure:
    bad = (
        (F.col("liability_miles") < F.col("outstanding_miles"))
        | (F.col("liability_miles") < 0)
        | (F.col("negative_balance_users") < 0)
    )
    return rows_where(SPEC.full_name, "liability_at_least_outstanding_and_zero", miles, bad,
                      "liability_miles >= max(outstanding_miles, 0), negative_balance_users >= 0")  # fmt: skip


def last_week_equals_snapshot(miles: DataFrame, users_df: DataFrame, max_event_date: date, first_day: str) -> Measure:
    """The last week's stocks per segment = the ``silver.dim_users`` snapshot of the data's last date."""
    balance = F.col("miles_balance")
    snapshot = users_df.groupBy(*SEGMENT).agg(
        F.sum(balance).alias("s_outstanding"),
        F.sum(_positive(balance)).alias("s_liability"),
        F.sum(_negative(balance)).alias("s_negative"),
    )
    last = miles.where(F.col("week_start") == week_start(F.lit(max_event_date), first_day))
    joined = last.join(snapshot, on=list(SEGMENT), how="full_outer")
    bad = (
        (F.coalesce("outstanding_miles", F.lit(-1)) != F.coalesce("s_outstanding", F.lit(0)))
        | (F.coalesce("liability_miles", F.lit(-1)) != F.coalesce("s_liability", F.lit(0)))
        | (F.coalesce("negative_balance_users", F.lit(-1)) != F.coalesce("s_negative", F.lit(0)))
    )
    details = ("last week per segment: outstanding = sum of miles_balance, liability = sum of positive balances, "
               "negative_balance_users = count of negative balances (silver.dim_users, last ds)")  # fmt: skip
    return rows_where(SPEC.full_name, "last_week_equals_dim_users_snapshot", joined, bad, details)


GOLD = GoldTable(
    SPEC,
    build,
    scope,
    checks=(
        lambda t, i: [outstanding_recursion(t(SPEC.full_name), i.miles_base_df, i.users_df)],
        lambda t, i: [liability_bounds(t(SPEC.full_name))],
        lambda t, i: [last_week_equals_snapshot(t(SPEC.full_name), i.users_df, i.max_event_date, i.week_start)],
    ),
    reads=reading("miles"),
)
