"""``gold.agg_metric_anomalies``: trend anomaly detection on the count series, per segment.

Grain: one row per ``(metric, grain, segment_type, segment_value, period_start)`` evaluated. Series
(docs/contract.md, "gold.agg_metric_anomalies"): daily ``events``, ``active_users``, ``new_users``,
``earn_events``, ``redeem_events`` on every day from the segment's first user's ``first_event_date`` to
the data's last date (0 when nothing happened); weekly ``active_users``, ``new_users``,
``churned_users``, ``resurrected_users`` of ``gold.agg_growth_accounting_weekly`` summed over the
segment, complete weeks only. Segments: all users, each country, each acquisition source (the user's
first event's, as everywhere; not their cross product).

Each point is judged against the same weekday (daily) or week (weekly) of the ``K`` periods before it
(``anomaly.training_periods``, positions ``t = -k``): the Theil-Sen line through them (slope = median
pairwise slope, level = median of ``x - slope * t``) gives ``expected = max(level, 0)``; the band is
``expected +- S * spread`` with ``spread = max(1.4826 * MAD, sqrt(expected))`` (MAD of the residuals
around the line; counts have at least Poisson noise). A point is a row when it has at least ``M``
training points and ``expected >= anomaly.min_expected``. Medians interpolate. The training points are
window frames of exactly one row ``7k`` days back (range frames on the day number, so a gap in a
series can never shift them), and the medians are sorted arrays: no self-join, no Python UDF.

Inputs: the events of every type (``inputs.anomaly_events_df``, a lazy read of ``silver.fct_events``)
counted per user and day (a user with a count is an active user of that day, as in
``silver.user_activity_daily``), every user's segment and ``first_event_date`` (``inputs.users_df``),
and for the weekly series the growth accounting of a user-week grid of ``silver.user_activity_daily``
(the growth table's own function, so the weekly values are that table's columns by construction).

Incremental recomputation: new data from ``since`` on changes the values of the days from ``since``
and of the weeks from since's week (see :mod:`lakehouse.gold.activity`), and a point's training set
holds only earlier periods of its own series; so exactly the points from ``since`` (daily) and from
since's week (weekly) can change, and those are the scope. They need the series ``K`` periods further
back, plus one week for the weekly churn and resurrection: the inputs start at :func:`input_start`.
What is read is less (:func:`metric_anomalies`): on a day that adds one day of data, the events of that
day and of the same weekday of the K weeks before (:func:`needed_days`: date partitions pruned), and
the user-days of the training weeks only when a week became complete.
Changing ``training_periods``, ``min_training_periods``, ``sensitivity`` or ``min_expected`` rebuilds
the table whole (they are part of its bookkeeping name).

Alerts and freshness (warnings, never blocking; :func:`warnings`): the job itself records them after
each publish, because it is the one job that has just computed the points and reads the data's last
day anyway; ``gold_data_quality_report`` would have to re-read the table and would tie the alerts to a
second job's schedule. Each anomaly of the data's last ``anomaly.alert_days`` days (a weekly point when
its week ends in them) is one warning row of ``ops.dq_results`` (``metric_anomaly``, naming series,
segment, period, value and band), or one passing row when there is none; and ``data_freshness`` warns
when the newest ``event_time`` (wall-clock time in conf ``timezone``) is older than
``anomaly.freshness_hours`` at the job run's start. A run with nothing new checks nothing, commits
nothing and needs no Spark, like every job here: the alerts of the last run that had data stay the
current ones. But no new data is exactly when data goes stale, so such a run still judges freshness
(:func:`stale_data`, from silver's file statistics by delta-rs, no JVM): a stale warehouse is a
reminder of the idle run (its ``ops.job_runs`` message, the summary's "Needs attention" as ``KNOWN``,
the log), not an ``ops.dq_results`` row.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse import delta_io, delta_rs
from lakehouse.config import AnomalyConfig, LakehouseConfig
from lakehouse.gold.activity import SEGMENT, GoldInputs, user_week_grid, week_start_of
from lakehouse.gold.checks import Measure, rows_where
from lakehouse.gold.table import GoldTable, reading
from lakehouse.gold.tables.agg_growth_accounting_weekly import growth_accounting_weekly
from lakehouse.quality import DqResult
from lakehouse.registry import BOOL, DATE, DOUBLE, INT, SILVER_EVENTS, STRING, TableSpec, column

SPEC = TableSpec(
    "gold", "agg_metric_anomalies",
    T.StructType([
        column("metric", STRING, False, "the count series: events | active_users | new_users | earn_events | "
           "redeem_events (daily); active_users | new_users | churned_users | resurrected_users (weekly)"),
        column("grain", STRING, False, "day | week"),
        column("segment_type", STRING, False, "all | country | acq_source (user-level attributes, not their cross "
           "product)"),
        column("segment_value", STRING, False, "'all', a country or an acquisition source"),
        column("period_start", DATE, False, "the event_date (day) or the week_start (week) of the point"),
        column("value", DOUBLE, False, "the series' count in the period (a whole number)"),
        column("expected", DOUBLE, False, "max(level, 0): the Theil-Sen line through the training points, at t = 0"),
        column("lower_bound", DOUBLE, False, "expected - sensitivity * spread (may be negative)"),
        column("upper_bound", DOUBLE, False, "expected + sensitivity * spread"),
        column("score", DOUBLE, False, "(value - expected) / spread, spread = max(1.4826 * MAD, sqrt(expected))"),
        column("training_periods", INT, False, "training points used: the same weekday / week of the last "
           "anomaly.training_periods periods, from the segment's first period on"),
        column("is_anomaly", BOOL, False, "|score| > anomaly.sensitivity"),
        column("direction", STRING, True, "spike | drop when is_anomaly, else null"),
    ]),
    "One row per (metric, grain, segment_type, segment_value, period_start) evaluated: at least "
    "anomaly.min_training_periods training points and expected >= anomaly.min_expected.",
    keys=("metric", "grain", "segment_type", "segment_value", "period_start"),
)  # fmt: skip

if TYPE_CHECKING:
    from lakehouse.job_runtime import JobContext

log = logging.getLogger("lakehouse")
DAILY_METRICS = ("events", "active_users", "new_users", "earn_events", "redeem_events")
WEEKLY_METRICS = ("active_users", "new_users", "churned_users", "resurrected_users")
SERIES_KEY = ("metric", "grain", "segment_type", "segment_value")
#: The consistency constant of the MAD: 1.4826 * MAD estimates the standard deviation of normal noise.
MAD_SCALE = 1.4826


def input_start(since: date, first_day: str, training_periods: int) -> date:
    """First event day the points from ``since`` need: ``K`` weeks before since's week, and the week
    before that (the first weekly training point's churn and resurrection compare with its previous week)."""
    return week_start_of(since, first_day) - timedelta(weeks=training_periods + 1)


def _segments() -> Column:
    """The three segments a user (or a row of one segment pair) counts in: all, its country, its source."""
    return F.explode(
        F.array(
            F.struct(F.lit("all").alias("segment_type"), F.lit("all").alias("segment_value")),
            F.struct(F.lit("country").alias("segment_type"), F.col("country").alias("segment_value")),
            F.struct(F.lit("acq_source").alias("segment_type"), F.col("acq_source").alias("segment_value")),
        )
    ).alias("segment")


def _long(df: DataFrame, grain: str, metrics: tuple[str, ...]) -> DataFrame:
    """``segment_type, segment_value, period_start`` and one column per metric -> one row per metric."""
    values = F.explode(
        F.array(*[F.struct(F.lit(m).alias("metric"), F.col(m).cast("double").alias("value")) for m in metrics])
    ).alias("v")
    return df.select("segment_type", "segment_value", "period_start", values).select(
        "v.metric", F.lit(grain).alias("grain"), "segment_type", "segment_value", "period_start", "v.value"
    )


def user_day_counts(events_df: DataFrame, max_event_date: date) -> DataFrame:
    """``user_id, event_date, events, earn_events, redeem_events``: one row per user and active day."""
    kind = F.col("event_type")
    return (
        events_df.where(F.col("event_date") <= F.lit(max_event_date))
        .groupBy("user_id", "event_date")
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.count(F.when(kind == "miles_earned", 1)).alias("earn_events"),
            F.count(F.when(kind == "miles_redeemed", 1)).alias("redeem_events"),
        )
    )


