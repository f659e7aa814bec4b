"""Starting a run: one sequence for a job alone, the whole DAG and the benchmark.

``spark-submit jobs/<job>.py`` and ``lakehouse job NAME`` (:func:`job_main`), ``lakehouse run`` and
``spark-submit jobs/run_pipeline.py`` (:func:`run_main`), an Airflow task (a ``spark-submit`` of a job)
and the benchmark's runs all go through :func:`launch`:

1. **Lock.** The warehouse's writer lock (:mod:`lakehouse.lock`), taken by this process before any Spark
   starts (a local file, or a conditional PUT on S3).
2. **Decide without Spark.** On a local warehouse the bookkeeping is read by delta-rs
   (:func:`lakehouse.batches.load_ledger`) and each job decides from its declared inputs whether it has
   anything to do (:meth:`lakehouse.job_runtime.Job.decide`: the same rule its body reads its work
   with). When none has, their runs are recorded (``ops.job_runs``, appended by delta-rs) and no JVM is
   started at all. A job's decision holds for the jobs after it: a job with nothing to do writes
   nothing they read. ``operations.idle_without_spark: false`` always starts Spark.
3. **Light or heavy.** Much new input (``spark.heavy_run_from_new_input_mb``: new landing files, or a later
   job's pending rows, from the decisions) or a full refresh makes a heavy run: the driver JVM gets the
   full tiered JIT and the session Spark's defaults. A light run (a day's data) keeps the C1-only JIT and
   runs without adaptive execution and code generation (:data:`lakehouse.session.LIGHT_RUN`).
4. **Start Spark**: a session on the warm engine when one serves this config (:mod:`lakehouse.engine`: a
   Spark Connect client, about 0.5 s; an engine that was started and died is restarted here), else a
   classic session with its own JVM. A Connect session the run opened is released when it ends.
5. **Run** the jobs in one application (:func:`lakehouse.pipeline.run_jobs`), handing them the ledger
   read in step 2 (the bookkeeping is not read again through Spark).
6. **Summary** (``lakehouse run``): the sections kept by the last summary when no table changed since
   (:func:`lakehouse.summary.kept_summary`), else rendered through Spark.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lakehouse import batches, delta_rs, engine
from lakehouse.alerts import brief
from lakehouse.config import ConfigError, LakehouseConfig
from lakehouse.engine import EngineError
from lakehouse.job_catalog import check_dag, job
from lakehouse.job_runtime import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Decision,
    Job,
    RunCaches,
    base_parser,
    config_from_args,
    setup_logging,
)
from lakehouse.lock import Holder, LockHeld, WarehouseLock
from lakehouse.ops import JobRun, OpsSink
from lakehouse.pipeline import Step, run_jobs
from lakehouse.registry import OPS_JOB_RUNS
from lakehouse.summary import build_summary, kept_summary

log = logging.getLogger("lakehouse")


@dataclass
class Launched:
    """What a launch did: its exit code, each job's run, the Spark session (None: none was started)."""

    code: int
    runs: list[JobRun] = field(default_factory=list)
    #: The run's session (a Connect session the run opened is released when it ends).
    spark: Any = None
    #: The engine the run was a client of (None: a classic session, or none).
    engine: engine.Target | None = None
    #: The jobs were decided and recorded without starting Spark.
    without_spark: bool = False
    summary: str | None = None


@dataclass(frozen=True)
class SummaryRequest:
    """Print the end-of-run summary (``lakehouse run``); ``table_counts`` reads every table."""

    table_counts: bool = False


def decide_all(
    jobs: Sequence[Job], config: LakehouseConfig, values: dict[str, Any], ledger: batches.Ledger
) -> list[Decision]:
    """Each job's decision on one ledger, before any job runs (valid for the whole sequence as long as
    every job before has nothing to do: a job with nothing to do writes nothing)."""
    return [j.decide(ledger, config, j.params_from(values), None) for j in jobs]


