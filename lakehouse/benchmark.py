"""Benchmark the whole DAG on generated data: ``lakehouse benchmark`` (``scripts/benchmark.sh``).

A benchmark, not a timed test: it measures and reports, it never fails on a slow figure. The
scenario (issue 9) is the project's generator writing one CSV file per day (``--files-per-day``
splits each day further) into a landing folder: ``--users`` users, about ``--events-per-day`` rows
a day on average, ``--days`` days of history from ``--start-date``, plus one more day, the "new
day" that arrives on top of the history. The cases:

``sample``       data/sample (``paths.input``), whole DAG, fresh warehouse;
``backfill``     the history's day files into an empty warehouse, whole DAG;
``year``         the new day's file added on top of that history, whole DAG;
``nothing-new``  the DAG again on the year with no new file (and on the month when ``month`` runs);
``per-job``      the same new day on the same history, run the way a scheduler runs it: one
                 ``spark-submit jobs/<job>.py`` process per job of conf's ``dag``, in DAG order, on a
                 copy of the year's warehouse taken right after the backfill; then ``idle-job``:
                 the first gold job submitted once more on that warehouse, with nothing to do;
``month``        the same new day's file on top of the ``--month-days`` days just before it (a
                 warehouse built from those day files first, reported as a set-up run), so that
                 month -> year compares one and the same day on two history lengths;
``engine-year``  the same new day on a copy of the year's warehouse (taken right after the backfill), in one
                 ``lakehouse run`` as a client of the warm engine (:mod:`lakehouse.engine`, started and warmed up
                 by the benchmark before its first engine case, its Spark event log windowed per step);
``engine-per-job`` the same new day on another copy, one process per job as an engine client (``python
                 jobs/<job>.py``, what an Airflow task runs); then ``engine-idle-job``: the first gold job once more;
``duckdb``       the peer: a DuckDB rebuild of every table of the whole year from its files
                 (:mod:`lakehouse.duckdb_peer`, Parquet out), the work the original project's nightly rebuild did;
``soak``         the ``--month-days`` day files delivered one a day into an empty warehouse, each a ``lakehouse run``
                 through one engine: its resident memory and its heap after a full collection after every day.

A case that needs a warehouse it was not asked to build gets it from a set-up run (``year`` or
``per-job`` alone still runs the backfill first, reported as set-up).

Every DAG run is its own process and its own Spark application, as a daily ``lakehouse run`` is:
the driver memory (``--driver-memory``, fixed at JVM launch) applies to each run, and no run
profits from an earlier one's warm JVM. In it conf's ``dag`` runs through
:func:`lakehouse.pipeline.run_jobs`, exactly as ``lakehouse run`` does (one shared context, the
run's bookkeeping written at the end: reported as the step "ops bookkeeping"), then the
end-of-run summary as ``lakehouse run`` prints it. Reported apart: "spark start"
(imports, JVM, session: what every run pays before its first job) and the whole process (python
start to exit, measured by the parent: what a scheduler waits for; the targets compare it). Per job:

* seconds (wall clock around ``Job.execute``; the ops rows are written in the last step);
* rows in / rows out, from the job's ``ops.job_runs`` row (read after the run, untimed);
* Delta commits: the new ``_delta_log/<version>.json`` files of every table under the warehouse
  (exact and cheap for a local warehouse), with each commit's operation; "ops" counts the
  bookkeeping tables' share;
* Spark jobs, snapshot loads and filtering jobs, from the run's Spark event log
  (``<workdir>/eventlogs/<run>``, read after the session stopped, by :mod:`lakehouse.eventlog`):
  each Spark job belongs to the step whose wall-clock window (epoch ms, recorded around the step)
  holds its submission time. Snapshot loads count Delta's snapshot-state jobs ("Compute snapshot
  for version"), filtering jobs Delta's "Filtering files for query" jobs. Without a readable event
  log the Spark jobs fall back to the scheduler's job counter and the other two stay empty.

A ``per-job`` process is measured from outside only: its whole-process seconds and exit code, the
Delta commits around it, rows in / out from its log line "<job> <run id>: <status> (rows in X, out
Y)" (nothing is read from Delta in the parent), and Spark jobs / snapshot loads from its own event
log (the whole file is that job).

Output: one table per run as it finishes, an overview of the cases with the issue's targets (all on
whole-process seconds, plus month -> year on whole-run seconds), and a JSON file with everything
(parameters, scenario, machine, versions, every run, commit and event-log path).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lakehouse import eventlog
from lakehouse.config import PROJECT_ROOT

if typing.TYPE_CHECKING:
    from lakehouse.config import LakehouseConfig

CASES = (
    "sample",
    "backfill",
    "year",
    "nothing-new",
    "per-job",
    "month",
    "engine-year",
    "engine-per-job",
    "duckdb",
    "soak",
)

#: Targets of the performance issue: run -> (figure of :func:`run_totals` compared, limit in seconds,
#: how the limit reads). All on whole-process seconds: what a scheduler waits for.
TARGETS: dict[str, tuple[str, float, str]] = {
    "sample": ("process_seconds", 30.0, "<= 30 s whole process"),
    "backfill": ("process_seconds", 180.0, "<= 180 s whole process"),
    "year": ("process_seconds", 35.0, "<= 35 s whole process"),
    "nothing-new": ("process_seconds", 8.0, "<= 8 s whole process"),
    "per-job": ("process_seconds", 90.0, "<= 90 s all processes"),
    "idle-job": ("process_seconds", 6.0, "<= 6 s whole process"),
    "engine-idle-job": ("process_seconds", 6.0, "<= 6 s whole process (no JVM)"),
}
#: The scheduler's path: the new day as one spark-submit per job over the same day in one ``lakehouse run``.
PER_JOB_RATIO_TARGET = 2.0
#: The same through the warm engine (issue 38): one process per job over one ``lakehouse run``, both on the engine.
ENGINE_PER_JOB_RATIO_TARGET = 1.3
#: The day in one ``lakehouse run`` on the warm engine over the DuckDB rebuild of the whole year (issue 38).
ENGINE_DUCKDB_RATIO_TARGET = 2.0
#: Whole-run seconds of the new day on the year over the same on the month (issue 9).
RATIO_TARGET = 1.15
#: Runs made of separate ``spark-submit`` processes, one per job (not one DAG process).
PROCESS_RUNS = ("per-job", "idle-job")
#: The same as clients of the warm engine (``python jobs/<job>.py``).
ENGINE_PROCESS_RUNS = ("engine-per-job", "engine-idle-job")
#: Runs that are clients of the benchmark's engine.
ENGINE_RUNS = ("engine-year", *ENGINE_PROCESS_RUNS, "soak")
#: The port of the benchmark's own engine (never a running one of this machine's).
ENGINE_PORT = 15020

_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


# --------------------------------------------------------------------------- arguments


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def _cases(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown case(s) {unknown or text!r}; cases: {','.join(CASES)}")
    return [c for c in CASES if c in names]  # canonical order, no duplicates


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark the whole DAG on generated day files: backfill, one new day on a month and on a "
        "year of history (also as one spark-submit per job, then an idle job), a run with nothing new, and the "
        "shipped sample. Prints a per-job table per run (seconds, rows, Delta commits, Spark jobs and snapshot "
        "loads from Spark's event log) and an overview against the targets (whole-process seconds); writes JSON.",
    )
    scenario = p.add_argument_group("scenario (the generator)")
    scenario.add_argument("--users", type=_positive_int, default=20_000, help="users (default 20000)")
    scenario.add_argument(
        "--events-per-day",
        type=_positive_float,
        default=10_000,
        help="mean rows per day over the period (default 10000; later days have more, as the user base grows)",
    )
    scenario.add_argument(
        "--days", type=_positive_int, default=365, help="days of history under the new day (default 365)"
    )
    scenario.add_argument(
        "--month-days",
        type=_positive_int,
        default=30,
        help="days of history of the month case: the last ones before the new day (default 30)",
    )
    scenario.add_argument(
        "--files-per-day", type=_positive_int, default=1, help="CSV files per day in the landing folder (default 1)"
    )
    scenario.add_argument(
        "--start-date", type=date.fromisoformat, default=date(2024, 1, 7), help="first day (default 2024-01-07)"
    )
    scenario.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    for kind in ("invalid", "duplicate", "late"):
        scenario.add_argument(f"--{kind}-rate", type=float, default=0.0, help=f"generator's {kind}_rate (default 0)")
    # A late row goes to any later file: with one file per day, the new day then carries rows of earlier dates.
    run = p.add_argument_group("runs")
    run.add_argument(
        "--cases",
        type=_cases,
        default=list(CASES),
        help=f"comma-separated subset of {','.join(CASES)} (default: all); per-job runs each job of conf's dag "
        "as its own spark-submit on a copy of the year's warehouse, then idle-job (a gold job with nothing to do)",
    )
    run.add_argument("--driver-memory", default="2g", help="driver heap of every run (default 2g)")
    run.add_argument("--no-summary", action="store_true", help="skip the end-of-run summary lakehouse run prints")
    run.add_argument("--workdir", help="data, warehouses and logs (kept); default: a temporary folder, removed")
    run.add_argument("--out", help="JSON result (default .cache/benchmark/benchmark-<UTC time>.json)")
    run.add_argument("--conf", help="base config file (default conf/lakehouse.yaml)")
    run.add_argument("--env", help="environment overlay conf/env/<ENV>.yaml (or LAKEHOUSE_ENV)")
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run (repeatable)"
    )
    return p


def parse_args(argv: Sequence[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    p = parser(prog)
    args = p.parse_args(argv)
    if "month" in args.cases and args.month_days > args.days:
        p.error(f"--month-days {args.month_days} is more than --days {args.days}")
    for kind in ("invalid", "duplicate", "late"):
        if not 0.0 <= getattr(args, f"{kind}_rate") < 1.0:
            p.error(f"--{kind}-rate must be in [0, 1)")
    return args


def plan_runs(cases: Sequence[str]) -> list[tuple[str, str]]:
    """The runs, in order, as ``(label, role)``; role ``case`` is measured, ``setup`` builds for one.

    ``per-job`` and ``idle-job`` are runs of :data:`PROCESS_RUNS` (one ``spark-submit`` per job) on a
    copy of the year's warehouse that the parent takes right after the backfill.
    """
    runs: list[tuple[str, str]] = []
    if "sample" in cases:
        runs.append(("sample", "case"))
    if {"backfill", "year", "nothing-new", "per-job", "engine-year", "engine-per-job", "duckdb"} & set(cases):
        runs.append(("backfill", "case" if "backfill" in cases else "setup"))
    if "year" in cases:
        runs.append(("year", "case"))
    if "nothing-new" in cases:
        runs.append(("nothing-new", "case"))
    if "per-job" in cases:
        # After nothing-new: per-job puts the new day into the year's landing folder if year did not.
        runs += [("per-job", "case"), ("idle-job", "case")]
    if "engine-year" in cases:
        runs.append(("engine-year", "case"))
    if "engine-per-job" in cases:
        runs += [("engine-per-job", "case"), ("engine-idle-job", "case")]
    if "duckdb" in cases:
        runs.append(("duckdb", "case"))
    if "month" in cases:
        runs += [("month-setup", "setup"), ("month", "case")]
        if "nothing-new" in cases:
            runs.append(("nothing-new-month", "case"))
    if "soak" in cases:
        runs.append(("soak", "case"))
    return runs


# --------------------------------------------------------------------------- Delta commits


def delta_versions(warehouse: str | Path) -> dict[str, set[int]]:
    """Committed versions of every table under a local warehouse (``<layer>/<table>/_delta_log``)."""
    versions: dict[str, set[int]] = {}
    for log_dir in sorted(Path(warehouse).glob("*/*/_delta_log")):
        table = f"{log_dir.parent.parent.name}.{log_dir.parent.name}"
        versions[table] = {int(m.group(1)) for p in log_dir.iterdir() if (m := _COMMIT_FILE.match(p.name))}
    return versions


def commit_operation(path: str | Path) -> str | None:
    """The ``commitInfo.operation`` of one commit file (WRITE, MERGE, CREATE TABLE...), if recorded."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if '"commitInfo"' in line:
                    return json.loads(line)["commitInfo"].get("operation")
    except (OSError, ValueError, KeyError):
        return None
    return None


