"""Incremental bookkeeping: which batches each table has consumed, and what is pending for it.

A batch is one ingested file, committed to bronze and listed in ``ops.ingested_files``. Each table
that is loaded incrementally (a *consumer*: ``silver.fct_events``, ``silver.dim_users``, the gold
tables...) records the batches it has loaded in ``ops.processed_batches``. A consumer reads from
*upstream* consumers: what they have all recorded and it has not is its pending work. Bronze is the
root: its committed batches are the upstream of ``silver.fct_events``. Every consumer goes through
this module, so the rule is written once:

- :func:`pending` - batches every upstream has recorded and the consumer has not;
- :func:`pending_work` - the same with the event-date span they changed (what every consumer needs to
  know which days to recompute), and :func:`data_dates` - the first and last event date of silver;
- :func:`consumed` - what the consumer (or an upstream) recorded per batch, with the event dates
  the batch inserted (``silver.fct_events`` records them; downstream consumers read them to know
  which days the new data can change);
- :func:`record` - mark batches consumed;
- :func:`reset` / :func:`full_refresh` - forget a consumer's batches (and empty its tables);
- :func:`record_intents` / :func:`undo_unrecorded` - every row traceable to a recorded batch after any
  crash: a batch's intent (``ops.batch_intents``) is committed before its rows; a batch with an intent
  and no ``ops.ingested_files`` row of the same run was started by a run that stopped before its
  bookkeeping, and the next run removes its rows from every table that carries a batch id (bronze, its
  quarantine, ``silver.fct_events``) before it ingests anything, recording it as ``undone`` with the
  event dates it had. Consumers see an undone batch as pending work over those dates: silver restores
  from bronze the copies of events it held (:mod:`lakehouse.silver.fct_events`), the tables downstream
  recompute those days. A file changed in place after such a crash is then an ordinary new batch.

The three ledger tables are read once per run into a :class:`Ledger` (by delta-rs on a local
warehouse, before any JVM starts: :func:`load_ledger`) and kept in the job context; records are added
to it in memory at once and written with the run's bookkeeping (one commit per ops table per run, see
:class:`lakehouse.ops.OpsSink`). Finding pending work therefore costs three small reads per run,
whatever the history, and none after the first job. :meth:`Ledger.pending_work` is the one definition
of a consumer's pending work: the job runtime decides from it whether a job has anything to do before
its body runs (:class:`lakehouse.job_runtime.Consumes`), and the body reads its work from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Protocol

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io, delta_rs
from lakehouse.config import LakehouseConfig
from lakehouse.ops import ConsumptionRecord, FileRecord, IntentRecord, JobRun, append_records, utc_now
from lakehouse.registry import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    OPS_BATCH_INTENTS,
    OPS_INGESTED_FILES,
    OPS_PROCESSED_BATCHES,
    SILVER_EVENTS,
    TableSpec,
)

#: The root of every chain of consumers: committed bronze batches.
BRONZE = "bronze"


@dataclass(frozen=True)
class Consumption:
    """What a consumer did with one batch: the part of its ``ops.processed_batches`` row that later runs
    decide from (:class:`~lakehouse.ops.ConsumptionRecord` is the whole row)."""

    batch_id: str
    rows_in: int = 0
    rows_inserted: int = 0
    min_event_date_inserted: date | None = None
    max_event_date_inserted: date | None = None

    def merged(self, other: Consumption) -> Consumption:
        """Two records of one batch (a re-run after an interrupted one): the union of their dates."""
        lows = [d for d in (self.min_event_date_inserted, other.min_event_date_inserted) if d]
        highs = [d for d in (self.max_event_date_inserted, other.max_event_date_inserted) if d]
        return replace(
            self,
            rows_in=max(self.rows_in, other.rows_in),
            rows_inserted=self.rows_inserted + other.rows_inserted,
            min_event_date_inserted=min(lows) if lows else None,
            max_event_date_inserted=max(highs) if highs else None,
        )


#: File statuses that a later run does not look at again while the file is unchanged.
BAD = ("refused", "rejected")
IGNORED = "ignored"
UNDONE = "undone"
#: The tables whose rows carry the bronze batch id (``_batch_id``): an undone batch's rows are removed
#: from these; the others are derived from them by date.
BATCH_TABLES = (BRONZE_EVENTS, BRONZE_QUARANTINE, SILVER_EVENTS)


class _Caches(Protocol):
    ledgers: dict[str, Ledger]


class Context(Protocol):
    """What the functions here need of a job's context (:class:`lakehouse.job_runtime.JobContext`)."""

    spark: SparkSession
    config: LakehouseConfig
    run: JobRun
    caches: _Caches


