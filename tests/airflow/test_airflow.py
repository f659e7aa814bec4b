"""The job DAG under a real Apache Airflow 3 (its own virtualenv under .cache/airflow, marker ``airflow``),
and the scheduler's path (marker ``perjob``): every job of conf's DAG as its own process, day after day,
exactly as Airflow's tasks run it: a client of the warm engine (``airflow.tasks: engine``, the default; this
module's own engine, port 15013, so that killing it touches nothing else), and one day of ``spark-submit`` tasks
(a cold JVM each: the cold path still works).

Fast: the rendered DAG imports without errors, its tasks and edges are conf's, its schedule, catchup and
max_active_runs, each engine task's command and environment, and the spark-submit command Airflow's own hook
builds for a task of the spark-submit DAG. End to end, on generated files with late, duplicated and invalid
rows, each day followed by ``lakehouse run`` (one application) over the same landing folder into a reference
warehouse:

1. ``lakehouse airflow test`` (``airflow dags test``) on three files plus a file with a wrong header into an
   empty warehouse: every job task succeeds, the data tables equal ``lakehouse run``'s, each job run is
   recorded with the Airflow run (lineage), bronze's run is ``partial`` and the run fails on
   ``needs_attention``, which names the file;
2. the next day, a new file: first ``spark-submit jobs/silver_fct_events.py`` while another run holds the
   warehouse (exit 2, nothing recorded), then the DAG again, and the engine is killed while a gold task runs:
   that task fails naming the engine, Airflow's retry starts a new engine and succeeds, every job has new data,
   the known bad file is a reminder, not a failure, and the tables equal ``lakehouse run``'s again;
3. the day after, a file of late events, as ``spark-submit`` tasks (``airflow.tasks: spark-submit``): the chain
   bronze -> silver -> ``gold_agg_active_user`` runs as cold tasks, Airflow marks the other gold tasks successful
   (``--skip``), a ``lakehouse run`` catches them up (the spark-submit tasks' jobs are idle in it), and the
   tables equal ``lakehouse run``'s;
4. a day with nothing new, through ``lakehouse airflow up`` and a run triggered with the REST API: every job
   decides so without starting Spark, commits nothing to a data table, and the idle anomaly job still warns
   that the data is stale.

(Until 2026-12-06 the per-job days were a scenario of their own, ``tests/perjob/``, of plain
``spark-submit`` processes: the same processes as these tasks, 13 more cold JVMs a day.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakehouse import delta_rs, engine, generator
from lakehouse.config import PROJECT_ROOT, load_config
from lakehouse.lock import writer_lock
from lakehouse.orchestration import airflow
from lakehouse.registry import OPS_JOB_RUNS
from lakehouse.tables import TABLES
from tests.conftest import MODULE_ENGINE_AOT, make_config

pytestmark = [pytest.mark.airflow, pytest.mark.perjob]

#: Runs in Airflow's Python: the DAG as Airflow parsed it, and a task's command (a spark-submit task: the one
#: its Spark hook builds).
PROBE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
out = {"import_errors": {k: v[-400:] for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    tasks = {t.task_id: {"upstream": sorted(t.upstream_task_ids), "pool": t.pool, "retries": t.retries,
                         "type": type(t).__name__, "trigger_rule": str(t.trigger_rule),
                         "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None}
             for t in dag.tasks}
    task = dag.get_task(sys.argv[2])
    if hasattr(task, "application"):
        command, env = task._get_hook()._build_spark_submit_command(task.application), task.env_vars
    else:
        command, env = task.bash_command, task.env
    out["dags"][dag_id] = {"schedule": str(dag.schedule), "catchup": dag.catchup,
                           "max_active_runs": dag.max_active_runs, "tasks": tasks, "command": command, "env": env}
print(json.dumps(out))
"""
#: This module's engine: the engine tasks find it by its state folder (killed in the next day's run).
ENGINE_PORT = 15013


@pytest.fixture(scope="module")
def layout():
    layout = airflow.default_layout()
    airflow.ensure_venv(layout)
    airflow.ensure_home(layout, airflow.airflow_env(layout, "local[2]"))
    return layout