def daily_series(
    user_days_df: DataFrame, users_df: DataFrame, max_event_date: date, days: list[date] | None = None
) -> DataFrame:
    """The daily series (long: ``metric, grain, segment_type, segment_value, period_start, value``) of
    every day from the segment's first user's ``first_event_date`` to the data's last date (only those of
    ``days`` when given: ``user_days_df`` then holds those days); a day without events is 0."""
    users = users_df.select("user_id", *SEGMENT, "first_event_date")
    counted = (
        user_days_df.join(users, on="user_id", how="inner")
        .select("event_date", "events", "earn_events", "redeem_events", _segments())
        .groupBy(F.col("segment.segment_type").alias("segment_type"),
                 F.col("segment.segment_value").alias("segment_value"), F.col("event_date").alias("period_start"))
        .agg(F.sum("events").alias("events"), F.count(F.lit(1)).alias("active_users"),
             F.sum("earn_events").alias("earn_events"), F.sum("redeem_events").alias("redeem_events"))
    )  # fmt: skip
    by_segment = users.select("first_event_date", _segments()).select(
        "segment.segment_type", "segment.segment_value", "first_event_date"
    )
    arrived = by_segment if days is None else by_segment.where(F.col("first_event_date").isin(days))
    new = arrived.groupBy("segment_type", "segment_value", F.col("first_event_date").alias("period_start")).agg(
        F.count(F.lit(1)).alias("new_users")
    )
    firsts = by_segment.groupBy("segment_type", "segment_value").agg(F.min("first_event_date").alias("first"))
    if days is None:
        spine = firsts.select(
            "segment_type", "segment_value", F.explode(F.sequence("first", F.lit(max_event_date))).alias("period_start")
        )
    else:
        listed = F.explode(F.array(*[F.lit(d) for d in days])).alias("period_start")
        spine = firsts.select("segment_type", "segment_value", "first", listed).where(
            (F.col("period_start") >= F.col("first")) & (F.col("period_start") <= F.lit(max_event_date))
        )
    keys = ["segment_type", "segment_value", "period_start"]
    rows = spine.join(counted, on=keys, how="left").join(new, on=keys, how="left")
    return _long(rows.select(*keys, *[F.coalesce(m, F.lit(0)).alias(m) for m in DAILY_METRICS]), "day", DAILY_METRICS)