@dataclass
class Ledger:
    files: list[FileRecord] = field(default_factory=list)
    #: consumer -> batch_id -> what it recorded.
    consumptions: dict[str, dict[str, Consumption]] = field(default_factory=dict)
    intents: list[IntentRecord] = field(default_factory=list)

    def committed(self) -> dict[str, FileRecord]:
        return {f.batch_id: f for f in self.files if f.status == "committed"}

    def unrecorded(self) -> list[IntentRecord]:
        """Intents no ``ops.ingested_files`` row of the same run answers: their run stopped first."""
        recorded = {(f.batch_id, f.run_id) for f in self.files}
        return [i for i in self.intents if (i.batch_id, i.run_id) not in recorded]

    def undone(self) -> dict[str, FileRecord]:
        """Batches whose rows a run removed (their run stopped before recording them), not committed since."""
        committed = self.committed()
        return {f.batch_id: f for f in self.files if f.status == UNDONE and f.batch_id not in committed}

    def unresolved(self) -> list[FileRecord]:
        """Refused or rejected files whose batch was not committed since (retried or fixed in place)."""
        committed = self.committed()
        return [f for f in self.files if f.status in BAD and f.batch_id not in committed]

    def ignored(self) -> list[FileRecord]:
        return [f for f in self.files if f.status == IGNORED]

    def consumed(self, consumer: str) -> dict[str, Consumption]:
        """What ``consumer`` recorded, by batch. For ``BRONZE``: the committed batches, and the undone ones
        as batches of no rows over the dates they had (their consumers recompute those days)."""
        if consumer == BRONZE:
            undone = {b: Consumption(b, 0, 0, f.min_event_date, f.max_event_date) for b, f in self.undone().items()}
            return undone | {
                b: Consumption(b, f.rows_accepted, f.rows_accepted, f.min_event_date, f.max_event_date)
                for b, f in self.committed().items()
            }
        return self.consumptions.get(consumer, {})

    def add(self, consumer: str, consumption: Consumption) -> None:
        mine = self.consumptions.setdefault(consumer, {})
        before = mine.get(consumption.batch_id)
        mine[consumption.batch_id] = before.merged(consumption) if before else consumption

    def pending(self, consumer: str, upstream: Sequence[str] = (BRONZE,)) -> list[str]:
        """Batches every ``upstream`` consumer has recorded and ``consumer`` has not, sorted."""
        ready: set[str] | None = None
        for name in upstream:
            ids = set(self.consumed(name))
            ready = ids if ready is None else ready & ids
        return sorted((ready or set()) - set(self.consumed(consumer)))

    def pending_work(
        self, consumer: str, upstream: Sequence[str] = (BRONZE,), dates_from: str | None = None
    ) -> PendingWork:
        """:meth:`pending` batches of ``consumer`` with the event dates ``dates_from`` (default: the first
        upstream) recorded for them: the one place consumers learn which days new data changed."""
        ids = self.pending(consumer, upstream)
        recorded = self.consumed(dates_from or upstream[0])
        undone = frozenset(set(ids) & set(self.undone()))
        return PendingWork(ids, {b: recorded[b] for b in ids if b in recorded}, undone)


def _columns(df, spec: TableSpec):
    """``spec``'s columns of ``df``; a column an older version of the table lacks reads as null."""
    return df.select(
        *[F.col(f.name) if f.name in df.columns else F.lit(None).alias(f.name) for f in spec.schema.fields]
    )


#: The ledger's tables, in the order :func:`ledger_from_rows` takes their rows.
LEDGER_TABLES = (OPS_INGESTED_FILES, OPS_PROCESSED_BATCHES, OPS_BATCH_INTENTS)


def ledger_from_rows(
    files: Iterable[Mapping[str, Any]],
    consumptions: Iterable[Mapping[str, Any]],
    intents: Iterable[Mapping[str, Any]] = (),
) -> Ledger:
    """The ledger from the tables' rows (Spark rows or dicts with the tables' columns)."""
    ledger = Ledger()
    ledger.files = [FileRecord.from_row(r) for r in files]
    for r in map(ConsumptionRecord.from_row, consumptions):
        ledger.add(r.consumer, Consumption(r.batch_id, r.rows_in, r.rows_inserted, r.min_event_date_inserted,
                                           r.max_event_date_inserted))  # fmt: skip
    ledger.intents = [IntentRecord.from_row(r) for r in intents]
    return ledger