def new_commits(
    before: dict[str, set[int]], after: dict[str, set[int]], warehouse: str | Path | None = None
) -> list[dict[str, Any]]:
    """Commits in ``after`` and not in ``before``, by table then version (with the operation if
    ``warehouse`` is given to read the commit files)."""
    commits = []
    for table in sorted(after):
        for version in sorted(after[table] - before.get(table, set())):
            entry: dict[str, Any] = {"table": table, "version": version}
            if warehouse is not None:
                layer, name = table.split(".", 1)
                commit_file = Path(warehouse, layer, name, "_delta_log", f"{version:020d}.json")
                entry["operation"] = commit_operation(commit_file)
            commits.append(entry)
    return commits


# --------------------------------------------------------------------------- one DAG run (child process)


def _spark_job_counter(spark: Any) -> Callable[[], int | None]:
    """The id the scheduler gives the next Spark job (ids are sequential), or None if unreadable."""
    try:
        scheduler = spark.sparkContext._jsc.sc().dagScheduler()
    except Exception:
        return lambda: None

    def read() -> int | None:
        try:
            value = scheduler.nextJobId()  # an int through py4j (an AtomicInteger in some Spark versions)
            return int(value if isinstance(value, int) else value.get())
        except Exception:
            return None

    return read


def _difference(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def _epoch_ms(*, up: bool = False) -> int:
    """Wall clock in epoch ms, the clock of the event log's times (rounded down, or ``up``)."""
    now = time.time() * 1000
    return math.ceil(now) if up else math.floor(now)


def event_log_conf(folder: str | Path) -> dict[str, str]:
    """Spark settings that write an uncompressed event log into ``folder`` (which must exist)."""
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": Path(folder).resolve().as_uri(),
        "spark.eventLog.compress": "false",
    }


