"""The gold job: recompute what new data changed in one gold table, check it, then publish it.

Every gold table is data here, not a copy of a job: each gold module declares one
:class:`~lakehouse.gold.table.GoldTable` value (spec, pure ``build``, ``scope``, incremental build
where it has one, checks), :data:`GOLD_TABLES` lists them, and :func:`gold_job` turns one into a
runnable :class:`Job` named ``gold_<table>`` (``jobs/gold_<table>.py`` runs one alone). The job

1. finds its pending batches (:mod:`lakehouse.batches`: recorded by ``silver.user_activity_daily``
   and ``silver.dim_users``, not yet by this table); none -> nothing to do, no commit;
2. derives ``since``, the first day the new data can change (see :mod:`lakehouse.gold.activity`),
   from the event dates silver recorded for those batches; a table that has recorded nothing yet
   (first run, full refresh, other gold parameters) is rebuilt whole;
3. reads the compact inputs: ``silver.user_activity_daily`` from the day the recomputation needs,
   every user's segment (and miles balance) from the ``silver.dim_users`` snapshot of the data's
   last date, the miles events of ``silver.fct_events`` from since's week on (partitions pruned;
   only batches both upstream tables recorded) and every user's balance before that week from the
   ``silver.dim_users`` snapshot of the day before it;
4. builds the rows of its scope, runs the error-level checks attributed to its table on them
   (:mod:`lakehouse.gold.checks`); on a failure it exits 1 and the published table stays as it was;
5. replaces exactly its scope in one Delta commit (``replaceWhere``; a full rebuild overwrites),
   then records the batches.

The consumer name carries the gold parameters (week start, lookback, offsets): changing them in
conf makes every gold table rebuild itself whole on the next run. Jobs of one application (the DAG
runner) share the computation through the job context: the inputs and every table built from them
are kept per (since, last date, parameters), so the gold jobs of a run compute each table once. The
inputs are read lazily (:class:`GoldComputation`): a gold job run alone (``spark-submit``, an
Airflow task) computes the user-week grid only if its table reads it, and the miles inputs only
for the two miles tables (each table declares what it ``reads``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import batches, delta_io
from lakehouse.config import AnomalyConfig, LakehouseConfig
from lakehouse.gold import checks
from lakehouse.gold.activity import (
    GoldInputs,
    gold_inputs,
    input_bounds,
    miles_inputs,
    user_statuses,
    week_end_snapshots,
    week_start_of,
)
from lakehouse.gold.table import GoldTable
from lakehouse.gold.tables import agg_metric_anomalies, discover
from lakehouse.job_runtime import CacheSlot, Consumes, Job, JobContext, JobFailed, NoParams
from lakehouse.quality import DqResult
from lakehouse.registry import SILVER_DIM_USERS, SILVER_EVENTS, SILVER_USER_ACTIVITY, TableSpec

log = logging.getLogger("lakehouse")

#: Every gold table computed from silver, by full name: the ``GOLD`` value of each module of
#: ``lakehouse/gold/tables/`` (found, not listed: :func:`lakehouse.gold.tables.discover`).
GOLD_TABLES: dict[str, GoldTable] = discover()
UPSTREAM = (SILVER_USER_ACTIVITY.full_name, SILVER_DIM_USERS.full_name)


def consumer(spec: TableSpec, config: LakehouseConfig) -> str:
    """The table's name in ``ops.processed_batches``, with the parameters its rows depend on."""
    g = config.gold
    own = GOLD_TABLES[spec.full_name].parameters if spec.full_name in GOLD_TABLES else None
    return (f"{spec.full_name}[week_start={config.week_start},lookback={g.lookback_weeks},offsets={g.max_week_offset}]"
            + (own(config) if own else ""))  # fmt: skip


def consumes(spec: TableSpec) -> Consumes:
    """A gold table's declared inputs: the batches both silver consumers recorded (dates from silver's
    records); it reads their tables, the miles events, and its own published rows (retention)."""
    return Consumes(lambda config: consumer(spec, config), UPSTREAM, SILVER_EVENTS.full_name,
                    reads=(SILVER_USER_ACTIVITY, SILVER_DIM_USERS, SILVER_EVENTS, spec))  # fmt: skip