def load_ledger(config: LakehouseConfig, spark: SparkSession | None = None) -> Ledger:
    """The warehouse's bookkeeping: read by delta-rs on a local warehouse (no JVM), else through Spark.
    A table not created yet reads as empty."""
    if delta_rs.usable(config):
        return ledger_from_rows(*(delta_rs.read_rows(spec, config) for spec in LEDGER_TABLES))
    if spark is None:
        raise ValueError(f"the bookkeeping of {config.paths.warehouse} is read through Spark (not a local path)")
    rows = [
        [r.asDict() for r in _columns(delta_io.read(spark, spec, config), spec).collect()]
        if delta_io.exists(spec, config)
        else []
        for spec in LEDGER_TABLES
    ]
    return ledger_from_rows(*rows)


def cached_ledger(ledgers: dict[str, Ledger], config: LakehouseConfig, spark: SparkSession | None) -> Ledger:
    """The bookkeeping of this warehouse, read once per run (kept in ``ledgers``, by warehouse)."""
    if config.paths.warehouse not in ledgers:
        ledgers[config.paths.warehouse] = load_ledger(config, spark)
    return ledgers[config.paths.warehouse]


def ledger(ctx: Context) -> Ledger:
    """The run's ledger of this warehouse (:func:`cached_ledger` of ``ctx.caches.ledgers``)."""
    return cached_ledger(ctx.caches.ledgers, ctx.config, ctx.spark)


def consumed(ctx: Context, consumer: str) -> dict[str, Consumption]:
    """What ``consumer`` recorded, by batch id (``BRONZE``: the committed batches)."""
    return ledger(ctx).consumed(consumer)


def undone(ctx: Context) -> set[str]:
    """Batches whose rows were removed (:func:`undo_unrecorded`): their recorded dates are days to
    recompute, never dates the data has."""
    return set(ledger(ctx).undone())


def pending(ctx: Context, consumer: str, upstream: Sequence[str] = (BRONZE,)) -> list[str]:
    """:meth:`Ledger.pending` of this warehouse's ledger."""
    return ledger(ctx).pending(consumer, upstream)


@dataclass(frozen=True)
class PendingWork:
    """A consumer's pending batches and the days they changed (what ``dates_from`` recorded for them)."""

    batches: list[str]
    #: The pending batches' records of the upstream that knows their event dates.
    recorded: dict[str, Consumption]
    #: Of the pending batches, those undone (their days are recomputed, never dates of the data).
    undone: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.batches)

    @property
    def dated(self) -> list[Consumption]:
        """The pending batches' records that carry event dates."""
        return [c for b in self.batches if (c := self.recorded.get(b)) and c.min_event_date_inserted]

    @property
    def first_day(self) -> date | None:
        return min((c.min_event_date_inserted for c in self.dated), default=None)

    @property
    def last_day(self) -> date | None:
        return max((c.max_event_date_inserted for c in self.dated), default=None)


def pending_work(
    ctx: Context, consumer: str, upstream: Sequence[str] = (BRONZE,), dates_from: str | None = None
) -> PendingWork:
    """:meth:`Ledger.pending_work` of this warehouse's ledger."""
    return ledger(ctx).pending_work(consumer, upstream, dates_from)


def data_dates(ctx: Context) -> tuple[date | None, date | None]:
    """Earliest and latest event_date of ``silver.fct_events``, from its bookkeeping (no scan).

    Undone batches do not count (their rows are gone). Falls back to reading the table when a batch
    recorded before the bookkeeping had dates holds rows.
    """
    removed = undone(ctx)
    recorded = [c for b, c in consumed(ctx, SILVER_EVENTS.full_name).items() if b not in removed]
    if any(c.rows_inserted and c.max_event_date_inserted is None for c in recorded):
        bounds = delta_io.read(ctx.spark, SILVER_EVENTS, ctx.config).agg(F.min("event_date"), F.max("event_date"))
        return tuple(bounds.first())  # type: ignore[return-value]
    lows = [c.min_event_date_inserted for c in recorded if c.min_event_date_inserted]
    highs = [c.max_event_date_inserted for c in recorded if c.max_event_date_inserted]
    return (min(lows) if lows else None), (max(highs) if highs else None)


