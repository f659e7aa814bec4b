"""Compact gold inputs and the calendar maths every gold table shares.

- ``activity_df``: ``user_id, event_date`` (distinct), from :func:`user_activity`.
- ``users_df``: ``user_id, acq_source, country, first_event_date`` from :func:`user_segments`;
  attributes are those of the user's first event (ties on event_time: smallest event_id), so each
  user sits in exactly one segment and segment rows add up to totals.
- ``grid_df``: one row per user and calendar week from the user's first week to the data's last
  week (:func:`user_week_grid`), shared by the weekly tables.
- ``miles_events_df``: the events the miles tables count (``miles_earned``, ``miles_redeemed``,
  ``reward_search``: ``user_id, event_date, event_type, transaction_category, miles_amount``) from
  since's week on, and ``miles_base_df``: every user's miles balance (``user_id, miles_balance``)
  at the end of the day before that week, the compact stand-in for all earlier events (the job
  reads it from the ``silver.dim_users`` snapshot of that day). See :mod:`lakehouse.gold.tables.agg_miles_weekly`.
- ``anomaly_events_df``: the events the anomaly series count (``user_id, event_date, event_type,
  event_time``), and ``anomaly_activity_df`` (``user_id, event_date``: user-days), from the first day
  the recomputed points' training windows reach (all of them when ``since`` is None; both lazy: only
  the anomaly table reads them, and only the partitions it needs), and ``anomaly``, conf's
  ``anomaly`` section. See :mod:`lakehouse.gold.tables.agg_metric_anomalies`.

Weeks start on ``week_start`` from conf ("sunday" by default: ``d - (dayofweek(d) - 1)``). A period
is partial when its last day is after ``max_event_date``, the largest event_date in silver.
Everything here is pure: DataFrames and parameters in, a DataFrame out.

Incremental recomputation: new events whose earliest date is ``d0`` can only change gold rows of
periods that end on or after ``since = min(d0, previous max_event_date + 1)`` (the second term
covers the partial flags of periods the new data completes). A late event that becomes a user's
new first event changes that user's segment, but then every event of the user is on or after
``d0`` too. So each table recomputes the rows of its *scope* (its module's ``scope``: the periods
from ``since`` on) from inputs that start early enough (:func:`input_bounds`), and replaces
exactly those rows; retention rewrites its small table whole from the recent grid, one row per
user and its previous cells (see its module). ``since = None`` is a full rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.config import AnomalyConfig

SEGMENT = ("acq_source", "country")
LABEL_FORMAT = "yyyy-MM-dd"


@dataclass(frozen=True)
class GoldInputs:
    """Everything a gold table is computed from (the job builds it once per silver version)."""

    activity_df: DataFrame
    users_df: DataFrame
    grid_df: DataFrame
    max_event_date: date
    #: conf ``week_start``, ``gold.lookback_weeks``, ``gold.max_week_offset`` (no defaults here: config owns them).
    week_start: str
    lookback_weeks: int
    max_week_offset: int
    #: First day whose rows are recomputed (None: every row); activity_df and grid_df start early enough.
    since: date | None = None
    #: Miles events from ``since_week`` on (all of them when ``since`` is None), and balances before it.
    miles_events_df: DataFrame | None = None
    miles_base_df: DataFrame | None = None
    #: Events of every type and user-days from the anomaly window's first day (all when ``since`` is None).
    anomaly_events_df: DataFrame | None = None
    anomaly_activity_df: DataFrame | None = None
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    #: Each grid row's lifecycle status and the week before's (gold.user_status_weekly's
    #: ``user_statuses``), and the ``silver.dim_users`` rows of each week's last day from the week before
    #: ``since_week`` on: computed by the gold job for the tables that read them.
    status_df: DataFrame | None = None
    week_ends_df: DataFrame | None = None

    @property
    def since_week(self) -> date | None:
        return None if self.since is None else week_start_of(self.since, self.week_start)

    @property
    def activity_from(self) -> date | None:
        return None if self.since is None else input_bounds(self.since, self.week_start, self.lookback_weeks)[0]


def week_start_of(d: date, first_day: str) -> date:
    """First day of d's week (Python twin of :func:`week_start`)."""
    back = (d.isoweekday() % 7) if first_day == "sunday" else d.weekday()
    return d - timedelta(days=back)