class NoEventsYet(Exception):
    """Silver holds no event yet (every file so far was empty, refused or rejected)."""


@dataclass(frozen=True)
class Plan:
    """What one gold table has to do in this run."""

    pending: list[str]
    #: First day to recompute; None with ``full`` = rebuild everything.
    since: date | None
    full: bool
    max_event_date: date | None

    @property
    def idle(self) -> bool:
        return not self.full and self.since is None


def plan(ctx: JobContext, spec: TableSpec) -> Plan:
    """Pending batches and the first day they change, from the bookkeeping alone."""
    name = consumer(spec, ctx.config)
    work = consumes(spec).pending_work(ctx)
    pending = work.batches
    silver = batches.consumed(ctx, SILVER_EVENTS.full_name)
    mine = [b for b in batches.consumed(ctx, name) if b in silver]
    if not pending:
        return Plan([], None, False, None)
    everything = [silver[b] for b in (*mine, *pending) if b in silver]
    if any(c.rows_inserted and c.max_event_date_inserted is None for c in everything):
        return Plan(pending, None, True, None)  # batches recorded before the bookkeeping had dates
    removed = batches.undone(ctx)  # their dates are days to recompute, not dates of the data
    highs = [c.max_event_date_inserted for c in everything if c.max_event_date_inserted and c.batch_id not in removed]
    new_max = max(highs) if highs else None
    if not mine:
        return Plan(pending, None, True, new_max)
    old_highs = [silver[b].max_event_date_inserted for b in mine if b not in removed]
    old_highs = [d for d in old_highs if d]
    old_max = max(old_highs) if old_highs else None
    candidates = [c.min_event_date_inserted for c in work.dated]
    if new_max is not None and (old_max is None or new_max > old_max):
        candidates.append(old_max + timedelta(days=1) if old_max else new_max)
    return Plan(pending, min(candidates) if candidates else None, False, new_max)


@dataclass(frozen=True)
class GoldKey:
    """What the gold tables' shared inputs depend on (their cache key in ``ctx.caches.gold_inputs``)."""

    warehouse: str
    since: date | None
    max_event_date: date | None
    week_start: str
    lookback_weeks: int
    max_week_offset: int
    anomaly: AnomalyConfig


@dataclass
class GoldComputation:
    """The inputs of one (since, last date, parameters) and the gold tables built from them so far.

    Thread-safe: the DAG runner runs the gold jobs side by side, and each table is built once
    (checks of one table read others) while different tables build at the same time. Lazy where a
    table may not need an input: the user-week grid and the miles inputs are computed for the first
    table that declares it ``reads`` them, and the activity is materialised by the first table that
    reads it (``localCheckpoint(eager=False)``); a gold job run alone computes what its table reads.
    """

    #: The shared inputs, without the optional ones (None there: see :meth:`inputs_for`).
    inputs: GoldInputs
    #: Each optional input (:data:`~lakehouse.gold.table.OPTIONAL_INPUTS`) as the fields it sets, computed on first use.
    optional: dict[str, Callable[[], dict[str, DataFrame]]]
    #: The published table by name (read only by tables with ``build_from_previous``).
    previous: Callable[[str], DataFrame]
    built: dict[str, DataFrame] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=lambda: {name: threading.Lock() for name in GOLD_TABLES})
    _inputs_lock: threading.Lock = field(default_factory=threading.Lock)
    _computed: dict[str, dict[str, DataFrame]] = field(default_factory=dict)
    _activity_rows: int | None = None

    def inputs_for(self, full_name: str) -> GoldInputs:
        """The inputs table ``full_name`` is built and checked from: the shared ones and the optional ones it reads.

        The activity is materialised here first, by one thread: a lazily checkpointed RDD that one job
        checkpoints while another job's stages are being planned over it can show the planner no dependencies
        (Spark's ``RDD.dependencies`` races with ``markCheckpointed``: an internal error in ``localCheckpoint``,
        seen with the gold jobs side by side)."""
        fields: dict[str, DataFrame] = {}
        with self._inputs_lock:
            self._count_activity()
            for name in sorted(GOLD_TABLES[full_name].reads(self.inputs.since)):
                if name not in self._computed:
                    self._computed[name] = self.optional[name]()
                fields.update(self._computed[name])
        return dataclasses.replace(self.inputs, **fields) if fields else self.inputs

    @property
    def activity_rows(self) -> int:
        """Rows of the activity the inputs hold (a job's ``rows_in``), counted once."""
        with self._inputs_lock:
            return self._count_activity()

    def _count_activity(self) -> int:
        """The activity's rows; the first count materialises its checkpoint (the caller holds the lock)."""
        if self._activity_rows is None:
            self._activity_rows = self.inputs.activity_df.count()
        return self._activity_rows

    def table(self, full_name: str) -> DataFrame:
        with self._locks[full_name]:
            return self._table(full_name)

    def _table(self, full_name: str) -> DataFrame:
        if full_name not in self.built:
            # An incremental build reads the previous rows before the overwrite, and the checkpoint
            # below materialises the result, so publishing over the table it came from is safe.
            df = GOLD_TABLES[full_name].compute(self.inputs_for(full_name), lambda: self.previous(full_name))
            # Checkpointed: the checks and the publish read each table several times.
            self.built[full_name] = df.localCheckpoint()
        return self.built[full_name]