def record(ctx: Context, consumer: str, batches: Iterable[Consumption]) -> None:
    """Mark ``batches`` consumed by ``consumer`` (written with the run's bookkeeping)."""
    batches = list(batches)
    if not batches:
        return
    now = utc_now()
    book = ledger(ctx)
    for b in batches:
        book.add(consumer, b)
    ctx.run.sink.add([
        ConsumptionRecord(consumer, b.batch_id, ctx.run.run_id, int(b.rows_in), int(b.rows_inserted),
                          b.min_event_date_inserted, now, b.max_event_date_inserted)
        for b in batches
    ])  # fmt: skip


def record_intents(ctx: Context, intents: list[IntentRecord]) -> None:
    """Commit the intents now, before the batches' rows are written (one commit)."""
    if not intents:
        return
    append_records(intents, ctx.spark, ctx.config)
    ledger(ctx).intents.extend(intents)


def undo_unrecorded(ctx: Context) -> list[IntentRecord]:
    """Remove the rows of batches whose run stopped between their intent and their record, from every
    table of :data:`BATCH_TABLES`, and record each as ``undone`` (with the run's bookkeeping). Idempotent:
    stopped again before that record, the next run finds the same intents and removes nothing more."""
    stopped = ledger(ctx).unrecorded()
    if not stopped:
        return []
    ids = sorted({i.batch_id for i in stopped})
    for spec in BATCH_TABLES:
        if delta_io.exists(spec, ctx.config):
            delta_io.delete_where(ctx.spark, spec, ctx.config, delta_io.in_list("_batch_id", ids))
    # The stopped run's bookkeeping is written side by side: its ops.processed_batches rows may have committed
    # without its ops.ingested_files rows. Forget them too, so every consumer takes the batch up again.
    book = ledger(ctx)
    if any(b in mine for mine in book.consumptions.values() for b in ids):
        delta_io.delete_where(ctx.spark, OPS_PROCESSED_BATCHES, ctx.config, delta_io.in_list("batch_id", ids))
        for mine in book.consumptions.values():
            for b in ids:
                mine.pop(b, None)
    now = utc_now()
    names = ", ".join(spec.full_name for spec in BATCH_TABLES)
    add_files(ctx, [
        FileRecord(i.batch_id, i.run_id, source_file=i.file_name, file_name=i.file_name,
                   content_sha256=i.content_sha256, file_size=0, lines_read=0, rows_accepted=0, rows_quarantined=0,
                   status=UNDONE, ingested_at=now, min_event_date=i.min_event_date, max_event_date=i.max_event_date,
                   status_reason=f"run {i.run_id} stopped after writing this batch and before recording it: "
                                 f"run {ctx.run.run_id} removed its rows from {names}")
        for i in stopped
    ])  # fmt: skip
    return stopped


def add_files(ctx: Context, records: list[FileRecord]) -> None:
    """New ``ops.ingested_files`` rows, in the ledger now, written with the run's bookkeeping."""
    ledger(ctx).files.extend(records)
    ctx.run.sink.add(records)


def full_refresh(ctx: Context, consumer: str | None, *tables: TableSpec) -> None:
    """Forget what ``consumer`` (every consumer when None) consumed, then empty ``tables`` in order.

    Bookkeeping goes first: a run killed half-way leaves tables that are re-read in full by the
    next run (MERGE and replaceWhere make that idempotent), never an emptied table whose
    bookkeeping says it is up to date.
    """
    reset(ctx, consumer)
    for spec in tables:
        delta_io.delete_where(ctx.spark, spec, ctx.config)
        if spec.full_name == OPS_INGESTED_FILES.full_name:
            ledger(ctx).files.clear()
            ctx.run.sink.discard(OPS_INGESTED_FILES)
        if spec.full_name == OPS_BATCH_INTENTS.full_name:
            ledger(ctx).intents.clear()


def reset(ctx: Context, consumer: str | None = None) -> None:
    """Forget what ``consumer`` (every consumer when None) consumed: its next run re-reads every batch."""
    book = ledger(ctx)
    if consumer is None:
        delta_io.delete_where(ctx.spark, OPS_PROCESSED_BATCHES, ctx.config)
        book.consumptions.clear()
        ctx.run.sink.discard(OPS_PROCESSED_BATCHES)
    else:
        delta_io.delete_where(ctx.spark, OPS_PROCESSED_BATCHES, ctx.config, delta_io.in_list("consumer", [consumer]))
        book.consumptions.pop(consumer, None)
        ctx.run.sink.discard(OPS_PROCESSED_BATCHES, lambda record: record.consumer == consumer)