def with_event_log(config: LakehouseConfig, folder: str | Path) -> LakehouseConfig:
    """``config`` with :func:`event_log_conf` merged into ``spark.extra_conf`` (creates ``folder``).

    Not an override: a dotted override splits every dot, and these keys have dots of their own.
    """
    Path(folder).mkdir(parents=True, exist_ok=True)
    extra = {**config.spark.extra_conf, **event_log_conf(folder)}
    return dataclasses.replace(config, spark=dataclasses.replace(config.spark, extra_conf=extra))


def _event_log_figures(folder: str | Path, windows: Sequence[tuple[float, float]] = ()) -> dict[str, Any]:
    """:func:`lakehouse.eventlog.profile` of ``folder``, or the reason it could not be read."""
    try:
        return {"dir": str(folder), **eventlog.profile(folder, windows)}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"dir": str(folder), "error": f"{type(exc).__name__}: {exc}"}


def add_event_log_profile(result: dict[str, Any], folder: str | Path) -> None:
    """Per step (jobs, then the summary): Spark jobs, snapshot loads and filtering jobs from the
    event log, by submission time within the step's ``started_ms``/``ended_ms`` window. Keeps the
    scheduler counter's figure (``spark_jobs_counter``) and uses it where the log is unreadable."""
    steps = [*result.get("jobs", []), *([result["summary"]] if result.get("summary") else [])]
    windows = [(s["started_ms"], s["ended_ms"]) for s in steps]
    figures = _event_log_figures(folder, windows)
    result["eventlog"] = {k: v for k, v in figures.items() if k != "windows"}
    for step, counts in zip(steps, figures.get("windows", []), strict=False):
        step["spark_jobs_counter"] = step.get("spark_jobs")
        step.update(counts)


def run_dag(spec: dict[str, Any]) -> dict[str, Any]:
    """Run conf's DAG once through :func:`lakehouse.launcher.launch`, as ``lakehouse run`` does (lock,
    decision without Spark, JIT, the jobs in one application, the summary), timing and profiling each
    step (with Spark's event log in ``spec["eventlog_dir"]`` when given)."""
    began = time.perf_counter()
    from lakehouse.config import load_config, parse_override
    from lakehouse.job_catalog import check_dag, job
    from lakehouse.job_runtime import setup_logging
    from lakehouse.launcher import SummaryRequest, launch

    setup_logging()
    overrides = dict(parse_override(s) for s in spec.get("sets", []))
    overrides.update(spec["overrides"])
    config = load_config(spec.get("conf"), spec.get("env"), overrides)
    if spec.get("eventlog_dir"):
        config = with_event_log(config, spec["eventlog_dir"])
    check_dag(config)
    jobs = [job(name) for name in config.dag]
    warehouse = Path(config.paths.warehouse)
    result: dict[str, Any] = {"jobs": [], "exit_code": 0}
    counter: list[Callable[[], int | None]] = [lambda: None]

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        versions, spark_jobs = delta_versions(warehouse), counter[0]()
        started_ms, t = _epoch_ms(), time.perf_counter()
        value = fn()
        seconds, ended_ms = round(time.perf_counter() - t, 3), _epoch_ms(up=True)
        entry = {
            "seconds": seconds,
            "spark_jobs": _difference(counter[0](), spark_jobs),
            "commits": new_commits(versions, delta_versions(warehouse), warehouse),
            "started_ms": started_ms,
            "ended_ms": ended_ms,
        }
        if name == "summary":
            result["summary"] = entry
        else:
            result["jobs"].append({"job": name, "exit_code": value, **entry})
        return value

    def started(spark: Any) -> None:
        counter[0] = _spark_job_counter(spark)

    summary = SummaryRequest() if spec.get("summary", True) else None
    launched = launch(config, jobs, {"full_refresh": False, "input": None},
                      app_name=f"{config.app_name}:benchmark:{spec['label']}", command=f"benchmark {spec['label']}",
                      summary=summary, around=timed, started=started)  # fmt: skip
    if launched.without_spark:
        result["without_spark"] = True
    step_seconds = sum(j["seconds"] for j in result["jobs"]) + result.get("summary", {}).get("seconds", 0)
    # Imports, the lock, the decision, and the JVM and session when the run needed Spark.
    result["spark_start_seconds"] = round(time.perf_counter() - began - step_seconds, 3)
    result["exit_code"] = launched.code
    if launched.summary is not None:
        print("\n" + launched.summary + "\n", flush=True)
    # Rows in / out and status: each job's run, as recorded in ops.job_runs (kept in memory).
    by_job = {r.job: r for r in launched.runs}
    for entry in result["jobs"]:
        r = by_job.get(entry["job"])
        if r is not None:
            entry.update(run_id=r.run_id, status=r.status, rows_in=r.rows_in, rows_out=r.rows_out, message=r.message)
    if launched.engine is not None:
        result["engine"] = {"url": launched.engine.state.url, "pid": launched.engine.state.pid}
        if spec.get("engine_eventlog_dir"):  # the engine's one log, this run's steps by their windows
            add_event_log_profile(result, spec["engine_eventlog_dir"])
    elif launched.spark is not None:
        launched.spark.stop()  # the event log is complete once the application has stopped
        if spec.get("eventlog_dir"):
            add_event_log_profile(result, spec["eventlog_dir"])
    return result


def _child_main(argv: list[str]) -> int:
    """``python -m lakehouse.benchmark --dag-run SPEC.json``: one run, its result written next to its spec."""
    spec = json.loads(Path(argv[1]).read_text())
    result = run_dag(spec)
    Path(spec["result"]).write_text(json.dumps(result, indent=2, default=str))
    return 0


# --------------------------------------------------------------------------- one process per job (per-job)


def idle_job(dag: Sequence[str]) -> str:
    """The job of ``idle-job``: the DAG's first gold job (its last job if it has none)."""
    return next((name for name in dag if name.startswith("gold_")), dag[-1])


def job_takes_input(name: str) -> bool:
    """The job declares an ``input`` parameter (its script takes ``--input``): bronze."""
    from lakehouse.job_catalog import job

    return "input" in {f.name for f in dataclasses.fields(job(name).params)}