def weekly_series(grid_df: DataFrame, max_event_date: date, from_week: date | None = None) -> DataFrame:
    """The weekly series (long) of complete weeks: the growth accounting of ``grid_df`` summed per segment.

    With ``from_week`` (the grid starting there) the first week has no previous week in the grid,
    so only the weeks after it are exact and kept.
    """
    growth = growth_accounting_weekly(grid_df, max_event_date).where(
        F.date_add("week_start", 6) <= F.lit(max_event_date)
    )
    if from_week is not None:
        growth = growth.where(F.col("week_start") > F.lit(from_week))
    sums = (
        growth.select("week_start", *WEEKLY_METRICS, _segments())
        .groupBy(F.col("segment.segment_type").alias("segment_type"),
                 F.col("segment.segment_value").alias("segment_value"), F.col("week_start").alias("period_start"))
        .agg(*[F.sum(m).alias(m) for m in WEEKLY_METRICS])
    )  # fmt: skip
    return _long(sums, "week", WEEKLY_METRICS)


def _median(ordered: str) -> Column:
    """The median of the sorted array column ``ordered``: the mean of the two middle values of an even count.

    Null-safe on an empty array, because Spark may evaluate it before a filter on the array's size
    (common subexpressions of a predicate are computed first).
    """
    n = F.size(ordered)
    low = F.try_element_at(ordered, F.greatest(((n + 1) / 2).cast("int"), F.lit(1)))  # odd: the middle; even: lower
    high = F.try_element_at(ordered, F.greatest((n / 2 + 1).cast("int"), F.lit(1)))  # odd: the middle; even: upper
    return (low + high) / 2


def _residual(z: Column) -> Column:
    """``|x - (level + slope * t)|`` of one element of ``arrays_zip(training, level_each, slope_each)``."""
    return F.abs(z["training"]["x"] - (z["level_each"] + z["slope_each"] * z["training"]["t"]))


