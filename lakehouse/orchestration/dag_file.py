"""The HeyMax lakehouse DAG for Apache Airflow: one task per job of conf's ``dag``.

A task runs its job (``jobs/<job>.py``) in the project's Python as a client of the warm engine (a Spark
Connect server kept running, ``lakehouse engine``: about 0.5 s to a session instead of a cold JVM), or, with
``airflow.tasks: spark-submit``, as a ``SparkSubmitOperator`` task (a driver JVM per task).

This file runs in Airflow's Python (its own virtualenv, or any Airflow 3 with the Apache Spark
provider) and imports nothing from the ``lakehouse`` package. Everything it builds comes from the
task spec written next to it by ``lakehouse airflow render`` (``<this file's stem>.json``): the
tasks, their upstream jobs and each one's ``spark-submit`` options (built by
``lakehouse.submit.job_submit``, the code ``lakehouse cluster submit`` uses). The spec records the
SHA-256 of the config files it was rendered from; when one changed since, this file refuses to
load (an import error in Airflow naming the command to run), so the DAG never drifts from conf.

- One writer per warehouse: every task uses a pool with one slot, ``max_active_runs=1``.
- A bad input file: bronze ends ``partial`` with exit 0 here (``operations.partial_exit_code``),
  silver and gold build from the good files, and the last task, ``needs_attention``, fails
  naming the file; the next run (the file is then a known one) is green.
- A failing metric check fails its gold task; what depends on it does not run.
- Every task is idempotent (the jobs are), so retries are safe. An engine that died fails its task
  naming it; the retry starts a new engine and runs the job again.
- A task running longer than ``airflow.task_timeout_minutes`` fails (and is retried).
- With alert channels in conf, the last task, ``morning_brief``, delivers the run's findings (all_done).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

SPEC_FORMAT = 2
SPEC = Path(__file__).with_suffix(".json")
#: What each task passes to its job, so that ops.job_runs records the Airflow run (lineage).
LINEAGE_ENV = {
    "AIRFLOW_CTX_DAG_ID": "{{ dag.dag_id }}",
    "AIRFLOW_CTX_DAG_RUN_ID": "{{ run_id }}",
    "AIRFLOW_CTX_TRY_NUMBER": "{{ ti.try_number }}",
}


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_spec(path: Path = SPEC) -> dict:
    spec = json.loads(path.read_text())
    if spec.get("format") != SPEC_FORMAT:
        raise ValueError(f"{path}: spec format {spec.get('format')!r}, expected {SPEC_FORMAT}: run {spec['render']}")
    stale = [f for f, digest in spec["sources"].items() if not Path(f).exists() or _sha256(f) != digest]
    if stale:
        raise ValueError(f"{path} is stale ({', '.join(stale)} changed since it was rendered): run {spec['render']}")
    return spec


def build_dag(spec: dict) -> DAG:
    schedule = spec["schedule"]
    with DAG(
        dag_id=spec["dag_id"],
        description=spec["description"],
        schedule=None if schedule in ("", "none", "None") else schedule,
        start_date=datetime.fromisoformat(spec["start_date"]),
        catchup=spec["catchup"],
        max_active_runs=1,
        default_args={
            "retries": spec["retries"],
            "retry_delay": timedelta(minutes=spec["retry_delay_minutes"]),
            "pool": spec["pool"],
        },
        tags=["lakehouse"],
        doc_md=__doc__,
    ) as dag:
        tasks = {}
        timeout = timedelta(minutes=spec["task_timeout_minutes"])
        for task in spec["tasks"]:
            if "command" in task:  # a client of the warm engine: the job's Python, no JVM of its own
                tasks[task["task_id"]] = BashOperator(
                    task_id=task["task_id"],
                    bash_command=task["command"],
                    env={**spec["env_vars"], **LINEAGE_ENV},
                    append_env=True,
                    execution_timeout=timeout,
                    doc_md=task["doc"],
                )
            else:
                tasks[task["task_id"]] = SparkSubmitOperator(
                    task_id=task["task_id"],
                    conn_id=spec["conn_id"],
                    spark_binary=spec["spark_binary"],
                    env_vars={**spec["env_vars"], **LINEAGE_ENV},
                    execution_timeout=timeout,
                    doc_md=task["doc"],
                    **task["submit"],
                )
            for upstream in task["upstream"]:
                tasks[upstream] >> tasks[task["task_id"]]
        attention = BashOperator(
            task_id="needs_attention",
            bash_command=spec["attention"]["command"],
            env={**spec["env_vars"], **LINEAGE_ENV},
            append_env=True,
            trigger_rule="all_done",
            retries=0,  # a report of this run's files, not a transient failure
            doc_md="Fails, naming each file, when a job of this run completed with problems (a refused or "
            "rejected input file: the other files were processed).",
        )
        downstream = {u for t in spec["tasks"] for u in t["upstream"]}
        for task_id, task in tasks.items():
            if task_id not in downstream:
                task >> attention
        if "brief" in spec:
            attention >> BashOperator(
                task_id="morning_brief",
                bash_command=spec["brief"]["command"],
                env={**spec["env_vars"], **LINEAGE_ENV},
                append_env=True,
                trigger_rule="all_done",
                retries=0,  # a channel that is down is owed to the next run, not retried here
                execution_timeout=timeout,
                doc_md="The run's findings and the audiences' sizes to the alert channels of conf (a channel that "
                "is down never fails it: the next run delivers what is owed).",
            )
    return dag


dag = build_dag(load_spec())