def job_submit_command(
    job: str,
    *,
    warehouse: str | Path,
    eventlog_dir: str | Path,
    master: str,
    driver_memory: str,
    input_path: str | Path | None = None,
    conf: str | None = None,
    env: str | None = None,
    sets: Sequence[str] = (),
    bin_dir: str | Path | None = None,
) -> list[str]:
    """``spark-submit jobs/<job>.py`` as a scheduler runs one job: the virtualenv's spark-submit
    (``bin_dir``, default the folder of ``sys.executable``), conf's master and the benchmark's driver
    memory (the DAG runs' ``local[2]``, not spark-submit's default ``local[*]``), an event log into
    ``eventlog_dir``; then the job's own flags: the benchmark's ``--conf``/``--env``/``--set``, the
    warehouse, and ``--input`` for a job that takes one (``input_path``)."""
    submit = Path(bin_dir) if bin_dir is not None else Path(sys.executable).parent
    cmd = [str(submit / "spark-submit"), "--master", master, "--driver-memory", driver_memory]
    for key, value in event_log_conf(eventlog_dir).items():
        cmd += ["--conf", f"{key}={value}"]
    return [*cmd, str(PROJECT_ROOT / "jobs" / f"{job}.py"), *job_args(warehouse, input_path, conf, env, sets)]


def job_args(
    warehouse: str | Path, input_path: str | Path | None, conf: str | None, env: str | None, sets: Sequence[str]
) -> list[str]:
    """A job's own flags: the benchmark's ``--conf``/``--env``/``--set``, the warehouse, ``--input`` if given."""
    args = ["--conf", str(Path(conf).resolve())] if conf else []
    args += ["--env", env] if env else []
    for override in sets:
        args += ["--set", override]
    args += ["--warehouse", str(warehouse)]
    return args + (["--input", str(input_path)] if input_path is not None else [])


def submit_env(base: Mapping[str, str], python: str) -> dict[str, str]:
    """The environment of a ``spark-submit``: the virtualenv's Python for driver and workers,
    ``SPARK_LOCAL_IP`` 127.0.0.1 unless set, no gateway inherited from a PySpark parent."""
    env = {k: v for k, v in base.items() if k not in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")}
    env.update(PYSPARK_PYTHON=python, PYSPARK_DRIVER_PYTHON=python)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return env


def parse_job_run_line(text: str, job: str) -> dict[str, Any] | None:
    """Run id, status and rows in / out from the job's last ``JobRun.finish`` log line
    ("<job> <run id>: <status> (rows in X, out Y)"; ``None`` rows stay None), or None."""
    pattern = re.escape(job) + r" (\S+): (\w+) \(rows in (\d+|None), out (\d+|None)\)"
    matches = re.findall(pattern, text)
    if not matches:
        return None
    run_id, status, rows_in, rows_out = matches[-1]

    def number(value: str) -> int | None:
        return None if value == "None" else int(value)

    return {"run_id": run_id, "status": status, "rows_in": number(rows_in), "rows_out": number(rows_out)}


def _submit_job(cmd: list[str], job: str, warehouse: Path, eventlog_dir: Path, log_path: Path) -> dict[str, Any]:
    """Run one ``spark-submit`` and measure it from outside: seconds, exit code, commits, log, event log."""
    shutil.rmtree(eventlog_dir, ignore_errors=True)
    eventlog_dir.mkdir(parents=True)
    versions = delta_versions(warehouse)
    t = time.perf_counter()
    with open(log_path, "w") as log:
        done = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=submit_env(os.environ, sys.executable), check=False
        )
    entry: dict[str, Any] = {
        "job": job,
        "seconds": round(time.perf_counter() - t, 3),
        "exit_code": done.returncode,
        "commits": new_commits(versions, delta_versions(warehouse), warehouse),
        "log": str(log_path),
        "command": cmd,
    }
    entry.update(parse_job_run_line(log_path.read_text(errors="replace"), job) or {})
    figures = _event_log_figures(eventlog_dir)
    entry["eventlog"] = {k: v for k, v in figures.items() if k != "windows"}
    for key in ("spark_jobs", "snapshot_loads", "filtering_jobs"):
        entry[key] = figures.get(key)
    return entry