#: One gold job at a time computes the shared inputs; the others wait for them and reuse them.
_INPUTS_LOCK = threading.Lock()
#: The shared inputs of the gold jobs of one run, by what they depend on.
GOLD_INPUTS: CacheSlot[GoldKey, GoldComputation] = CacheSlot("gold_inputs")


def compute_inputs(ctx: JobContext, since: date | None, max_event_date: date | None) -> GoldComputation:
    """The compact inputs from silver for rows from ``since`` on (None: all), once per application."""
    with _INPUTS_LOCK:
        return _compute_inputs(ctx, since, max_event_date)


def _compute_inputs(ctx: JobContext, since: date | None, max_event_date: date | None) -> GoldComputation:
    spark, config = ctx.spark, ctx.config
    for spec in (SILVER_USER_ACTIVITY, SILVER_DIM_USERS):
        if not delta_io.exists(spec, config):
            raise JobFailed(f"{spec.full_name} does not exist yet: run the silver jobs of the DAG first")
    gold = config.gold
    key = GoldKey(config.paths.warehouse, since, max_event_date, config.week_start, gold.lookback_weeks,
                  gold.max_week_offset, config.anomaly)  # fmt: skip
    cache = ctx.caches.slot(GOLD_INPUTS)
    if key in cache:
        return cache[key]
    for stale in [k for k in cache if k.max_event_date != max_event_date]:
        del cache[stale]  # keep only the computations of the newest data alive
    activity = delta_io.read(spark, SILVER_USER_ACTIVITY, config)
    if max_event_date is None:
        max_event_date = activity.agg(F.max("activity_date")).first()[0]
        if max_event_date is None:
            raise NoEventsYet("silver.user_activity_daily is empty")
    if since is not None:
        first_day = input_bounds(since, config.week_start, gold.lookback_weeks)[0]
        activity = activity.where(
            (F.col("activity_month") >= F.lit(first_day.replace(day=1))) & (F.col("activity_date") >= F.lit(first_day))
        )
    activity = activity.where(F.col("activity_date") <= F.lit(max_event_date)).select(
        "user_id", F.col("activity_date").alias("event_date")
    )
    snapshots = delta_io.read(spark, SILVER_DIM_USERS, config)
    users = (
        snapshots.where(F.col("ds") == F.lit(max_event_date))
        .select("user_id", "acq_source", "country", "first_event_date", "last_event_date", "miles_balance")
        .localCheckpoint()
    )
    if users.isEmpty():
        raise JobFailed(
            f"silver.dim_users has no snapshot for {max_event_date}, the data's last date: run silver_dim_users first"
        )
    activity = activity.localCheckpoint(eager=False)
    inputs = gold_inputs(activity, users, max_event_date, config.week_start, gold.lookback_weeks,
                         gold.max_week_offset, since, anomaly_events_df=_anomaly_events(ctx, since),
                         anomaly_activity_df=_anomaly_activity(ctx, since), anomaly=config.anomaly)  # fmt: skip
    # The optional inputs are None until a table that reads them asks (a table that did not declare
    # one and reads it fails instead of reading nothing).
    grid = inputs.grid_df
    inputs = dataclasses.replace(inputs, grid_df=None, miles_events_df=None, miles_base_df=None, status_df=None,
                                 week_ends_df=None)  # fmt: skip

    def miles() -> dict[str, DataFrame]:
        events, base = miles_inputs(*_miles_inputs(ctx, snapshots, since), config.week_start, since)
        return {"miles_events_df": events, "miles_base_df": base}

    def previous(full_name: str) -> DataFrame:
        return delta_io.read(spark, GOLD_TABLES[full_name].spec, config)

    def statuses() -> dict[str, DataFrame]:
        return {"status_df": user_statuses(grid, gold.lookback_weeks).localCheckpoint()}

    def week_ends() -> dict[str, DataFrame]:
        ends = week_end_snapshots(snapshots, config.week_start, max_event_date, inputs.since_week)
        return {"week_ends_df": ends.localCheckpoint()}

    optional = {"grid": lambda: {"grid_df": grid.localCheckpoint()}, "miles": miles, "status": statuses,
                "week_ends": week_ends}  # fmt: skip
    computation = GoldComputation(inputs, optional, previous)
    cache[key] = computation
    return computation