def input_bounds(since: date, first_day: str, lookback_weeks: int) -> tuple[date, date]:
    """(first activity day, first grid week) the tables need to recompute their rows from ``since``.

    The grid starts ``max(lookback, 1) + 1`` weeks before since's week (the status of since's week looks
    back ``lookback`` weeks, and user_status_weekly's previous status of since's week looks back from the
    week before; growth compares with the previous week; retention needs the weeks from since's week only,
    its older cells come from the published table); activity starts there, and no later than 29 days before
    ``since`` (30-day engagement window) and the first day of since's month (monthly actives).
    """
    grid_from = week_start_of(since, first_day) - timedelta(weeks=max(lookback_weeks, 1) + 1)
    return min(grid_from, since - timedelta(days=29), since.replace(day=1)), grid_from


MILES_EVENT_TYPES = ("miles_earned", "miles_redeemed", "reward_search")
MILES_EVENT_COLUMNS = "user_id string, event_date date, event_type string, transaction_category string, " \
    "miles_amount decimal(10,2)"  # fmt: skip
ANOMALY_EVENT_COLUMNS = ("user_id", "event_date", "event_type", "event_time")


def gold_inputs(
    activity_df: DataFrame,
    users_df: DataFrame,
    max_event_date: date,
    first_day: str,
    lookback_weeks: int,
    max_week_offset: int,
    since: date | None = None,
    *,
    events_df: DataFrame | None = None,
    miles_base_df: DataFrame | None = None,
    anomaly_events_df: DataFrame | None = None,
    anomaly_activity_df: DataFrame | None = None,
    anomaly: AnomalyConfig | None = None,
    snapshots_df: DataFrame | None = None,
) -> GoldInputs:
    """The inputs of a full rebuild (``since`` None), or of the rows from ``since`` on.

    ``users_df`` holds every user; ``activity_df`` may start at :func:`input_bounds` of since.
    ``events_df``: silver events (at least the miles columns) from since's week on, or all of them;
    without ``miles_base_df`` they must be all of them and the balances before since's week are
    summed from them (the job passes the snapshot's balances instead). ``users_df`` without
    ``miles_balance`` gets each user's balance at the data's last date from ``events_df`` (all of them).
    ``anomaly_events_df``: silver events of every type from the anomaly window's first day on (see
    :func:`lakehouse.gold.tables.agg_metric_anomalies.input_start`); ``events_df`` when not given (all of them).
    ``anomaly_activity_df``: user-days (``user_id, event_date``) from that day on; ``activity_df`` when not
    given. ``anomaly``: conf's section (its defaults when not given). ``snapshots_df``: ``silver.dim_users``
    (at least its week-end snapshots from the week before since's week on), for gold.user_status_weekly.
    """
    if anomaly_events_df is None:
        if events_df is None:
            anomaly_events_df = activity_df.sparkSession.createDataFrame(
                [], "user_id string, event_date date, event_type string, event_time timestamp"
            )
        else:
            anomaly_events_df = events_df
    # event_time is only the freshness check's: hand-built events may leave it out.
    present = anomaly_events_df.columns
    anomaly_events_df = anomaly_events_df.select(
        *[c if c in present else F.lit(None).cast("timestamp").alias(c) for c in ANOMALY_EVENT_COLUMNS]
    )
    grid_from = None if since is None else input_bounds(since, first_day, lookback_weeks)[1]
    grid_df = user_week_grid(activity_df, users_df, max_event_date, first_day, grid_from)
    if events_df is None:
        events_df = activity_df.sparkSession.createDataFrame([], MILES_EVENT_COLUMNS)
    if "miles_balance" not in users_df.columns:
        everything = balances(miles_events(events_df).where(F.col("event_date") <= F.lit(max_event_date)))
        users_df = users_df.join(everything, on="user_id", how="left").withColumn(
            "miles_balance", F.coalesce("miles_balance", F.lit(0).cast("decimal(20,2)"))
        )
    events_df, miles_base_df = miles_inputs(events_df, miles_base_df, first_day, since)
    week_ends_df = None
    if snapshots_df is not None:
        since_week = None if since is None else week_start_of(since, first_day)
        week_ends_df = week_end_snapshots(snapshots_df, first_day, max_event_date, since_week)
    return GoldInputs(activity_df, users_df, grid_df, max_event_date, first_day, lookback_weeks, max_week_offset,
                      since, events_df, miles_base_df, anomaly_events_df,
                      activity_df if anomaly_activity_df is None else anomaly_activity_df,
                      anomaly or AnomalyConfig(), user_statuses(grid_df, lookback_weeks), week_ends_df)  # fmt: skip


