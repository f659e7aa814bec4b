"""Apache Airflow for the lakehouse: ``lakehouse airflow render|test|up|down|status|attention|install``.

- ``render``: writes the DAG file (:mod:`lakehouse.orchestration.dag_file`, copied as
  ``<dag_id>.py``) and its task spec (``<dag_id>.json``) into a DAGs folder. The spec is built here,
  from conf (``dag``, ``airflow.*``) and :func:`lakehouse.submit.job_submit` (the code
  ``lakehouse cluster submit`` uses): one task per job, its upstream jobs, its spark-submit options
  with the absolute paths of this checkout (the virtualenv's ``spark-submit``, ``jobs/``, conf,
  Delta's jars; for a ``spark://`` master also s3a's jars and the package wheel).
- ``test``: ``airflow dags test`` of the DAG against an input folder and a warehouse, in Airflow's
  own virtualenv and home under ``.cache/airflow/`` (installed from the pinned
  ``conf/airflow/constraints.txt`` and migrated on first use); exit 0 only when every task succeeded.
- ``up`` / ``down`` / ``status``: Airflow's API server (UI, REST), scheduler and DAG processor on
  127.0.0.1, state under ``.cache/airflow/``, through :mod:`lakehouse.processes`; the admin
  password is generated on the first ``up`` (mode 600) and printed once.
- ``install``: the virtualenv and the migrated metadata database only (what ``test`` and ``up`` do first);
  the test suite's set-up runs it in the background while the JVM's archive is built.
- ``attention``: the DAG's last task; exit 1 naming each file when a job of this Airflow run ended
  ``partial`` (read from ``ops.job_runs`` by delta-rs: no JVM).

Airflow never shares the project's virtualenv: the Spark provider depends on ``pyspark-client``,
whose files overlap ``pyspark``'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lakehouse import processes, venvs
from lakehouse.config import PROJECT_ROOT, ConfigError, LakehouseConfig
from lakehouse.engine import EngineError
from lakehouse.processes import ServiceError, StateDir

AIRFLOW_VERSION = "3.3.2"
SPARK_PROVIDER_VERSION = "6.3.4"
REQUIREMENTS = (
    f"apache-airflow=={AIRFLOW_VERSION}",
    f"apache-airflow-providers-apache-spark=={SPARK_PROVIDER_VERSION}",
)
CONSTRAINTS = PROJECT_ROOT / "conf" / "airflow" / "constraints.txt"
DAG_SOURCE = Path(__file__).with_name("dag_file.py")
SPEC_FORMAT = 2
POOL = "lakehouse_writer"
CONN_ID = "spark_default"
ADMIN = "admin"
#: Services of ``up``: name -> (command after ``airflow``, marker in its command line). The API server
#: retitles itself ("airflow api_server -- host:..."), so markers match both spellings.
SERVICES = {"api-server": ("api-server", "airflow api"), "scheduler": ("scheduler", "airflow scheduler"),
            "dag-processor": ("dag-processor", "airflow dag")}  # fmt: skip


def log(message: str) -> None:
    print(f"[airflow] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Layout:
    """Where Airflow lives on this machine (gitignored)."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def dags(self) -> Path:
        return self.home / "dags"

    @property
    def state(self) -> StateDir:
        return StateDir(self.root / "run")

    @property
    def passwords(self) -> Path:
        return self.root / "admin-password.json"

    @property
    def engine_marker(self) -> Path:
        """Written by ``up`` when it started the engine (holding its state folder): ``down`` stops it then."""
        return self.root / "engine-started-by-up"

    def airflow(self) -> str:
        return str(self.venv / "bin" / "airflow")


def default_layout() -> Layout:
    return Layout(Path(os.environ.get("LAKEHOUSE_AIRFLOW_DIR", PROJECT_ROOT / ".cache" / "airflow")))


# --- the DAG's task spec --------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def config_files(conf_file: Path, env: str | None) -> list[Path]:
    """The config files a render reads: the base and the overlay (the spec goes stale when they change)."""
    files = [conf_file]
    if env:
        files.append(conf_file.parent / "env" / f"{env}.yaml")
    return [f for f in files if f.exists()]


def upstream_of(config: LakehouseConfig) -> dict[str, list[str]]:
    """Each job's upstream jobs: conf's ``airflow.upstream``, else the job before it in ``dag``."""
    edges = {}
    for i, name in enumerate(config.dag):
        declared = config.airflow.upstream.get(name)
        edges[name] = list(declared) if declared is not None else ([config.dag[i - 1]] if i else [])
    return edges