def _spec(warehouse: Path, landing: Path, *sets: str) -> dict:
    config = load_config(overrides=[f"paths.warehouse={warehouse}", f"paths.input={landing}", *sets])
    return airflow.task_spec(config, conf_file=PROJECT_ROOT / "conf" / "lakehouse.yaml", env=None,
                             sets=list(sets), master="local[2]")  # fmt: skip


def _probe(layout, folder: Path, task_id: str) -> dict:
    env = airflow.airflow_env(layout, "local[2]")
    python = str(layout.venv / "bin" / "python")
    out = subprocess.run([python, "-c", PROBE, str(folder), task_id], capture_output=True, text=True, check=True,
                         env={**airflow.os.environ, **env})  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dag_is_confs_dag(layout, tmp_path):
    spec = _spec(tmp_path / "wh", tmp_path / "landing")
    folder = tmp_path / "dags"
    airflow.render(folder, spec)
    parsed = _probe(layout, folder, "gold_agg_miles_weekly")
    assert parsed["import_errors"] == {}
    dag = parsed["dags"]["heymax_lakehouse"]
    config = load_config()
    assert set(dag["tasks"]) == {*config.dag, "needs_attention"}
    for name, upstream in airflow.upstream_of(config).items():
        assert dag["tasks"][name]["upstream"] == sorted(upstream), name
        assert dag["tasks"][name]["type"] == "BashOperator"
        assert dag["tasks"][name]["timeout"] == config.airflow.task_timeout_minutes * 60
        assert dag["tasks"][name]["pool"] == airflow.POOL and dag["tasks"][name]["retries"] == config.airflow.retries
    # bronze -> silver -> gold, as the original project's DAGs ran
    assert dag["tasks"]["silver_fct_events"]["upstream"] == ["bronze_fct_event_stream"]
    assert dag["tasks"]["needs_attention"]["upstream"] == ["gold_data_quality_report"]
    assert (dag["schedule"], dag["catchup"], dag["max_active_runs"]) == ("@daily", False, 1)
    # A client of the engine (started by the first task that finds none): the job's Python, no JVM of its own.
    assert dag["command"].split() == [sys.executable, str(PROJECT_ROOT / "jobs" / "gold_agg_miles_weekly.py"),
                                      "--conf", str(PROJECT_ROOT / "conf" / "lakehouse.yaml"), "--set",
                                      "operations.partial_exit_code=0", "--warehouse", str(tmp_path / "wh"), "--set",
                                      "engine.use=always"]  # fmt: skip
    assert dag["env"]["LAKEHOUSE_ENGINE_DIR"] == config.engine.state_dir
    assert dag["env"]["AIRFLOW_CTX_DAG_RUN_ID"] == "{{ run_id }}"


def test_the_spark_submit_dag_submits_each_job(layout, tmp_path):
    spec = _spec(tmp_path / "wh", tmp_path / "landing", "airflow.tasks=spark-submit")
    folder = tmp_path / "dags"
    airflow.render(folder, spec)
    parsed = _probe(layout, folder, "gold_agg_miles_weekly")
    assert parsed["import_errors"] == {}
    dag = parsed["dags"]["heymax_lakehouse"]
    config = load_config()
    for name in config.dag:
        assert dag["tasks"][name]["type"] == "SparkSubmitOperator"
    # bronze -> silver -> gold, as the original project's DAGs ran
    assert dag["tasks"]["silver_fct_events"]["upstream"] == ["bronze_fct_event_stream"]
    assert dag["tasks"]["gold_agg_active_user"]["upstream"] == ["silver_dim_users", "silver_user_activity_daily"]
    assert dag["tasks"]["needs_attention"]["upstream"] == ["gold_data_quality_report"]
    assert dag["tasks"]["needs_attention"]["retries"] == 0
    assert dag["tasks"]["needs_attention"]["trigger_rule"].lower().endswith("all_done")
    assert (dag["schedule"], dag["catchup"], dag["max_active_runs"]) == ("@daily", False, 1)
    command = dag["command"]
    assert command[:3] == [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]"]
    assert command[command.index("--jars") + 1].split(",") == [
        str(PROJECT_ROOT / ".cache" / "jars" / Path(j).name) for j in command[command.index("--jars") + 1].split(",")
    ]
    assert any("delta-spark" in j for j in command[command.index("--jars") + 1].split(","))
    app = command.index(str(PROJECT_ROOT / "jobs" / "gold_agg_miles_weekly.py"))
    assert command[app + 1:] == ["--conf", str(PROJECT_ROOT / "conf" / "lakehouse.yaml"), "--set",
                                 "airflow.tasks=spark-submit", "--set", "operations.partial_exit_code=0",
                                 "--warehouse", str(tmp_path / "wh")]  # fmt: skip
    assert dag["env"]["AIRFLOW_CTX_DAG_RUN_ID"] == "{{ run_id }}"


