"""The scheduler's path: every job of conf's DAG as its own ``spark-submit jobs/<job>.py`` process, day after day.

As an Airflow task runs it (``--set operations.partial_exit_code=0``, the Airflow DAG's setting), on
generated files with late, duplicated and invalid rows. The history: ``lakehouse run`` (one application)
over three files, copied into the per-job warehouse (the first day into an empty warehouse as one
``spark-submit`` per job is the Airflow scenario's first run, ``tests/airflow/``). Then a day with a new
file, a file of late events and a file with a wrong header (its silver task first fails because another
run holds the warehouse, then its retry succeeds), and a day with nothing new. After each day every data
table equals ``lakehouse run`` over the same landing folder, and ``ops.job_runs`` shows each job's run of
the day: succeeded (bronze ``partial``: the bad file), and on the day with nothing new every job decided
so without starting Spark.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakehouse import delta_rs, generator, launcher
from lakehouse.config import PROJECT_ROOT, load_config
from lakehouse.lock import writer_lock
from lakehouse.registry import OPS_JOB_RUNS, TABLES
from lakehouse.warehouse_diff import compare
from tests.conftest import make_config

pytestmark = pytest.mark.perjob

DATA_TABLES = [s for s in TABLES if s.layer != "ops"]
#: What the Airflow DAG passes to every task (lakehouse/orchestration/airflow.py).
SCHEDULER_SETS = ("operations.partial_exit_code=0", "spark.shuffle_partitions=2")


def _submit(job: str, warehouse: Path, landing: Path) -> subprocess.CompletedProcess:
    """``spark-submit jobs/<job>.py`` from the virtualenv, as the scheduler's task runs it."""
    cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]", "--driver-memory", "1g",
           str(PROJECT_ROOT / "jobs" / f"{job}.py"), "--env", "local", "--warehouse", str(warehouse)]  # fmt: skip
    for override in SCHEDULER_SETS:
        cmd += ["--set", override]
    if job == "bronze_fct_event_stream":
        cmd += ["--input", str(landing)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT_ROOT)


def _job_runs(config) -> list[dict]:
    return delta_rs.read_rows(OPS_JOB_RUNS, config, ["run_id", "job", "status", "message", "started_at"])


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("perjob_generated")
    generator.generate(
        out, users=30, days=14, start_date="2025-03-02", seed=11, events_per_day=1.5, files=5,
        invalid_rate=0.01, duplicate_rate=0.03, late_rate=0.08,
    )  # fmt: skip
    return sorted(out.glob("*.csv"))


@pytest.fixture(scope="module")
def scenario(spark, files, tmp_path_factory) -> dict:
    """History by ``lakehouse run``, copied; then two days through both paths, each day's outcome kept."""
    root = tmp_path_factory.mktemp("perjob")
    # One landing folder for both warehouses: bronze keys a file by its path.
    landing, warehouse, ref = root / "landing", root / "wh", root / "ref"
    landing.mkdir()
    bad = root / "event_stream_bad_header.csv"
    bad.write_text("when,who,what\n2025-03-10,u_1,like\n")
    dag = list(load_config().dag)
    config = make_config(warehouse, landing)
    out: dict = {"days": {}, "config": config, "ref": make_config(ref, landing)}
    sets = ["--set", "spark.shuffle_partitions=2", "--set", "operations.partial_exit_code=0"]

    def lakehouse_run() -> None:
        assert launcher.run_main(["--env", "local", "--warehouse", str(ref), "--input", str(landing),
                                  "--no-summary", *sets]) == 0  # fmt: skip

    for f in files[:3]:
        shutil.copy(f, landing / f.name)
    lakehouse_run()
    shutil.copytree(ref, warehouse)
    days = {"new, late and bad files": [files[3], files[4], bad], "nothing new": []}
    for day, arriving in days.items():
        for f in arriving:
            shutil.copy(f, landing / f.name)
        before = {r["run_id"] for r in _job_runs(config)}
        codes, seconds, outputs = {}, {}, {}
        for job in dag:
            if day != "nothing new" and job == "silver_fct_events":
                with writer_lock(config, command="another run (test)"):  # the task fails: the warehouse is busy
                    failed = _submit(job, warehouse, landing)
                codes["silver_fct_events (busy warehouse)"] = failed.returncode
            began = time.monotonic()
            done = _submit(job, warehouse, landing)
            seconds[job], codes[job], outputs[job] = time.monotonic() - began, done.returncode, done.stderr[-3000:]
        print(f"[per-job] {day}: {sum(seconds.values()):.0f} s for {len(dag)} spark-submits "
              f"({', '.join(f'{j} {s:.1f}' for j, s in seconds.items())})")  # fmt: skip
        lakehouse_run()
        diff = compare(spark, str(warehouse), str(ref), DATA_TABLES)
        runs = [r for r in _job_runs(config) if r["run_id"] not in before]
        out["days"][day] = {"codes": codes, "outputs": outputs, "diff": diff, "runs": runs}
    return out


@pytest.mark.parametrize("day", ["new, late and bad files", "nothing new"])
def test_each_job_as_its_own_process_gives_lakehouse_runs_tables(scenario, day):
    outcome = scenario["days"][day]
    expected = {j: 0 for j in load_config().dag}
    if day != "nothing new":
        expected["silver_fct_events (busy warehouse)"] = 2
    assert outcome["codes"] == expected, {j: outcome["outputs"].get(j, "")[-1500:] for j, c in outcome["codes"].items()
                                          if c != expected.get(j)}  # fmt: skip
    unequal = {t: d for t, d in outcome["diff"].items() if d["only_left"] or d["only_right"]}
    assert unequal == {}, unequal
    assert all(d["rows_left"] == d["rows_right"] for d in outcome["diff"].values())
    assert outcome["diff"]["gold.agg_active_user"]["rows_left"] > 0


@pytest.mark.parametrize("day", ["new, late and bad files", "nothing new"])
def test_job_runs_of_each_day(scenario, day):
    runs = scenario["days"][day]["runs"]
    dag = list(load_config().dag)
    statuses = sorted((r["job"], r["status"]) for r in runs)
    expected = sorted((j, "succeeded") for j in dag)
    if day != "nothing new":
        expected = sorted((j, "partial" if j == "bronze_fct_event_stream" else "succeeded") for j in dag)
    # The busy warehouse stopped its task before anything ran: no run of it is recorded.
    assert statuses == expected
    messages = {r["job"]: r["message"] or "" for r in runs}
    if day == "nothing new":
        assert all(m.startswith("nothing to do") for m in messages.values()), messages
        # No new data is when data goes stale: the idle anomaly job still says so (the files are of 2025).
        assert "; data_freshness: newest event_time " in messages["gold_agg_metric_anomalies"], messages
    else:  # every job had new data
        assert not any(m.startswith("nothing to do") for m in messages.values()), messages
        assert "event_stream_bad_header.csv" in messages["bronze_fct_event_stream"]