def task_spec(
    config: LakehouseConfig,
    *,
    conf_file: Path,
    env: str | None,
    sets: list[str],
    master: str,
    python: str | None = None,
) -> dict:
    """The JSON the DAG file builds its tasks from (see :mod:`lakehouse.orchestration.dag_file`)."""
    from lakehouse.job_catalog import check_dag, job
    from lakehouse.submit import is_cluster, job_submit

    check_dag(config)
    python = python or sys.executable
    wheel = None
    if is_cluster(master):
        from lakehouse.cluster import build_wheel

        wheel = build_wheel()
    # Every job gets the same config arguments; a partial bronze exits 0 (needs_attention reports it).
    args = [a for s in sets for a in ("--set", s)] + ["--set", "operations.partial_exit_code=0"]
    args += ["--warehouse", config.paths.warehouse]
    engine_tasks = config.airflow.tasks == "engine"
    if engine_tasks:  # every task a client of the engine, started by the first task that finds none
        args += ["--set", "engine.use=always", *(["--set", f"engine.master={master}"] if is_cluster(master) else [])]
    config_files_args = ["--conf", str(conf_file), *(["--env", env] if env else [])]
    config_args = [*config_files_args, *args]
    tasks = []
    for name, upstream in upstream_of(config).items():
        job_args = list(args)
        if "input" in {f for f in job(name).params.__dataclass_fields__}:
            job_args += ["--input", config.paths.input]
        task = {"task_id": name, "upstream": upstream, "doc": job(name).description}
        if engine_tasks:
            script = str(PROJECT_ROOT / "jobs" / f"{name}.py")
            task["command"] = " ".join(_quote(c) for c in [python, script, *config_files_args, *job_args])
        else:
            submit = job_submit(f"jobs/{name}.py", job_args, master=master, jar_cache=config.paths.jar_cache,
                                conf_file=conf_file, env=env, wheel=wheel, driver_memory=config.spark.driver_memory,
                                name=f"{config.app_name}:{name}")  # fmt: skip
            task["submit"] = submit.operator_kwargs()
        tasks.append(task)
    spark_home = Path(python).parent.parent / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    spark_home = spark_home / "site-packages" / "pyspark"
    attention = [python, "-m", "lakehouse.cli", "airflow", "attention", *config_args]
    render = f"{python} -m lakehouse.cli airflow render" + (f" --env {env}" if env else "")
    a = config.airflow
    return {
        "format": SPEC_FORMAT,
        "dag_id": a.dag_id,
        "description": f"HeyMax lakehouse: {len(tasks)} jobs of {conf_file.name} as "
        + ("clients of the warm engine" if engine_tasks else "spark-submit tasks"),
        "task_timeout_minutes": config.airflow.task_timeout_minutes,
        "schedule": a.schedule,
        "start_date": a.start_date,
        "catchup": a.catchup,
        "retries": a.retries,
        "retry_delay_minutes": a.retry_delay_minutes,
        "pool": POOL,
        "conn_id": CONN_ID,
        "spark_binary": str(Path(python).parent / "spark-submit"),
        "env_vars": {
            "SPARK_HOME": str(spark_home),
            "PYSPARK_PYTHON": python,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYTHONPATH": str(PROJECT_ROOT),
            # The engine the tasks are clients of (its token is read from there, mode 600).
            "LAKEHOUSE_ENGINE_DIR": config.engine.state_dir,
        },
        "tasks": tasks,
        "attention": {"command": " ".join(_quote(c) for c in attention)},
        # The morning brief, the DAG's last task, when conf names alert channels (lakehouse/alerts/brief.py).
        **(
            {
                "brief": {
                    "command": " ".join(
                        _quote(c) for c in [python, "-m", "lakehouse.cli", "alerts", "send", *config_args]
                    )
                }
            }
            if config.alerts.channels
            else {}
        ),
        "sources": {str(f): _digest(f) for f in config_files(conf_file, env)},
        "render": render,
    }


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def render(out: Path, spec: dict, *, only: bool = False) -> Path:
    """The DAG file and its spec, into the DAGs folder ``out``; returns the DAG file's path.

    ``only``: remove the other DAGs rendered there before (Airflow's own folder under ``.cache``,
    where ``test`` and ``up`` render the DAG of the config they are given).
    """
    out.mkdir(parents=True, exist_ok=True)
    if only:
        for old in out.glob("*.json"):
            if old.stem != spec["dag_id"]:
                old.unlink()
                old.with_suffix(".py").unlink(missing_ok=True)
    dag_file = out / f"{spec['dag_id']}.py"
    spec_file = dag_file.with_suffix(".json")
    tmp = spec_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    tmp.replace(spec_file)
    shutil.copyfile(DAG_SOURCE, dag_file)
    return dag_file


# --- Airflow's virtualenv and home ----------------------------------------------------------------