def is_heavy(config: LakehouseConfig, values: dict[str, Any], decisions: Sequence[Decision]) -> bool:
    """A full refresh, or at least ``spark.heavy_run_from_new_input_mb`` MB of new input (the largest of the
    jobs' decisions: a run's jobs pass the same data along)."""
    if values.get("full_refresh"):
        return True
    return max((d.new_bytes for d in decisions), default=0) >= config.spark.heavy_run_from_new_input_mb * 2**20


def _ledger_without_spark(config: LakehouseConfig) -> batches.Ledger | None:
    if not delta_rs.usable(config):
        return None
    try:
        return batches.load_ledger(config)
    except Exception as exc:  # an unreadable table: Spark reads it (and says what is wrong)
        log.info("bookkeeping not readable without Spark (%s): Spark reads it", exc)
        return None


def launch(
    config: LakehouseConfig,
    jobs: Sequence[Job],
    values: dict[str, Any],
    *,
    app_name: str,
    command: str,
    summary: SummaryRequest | None = None,
    around: Step | None = None,
    started: Callable[[Any], None] | None = None,
) -> Launched:
    """Lock, decide without Spark, choose the JIT, run ``jobs`` in order, print the summary (module docstring).

    ``values``: parameters offered to every job (each keeps those it declares). ``around`` wraps each
    step (the benchmark times them; the summary is the step "summary"); ``started`` is called with the
    Spark session once it is up.
    """
    step = around or (lambda _name, fn: fn())
    lock = WarehouseLock(config, command, on_takeover=_stop_orphaned_work)
    try:
        lock.acquire()
    except LockHeld as exc:
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return Launched(2)
    session = engine.RunSession(config, app_name)
    try:
        ledger = _ledger_without_spark(config)
        decisions = decide_all(jobs, config, values, ledger) if ledger is not None else []
        if (decisions and not any(d.work for d in decisions) and config.operations.idle_without_spark
                and delta_rs.exists(OPS_JOB_RUNS, config)):  # fmt: skip
            return _record_without_spark(config, jobs, values, decisions, session, summary, step)
        for j, d in zip(jobs, decisions, strict=False):
            # Spark starts: a job idle now may get work from the jobs before it, and is decided again in its turn.
            log.info("%s: %s", j.name, d.reason if d.work or len(jobs) == 1 else
                     f"{d.reason} at the run's start; decided again when its turn comes")  # fmt: skip
        heavy = is_heavy(config, values, decisions)
        try:
            spark = session.start(full_jit=heavy, light=not heavy)
        except EngineError as exc:
            log.error("%s", exc)
            print(f"error: {exc}", file=sys.stderr)
            return Launched(EXIT_FAILED)
        if session.engine is not None:  # a run killed now leaves work on the engine: the lock says where
            lock.annotate(
                engine_dir=session.engine.state.state_dir,
                engine_session=spark.session_id,
                engine_user=spark.client._user_id or "",
            )
        if started is not None:
            started(spark)
        caches = RunCaches(ledgers={config.paths.warehouse: ledger} if ledger is not None else {})
        launched = Launched(0, spark=spark, engine=session.engine)
        launched.code = run_jobs(spark, config, jobs, values, step, launched.runs, caches)
        if summary is not None:
            launched.summary = step("summary", lambda: build_summary(
                spark, config, launched.runs, table_counts=summary.table_counts))  # fmt: skip
        return launched
    finally:
        session.release()
        lock.release()


def _stop_orphaned_work(holder: Holder) -> None:
    if holder.engine_session:
        engine.stop_orphaned_work(holder.engine_dir, holder.engine_session, holder.engine_user)