def _execute_jobs(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """A run of separate processes: ``spark-submit`` of each job of ``spec["jobs"]`` in order, each
    timed as a whole process; the first failing job stops the run (as it stops the DAG)."""
    label = spec["label"]
    logs = workdir / "logs" / label
    logs.mkdir(parents=True, exist_ok=True)
    warehouse = Path(spec["warehouse"])
    run = {k: v for k, v in spec.items() if k not in ("sets", "conf", "env", "master", "driver_memory")}
    run.update(kind="processes", jobs=[], exit_code=0, eventlog_dir=str(workdir / "eventlogs" / label))
    for job in spec["jobs"]:
        cmd = job_submit_command(
            job,
            warehouse=warehouse,
            eventlog_dir=workdir / "eventlogs" / label / job,
            master=spec["master"],
            driver_memory=spec["driver_memory"],
            input_path=spec["input"] if job_takes_input(job) else None,
            conf=spec.get("conf"),
            env=spec.get("env"),
            sets=spec.get("sets", []),
        )
        _log(f"  {label}: spark-submit jobs/{job}.py")
        entry = _submit_job(cmd, job, warehouse, workdir / "eventlogs" / label / job, logs / f"{job}.log")
        run["jobs"].append(entry)
        if entry["exit_code"]:
            tail = Path(entry["log"]).read_text(errors="replace").splitlines()[-40:]
            run.update(exit_code=entry["exit_code"], error="\n".join(tail), log=entry["log"])
            break
    run["process_seconds"] = round(sum(j["seconds"] for j in run["jobs"]), 3)
    return run


def engine_job_command(
    job: str, *, warehouse: str | Path, input_path: str | Path | None = None, conf: str | None = None,
    env: str | None = None, sets: Sequence[str] = (),
) -> list[str]:  # fmt: skip
    """``python jobs/<job>.py`` as an Airflow engine task runs it: a client of the engine (``engine.use: always``)."""
    sets = [*sets, "engine.use=always"]
    return [sys.executable, str(PROJECT_ROOT / "jobs" / f"{job}.py"), *job_args(warehouse, input_path, conf, env, sets)]


def _execute_engine_jobs(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """A run of separate processes as engine clients: each job of ``spec["jobs"]`` timed as a whole process; its
    Spark jobs from the engine's event log by the process's window. The first failing job stops the run."""
    label = spec["label"]
    logs = workdir / "logs" / label
    logs.mkdir(parents=True, exist_ok=True)
    warehouse = Path(spec["warehouse"])
    run = {k: v for k, v in spec.items() if k not in ("sets", "conf", "env", "env_extra", "engine_eventlog_dir")}
    run.update(kind="processes", jobs=[], exit_code=0)
    for job in spec["jobs"]:
        cmd = engine_job_command(job, warehouse=warehouse, input_path=spec["input"] if job_takes_input(job) else None,
                                 conf=spec.get("conf"), env=spec.get("env"), sets=spec.get("sets", []))  # fmt: skip
        _log(f"  {label}: python jobs/{job}.py (an engine client)")
        log_path = logs / f"{job}.log"
        versions, started_ms, t = delta_versions(warehouse), _epoch_ms(), time.perf_counter()
        with open(log_path, "w") as log:
            done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False,
                                  env={**submit_env(os.environ, sys.executable), **spec["env_extra"]})  # fmt: skip
        entry: dict[str, Any] = {
            "job": job, "seconds": round(time.perf_counter() - t, 3), "exit_code": done.returncode,
            "commits": new_commits(versions, delta_versions(warehouse), warehouse), "log": str(log_path),
            "command": cmd, "started_ms": started_ms, "ended_ms": _epoch_ms(up=True),
        }  # fmt: skip
        entry.update(parse_job_run_line(log_path.read_text(errors="replace"), job) or {})
        run["jobs"].append(entry)
        if entry["exit_code"]:
            tail = log_path.read_text(errors="replace").splitlines()[-40:]
            run.update(exit_code=entry["exit_code"], error="\n".join(tail), log=str(log_path))
            break
    add_event_log_profile(run, spec["engine_eventlog_dir"])
    run["process_seconds"] = round(sum(j["seconds"] for j in run["jobs"]), 3)
    return run


def _execute_peer(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The DuckDB rebuild of every table from the landing folder's files, a process of its own, Parquet out."""
    out, log_path = workdir / "duckdb", workdir / "logs" / "duckdb.log"
    shutil.rmtree(out, ignore_errors=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with open(log_path, "w") as log:
        done = subprocess.run([sys.executable, "-m", "lakehouse.duckdb_peer", "--input", spec["input"], "--out",
                               str(out)], stdout=log, stderr=subprocess.STDOUT, check=False)  # fmt: skip
    text = log_path.read_text(errors="replace")
    found = re.search(r"rebuilt in ([0-9.]+) s", text)
    run = {k: v for k, v in spec.items() if k in ("label", "role", "description", "input", "input_files", "new_rows")}
    run.update(kind="peer", jobs=[], exit_code=done.returncode, log=str(log_path),
               process_seconds=round(time.perf_counter() - t, 3),
               rebuild_seconds=float(found.group(1)) if found else None, output=text[-3000:])  # fmt: skip
    if done.returncode:
        run["error"] = "\n".join(text.splitlines()[-40:])
    return run


def _engine_memory(pid: int) -> dict[str, Any]:
    from lakehouse.engine import memory

    return memory(pid)


def _soak(spec: dict[str, Any], day_files: Sequence[Path], landing: Path, workdir: Path, engine_config) -> dict:
    """One day file after the other into ``landing``, each followed by a ``lakehouse run`` through the engine:
    every run's seconds and the engine's memory after it (:func:`_jvm_figures`)."""
    from lakehouse import engine

    run = {k: v for k, v in spec.items() if k in ("label", "role", "description", "warehouse", "input")}
    run.update(kind="soak", jobs=[], exit_code=0, days=[])
    for i, day in enumerate(sorted(day_files)):
        _place([day], landing)
        day_spec = {**spec, "label": f"soak-{i + 1:02d}", "summary": False, "new_rows": count_rows([day])}
        day_run = _execute(day_spec, workdir)
        state = engine.running(engine_config)
        memory = _engine_memory(state.pid) if state else {}
        run["days"].append({"file": day.name, "process_seconds": day_run.get("process_seconds"),
                            "exit_code": day_run.get("exit_code"), **memory})  # fmt: skip
        _log(f"  soak day {i + 1}/{len(day_files)}: {day_run.get('process_seconds')} s, engine {memory}")
        if day_run.get("exit_code") or state is None:
            run.update(exit_code=day_run.get("exit_code") or 1, error=day_run.get("error", "the engine stopped"))
            break
    run["process_seconds"] = round(sum(d["process_seconds"] or 0 for d in run["days"]), 3)
    return run


def copy_warehouse(source: Path, target: Path) -> float:
    """Copy a local warehouse (without a writer lock left in it); returns the seconds it took."""
    t = time.perf_counter()
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("writer.lock"))
    return time.perf_counter() - t


# --------------------------------------------------------------------------- scenario files


def count_rows(paths: Sequence[str | Path]) -> int:
    """Data lines of CSV files (lines minus one header each)."""
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            total += sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 20), b"")) - 1
    return total


