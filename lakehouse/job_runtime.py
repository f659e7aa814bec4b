"""What every job shares: typed parameters, declared inputs, arguments, config, run bookkeeping, exit codes.

A job is a :class:`Job` value: its name, a one-line description, a frozen dataclass of parameters,
the inputs it consumes (:class:`Consumes`, or bronze's landing folder) and a body ``body(ctx, params)``.
The same value serves ``spark-submit jobs/<name>.py``, ``lakehouse job <name>``, the DAG in one
application (:mod:`lakehouse.pipeline`) and an Airflow task; :mod:`lakehouse.launcher` starts them.

Whether a job has anything to do is decided from its declared inputs and the bookkeeping
(:meth:`Job.decide`), before its body runs and by the same rule the body reads its work with
(:meth:`lakehouse.batches.Ledger.pending_work`): a job with nothing to do records its run without
running its body, in every path, with or without a Spark session.

Exit codes: 0 success, 1 the job failed (bad input, failed check, unexpected error: the message
and ``ops.job_runs`` say which) or completed with a refused/rejected input file (status ``partial``),
2 bad arguments or configuration, or another run holds the warehouse lock (nothing ran).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, Protocol, TypeVar

from lakehouse import batches
from lakehouse.batches import BRONZE, Ledger, PendingWork
from lakehouse.config import LakehouseConfig, load_config
from lakehouse.ops import JobRun, OpsSink
from lakehouse.registry import TableSpec

if typing.TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("lakehouse")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: About the size of one source row (a CSV line of the export): pending rows -> bytes of new input.
BYTES_PER_ROW = 100


class JobFailed(RuntimeError):
    """A job ended on purpose with an error a person should read (bad input, failed check)."""


@dataclass(frozen=True)
class NoParams:
    """Jobs that take only the common arguments (config, env, overrides, warehouse)."""


def param(default: Any = None, help: str = "") -> Any:
    """A job parameter: its default and the ``--help`` text of its command-line flag."""
    return field(default=default, metadata={"help": help})


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class CacheSlot(Generic[K, V]):
    """A named, typed cache the jobs of one run share (declared by the module that fills it)."""

    name: str


@dataclass
class RunCaches:
    """What the jobs of one run reuse from each other, each cache named and typed.

    The launcher hands one to every job of a run (with the ledger it read before starting Spark);
    a job run alone starts with that ledger only.
    """

    #: The bookkeeping ledger of each warehouse, read once per run (:func:`lakehouse.batches.ledger`).
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    _slots: dict[str, dict[Any, Any]] = field(default_factory=dict)

    def slot(self, slot: CacheSlot[K, V]) -> dict[K, V]:
        """The cache ``slot`` (e.g. the gold tables' shared inputs, :data:`lakehouse.gold.refresh.GOLD_INPUTS`)."""
        return self._slots.setdefault(slot.name, {})


@dataclass
class JobContext:
    """What a job body gets besides its parameters (``caches`` live as long as the run)."""

    spark: SparkSession
    config: LakehouseConfig
    run: JobRun
    caches: RunCaches = field(default_factory=RunCaches)


# --------------------------------------------------------------------------- declared inputs


@dataclass(frozen=True)
class Decision:
    """Whether a job has anything to do, and why (logged; the reason of an idle run is its message)."""

    work: bool
    reason: str
    #: Things a person should know about an idle run (a known bad file still in the landing folder).
    reminders: tuple[str, ...] = ()
    #: Bytes of new input (bronze: new files; a consumer: its pending rows at :data:`BYTES_PER_ROW`):
    #: much new input makes a heavy run (:func:`lakehouse.launcher.is_heavy`).
    new_bytes: int = 0


class Inputs(Protocol):
    """What a job consumes, declared on its :class:`Job`; the runtime asks it whether there is work."""

    #: Tables the body reads (a test checks the body reads no other: the declaration and the body cannot drift).
    reads: tuple[TableSpec, ...]

    def decide(self, ledger: Ledger, config: LakehouseConfig, params: Any, spark: SparkSession | None) -> Decision:
        """From the bookkeeping only; ``spark`` None: no JVM (what cannot be decided without one is work)."""
        ...


def forced(params: Any, flags: Sequence[str]) -> str | None:
    """The first of ``flags`` set in ``params`` (``--full-refresh``, ``--ds``...): such a run always works."""
    for flag in flags:
        if getattr(params, flag, None):
            return f"--{flag.replace('_', '-')} given"
    return None


@dataclass(frozen=True)
class Consumes:
    """A consumer of recorded batches (:mod:`lakehouse.batches`): its pending work is what every upstream
    consumer recorded and it has not. ``consumer`` may depend on config (the gold tables' parameters)."""

    consumer: str | Callable[[LakehouseConfig], str]
    upstream: tuple[str, ...] = (BRONZE,)
    #: The upstream whose records carry the pending batches' event dates (default: the first).
    dates_from: str | None = None
    reads: tuple[TableSpec, ...] = ()
    #: Parameters that make the job work whatever is pending (a full refresh, explicit dates).
    forced_by: tuple[str, ...] = ("full_refresh",)

    def name(self, config: LakehouseConfig) -> str:
        return self.consumer if isinstance(self.consumer, str) else self.consumer(config)

    def work_in(self, ledger: Ledger, config: LakehouseConfig) -> PendingWork:
        return ledger.pending_work(self.name(config), self.upstream, self.dates_from)

    def pending_work(self, ctx: JobContext) -> PendingWork:
        """The body's view: the same rule as :meth:`decide`, on the run's ledger."""
        return self.work_in(batches.ledger(ctx), ctx.config)

    def decide(self, ledger: Ledger, config: LakehouseConfig, params: Any, spark: SparkSession | None) -> Decision:
        why = forced(params, self.forced_by)
        if why:
            return Decision(True, why)
        work = self.work_in(ledger, config)
        if work:
            rows = sum(c.rows_inserted for c in work.recorded.values())
            return Decision(True, f"{len(work.batches)} pending batch(es) of {self.name(config)}",
                            new_bytes=rows * BYTES_PER_ROW)  # fmt: skip
        return Decision(False, f"nothing to do: no batch of {', '.join(self.upstream)} pending")


P = TypeVar("P")


@dataclass(frozen=True)
class Job(Generic[P]):
    name: str
    #: One line: what the job reads and writes (its ``--help`` text).
    description: str
    params: type[P]
    body: Callable[[JobContext, P], None]
    #: What the job consumes; None: it always has work (maintenance, restore).
    inputs: Inputs | None = None
    #: Jobs of one group that follow each other in the DAG depend on none of the others: the DAG
    #: runner (one application) runs them side by side, in threads (the gold tables).
    group: str | None = None
    #: What a person should know even when the job has nothing to do (the anomaly job: stale data), from
    #: the bookkeeping alone (no JVM): reminders of its idle run, also in its ``ops.job_runs`` message.
    idle_reminders: Callable[[LakehouseConfig], list[str]] | None = None

    def parser(self, prog: str | None = None) -> argparse.ArgumentParser:
        parser = base_parser(f"{self.name}: {self.description}", prog)
        add_param_arguments(parser, self.params)
        return parser

    def params_from(self, values: dict[str, Any]) -> P:
        """Parameters from a mapping, keeping only the fields this job declares.

        A parameters class may check itself in ``__post_init__`` and raise ``ValueError``.
        """
        names = {f.name for f in dataclasses.fields(self.params)}  # type: ignore[arg-type]
        return self.params(**{k: v for k, v in values.items() if k in names})

    def decide(self, ledger: Ledger, config: LakehouseConfig, params: P, spark: SparkSession | None = None) -> Decision:
        """Is there anything to do? From the declared inputs and the bookkeeping, before the body runs."""
        if self.inputs is None:
            return Decision(True, "declares no inputs: always runs")
        return self.inputs.decide(ledger, config, params, spark)

    def record_idle(self, config: LakehouseConfig, params: P, decision: Decision, sink: OpsSink) -> JobRun:
        """The run of a job with nothing to do: rows in and out 0, the reason as its message; no body."""
        run = JobRun(self.name, _jsonable(params), sink=sink)
        run.rows_in = run.rows_out = 0
        run.reminders.extend(decision.reminders)
        own = []
        if self.idle_reminders is not None:
            try:
                own = self.idle_reminders(config)
            except Exception as exc:  # a reminder never fails a run
                log.warning("%s: reminders of the idle run not computed: %s", self.name, exc)
        for reminder in own:
            log.warning("%s: %s", self.name, reminder)
        run.reminders.extend(own)
        run.finish("succeeded", "; ".join([decision.reason, *own]))
        return run

    def execute(
        self,
        spark: SparkSession,
        config: LakehouseConfig,
        params: P,
        caches: RunCaches | None = None,
        sink: OpsSink | None = None,
        runs: list[JobRun] | None = None,
    ) -> int:
        """Decide, then run the body with run bookkeeping (``ops.job_runs``); return the exit code.

        Bookkeeping rows go to ``sink``; without one (a job run alone) the job writes them itself
        when it ends. The DAG runner passes one sink to every job and flushes it once.
        """
        own_sink = sink is None
        sink = sink if sink is not None else OpsSink()
        caches = caches if caches is not None else RunCaches()
        try:
            decision = None
            if self.inputs is not None:
                decision = self.decide(batches.cached_ledger(caches.ledgers, config, spark), config, params, spark)
                if not decision.work:
                    log.info("%s: %s", self.name, decision.reason)
                    run = self.record_idle(config, params, decision, sink)
                    if runs is not None:
                        runs.append(run)
                    return EXIT_OK
            run = JobRun(self.name, _jsonable(params), sink=sink)
            if runs is not None:
                runs.append(run)
            log.info("%s: starting run %s%s", self.name, run.run_id, f" ({decision.reason})" if decision else "")
            try:
                self.body(JobContext(spark, config, run, caches), params)
            except JobFailed as exc:
                log.error("%s failed: %s", self.name, exc)
                run.finish("failed", str(exc))
                return EXIT_FAILED
            except Exception as exc:
                from lakehouse.session import engine_failure  # imports pyspark: not before a body ran

                lost = engine_failure(spark, exc)
                if lost:
                    log.error("%s failed: %s", self.name, lost)
                else:
                    log.exception("%s failed unexpectedly", self.name)
                run.finish("failed", lost or f"{type(exc).__name__}: {exc}")
                return EXIT_FAILED
            if run.problems:
                message = "; ".join(run.problems)
                log.error("%s completed with problems: %s", self.name, message)
                run.finish("partial", message)
                return config.operations.partial_exit_code
            run.finish("succeeded")
            return EXIT_OK
        finally:
            if own_sink:
                sink.flush(spark, config)


def exit_process(code: int) -> typing.NoReturn:
    """End a command-line process with ``code`` (``jobs/<job>.py``, the ``lakehouse`` command).

    After delta-rs was used (a run decided without Spark, ``lakehouse airflow attention``), the
    interpreter's own shutdown aborts now and then with "terminate called without an active
    exception" (exit 134) once the work is done: native threads of delta-rs / Arrow still alive when
    their runtime is torn down (delta-io/delta-rs#2184; 9 of 15 runs of a two-line read here). Such a
    process stops its Spark context if it has one, flushes, and leaves with ``os._exit``.
    """
    if "deltalake" not in sys.modules:
        sys.exit(code)
    try:
        from pyspark import SparkContext

        if SparkContext._active_spark_context is not None:
            SparkContext._active_spark_context.stop()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _jsonable(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("py4j", "py4j.clientserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def base_parser(description: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The arguments every job, the DAG runner and the serving commands take."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_args(parser)
    return parser


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", help="base config file (default conf/lakehouse.yaml)")
    parser.add_argument("--env", help="environment overlay conf/env/<ENV>.yaml (or LAKEHOUSE_ENV)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)"
    )
    parser.add_argument("--warehouse", help="shortcut for --set paths.warehouse=DIR")


def _optional_of(tp: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def add_param_arguments(parser: argparse.ArgumentParser, params: type) -> None:
    """One ``--flag`` per dataclass field: bool -> switch, date -> YYYY-MM-DD, str/int -> value."""
    hints = typing.get_type_hints(params)
    for f in dataclasses.fields(params):
        flag = "--" + f.name.replace("_", "-")
        tp = _optional_of(hints[f.name])
        help_text = f.metadata.get("help", "")
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action="store_true", help=help_text)
        elif tp is date:
            parser.add_argument(flag, dest=f.name, type=iso_date, default=f.default, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=tp, default=f.default, help=help_text)


def config_from_args(args: argparse.Namespace) -> LakehouseConfig:
    """The config named by the common arguments (``--conf``, ``--env``, ``--set``, ``--warehouse``)."""
    overrides = list(args.set)
    if args.warehouse:
        overrides.append(f"paths.warehouse={args.warehouse}")
    return load_config(args.conf, args.env, overrides)