def test_a_stale_spec_does_not_load(layout, tmp_path):
    conf = tmp_path / "lakehouse.yaml"
    shutil.copyfile(PROJECT_ROOT / "conf" / "lakehouse.yaml", conf)
    shutil.copytree(PROJECT_ROOT / "conf" / "env", tmp_path / "env")  # LAKEHOUSE_ENV may name an overlay
    config = load_config(str(conf), overrides=[f"paths.warehouse={tmp_path / 'wh'}"])
    folder = tmp_path / "dags"
    airflow.render(folder, airflow.task_spec(config, conf_file=conf, env=None, sets=[], master="local[2]"))
    conf.write_text(conf.read_text().replace("retries: 1", "retries: 3"))
    parsed = _probe_errors(layout, folder)
    assert "stale" in parsed and "lakehouse.cli airflow render" in parsed


def _probe_errors(layout, folder: Path) -> str:
    python = str(layout.venv / "bin" / "python")
    script = "import sys\nfrom airflow.dag_processing.dagbag import DagBag\nprint(DagBag(sys.argv[1]).import_errors)"
    env = {**airflow.os.environ, **airflow.airflow_env(layout, "local[2]")}
    return subprocess.run([python, "-c", script, str(folder)], capture_output=True, text=True, env=env).stdout


def _airflow_runs(layout, dag_id: str) -> list[dict]:
    out = airflow.run_airflow(layout, airflow.airflow_env(layout, "local[2]"), "dags", "list-runs", dag_id,
                              "--output", "json", capture_output=True, text=True)  # fmt: skip
    return json.loads(out.stdout[out.stdout.index("[") :])


def _task_states(layout, dag_id: str, run_id: str) -> dict[str, str]:
    out = airflow.run_airflow(layout, airflow.airflow_env(layout, "local[2]"), "tasks", "states-for-dag-run", dag_id,
                              run_id, "--output", "json", capture_output=True, text=True)  # fmt: skip
    return {t["task_id"]: t["state"] for t in json.loads(out.stdout[out.stdout.index("[") :])}


DATA_TABLES = [s for s in TABLES if s.layer != "ops"]
BAD_FILE = "event_stream_bad_header.csv"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    """Five generated files of 30 users over 14 days: late, duplicated and invalid rows."""
    out = tmp_path_factory.mktemp("scheduler_generated")
    generator.generate(
        out, users=30, days=14, start_date="2025-03-02", seed=11, events_per_day=1.5, files=5,
        invalid_rate=0.01, duplicate_rate=0.03, late_rate=0.08,
    )  # fmt: skip
    return sorted(out.glob("*.csv"))


def _same_tables_as_lakehouse_run(spark, warehouse: Path, landing: Path, reference: Path) -> None:
    """``lakehouse run`` over ``landing`` into ``reference`` (incremental, as a daily run), then every data table
    of ``warehouse`` equals it."""
    from lakehouse import launcher
    from lakehouse.warehouse_diff import compare

    args = ["--env", "local", "--warehouse", str(reference), "--input", str(landing), "--no-summary",
            "--set", "spark.shuffle_partitions=2", "--set", "operations.partial_exit_code=0"]  # fmt: skip
    assert launcher.run_main(args) == 0
    diff = compare(spark, str(reference), str(warehouse), DATA_TABLES)
    unequal = {name: d for name, d in diff.items() if d["only_left"] or d["only_right"]}
    assert unequal == {} and all(d["rows_left"] == d["rows_right"] for d in diff.values())
    assert diff["gold.agg_active_user"]["rows_left"] > 0