def score_points(series_df: DataFrame, params: AnomalyConfig) -> DataFrame:
    """Every point of ``series_df`` (long series) with its training set, band, score and flag; only the
    points with at least ``min_training_periods`` training points and ``expected >= min_expected``.

    Each sorted array is its own column before its median is taken, and a per-row value enters a
    per-element expression as an array (``zip_with``), not inside the lambda: otherwise the optimizer
    inlines the slope into every element of the residuals and the plan grows with K^3.
    """
    day_number = F.datediff("period_start", F.lit(date(1970, 1, 1)))
    ordered = Window.partitionBy(*SERIES_KEY).orderBy(day_number)
    back = [F.max("value").over(ordered.rangeBetween(-7 * k, -7 * k)) for k in range(1, params.training_periods + 1)]
    training = F.filter(
        F.array(*[F.struct(F.lit(-k).alias("t"), x.alias("x")) for k, x in enumerate(back, start=1)]),
        lambda p: p["x"].isNotNull(),  # no such period: before the segment's first, or the series' window
    )
    with_training = series_df.select(*SERIES_KEY, "period_start", "value", training.alias("training")).where(
        F.size("training") >= params.min_training_periods
    )
    tr = F.col("training")
    pair_slopes = F.flatten(
        F.transform(
            tr,
            lambda a, i: F.transform(F.filter(tr, lambda b, j: j > i), lambda b: (b["x"] - a["x"]) / (b["t"] - a["t"])),
        )
    )

    def each(value: str) -> Column:
        return F.array_repeat(F.col(value), F.size(tr))

    lined = (
        with_training.withColumn("slopes", F.array_sort(pair_slopes))
        .withColumn("slope", _median("slopes"))
        .withColumn("levels", F.array_sort(F.zip_with(tr, each("slope"), lambda p, b: p["x"] - b * p["t"])))
        .withColumn("level", _median("levels"))
        .withColumn("level_each", each("level"))
        .withColumn("slope_each", each("slope"))
        .withColumn("points", F.arrays_zip("training", "level_each", "slope_each"))
        .withColumn("residuals", F.array_sort(F.transform("points", _residual)))
        .withColumn("mad", _median("residuals"))
        .select(*SERIES_KEY, "period_start", "value", "training", "level", "mad")
        # A plan boundary (lazy: nothing runs here): the filter below would otherwise be pushed under the
        # medians, copying their whole expressions into it, and Spark would compute each of them twice.
        .localCheckpoint(eager=False)
        .withColumn("expected", F.greatest(F.col("level"), F.lit(0.0)))
        .where(F.col("expected") >= F.lit(float(params.min_expected)))
        .withColumn("spread", F.greatest(F.lit(MAD_SCALE) * F.col("mad"), F.sqrt("expected")))
        .withColumn("score", (F.col("value") - F.col("expected")) / F.col("spread"))
    )
    s = F.lit(float(params.sensitivity))
    is_anomaly = F.abs("score") > s
    return lined.select(
        *SERIES_KEY,
        "period_start",
        "value",
        "expected",
        (F.col("expected") - s * F.col("spread")).alias("lower_bound"),
        (F.col("expected") + s * F.col("spread")).alias("upper_bound"),
        "score",
        F.size("training").cast("int").alias("training_periods"),
        is_anomaly.alias("is_anomaly"),
        F.when(is_anomaly, F.when(F.col("score") > 0, "spike").otherwise("drop")).alias("direction"),
    )


def needed_days(since: date, max_event_date: date, training_periods: int) -> list[date]:
    """The days the daily points from ``since`` to ``max_event_date`` and their training points fall on."""
    scope_days = [since + timedelta(days=n) for n in range((max_event_date - since).days + 1)]
    return sorted({d - timedelta(weeks=k) for d in scope_days for k in range(training_periods + 1)})