def _recorded_events(ctx: JobContext) -> DataFrame:
    """``silver.fct_events`` of the batches both upstream tables recorded (so that they agree with the snapshots)."""
    recorded = set(batches.consumed(ctx, SILVER_USER_ACTIVITY.full_name)) & set(
        batches.consumed(ctx, SILVER_DIM_USERS.full_name)
    )
    return delta_io.read(ctx.spark, SILVER_EVENTS, ctx.config).where(F.col("_batch_id").isin(sorted(recorded)))


def _anomaly_events(ctx: JobContext, since: date | None) -> DataFrame:
    """The events the anomaly series count: from the first day the points from ``since`` need (all: None).

    Lazy: only the anomaly table's build reads them (date partitions pruned to its window).
    """
    events = _recorded_events(ctx)
    if since is not None:
        first = agg_metric_anomalies.input_start(since, ctx.config.week_start, ctx.config.anomaly.training_periods)
        events = events.where(F.col("event_date") >= F.lit(first))
    return events


def _anomaly_activity(ctx: JobContext, since: date | None) -> DataFrame | None:
    """``silver.user_activity_daily`` as ``user_id, event_date`` from the anomaly window's first day (lazy, as
    above; None for a full rebuild: the anomaly table then uses the shared inputs)."""
    if since is None:
        return None
    first = agg_metric_anomalies.input_start(since, ctx.config.week_start, ctx.config.anomaly.training_periods)
    activity = delta_io.read(ctx.spark, SILVER_USER_ACTIVITY, ctx.config).where(
        (F.col("activity_month") >= F.lit(first.replace(day=1))) & (F.col("activity_date") >= F.lit(first))
    )
    return activity.select("user_id", F.col("activity_date").alias("event_date"))


def _miles_inputs(ctx: JobContext, snapshots: DataFrame, since: date | None) -> tuple[DataFrame, DataFrame | None]:
    """The miles events from since's week on (all: None) and every user's balance before that week.

    Only events of batches both upstream tables recorded, so that the events agree with the
    snapshots. The balances come from the ``silver.dim_users`` snapshot of the day before since's
    week (one row per user instead of every earlier event); a warehouse without that snapshot (only
    some days were built by hand) falls back to summing the earlier events.
    """
    config = ctx.config
    events = _recorded_events(ctx)
    if since is None:
        return events, None
    from_week = week_start_of(since, config.week_start)
    previous_day = from_week - timedelta(days=1)
    base = snapshots.where(F.col("ds") == F.lit(previous_day)).select("user_id", "miles_balance").localCheckpoint()
    first_days = [c.min_event_date_inserted for c in batches.consumed(ctx, SILVER_EVENTS.full_name).values()
                  if c.min_event_date_inserted]  # fmt: skip
    if base.isEmpty() and first_days and min(first_days) <= previous_day:
        log.warning("silver.dim_users has no snapshot for %s: summing the miles events before it", previous_day)
        base = None  # gold_inputs sums them from the events it is given: all of them
    else:
        events = events.where(F.col("event_date") >= F.lit(from_week))
    return events, base