def _airflow_test(args: list[str], date: str, wait: bool = True):
    """``lakehouse airflow test`` whose engine tasks use this module's engine."""
    cmd = [sys.executable, "-m", "lakehouse.cli", "airflow", "test", *args, "--date", date]
    env = {**os.environ, "LAKEHOUSE_ENGINE_DIR": str(ENGINE_DIR)}
    if not wait:
        return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)  # fmt: skip
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)


#: Where this module's engine keeps its state (set by the ``airflow_engine`` fixture).
ENGINE_DIR = Path()


@pytest.fixture(scope="module")
def airflow_engine(tmp_path_factory):
    """This module's engine: started by the first ``airflow test`` (its tasks' ``engine.use: always``), stopped
    here at the end, also after a failure."""
    global ENGINE_DIR
    ENGINE_DIR = tmp_path_factory.mktemp("airflow_engine")
    config = load_config()
    config = config.with_overrides(engine__state_dir=str(ENGINE_DIR), engine__port=ENGINE_PORT, engine__aot_cache=False)
    # Started here without its warm-up workload (about 30 s): `airflow test` finds it running. The next day's
    # killed engine is started again by a task's retry (`engine.use: always`).
    engine.start(config, warm_up=False)
    try:
        yield config
    finally:
        engine.stop(config)


def _job_runs(warehouse: Path, airflow_run_id: str) -> list[dict]:
    """The job runs one Airflow run recorded (read by delta-rs: no Spark)."""
    config = make_config(warehouse)
    columns = ["job", "status", "message", "airflow_dag_id", "airflow_run_id", "airflow_try_number"]
    return [r for r in delta_rs.read_rows(OPS_JOB_RUNS, config, columns) if r["airflow_run_id"] == airflow_run_id]


@pytest.fixture(scope="module")
def first_run(layout, files, airflow_engine, tmp_path_factory):
    """``lakehouse airflow test`` on three files plus a file with a wrong header, into an empty warehouse."""
    tmp = tmp_path_factory.mktemp("airflow_e2e")
    landing, warehouse = tmp / "landing", tmp / "wh"
    landing.mkdir()
    for f in files[:3]:
        shutil.copy(f, landing / f.name)
    (landing / BAD_FILE).write_text("when,who,what\n2025-03-10,u_1,like\n")
    # A DAG id of its own: the runs of this test are not mixed with a developer's local runs.
    dag_id = f"lakehouse_test_{time.time_ns()}"
    args = ["--warehouse", str(warehouse), "--input", str(landing), "--dir", str(layout.root),
            "--set", f"airflow.dag_id={dag_id}", "--set", f"engine.port={ENGINE_PORT}",
            "--set", "airflow.retry_delay_minutes=0", "--set", MODULE_ENGINE_AOT]  # fmt: skip
    began = time.monotonic()
    proc = _airflow_test(args, "2025-03-10")
    print(f"[airflow] first run (three files + a bad file, empty warehouse): {time.monotonic() - began:.0f} s")
    return {"proc": proc, "args": args, "dag_id": dag_id, "warehouse": warehouse, "landing": landing,
            "reference": tmp / "reference"}  # fmt: skip