def split_file(path: Path, parts: int) -> list[Path]:
    """Split one day's CSV into ``parts`` files of consecutive lines, each with the header; removes ``path``."""
    if parts == 1:
        return [path]
    with open(path, encoding="utf-8", newline="") as f:
        header, *lines = f.readlines()
    stem = path.name.removesuffix(".csv")
    out = []
    for k in range(parts):
        part = path.with_name(f"{stem}_part{k + 1:02d}of{parts:02d}.csv")
        with open(part, "w", encoding="utf-8", newline="") as f:
            f.write(header)
            f.writelines(lines[k * len(lines) // parts : (k + 1) * len(lines) // parts])
        out.append(part)
    path.unlink()
    return out


def _place(files: Sequence[Path], folder: Path) -> None:
    """Put files in a landing folder: hard links (no copy), copies where links are impossible. A
    file already there (the new day, placed by ``year`` before ``per-job``) is left as it is."""
    folder.mkdir(parents=True, exist_ok=True)
    for src in files:
        dst = folder / src.name
        if dst.exists():
            continue
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def generate_scenario(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Day files for ``days`` days of history + the new day; one list of files per day."""
    from lakehouse.generator import generate

    days = args.days + 1
    t = time.perf_counter()
    result = generate(
        folder,
        users=args.users,
        days=days,
        start_date=args.start_date,
        seed=args.seed,
        invalid_rate=args.invalid_rate,
        duplicate_rate=args.duplicate_rate,
        late_rate=args.late_rate,
        files=days,
        target_rows=round(args.events_per_day * days),
        workers=min(2, os.cpu_count() or 1),
    )
    day_files = [split_file(p, args.files_per_day) for p in result.files]
    history, new_day = day_files[:-1], day_files[-1]
    month = history[-args.month_days :]
    return {
        "generate_seconds": round(time.perf_counter() - t, 3),
        "history_days": args.days,
        "first_day": args.start_date.isoformat(),
        "new_day": (args.start_date + timedelta(days=args.days)).isoformat(),
        "rows_history": sum(result.rows_per_file[:-1]),
        "rows_month_history": sum(result.rows_per_file[-1 - len(month) : -1]),
        "rows_new_day": result.rows_per_file[-1],
        "generator_events_per_active_user_day": result.events_per_day,
        "files": {
            "history": [str(p) for day in history for p in day],
            "month": [str(p) for day in month for p in day],
            "new_day": [str(p) for p in new_day],
        },
    }


# --------------------------------------------------------------------------- machine and versions


def _command_output(cmd: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout + done.stderr).strip() or None


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cores": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        meminfo = Path("/proc/meminfo").read_text()
        info["memory_gib"] = round(int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1)) / 2**20, 1)
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        info["cpu"] = cpu.group(1).strip() if cpu else platform.processor()
    except (OSError, AttributeError):
        info["memory_gib"] = None
    return info


def versions_info() -> dict[str, Any]:
    from importlib import metadata

    from lakehouse import versions

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"
    java_version = _command_output([java, "-version"])
    head = _command_output(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"])
    status = _command_output(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {
        "python": platform.python_version(),
        "pyspark": version("pyspark"),
        "delta_spark": version("delta-spark"),
        "delta_jvm": versions.DELTA_MAVEN_COORDINATES[0],
        "java": java_version.splitlines()[0] if java_version else None,
        "git_commit": head if head and re.fullmatch(r"[0-9a-f]{40}", head) else None,
        "git_dirty": bool(status) if head else None,
    }


# --------------------------------------------------------------------------- rendering


def _n(value: Any) -> str:
    return "" if value is None else f"{value:,}"


def _s(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _sum(values: Sequence[int | None]) -> int | None:
    """Sum, or None if any is unknown (a figure that is partly missing is not shown)."""
    return None if None in values else sum(v for v in values if v is not None)


def _steps(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The jobs of a run, then its summary as the step "summary"."""
    return [*run.get("jobs", []), *([{"job": "summary", **run["summary"]}] if run.get("summary") else [])]


def run_totals(run: dict[str, Any]) -> dict[str, Any]:
    """Seconds (jobs; after start = jobs + summary; total = start + jobs + summary; the whole process
    as the parent measured it), commits, Spark jobs, snapshot loads and filtering jobs.

    A run of separate processes (``per-job``) has no Spark start nor after-start figure: each of its
    steps is a whole process, and ``process_seconds`` is their sum."""
    steps = _steps(run)
    processes = run.get("kind") == "processes"
    jobs_seconds = sum(j["seconds"] for j in run.get("jobs", []))
    after_start = sum(s["seconds"] for s in steps) if steps and not processes else None
    start = run.get("spark_start_seconds")
    commits = [c for s in steps for c in s.get("commits", [])]
    return {
        "jobs_seconds": jobs_seconds,
        "after_start_seconds": after_start,
        "total_seconds": None if start is None or after_start is None else start + after_start,
        "process_seconds": run.get("process_seconds"),
        "commits": len(commits),
        "ops_commits": sum(c["table"].startswith("ops.") for c in commits),
        "spark_jobs": _sum([s.get("spark_jobs") for s in steps]),
        "snapshot_loads": _sum([s.get("snapshot_loads") for s in steps]),
        "filtering_jobs": _sum([s.get("filtering_jobs") for s in steps]),
    }


_HEADERS = ("seconds", "rows in", "rows out", "commits", "ops commits", "spark jobs", "snapshot loads", "filter jobs")
#: Column widths: at least 11, and two more than the header.
_WIDTHS = tuple(max(11, len(h) + 2) for h in _HEADERS)


def _row(name: str, cells: Sequence[str]) -> str:
    return f"  {name:36}" + "".join(f"{c:>{w}}" for c, w in zip(cells, _WIDTHS, strict=False))


def render_run(run: dict[str, Any]) -> str:
    """The per-job table of one run: a DAG process, or (``per-job``) one process per job; the peer's rebuild; the
    soak's days."""
    if run.get("kind") == "peer":
        return (f"{run['label']} ({run['role']}): {run.get('description', '')}\n"
                f"  rebuild {_s(run.get('rebuild_seconds'))} s, whole process {_s(run.get('process_seconds'))} s\n"
                f"{run.get('output', '').strip()}")  # fmt: skip
    if run.get("kind") == "soak":
        lines = [
            f"{run['label']} ({run['role']}): {run.get('description', '')}",
            f"  {'day':8}{'file':34}{'seconds':>9}{'RSS MB':>9}{'heap after GC MB':>18}{'RSS after GC MB':>17}",
        ]
        for i, d in enumerate(run.get("days", []), start=1):
            lines.append(f"  {i:<8}{d['file']:34}{_s(d.get('process_seconds')):>9}{_n(d.get('rss_mb')):>9}"
                         f"{_n(d.get('heap_used_after_gc_mb')):>18}{_n(d.get('rss_after_gc_mb')):>17}")  # fmt: skip
        return "\n".join(lines)
    totals = run_totals(run)
    processes = run.get("kind") == "processes"
    first = "job process (start to exit)" if processes else "step"
    lines = [f"{run['label']} ({run['role']}): {run.get('description', '')}", _row(first, _HEADERS)]
    if not processes:
        lines.append(_row("spark start (imports, JVM, session)", [_s(run.get("spark_start_seconds"))]))
    for step in _steps(run):
        commits = step.get("commits", [])
        name = step["job"] + ("" if step.get("exit_code", 0) == 0 else "  FAILED")
        cells = [
            _s(step["seconds"]),
            _n(step.get("rows_in")),
            _n(step.get("rows_out")),
            _n(len(commits)),
            _n(sum(c["table"].startswith("ops.") for c in commits)),
            _n(step.get("spark_jobs")),
            _n(step.get("snapshot_loads")),
            _n(step.get("filtering_jobs")),
        ]
        lines.append(_row(name, cells))
    counts = [
        _n(totals["commits"]),
        _n(totals["ops_commits"]),
        _n(totals["spark_jobs"]),
        _n(totals["snapshot_loads"]),
        _n(totals["filtering_jobs"]),
    ]
    if processes:
        count = len(run.get("jobs", []))
        name = f"total ({count} process{'es' if count != 1 else ''})"
        lines.append(_row(name, [_s(totals["process_seconds"]), "", "", *counts]))
        return "\n".join(lines)
    lines.append(_row("after Spark started (jobs + summary)", [_s(totals["after_start_seconds"]), "", "", *counts]))
    lines.append(_row("whole run (start + jobs + summary)", [_s(totals["total_seconds"])]))
    lines.append(_row("whole process (python start to exit)", [_s(totals["process_seconds"])]))
    return "\n".join(lines)


def month_year_ratio(runs: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """Whole-run and after-start seconds of the new day on the year over the same on the month."""
    by_label = {r["label"]: run_totals(r) for r in runs if not r.get("exit_code")}
    year, month = by_label.get("year"), by_label.get("month")
    if not year or not month or not month["total_seconds"] or not month["after_start_seconds"]:
        return None
    return {
        "total": year["total_seconds"] / month["total_seconds"],
        "after_start": year["after_start_seconds"] / month["after_start_seconds"],
    }


def target_met(run: dict[str, Any]) -> str:
    """Whether a measured case met its target ("yes", "no"), "FAILED", or "" (no target, a set-up)."""
    if run.get("exit_code"):
        return "FAILED"
    target = TARGETS.get(run["label"]) if run["role"] == "case" else None
    if not target:
        return ""
    value = run_totals(run)[target[0]]
    return "yes" if value is not None and value <= target[1] else "no"


def render_overview(result: dict[str, Any]) -> str:
    """Every run in one table, with the issue's targets where one applies."""
    m, p = result["machine"], result["parameters"]
    lines = [
        f"Benchmark {result['date']} on {m.get('cores')} cores, {m.get('memory_gib')} GiB, "
        f"{result.get('spark', {}).get('master', '')}, driver {p['driver_memory']}; "
        f"{p['users']:,} users, about {p['events_per_day']:,.0f} events a day, {p['files_per_day']} file(s) a day "
        f"from {p['start_date']}",
        f"  {'run':24}{'new rows':>11}{'whole process s':>17}{'whole run s':>13}{'after start s':>15}  "
        f"{'target':30}met",
    ]
    for run in result["runs"]:
        totals = run_totals(run)
        target = TARGETS.get(run["label"]) if run["role"] == "case" else None
        label = run["label"] + (" (set-up)" if run["role"] == "setup" else "")
        lines.append(
            f"  {label:24}{_n(run.get('new_rows')):>11}{_s(totals['process_seconds']):>17}"
            f"{_s(totals['total_seconds']):>13}{_s(totals['after_start_seconds']):>15}  "
            f"{(target[2] if target else ''):30}{target_met(run)}"
        )
        lines.append(f"  {'':24}{run.get('description', '')}")
    by_label = {r["label"]: run_totals(r)["process_seconds"] for r in result["runs"] if r["role"] == "case"}
    ratios = (
        ("engine-per-job", "engine-year", ENGINE_PER_JOB_RATIO_TARGET, "engine per-job / engine year"),
        ("engine-year", "duckdb", ENGINE_DUCKDB_RATIO_TARGET, "engine year / duckdb"),
    )
    for a, b, target, name in ratios:
        if by_label.get(a) and by_label.get(b):
            ratio = by_label[a] / by_label[b]
            lines.append(f"  {name:24}{'':11}{ratio:>16.2f}x{'':28}{f'<= {target} (whole process)':30}"
                         f"{'yes' if ratio <= target else 'no'}")  # fmt: skip
    if by_label.get("per-job") and by_label.get("year"):
        per_job = by_label["per-job"] / by_label["year"]
        lines.append(f"  {'per-job / year':24}{'':11}{per_job:>16.2f}x{'':28}"
                     f"{f'<= {PER_JOB_RATIO_TARGET} (whole process)':30}"
                     f"{'yes' if per_job <= PER_JOB_RATIO_TARGET else 'no'}")  # fmt: skip
    ratio = result.get("month_year_ratio")
    if ratio:
        met = "yes" if ratio["total"] <= RATIO_TARGET else "no"
        lines.append(
            f"  {'month -> year':24}{'':11}{'':17}{ratio['total']:>12.2f}x{ratio['after_start']:>14.2f}x  "
            f"{f'<= {RATIO_TARGET} (whole run)':30}{met}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- driver (parent process)


def _log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _execute(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """One DAG run in its own process; its log in ``workdir/logs``."""
    label = spec["label"]
    for sub in ("runs", "logs"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    spec_path, log_path = workdir / "runs" / f"{label}.json", workdir / "logs" / f"{label}.log"
    spec["result"] = str(workdir / "runs" / f"{label}.result.json")
    spec_path.write_text(json.dumps(spec, indent=2))
    env = {**os.environ, **spec.get("env_extra", {})}
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    t = time.perf_counter()
    with open(log_path, "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "lakehouse.benchmark", "--dag-run", str(spec_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    process_seconds = time.perf_counter() - t
    run = {k: v for k, v in spec.items()
           if k not in ("sets", "overrides", "result", "conf", "env", "summary", "env_extra")}  # fmt: skip
    run.update(log=str(log_path), process_seconds=round(process_seconds, 3))
    if done.returncode or not Path(spec["result"]).exists():
        tail = log_path.read_text(errors="replace").splitlines()[-40:]
        run.update(exit_code=done.returncode or 1, error="\n".join(tail), jobs=[])
        return run
    run.update(json.loads(Path(spec["result"]).read_text()))
    return run


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    from lakehouse.config import ConfigError, load_config

    try:
        base = load_config(args.conf, args.env, args.set)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    started_at = datetime.now(UTC)
    temporary = not args.workdir
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lakehouse-benchmark-")).resolve()
    for sub in ("generated", "landing", "warehouse", "runs", "logs", "eventlogs"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    out = Path(args.out or PROJECT_ROOT / ".cache" / "benchmark" / f"benchmark-{started_at:%Y%m%dT%H%M%SZ}.json")
    plan = plan_runs(args.cases)
    result: dict[str, Any] = {
        "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "lakehouse benchmark " + " ".join(argv if argv is not None else sys.argv[1:]),
        "parameters": {k: (v.isoformat() if isinstance(v, date) else v) for k, v in vars(args).items()},
        "machine": machine_info(),
        "versions": versions_info(),
        "spark": {
            "master": base.spark.master,
            "shuffle_partitions": base.spark.shuffle_partitions,
            "driver_memory": args.driver_memory,
        },
        "workdir": str(workdir),
        "runs": [],
    }
    _log(f"workdir {workdir}; runs: {', '.join(label for label, _ in plan)}")

    scenario: dict[str, Any] = {}
    if any(label != "sample" for label, _ in plan):
        _log(f"generating {args.days} + 1 days, {args.users:,} users, about {args.events_per_day:,.0f} rows a day")
        scenario = generate_scenario(args, workdir / "generated")
        result["scenario"] = {k: v for k, v in scenario.items() if k != "files"}
        _log(
            f"generated in {scenario['generate_seconds']:.1f} s: history {scenario['rows_history']:,} rows, "
            f"month {scenario['rows_month_history']:,}, new day {scenario['new_day']} {scenario['rows_new_day']:,}"
        )
    files = {k: [Path(p) for p in v] for k, v in scenario.get("files", {}).items()}
    history_days, month_days, new_day = args.days, args.month_days, scenario.get("new_day")
    # label -> (warehouse, landing folder, files added before the run, description)
    sample = Path(base.paths.input)
    sample_name = sample.relative_to(PROJECT_ROOT) if sample.is_relative_to(PROJECT_ROOT) else sample
    steps: dict[str, tuple[str, Path, list[Path], str]] = {
        "sample": ("sample", sample, [], f"{sample_name} (paths.input), whole DAG, fresh warehouse"),
        "backfill": ("year", workdir / "landing" / "year", files.get("history", []),
                     f"{history_days} days of files into an empty warehouse, whole DAG"),
        "year": ("year", workdir / "landing" / "year", files.get("new_day", []),
                 f"one new day ({new_day}) on {history_days} days of history"),
        "nothing-new": ("year", workdir / "landing" / "year", [], f"no new file, on {history_days} days of history"),
        "month-setup": ("month", workdir / "landing" / "month", files.get("month", []),
                        f"the {month_days} days before {new_day} into an empty warehouse"),
        "month": ("month", workdir / "landing" / "month", files.get("new_day", []),
                  f"the same new day ({new_day}) on {month_days} days of history"),
        "nothing-new-month": ("month", workdir / "landing" / "month", [],
                              f"no new file, on {month_days} days of history"),
        "per-job": ("year-per-job", workdir / "landing" / "year", files.get("new_day", []),
                    f"one new day ({new_day}) on {history_days} days of history, one spark-submit per job"),
        "idle-job": ("year-per-job", workdir / "landing" / "year", [],
                     f"spark-submit jobs/{idle_job(base.dag)}.py again after per-job: nothing to do"),
        "engine-year": ("year-engine", workdir / "landing" / "year", files.get("new_day", []),
                        f"one new day ({new_day}) on {history_days} days of history, lakehouse run on the warm engine"),
        "engine-per-job": ("year-engine-per-job", workdir / "landing" / "year", files.get("new_day", []),
                           "the same new day, one process per job as clients of the warm engine"),
        "engine-idle-job": ("year-engine-per-job", workdir / "landing" / "year", [],
                            f"python jobs/{idle_job(base.dag)}.py again after engine-per-job: nothing to do"),
        "duckdb": ("-", workdir / "landing" / "year", files.get("new_day", []),
                   f"DuckDB rebuilds every table of the {history_days} + 1 days' files (the peer)"),
        "soak": ("soak", workdir / "landing" / "soak", [],
                 f"the {month_days} days before {new_day}, one file and one lakehouse run a day, one engine"),
    }  # fmt: skip
    engine_dir, engine_log = workdir / "engine", workdir / "eventlogs" / "engine"
    engine_config = base.with_overrides(engine__state_dir=str(engine_dir), engine__port=ENGINE_PORT)
    engine_config = with_event_log(engine_config, engine_log)
    engine_started = False
    exit_code = 0
    for label, role in plan:
        warehouse, landing, added, description = steps[label]
        if added:
            _place(added, landing)
        new_rows = count_rows(added) if label not in ("sample", "duckdb") else count_rows(_csv_files(landing))
        spec = {
            "label": label,
            "role": role,
            "description": description,
            "warehouse": str(workdir / "warehouse" / warehouse),
            "input": str(landing),
            "input_files": len(_csv_files(landing)),
            "new_files": len(added) if label != "sample" else len(_csv_files(landing)),
            "new_rows": new_rows,
            "conf": args.conf,
            "env": args.env,
            "sets": args.set,
            "overrides": {
                "paths.warehouse": str(workdir / "warehouse" / warehouse),
                "paths.input": str(landing),
                "spark.driver_memory": args.driver_memory,
            },
            "summary": not args.no_summary,
        }
        _log(f"run {label} ({role}): {description}; {spec['input_files']} files in {landing}")
        if label in ENGINE_RUNS and not engine_started:
            from lakehouse import engine

            began_engine = time.perf_counter()
            state = engine.start(engine_config)
            engine_started = True
            result["engine"] = {"pid": state.pid, "url": state.url, "java": state.java, "driver_memory":
                                state.driver_memory, "start_seconds": round(time.perf_counter() - began_engine, 1),
                                "after_start": _engine_memory(state.pid)}  # fmt: skip
            _log(f"engine started and warmed up in {result['engine']['start_seconds']} s: {state.url}")
        if label in ENGINE_RUNS:
            spec.update(env_extra={"LAKEHOUSE_ENGINE_DIR": str(engine_dir)}, engine_eventlog_dir=str(engine_log))
            spec["overrides"]["engine.use"] = "always"
        elif label != "duckdb":
            spec["overrides"]["engine.use"] = "never"  # the cold path: no engine of this machine serves it
        if label in PROCESS_RUNS:
            run = _execute_jobs(_jobs_spec(spec, args, base), workdir)
        elif label in ENGINE_PROCESS_RUNS:
            run = _execute_engine_jobs({**_jobs_spec(spec, args, base), **{k: spec[k] for k in (
                "env_extra", "engine_eventlog_dir")}}, workdir)  # fmt: skip
        elif label == "duckdb":
            run = _execute_peer(spec, workdir)
        elif label == "soak":
            run = _soak(spec, files.get("month", []), landing, workdir, engine_config)
        else:
            if label not in ENGINE_RUNS:
                spec["eventlog_dir"] = str(workdir / "eventlogs" / label)
            run = _execute(spec, workdir)
        run["totals"] = run_totals(run)
        result["runs"].append(run)
        print("\n" + render_run(run) + "\n", flush=True)
        if run.get("exit_code"):
            print(f"{label} failed (exit {run['exit_code']}); log {run['log']}:\n{run.get('error', '')}", flush=True)
            exit_code = 1
            break
        if label == "backfill":
            for case, name in (("per-job", "year-per-job"), ("engine-year", "year-engine"),
                               ("engine-per-job", "year-engine-per-job")):  # fmt: skip
                if case not in args.cases:
                    continue
                source, copy = workdir / "warehouse" / "year", workdir / "warehouse" / name
                seconds = copy_warehouse(source, copy)
                result.setdefault("copies", {})[name] = {"copied_from": str(source), "seconds": round(seconds, 3)}
                _log(f"copied {source} to {copy} for {case} in {seconds:.1f} s")
    if engine_started:
        from lakehouse import engine

        state = engine.running(engine_config)
        if state is not None:
            result["engine"]["at_end"] = _engine_memory(state.pid)
        engine.stop(engine_config)
    result["month_year_ratio"] = month_year_ratio(result["runs"])
    result["seconds"] = round(time.perf_counter() - began, 3)
    print(render_overview(result) + "\n", flush=True)
    print(f"benchmark wall time {result['seconds']:.0f} s", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"JSON: {out}", flush=True)
    if temporary and not exit_code:
        shutil.rmtree(workdir, ignore_errors=True)
    elif temporary:
        print(f"kept the work folder for the failure: {workdir}", flush=True)
    return exit_code


def _jobs_spec(spec: dict[str, Any], args: argparse.Namespace, base: LakehouseConfig) -> dict[str, Any]:
    """A DAG run's spec turned into a :data:`PROCESS_RUNS` one: which jobs, and how to submit them."""
    jobs = list(base.dag) if spec["label"] in ("per-job", "engine-per-job") else [idle_job(base.dag)]
    keep = ("label", "role", "description", "warehouse", "input", "input_files", "new_files", "new_rows")
    return {
        **{k: spec[k] for k in keep},
        "jobs": jobs,
        "master": base.spark.master,
        "driver_memory": args.driver_memory,
        "conf": args.conf,
        "env": args.env,
        "sets": args.set,
    }


def _csv_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.glob("*") if p.is_file() and p.name.lower().endswith(".csv"))


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]) if sys.argv[1:2] == ["--dag-run"] else main(sys.argv[1:]))