def ensure_venv(layout: Layout) -> None:
    """Airflow and the Spark provider in their own virtualenv, pinned by the committed constraints."""
    venvs.ensure_venv(layout.venv, REQUIREMENTS, what=f"Airflow {AIRFLOW_VERSION}", log=log,
                      constraints=CONSTRAINTS, entry_point="airflow")  # fmt: skip


def airflow_env(layout: Layout, master: str, port: int | None = None) -> dict[str, str]:
    env = {
        "AIRFLOW_HOME": str(layout.home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(layout.dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Two cores: a few workers, not the default 32.
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(layout.passwords),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": master}),
        "PYTHONWARNINGS": "ignore",
    }
    if port is not None:
        env["AIRFLOW__API__HOST"] = "127.0.0.1"
        env["AIRFLOW__API__PORT"] = str(port)
        env["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{port}"
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{port}/execution/"
    return env


def run_airflow(layout: Layout, env: dict[str, str], *args: str, check: bool = True, **kwargs):
    return subprocess.run([layout.airflow(), *args], env={**os.environ, **env}, check=check, **kwargs)


def ensure_home(layout: Layout, env: dict[str, str]) -> None:
    """Airflow's metadata database (SQLite) migrated, and the one-slot writer pool, once per install."""
    layout.dags.mkdir(parents=True, exist_ok=True)
    stamp = layout.home / ".migrated"
    if stamp.exists() and stamp.read_text() == (layout.venv / ".requirements.sha256").read_text():
        return
    run_airflow(layout, env, "db", "migrate", capture_output=True)
    run_airflow(layout, env, "pools", "set", POOL, "1", "one writer per warehouse: lakehouse tasks run one at a time",
                capture_output=True)  # fmt: skip
    stamp.write_text((layout.venv / ".requirements.sha256").read_text())


def admin_password(layout: Layout) -> str:
    """The admin's password: generated on first use into a mode-600 file (never a default)."""
    if not layout.passwords.exists():
        layout.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(layout.passwords, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({ADMIN: secrets.token_urlsafe(18)}, f)
        log(f"generated the admin password (user {ADMIN!r}): {json.loads(layout.passwords.read_text())[ADMIN]} "
            f"(kept in {layout.passwords}, mode 600)")  # fmt: skip
    return json.loads(layout.passwords.read_text())[ADMIN]


# --- commands ---------------------------------------------------------------------------------------


def install(layout: Layout, master: str) -> int:
    """The virtualenv and the migrated metadata database, nothing started (seconds when done before)."""
    began = time.monotonic()
    try:
        ensure_venv(layout)
        ensure_home(layout, airflow_env(layout, master))
    except subprocess.CalledProcessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    log(f"installed (virtualenv, metadata database) in {time.monotonic() - began:.0f} s: {layout.root}")
    return 0


def task_config(config: LakehouseConfig, master: str) -> LakehouseConfig:
    """The config the DAG's tasks run with (engine tasks: the engine's master is the connection's)."""
    from lakehouse.submit import is_cluster

    return config.with_overrides(engine__master=master) if is_cluster(master) else config


def ensure_engine(config: LakehouseConfig, master: str) -> bool:
    """Engine tasks: their engine started (warmed up) before the first task; True when it was started here."""
    from lakehouse import engine

    if config.airflow.tasks != "engine":
        return False
    tasks = task_config(config, master)
    if engine.running(tasks) is not None:
        return False
    engine.start(tasks)
    return True


def test(
    layout: Layout, spec: dict, master: str, logical_date: str, config: LakehouseConfig, skip: str | None = None
) -> int:
    """``airflow dags test`` of the rendered DAG: 0 only when every task succeeded. ``skip``: a regular expression
    of task ids Airflow marks successful instead of running (``--mark-success-pattern``)."""
    ensure_venv(layout)
    env = airflow_env(layout, master)
    ensure_home(layout, env)
    render(layout.dags, spec, only=True)
    ensure_engine(config, master)
    started = time.monotonic()
    extra = ["--mark-success-pattern", skip] if skip else []
    proc = run_airflow(layout, env, "dags", "test", spec["dag_id"], logical_date, *extra, check=False)
    log(f"airflow dags test {spec['dag_id']} {logical_date}: exit {proc.returncode} "
        f"in {time.monotonic() - started:.0f} s")  # fmt: skip
    return proc.returncode


def up(layout: Layout, spec: dict, master: str, config: LakehouseConfig, timeout: float = 120.0) -> None:
    port = config.airflow.port
    ensure_venv(layout)
    env = airflow_env(layout, master, port)
    ensure_home(layout, env)
    render(layout.dags, spec, only=True)
    admin_password(layout)
    if ensure_engine(config, master):  # stopped again by down
        layout.engine_marker.write_text(config.engine.state_dir + "\n")
    for name, (command, marker) in SERVICES.items():
        if processes.running_pid(layout.state, name, marker) is not None:
            log(f"{name} already running")
            continue
        pid = processes.start(layout.state, name, [layout.airflow(), command], env, cwd=layout.home)
        if name == "api-server":
            ready = lambda: (processes.http(f"http://127.0.0.1:{port}/api/v2/monitor/health") or (0,))[0] == 200  # noqa: E731
            processes.wait_ready("the Airflow API server", ready, timeout, layout.state, name, pid)
    log(f"up: http://127.0.0.1:{port}/ (user {ADMIN}, password in {layout.passwords}); DAG {spec['dag_id']}")


def down(layout: Layout, config: LakehouseConfig | None = None) -> None:
    """Stop Airflow's services, and the engine when ``up`` started it."""
    for name, (_, marker) in reversed(SERVICES.items()):
        pid = processes.stop(layout.state, name, marker, timeout=30.0, group=True)
        if pid is not None:
            log(f"stopped {name} (pid {pid})")
    if layout.engine_marker.exists() and config is not None:
        from lakehouse import engine

        state_dir = layout.engine_marker.read_text().strip()
        pid = engine.stop(dataclasses.replace(config, engine=dataclasses.replace(config.engine, state_dir=state_dir)))
        layout.engine_marker.unlink()
        if pid is not None:
            log(f"stopped the engine it started (pid {pid})")


def status(layout: Layout) -> int:
    running = 0
    for name, (_, marker) in SERVICES.items():
        pid = processes.running_pid(layout.state, name, marker)
        running += pid is not None
        print(f"{name:14} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0 if running == len(SERVICES) else 1


def attention(config: LakehouseConfig, run_id: str | None) -> int:
    """Exit 1, naming each problem, when a job of the Airflow run ``run_id`` ended ``partial``."""
    from lakehouse import delta_rs
    from lakehouse.registry import OPS_JOB_RUNS

    if not run_id:
        print("needs_attention: no Airflow run id (AIRFLOW_CTX_DAG_RUN_ID) given", file=sys.stderr)
        return 2
    rows = delta_rs.read_rows(OPS_JOB_RUNS, config, ["job", "status", "message", "airflow_run_id", "started_at"])
    mine = [r for r in rows if r["airflow_run_id"] == run_id]
    problems = [r for r in mine if r["status"] == "partial"]
    for r in sorted(problems, key=lambda r: r["started_at"]):
        print(f"NEEDS ATTENTION {r['job']}: {r['message']}")
    if problems:
        return 1
    print(f"needs_attention: {len(mine)} job runs of {run_id}, none completed with problems")
    return 0


def main(argv: list[str] | None = None) -> int:
    from lakehouse.job_runtime import add_config_args, config_from_args

    p = argparse.ArgumentParser(prog="lakehouse airflow", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=("render", "test", "up", "down", "status", "attention", "install"))
    p.add_argument("--input", help="landing folder the DAG's bronze task reads (default paths.input)")
    p.add_argument("--master", default="local[2]", help="the Spark connection's master (spark://... for a cluster)")
    p.add_argument("--out", type=Path, help="render: the DAGs folder to write into (default Airflow's own here)")
    p.add_argument("--date", default=None, help="test: the logical date (default today, UTC)")
    p.add_argument("--dir", type=Path, help="Airflow's state folder (default .cache/airflow)")
    p.add_argument(
        "--skip",
        metavar="REGEX",
        help="test: task ids to mark successful without running them (matched against the whole id; airflow dags "
        "test --mark-success-pattern)",
    )
    add_config_args(p)
    args = p.parse_args(argv)
    layout = Layout(args.dir) if args.dir else default_layout()
    if args.action == "down":
        try:
            down(layout, config_from_args(args))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.action == "status":
        return status(layout)
    if args.action == "install":
        return install(layout, args.master)
    try:
        config = config_from_args(args)
        if args.input:
            config = config.with_input(args.input)
        if args.action == "attention":
            return attention(config, os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"))
        conf_file = Path(args.conf).resolve() if args.conf else PROJECT_ROOT / "conf" / "lakehouse.yaml"
        env = args.env or os.environ.get("LAKEHOUSE_ENV")
        spec = task_spec(config, conf_file=conf_file, env=env, sets=list(args.set), master=args.master)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.action == "render":
            print(render(args.out or layout.dags, spec))
            return 0
        if args.action == "test":
            date = args.date or time.strftime("%Y-%m-%d", time.gmtime())
            return test(layout, spec, args.master, date, config, skip=args.skip)
        up(layout, spec, args.master, config)
        return 0
    except (ServiceError, EngineError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