def test_a_bad_day_builds_the_good_files_and_fails_on_needs_attention(spark, layout, first_run):
    proc, dag_id, warehouse = first_run["proc"], first_run["dag_id"], first_run["warehouse"]
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = _airflow_runs(layout, dag_id)
    states = _task_states(layout, dag_id, run["run_id"])
    config = load_config(overrides=[f"paths.warehouse={warehouse}"])
    assert {t: s for t, s in states.items() if s != "success"} == {"needs_attention": "failed"}, states
    assert set(states) == {*config.dag, "needs_attention"}
    assert "NEEDS ATTENTION bronze_fct_event_stream" in proc.stdout + proc.stderr
    assert BAD_FILE in proc.stdout + proc.stderr

    # Silver and gold were built from the good files: every data table equals lakehouse run's on the same files.
    _same_tables_as_lakehouse_run(spark, warehouse, first_run["landing"], first_run["reference"])
    # Lineage: each job run of the Airflow run is recorded with its dag id, run id and try number.
    runs = _job_runs(warehouse, run["run_id"])
    assert sorted(r["job"] for r in runs) == sorted(config.dag)
    assert {(r["airflow_dag_id"], r["airflow_try_number"]) for r in runs} == {(dag_id, 1)}
    statuses = {r["job"]: r["status"] for r in runs}
    assert statuses == {j: "partial" if j == "bronze_fct_event_stream" else "succeeded" for j in config.dag}
    assert BAD_FILE in {r["job"]: r["message"] for r in runs}["bronze_fct_event_stream"]


def _submit(job: str, warehouse: Path) -> subprocess.CompletedProcess:
    """``spark-submit jobs/<job>.py`` from the virtualenv, as a scheduler's task runs it."""
    cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]", "--driver-memory", "1g",
           str(PROJECT_ROOT / "jobs" / f"{job}.py"), "--env", "local", "--warehouse", str(warehouse),
           "--set", "operations.partial_exit_code=0"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT_ROOT)


def _kill_the_engine_during(job: str, airflow_engine, warehouse: Path) -> dict:
    """Kills this module's engine (in a thread) once a task of ``job`` runs on it: its process holds the
    warehouse lock and has recorded its engine session there; what it killed is in the result."""
    import threading

    killed: dict = {}
    lock = warehouse / "_lakehouse" / "writer.lock"

    def watch() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            state = engine.running(airflow_engine)
            if holder.get("command") == f"job {job}" and holder.get("engine_session") and state is not None:
                os.kill(state.pid, 9)
                killed["pid"] = state.pid
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    killed["thread"] = thread
    return killed