def publish(ctx: JobContext, spec: TableSpec) -> None:
    todo = plan(ctx, spec)
    name = consumer(spec, ctx.config)
    if not todo.pending:
        log.info("%s: up to date (no new batches)", spec.full_name)
        ctx.run.rows_in = ctx.run.rows_out = 0
        return
    if todo.idle:
        log.info("%s: the new batches brought no new events", spec.full_name)
        batches.record(ctx, name, [batches.Consumption(b) for b in todo.pending])
        ctx.run.rows_in = ctx.run.rows_out = 0
        return
    try:
        computation = compute_inputs(ctx, None if todo.full else todo.since, todo.max_event_date)
    except NoEventsYet:
        # Not an error: the table is built on the first run that has events. Its batches stay
        # pending, so that run rebuilds it whole.
        log.warning("%s: no events in silver yet, nothing to publish", spec.full_name)
        ctx.run.rows_in = ctx.run.rows_out = 0
        return
    inputs = computation.inputs_for(spec.full_name)
    results = checks.run_checks(GOLD_TABLES[spec.full_name], computation.table, inputs)
    ctx.run.record_dq(results)
    failed = [c for c in results if c.status == "fail"]
    if failed:
        listed = "; ".join(f"{c.check_name}: {c.failed_rows} of {c.rows_checked} rows ({c.details})" for c in failed)
        raise JobFailed(f"{spec.full_name} not published, metric checks failed: {listed}")
    df = computation.table(spec.full_name)
    where = GOLD_TABLES[spec.full_name].scope(inputs)
    if where is None:
        delta_io.overwrite(df, spec, ctx.config)
        written = None
    else:
        written = delta_io.replace_where(df, spec, ctx.config, where).get("numOutputRows")
    batches.record(ctx, name, [batches.Consumption(b) for b in todo.pending])
    warn = GOLD_TABLES[spec.full_name].warnings
    if warn is not None:  # findings that never block publishing (the anomaly alerts): after the publish
        ctx.run.record_dq(warn(ctx, inputs))
    ctx.run.rows_in = computation.activity_rows
    ctx.run.rows_out = written if written is not None else df.count()
    ctx.run.parameters.update({"recomputed_from": str(todo.since) if where else "all"})
    log.info("%s: %s rows published (%s; data up to %s)", spec.full_name, ctx.run.rows_out,
             f"rows from {todo.since}" if where else "full rebuild", inputs.max_event_date)  # fmt: skip


def gold_job(spec: TableSpec) -> Job[NoParams]:
    def body(ctx: JobContext, params: NoParams) -> None:
        publish(ctx, spec)

    return Job(
        f"gold_{spec.name}",
        f"silver.user_activity_daily + silver.dim_users -> {spec.full_name}: {spec.grain}",
        NoParams,
        body,
        inputs=consumes(spec),
        group="gold tables",
        idle_reminders=GOLD_TABLES[spec.full_name].idle_reminders,
    )


#: One job per gold table, by job name.
JOBS: dict[str, Job[NoParams]] = {job.name: job for job in (gold_job(t.spec) for t in GOLD_TABLES.values())}


def run_all_checks(tables: dict[str, DataFrame], inputs: GoldInputs) -> list[DqResult]:
    """Every gold table's checks over already computed tables (tests and ad-hoc validation)."""
    return [r for name, table in GOLD_TABLES.items() for r in checks.run_checks(table, tables.__getitem__, inputs)]