def metric_anomalies(inputs: GoldInputs) -> DataFrame:
    """Every point of the table's scope: all of them (``inputs.since`` None) or those from since on.

    Incremental, the daily series are counted on the days the points need only (one new day: that
    day and the same weekday of the K weeks before; the filter prunes the event-date partitions the
    job reads), and the weekly series only when the scope holds a complete week (a run whose data
    completes a week, or a late event), from the user-day activity of the weeks they need.
    """
    params, since, max_date = inputs.anomaly, inputs.since, inputs.max_event_date
    events = inputs.anomaly_events_df
    if since is None:
        daily = daily_series(user_day_counts(events, max_date), inputs.users_df, max_date)
        weekly = weekly_series(inputs.grid_df, max_date)
    else:
        days = needed_days(since, max_date, params.training_periods)
        events = events.where(F.col("event_date").isin(days))
        daily = daily_series(user_day_counts(events, max_date), inputs.users_df, max_date, days)
        weekly = None
        since_week = week_start_of(since, inputs.week_start)
        if since_week + timedelta(days=6) <= max_date:  # a complete week in the scope
            first = input_start(since, inputs.week_start, params.training_periods)
            activity = inputs.anomaly_activity_df.where(
                (F.col("event_date") >= F.lit(first)) & (F.col("event_date") <= F.lit(max_date))
            )
            grid = user_week_grid(activity, inputs.users_df, max_date, inputs.week_start, first)
            weekly = weekly_series(grid, max_date, first)
    series = daily if weekly is None else daily.unionByName(weekly)
    points = score_points(series, params)
    where = scope(inputs)
    return points if where is None else points.where(where)


def scope(inputs: GoldInputs) -> str | None:
    """The points recomputed from ``inputs.since``: days from since on, weeks from since's week on."""
    if inputs.since is None:
        return None
    return (f"(grain = 'day' AND period_start >= DATE'{inputs.since}') OR "
            f"(grain = 'week' AND period_start >= DATE'{inputs.since_week}')")  # fmt: skip


def parameters(config: LakehouseConfig) -> str:
    """The conf values every row depends on (part of the table's bookkeeping name)."""
    a = config.anomaly
    return (f"[training={a.training_periods},min_training={a.min_training_periods},sensitivity={a.sensitivity},"
            f"min_expected={a.min_expected}]")  # fmt: skip


# Checks (error-level, attributed to this table; see lakehouse.gold.checks)


def band_contains_expected(points: DataFrame) -> Measure:
    bad = (F.col("lower_bound") > F.col("expected")) | (F.col("expected") > F.col("upper_bound"))
    return rows_where(SPEC.full_name, "lower_bound_le_expected_le_upper_bound", points, bad,
                      "lower_bound <= expected <= upper_bound")  # fmt: skip


def flag_follows_score(points: DataFrame, sensitivity: float) -> Measure:
    s = F.lit(float(sensitivity))
    flagged = F.abs("score") > s
    direction = F.when(flagged, F.when(F.col("score") > 0, "spike").otherwise("drop"))
    bad = (F.col("is_anomaly") != flagged) | ~F.col("direction").eqNullSafe(direction)
    details = f"is_anomaly = |score| > {sensitivity}; direction spike (score > 0) or drop when flagged"
    return rows_where(SPEC.full_name, "is_anomaly_equals_abs_score_above_sensitivity", points, bad, details)


def training_periods_within(points: DataFrame, params: AnomalyConfig) -> Measure:
    n = F.col("training_periods")
    bad = (n < params.min_training_periods) | (n > params.training_periods)
    return rows_where(SPEC.full_name, "training_periods_between_min_and_max", points, bad,
                      f"{params.min_training_periods} <= training_periods <= {params.training_periods}")  # fmt: skip


# Warnings (recorded after each publish, never failing the job)


def segment_label(segment_type: str, segment_value: str) -> str:
    return "all" if segment_type == "all" else f"{segment_type}={segment_value}"


def describe(row: dict) -> str:
    """``events in country=PH on 2025-04-15: 29, expected 188 [112, 264] (drop, score -9.4)``."""
    when = f"on {row['period_start']}" if row["grain"] == "day" else f"in the week of {row['period_start']}"
    return (f"{row['metric']} in {segment_label(row['segment_type'], row['segment_value'])} {when}: "
            f"{row['value']:.0f}, expected {row['expected']:.0f} [{row['lower_bound']:.0f}, {row['upper_bound']:.0f}] "
            f"({row['direction']}, score {row['score']:.1f})")  # fmt: skip