def test_the_next_day_with_new_data_and_a_killed_engine_gives_lakehouse_runs_tables(
    spark, layout, files, first_run, airflow_engine
):
    landing, warehouse = first_run["landing"], first_run["warehouse"]
    shutil.copy(files[3], landing / files[3].name)  # a new file
    config = make_config(warehouse, landing)
    with writer_lock(config, command="another run (test)"):  # a task started while another run writes
        busy = _submit("silver_fct_events", warehouse)
    assert busy.returncode == 2, busy.stdout[-2000:] + busy.stderr[-2000:]
    assert "another run is writing the warehouse" in busy.stdout + busy.stderr  # spark-submit merges them
    began = time.monotonic()
    killer = _kill_the_engine_during("gold_agg_active_user", airflow_engine, warehouse)
    second = _airflow_test(first_run["args"], "2025-03-16")
    killer["thread"].join(timeout=5)
    print(f"[airflow] next day's run (a new file on the warehouse of the first; the engine killed once): "
          f"{time.monotonic() - began:.0f} s")  # fmt: skip
    assert "pid" in killer, "the engine was never seen running a gold task"
    # The bad file is a known one now: a reminder, not a new problem; the killed task's retry succeeded.
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert engine.running(airflow_engine).pid != killer["pid"], "the retry did not start a new engine"
    _same_tables_as_lakehouse_run(spark, warehouse, landing, first_run["reference"])
    (latest,) = [r for r in _airflow_runs(layout, first_run["dag_id"]) if "2025-03-16" in r["logical_date"]]
    runs = _job_runs(warehouse, latest["run_id"])
    # The task running when the engine died failed naming it, and its second try succeeded; every other job
    # ran once. The busy warehouse stopped its task before anything ran or was recorded.
    failed = [r for r in runs if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["airflow_try_number"] == 1, runs
    assert f"the Spark Connect engine at localhost:{ENGINE_PORT} stopped answering" in failed[0]["message"]
    retried = [r for r in runs if r["job"] == failed[0]["job"] and r["status"] == "succeeded"]
    assert [r["airflow_try_number"] for r in retried] == [2]
    assert sorted((r["job"], r["status"]) for r in runs if r["status"] != "failed") == \
        sorted((j, "succeeded") for j in config.dag)  # fmt: skip
    assert not any((r["message"] or "").startswith("nothing to do") for r in runs), "every job had new data"


#: The spark-submit day runs the chain bronze -> silver -> one gold table as cold ``spark-submit`` tasks; Airflow
#: marks the other gold tasks successful (``lakehouse airflow test --skip``) and a ``lakehouse run`` catches them
#: up: nine cold JVMs fewer (about 3 minutes), the same path through the SparkSubmitOperator.
SPARK_SUBMIT_TASKS = ["bronze_fct_event_stream", "silver_fct_events", "silver_dim_users", "silver_user_activity_daily",
                      "gold_agg_active_user"]  # fmt: skip
SKIPPED_TASKS = r"gold_(?!agg_active_user$).*"  # Airflow matches the whole task id


def test_a_day_of_spark_submit_tasks_with_late_data_gives_lakehouse_runs_tables(spark, layout, files, first_run):
    """The cold path: each task a ``spark-submit`` of its job (a driver JVM of its own, no engine)."""
    from lakehouse import launcher

    landing, warehouse = first_run["landing"], first_run["warehouse"]
    shutil.copy(files[4], landing / files[4].name)  # late events
    began = time.monotonic()
    args = [*first_run["args"], "--set", "airflow.tasks=spark-submit", "--set", "engine.use=never",
            "--skip", SKIPPED_TASKS]  # fmt: skip
    third = _airflow_test(args, "2025-03-17")
    print(f"[airflow] a day of spark-submit tasks (late events; {len(SPARK_SUBMIT_TASKS)} tasks run): "
          f"{time.monotonic() - began:.0f} s")  # fmt: skip
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    (latest,) = [r for r in _airflow_runs(layout, first_run["dag_id"]) if "2025-03-17" in r["logical_date"]]
    states = _task_states(layout, first_run["dag_id"], latest["run_id"])
    assert set(states.values()) == {"success"}, states
    runs = _job_runs(warehouse, latest["run_id"])
    assert sorted((r["job"], r["status"]) for r in runs) == sorted((j, "succeeded") for j in SPARK_SUBMIT_TASKS)
    assert not any((r["message"] or "").startswith("nothing to do") for r in runs), "every task had new data"
    # The skipped gold tasks caught up by a run; what the spark-submit tasks wrote is complete: they are idle.
    config = make_config(warehouse, landing)
    assert launcher.run_main(["--env", "local", "--warehouse", str(warehouse), "--input", str(landing),
                              "--no-summary", "--set", "operations.partial_exit_code=0"]) == 0  # fmt: skip
    rows = delta_rs.read_rows(OPS_JOB_RUNS, config, ["job", "message", "airflow_run_id"])
    caught_up = {r["job"]: r["message"] or "" for r in rows if r["airflow_run_id"] is None}
    assert all(caught_up[j].startswith("nothing to do") for j in SPARK_SUBMIT_TASKS), caught_up
    _same_tables_as_lakehouse_run(spark, warehouse, landing, first_run["reference"])


def _data_versions(warehouse: Path) -> dict[str, set[int]]:
    from lakehouse.benchmark import delta_versions

    return {t: v for t, v in delta_versions(warehouse).items() if not t.startswith("ops.")}


class AirflowApi:
    """Airflow 3's REST API with a token from ``/auth/token`` (the admin password ``up`` generated)."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        body = self._call("POST", "/auth/token", {"username": airflow.ADMIN, "password": password}, token=None)
        self.token = body["access_token"]

    def _call(self, method: str, path: str, payload=None, token: str | None = "self"):
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if token == "self":
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def get(self, path: str):
        return self._call("GET", path)

    def post(self, path: str, payload):
        return self._call("POST", path, payload)

    def patch(self, path: str, payload):
        return self._call("PATCH", path, payload)


def _wait(what: str, probe, timeout: float = 300.0, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except OSError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(every)


def test_up_runs_a_triggered_dag_run_and_down_stops_everything(layout, first_run, tmp_path):
    """``lakehouse airflow up`` (API server, scheduler, DAG processor), a run triggered through the REST API
    (on the warehouse of the runs above, a day with nothing new: every job decides so without starting Spark and
    commits nothing to a data table; the idle anomaly job still warns of stale data), its grid drawn in
    Chromium, then ``down``: nothing of it left running."""
    from lakehouse import processes

    dag_id = f"lakehouse_up_{time.time_ns()}"
    cli = [sys.executable, "-m", "lakehouse.cli", "airflow"]
    common = ["--dir", str(layout.root), "--warehouse", str(first_run["warehouse"]),
              "--input", str(first_run["landing"]), "--set", f"engine.port={ENGINE_PORT}",
              "--set", f"airflow.dag_id={dag_id}", "--set", "airflow.schedule=none"]  # fmt: skip
    port = load_config().airflow.port
    before = _data_versions(first_run["warehouse"])
    began = time.monotonic()
    try:
        subprocess.run([*cli, "up", *common], cwd=PROJECT_ROOT, check=True,
                       env={**os.environ, "LAKEHOUSE_ENGINE_DIR": str(ENGINE_DIR)})  # fmt: skip
        print(f"[airflow] up in {time.monotonic() - began:.0f} s")
        api = AirflowApi(f"http://127.0.0.1:{port}", json.loads(layout.passwords.read_text())[airflow.ADMIN])
        _wait("the DAG parsed", lambda: api.get(f"/api/v2/dags/{dag_id}").get("dag_id"), timeout=120)
        api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = api.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
        began = time.monotonic()
        state = _wait("the triggered run", lambda: (s := api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}")
                                                    ["state"]) in ("success", "failed") and s, timeout=900)  # fmt: skip
        print(f"[airflow] triggered run: {state} in {time.monotonic() - began:.0f} s")
        instances = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
        assert state == "success", {t["task_id"]: t["state"] for t in instances}
        assert len(instances) == len(load_config().dag) + 1
        assert _data_versions(first_run["warehouse"]) == before, "a run with nothing new committed to a data table"
        runs = _job_runs(first_run["warehouse"], run["dag_run_id"])
        assert sorted((r["job"], r["status"]) for r in runs) == sorted((j, "succeeded") for j in load_config().dag)
        messages = {r["job"]: r["message"] or "" for r in runs}
        assert all(m.startswith("nothing to do") for m in messages.values()), messages
        # No new data is when data goes stale: the idle anomaly job still says so (the files are of 2025).
        assert "; data_freshness: newest event_time " in messages["gold_agg_metric_anomalies"], messages
        _grid_screenshot(port, dag_id, json.loads(layout.passwords.read_text())[airflow.ADMIN], tmp_path)
    finally:
        subprocess.run([*cli, "down", "--dir", str(layout.root)], cwd=PROJECT_ROOT, check=False)
    for name, (_, marker) in airflow.SERVICES.items():
        assert processes.running_pid(layout.state, name, marker) is None, name
        assert not layout.state.pid_file(name).exists()
    leftovers = subprocess.run(["pgrep", "-f", str(layout.venv / "bin" / "airflow")], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"Airflow processes left running: {leftovers.stdout}"


def _grid_screenshot(port: int, dag_id: str, password: str, tmp_path: Path) -> None:
    """The DAG's grid in headless Chromium (Debian's), after logging in; into docs/screenshots with
    SAVE_SCREENSHOTS=1."""
    import os

    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    shot = tmp_path / "airflow-grid.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_context(viewport={"width": 1500, "height": 900}).new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("input[name=username]", airflow.ADMIN)
            page.fill("input[name=password]", password)
            page.keyboard.press("Enter")
            page.wait_for_url(lambda url: "login" not in url, timeout=60_000)
            page.goto(f"http://127.0.0.1:{port}/dags/{dag_id}")
            page.get_by_text("needs_attention").first.wait_for(timeout=60_000)
            page.wait_for_timeout(2000)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    print(f"[airflow] grid screenshot {shot} ({shot.stat().st_size // 1024} KB)")
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        target = PROJECT_ROOT / "docs" / "screenshots" / "airflow-grid.png"
        shutil.copyfile(shot, target)