def miles_events(events_df: DataFrame) -> DataFrame:
    """The events the miles tables count, with the columns they read."""
    return events_df.where(F.col("event_type").isin(*MILES_EVENT_TYPES)).select(
        "user_id", "event_date", "event_type", "transaction_category", "miles_amount"
    )


def miles_inputs(
    events_df: DataFrame, miles_base_df: DataFrame | None, first_day: str, since: date | None
) -> tuple[DataFrame, DataFrame]:
    """``(miles_events_df, miles_base_df)`` of :class:`GoldInputs` (lazy: no Spark action).

    ``events_df``: silver events from since's week on, or all of them (then, without
    ``miles_base_df``, the balances before since's week are summed from them).
    """
    events_df = miles_events(events_df)
    from_week = None if since is None else week_start_of(since, first_day)
    if from_week is not None:
        if miles_base_df is None:
            miles_base_df = balances(events_df.where(F.col("event_date") < F.lit(from_week)))
        events_df = events_df.where(F.col("event_date") >= F.lit(from_week))
    if miles_base_df is None:
        miles_base_df = balances(events_df.limit(0))
    return events_df, miles_base_df


def signed_miles() -> Column:
    """``miles_amount`` with the sign it has on a balance: + earned, - redeemed, 0 otherwise."""
    amount = F.coalesce(F.col("miles_amount"), F.lit(0)).cast("decimal(20,2)")
    return (
        F.when(F.col("event_type") == "miles_earned", amount)
        .when(F.col("event_type") == "miles_redeemed", -amount)
        .otherwise(F.lit(0).cast("decimal(20,2)"))
    )


def balances(events_df: DataFrame) -> DataFrame:
    """``user_id, miles_balance`` (earned - redeemed) over ``events_df``."""
    return events_df.groupBy("user_id").agg(F.sum(signed_miles()).cast("decimal(20,2)").alias("miles_balance"))


def week_start(d: Column, first_day: str) -> Column:
    """First day of d's week. Spark's dayofweek is 1 for Sunday .. 7 for Saturday."""
    if first_day == "sunday":
        return F.date_sub(d, F.dayofweek(d) - 1)
    return F.date_sub(d, (F.dayofweek(d) + 5) % 7)


def user_activity(events_df: DataFrame) -> DataFrame:
    return events_df.select("user_id", "event_date").distinct()


def user_segments(events_df: DataFrame) -> DataFrame:
    first = F.min(F.struct("event_time", "event_id", "utm_source", "country"))
    return (
        events_df.groupBy("user_id")
        .agg(first.alias("first"))
        .select(
            "user_id",
            F.col("first.utm_source").alias("acq_source"),
            F.col("first.country").alias("country"),
            F.to_date("first.event_time").alias("first_event_date"),
        )
    )