def _record_without_spark(
    config: LakehouseConfig,
    jobs: Sequence[Job],
    values: dict[str, Any],
    decisions: Sequence[Decision],
    session: engine.RunSession,
    summary: SummaryRequest | None,
    step: Step,
) -> Launched:
    launched = Launched(EXIT_OK, without_spark=True)
    sink = OpsSink()

    def record(j: Job, d: Decision) -> int:
        log.info("%s: %s", j.name, d.reason)
        launched.runs.append(j.record_idle(config, j.params_from(values), d, sink))
        return EXIT_OK

    for j, d in zip(jobs, decisions, strict=True):
        step(j.name, lambda j=j, d=d: record(j, d))
    step("ops bookkeeping", lambda: sink.flush(None, config) or EXIT_OK)
    log.info("nothing to do; recorded without starting Spark")
    if summary is not None:

        def render() -> str:
            kept = None if summary.table_counts else kept_summary(config, launched.runs)
            if kept is not None:
                return kept
            launched.spark = session.start()
            return build_summary(launched.spark, config, launched.runs, table_counts=summary.table_counts)

        launched.summary = step("summary", render)
    return launched


# --------------------------------------------------------------------------- command lines


def job_main(selected: Job, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``spark-submit jobs/<name>.py [args]`` and ``lakehouse job <name> [args]``."""
    setup_logging()
    args = selected.parser(prog).parse_args(argv)
    try:
        config = config_from_args(args)
        params = selected.params_from(vars(args))
    except (ConfigError, ValueError) as exc:  # bad config or contradictory arguments: nothing ran
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return launch(config, [selected], dataclasses.asdict(params), app_name=f"{config.app_name}:{selected.name}",
                  command=f"job {selected.name}").code  # fmt: skip


def run_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = base_parser("Run the lakehouse DAG (bronze -> silver -> gold) in one Spark application.", prog)
    p.add_argument("--input", help="CSV file or folder of CSV files (default: paths.input)")
    p.add_argument("--full-refresh", action="store_true", help="rebuild every table from all input files")
    p.add_argument(
        "--retry-bad-files",
        action="store_true",
        help="process refused and rejected input files again even if unchanged (e.g. after raising a threshold)",
    )
    p.add_argument("--jobs", help="comma-separated subset of the DAG to run, in DAG order")
    p.add_argument("--no-summary", action="store_true", help="do not print the summary at the end")
    p.add_argument(
        "--table-counts", action="store_true", help="add every table's row count to the summary (reads every table)"
    )
    return p


def run_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``lakehouse run``: conf's DAG (or ``--jobs``) in one application, then the summary."""
    setup_logging()
    args = run_parser(prog).parse_args(argv)
    try:
        config = config_from_args(args)
        check_dag(config)
        dag = list(config.dag)
        wanted = [j.strip() for j in args.jobs.split(",")] if args.jobs else dag
        unknown = [j for j in wanted if j not in dag]
        if unknown:
            raise ConfigError(f"--jobs names jobs not in the DAG: {unknown}; DAG: {dag}")
        jobs = [job(name) for name in dag if name in wanted]
    except (ConfigError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    values = {"full_refresh": args.full_refresh, "input": args.input, "retry_bad_files": args.retry_bad_files}
    launched = launch(config, jobs, values, app_name=f"{config.app_name}:pipeline", command="lakehouse run",
                      summary=None if args.no_summary else SummaryRequest(args.table_counts))  # fmt: skip
    if launched.summary is not None:
        print("\n" + launched.summary + "\n", flush=True)
    if launched.code != EXIT_USAGE and launched.runs and config.alerts.channels:
        morning_brief(config, launched)
    return launched.code


def morning_brief(config: LakehouseConfig, launched: Launched) -> None:
    """The run's brief to conf's alert channels (:mod:`lakehouse.alerts.brief`): a channel that is down never
    fails the run; what it was owed goes with the next run's brief. Spark only for the audiences' sizes."""
    with contextlib.ExitStack() as stack:
        outcomes = brief.deliver(
            config,
            f"lakehouse-run:{launched.runs[0].run_id}",
            published=brief.published_by(launched.runs),
            session=lambda: stack.enter_context(engine.spark_session(config, config.app_name)),
        )
    if outcomes:
        print("Morning brief:\n" + "\n".join(f"  {o.describe()}" for o in outcomes) + "\n", flush=True)