def alert_window(points: DataFrame, max_event_date: date, alert_days: int) -> DataFrame:
    """The points of the data's last ``alert_days`` days: days in them, weeks that end in them."""
    first = max_event_date - timedelta(days=alert_days - 1)
    end = F.when(F.col("grain") == "week", F.date_add("period_start", 6)).otherwise(F.col("period_start"))
    return points.where((end >= F.lit(first)) & (end <= F.lit(max_event_date)))


def alert_results(window_rows: list[dict], max_event_date: date, alert_days: int) -> list[DqResult]:
    """One warning per anomaly of the alert window (newest first), or one passing row when there is none."""
    order = ("period_start", "grain", "metric", "segment_type", "segment_value")
    anomalies = sorted((r for r in window_rows if r["is_anomaly"]), key=lambda r: [r[k] for k in order], reverse=True)
    if not anomalies:
        first = max_event_date - timedelta(days=alert_days - 1)
        return [DqResult(SPEC.full_name, "metric_anomaly", "warn", len(window_rows), 0,
                         f"none in the last {alert_days} days ({first} .. {max_event_date})")]  # fmt: skip
    return [DqResult(SPEC.full_name, "metric_anomaly", "warn", 1, 1, describe(r)) for r in anomalies]


def freshness_result(newest_event_time: datetime | None, run_start: datetime, freshness_hours: int) -> DqResult:
    """The newest event older than ``freshness_hours`` at ``run_start`` (both wall-clock in conf timezone)."""
    if newest_event_time is None:
        return DqResult(SILVER_EVENTS.full_name, "data_freshness", "warn", 0, 1, "no event in silver.fct_events")
    age = (run_start - newest_event_time).total_seconds() / 3600
    stale = age > freshness_hours
    return DqResult(SILVER_EVENTS.full_name, "data_freshness", "warn", 1, int(stale),
                    f"newest event_time {newest_event_time:%Y-%m-%d %H:%M:%S} is {age:,.1f} h old at the run's start "
                    f"({run_start:%Y-%m-%d %H:%M:%S}); threshold {freshness_hours} h")  # fmt: skip


def warnings(ctx: JobContext, inputs: GoldInputs) -> list[DqResult]:
    """The alerts of the published table's last days and the freshness of the data (two small reads)."""
    params, max_date = inputs.anomaly, inputs.max_event_date
    published = delta_io.read(ctx.spark, SPEC, ctx.config)
    window = [r.asDict() for r in alert_window(published, max_date, params.alert_days).collect()]
    newest = inputs.anomaly_events_df.where(F.col("event_date") == F.lit(max_date)).agg(F.max("event_time")).first()[0]
    zone = ZoneInfo(ctx.config.timezone)
    run_start = ctx.run.started_at.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    results = [*alert_results(window, max_date, params.alert_days),
               freshness_result(newest, run_start, params.freshness_hours)]  # fmt: skip
    for r in results:
        if r.status == "warn":
            log.warning("%s: %s: %s", r.table_name, r.check_name, r.details)
    return results


def stale_data(config: LakehouseConfig) -> list[str]:
    """A run with nothing new still judges freshness (no new data is when data goes stale): the newest
    event_time from silver.fct_events's file statistics, read by delta-rs (no JVM, no data file). A
    reminder of the idle run, not an ``ops.dq_results`` row: the checks recorded stay those of the last
    run that brought data. Object storage: not judged on idle runs (delta-rs is local only)."""
    if not delta_rs.usable(config) or not delta_rs.exists(SILVER_EVENTS, config):
        return []
    newest = delta_rs.column_max(SILVER_EVENTS, config, "event_time")
    zone = ZoneInfo(config.timezone)
    if newest is not None:
        newest = newest.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    result = freshness_result(newest, datetime.now(zone).replace(tzinfo=None), config.anomaly.freshness_hours)
    return [f"{result.check_name}: {result.details}"] if result.failed_rows else []


GOLD = GoldTable(
    SPEC,
    metric_anomalies,
    scope,
    checks=(
        lambda t, i: [band_contains_expected(t(SPEC.full_name))],
        lambda t, i: [flag_follows_score(t(SPEC.full_name), i.anomaly.sensitivity)],
        lambda t, i: [training_periods_within(t(SPEC.full_name), i.anomaly)],
    ),
    warnings=warnings,
    parameters=parameters,
    idle_reminders=stale_data,
    reads=reading(full_rebuild=("grid",)),
)
