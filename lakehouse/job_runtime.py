"""What every job shares: typed parameters, arguments, config, session, run bookkeeping, exit codes.

A job is a :class:`Job` value: its name, a one-line description, a frozen dataclass of parameters
and a body ``body(ctx, params)``. The same value serves ``spark-submit jobs/<name>.py`` (through
:meth:`Job.main`), ``lakehouse job <name>`` and the single-application DAG runner
(:mod:`lakehouse.pipeline`), which hands every job the same :class:`JobContext`.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, TypeVar

from lakehouse.config import ConfigError, LakehouseConfig, load_config

if typing.TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.batches import Ledger
    from lakehouse.gold.refresh import GoldComputation, GoldKey
    from lakehouse.ops import JobRun, OpsSink

log = logging.getLogger("lakehouse")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class JobFailed(RuntimeError):
    """A job ended on purpose with an error a person should read (bad input, failed check)."""


class NeedsSpark(Exception):
    """A job run without Spark (:mod:`lakehouse.idle`) reached something only Spark can do."""


class NoSpark:
    """Stands in for the Spark session when jobs run without one (:mod:`lakehouse.idle`).

    Any use of it raises :class:`NeedsSpark`: a job whose inputs have nothing pending never touches
    its session, and one that does is run again with Spark, nothing having been written.
    """

    def __getattr__(self, name: str) -> Any:
        raise NeedsSpark(f"spark.{name}")

    def __repr__(self) -> str:
        return "NoSpark()"


def has_spark(spark: Any) -> bool:
    return not isinstance(spark, NoSpark)


@dataclass(frozen=True)
class NoParams:
    """Jobs that take only the common arguments (config, env, overrides, warehouse)."""


def param(default: Any = None, help: str = "") -> Any:
    """A job parameter: its default and the ``--help`` text of its command-line flag."""
    return field(default=default, metadata={"help": help})


@dataclass
class RunCaches:
    """What the jobs of one Spark application reuse from each other, each cache named and typed.

    The DAG runner hands one to every job of a run; a job run alone starts with empty caches.
    """

    #: The bookkeeping ledger of each warehouse, read once per application (:func:`lakehouse.batches.ledger`).
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    #: The gold tables' shared inputs per (warehouse, since, last date, gold settings) (:mod:`lakehouse.gold.refresh`).
    gold_inputs: dict[GoldKey, GoldComputation] = field(default_factory=dict)


@dataclass
class JobContext:
    """What a job body gets besides its parameters (``caches`` live as long as the Spark application)."""

    spark: SparkSession
    config: LakehouseConfig
    run: JobRun
    caches: RunCaches = field(default_factory=RunCaches)


P = TypeVar("P")


@dataclass(frozen=True)
class Job(Generic[P]):
    name: str
    #: One line: what the job reads and writes (its ``--help`` text).
    description: str
    params: type[P]
    body: Callable[[JobContext, P], None]
    #: Jobs of one group that follow each other in the DAG depend on none of the others: the DAG
    #: runner (one application) runs them side by side, in threads (the gold tables).
    group: str | None = None

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

    def execute(
        self,
        spark: SparkSession,
        config: LakehouseConfig,
        params: P,
        caches: RunCaches | None = None,
        sink: OpsSink | None = None,
        runs: list[JobRun] | None = None,
    ) -> int:
        """Run the body with run bookkeeping (``ops.job_runs``) and return the exit code.

        Bookkeeping rows go to ``sink``; without one (a job run alone) the job writes them itself
        when it ends. The DAG runner passes one sink to every job and flushes it once.
        """
        from lakehouse.ops import JobRun, OpsSink

        own_sink = sink is None
        run = JobRun(spark, config, self.name, _jsonable(params), sink=sink if sink is not None else OpsSink())
        ctx = JobContext(spark, config, run, caches if caches is not None else RunCaches())
        if runs is not None:
            runs.append(run)
        log.info("%s: starting run %s", self.name, run.run_id)
        try:
            try:
                self.body(ctx, params)
            except NeedsSpark:
                if own_sink:
                    run.sink.clear()  # nothing of this attempt is written: it is run again with Spark
                raise  # not a failure: the caller runs the job again with Spark
            except JobFailed as exc:
                log.error("%s failed: %s", self.name, exc)
                run.finish("failed", str(exc))
                return EXIT_FAILED
            except Exception as exc:
                log.exception("%s failed unexpectedly", self.name)
                run.finish("failed", f"{type(exc).__name__}: {exc}")
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
                run.sink.flush(spark, config)

    def main(self, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
        """``spark-submit jobs/<name>.py [args]`` and ``lakehouse job <name> [args]``."""
        setup_logging()
        args = self.parser(prog).parse_args(argv)
        try:
            config = config_from_args(args)
            params = self.params_from(vars(args))
        except (ConfigError, ValueError) as exc:  # bad config or contradictory arguments: nothing ran
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        from lakehouse import idle
        from lakehouse.lock import run_locked

        return run_locked(config, f"{config.app_name}:{self.name}", f"job {self.name}",
                          lambda spark: self.execute(spark, config, params),
                          without_spark=lambda: idle.run_job(self, config, params),
                          full_jit=lambda: idle.heavy(config, getattr(params, "input", None),
                                                      bool(getattr(params, "full_refresh", False))))  # fmt: skip


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