def partial(period_end: Column, max_event_date: date) -> Column:
    return period_end > F.lit(max_event_date)


def user_week_grid(
    activity_df: DataFrame,
    users_df: DataFrame,
    max_event_date: date,
    first_day: str,
    from_week: date | None = None,
) -> DataFrame:
    """One row per user and calendar week from the user's first week (or ``from_week`` if later) to
    the data's last week.

    Columns: user_id, segment, first_week, week, is_active. Weeks without any activity are rows
    too (the calendar spine has no gaps), so window functions over rows are window over weeks.
    A user's first week is the week of their ``first_event_date``.
    """
    weeks = activity_df.select("user_id", week_start(F.col("event_date"), first_day).alias("week")).distinct()
    last_week = week_start(F.lit(max_event_date), first_day)
    firsts = users_df.select("user_id", *SEGMENT, week_start(F.col("first_event_date"), first_day).alias("first_week"))
    start = F.col("first_week") if from_week is None else F.greatest("first_week", F.lit(from_week))
    grid = firsts.select(
        "user_id",
        *SEGMENT,
        "first_week",
        F.explode(F.sequence(start, last_week, F.expr("INTERVAL 7 DAYS"))).alias("week"),
    )
    return grid.join(weeks.withColumn("is_active", F.lit(True)), on=["user_id", "week"], how="left").select(
        "user_id", *SEGMENT, "first_week", "week", F.coalesce("is_active", F.lit(False)).alias("is_active")
    )


def user_statuses(grid_df: DataFrame, lookback_weeks: int) -> DataFrame:
    """Each grid row (user and week) with its lifecycle status and the status of the week before.

    The contract's rule, with ``N = lookback_weeks`` and "recently active" = active in one of weeks
    ``W-1 .. W-N``: new (active, first week), retained (active, recently active), resurrected (active, not
    recently), dormant (inactive, recently), churned (inactive, not recently). ``previous_status`` is null in
    the user's first week. Rows of the first ``N + 1`` weeks of a grid that starts after the users' first weeks
    (an incremental run's) look back less far: the callers keep the weeks from ``N + 1`` weeks after its start.
    """
    by_user = Window.partitionBy("user_id").orderBy("week")
    recently = F.coalesce(F.max(F.col("is_active").cast("int")).over(by_user.rowsBetween(-lookback_weeks, -1)),
                          F.lit(0)) == 1  # fmt: skip
    status = (
        F.when(F.col("is_active") & (F.col("week") == F.col("first_week")), "new")
        .when(F.col("is_active") & recently, "retained")
        .when(F.col("is_active"), "resurrected")
        .when(recently, "dormant")
        .otherwise("churned")
    )
    with_status = grid_df.withColumn("user_status", status)
    previous = F.when(F.col("week") > F.col("first_week"), F.lag("user_status").over(by_user))
    return with_status.withColumn("previous_status", previous).select(
        "user_id", *SEGMENT, "first_week", "week", "is_active", "user_status", "previous_status"
    )


def week_end_snapshots(
    snapshots_df: DataFrame, first_day: str, max_event_date: date, from_week: date | None
) -> DataFrame:
    """The ``silver.dim_users`` rows of each week's last day (the data's last date for the last week), from the
    week before ``from_week`` on (every week when None): ``user_id, week`` and the running totals. The filter is
    on the partition column only, so Spark reads just those snapshots."""
    ds = F.col("ds")
    week_end = (F.date_add(week_start(ds, first_day), 6) == ds) | (ds == F.lit(max_event_date))
    wanted = snapshots_df.where(week_end & (ds <= F.lit(max_event_date)))
    if from_week is not None:
        wanted = wanted.where(ds >= F.date_sub(F.lit(from_week), 1))
    return wanted.select(
        "user_id", week_start(ds, first_day).alias("week"), "last_event_date", "total_events", "total_miles_earned",
        "total_miles_redeemed", "miles_balance",
    )  # fmt: skip
