"""The index of jobs by name: the names conf's ``dag`` uses and ``jobs/<name>.py`` runs.

Job modules are imported on first use, so reading the index (config validation, ``--help``)
costs no Spark import.
"""

from __future__ import annotations

import importlib

from lakehouse.config import ConfigError, LakehouseConfig
from lakehouse.gold.tables import table_names
from lakehouse.job_runtime import Job

#: Job name -> "module:attribute" holding its :class:`~lakehouse.job_runtime.Job`: the platform's own jobs, then
#: one ``gold_<table>`` job per module of ``lakehouse/gold/tables/`` (found from the files, nothing imported).
JOB_INDEX = {
    "bronze_fct_event_stream": "lakehouse.bronze.fct_event_stream:JOB",
    "silver_fct_events": "lakehouse.silver.fct_events:JOB",
    "silver_dim_users": "lakehouse.silver.dim_users:JOB",
    "silver_user_activity_daily": "lakehouse.silver.user_activity_daily:JOB",
    **{f"gold_{name}": "lakehouse.gold.refresh:JOBS" for name in table_names()},
    "gold_data_quality_report": "lakehouse.gold.data_quality_report:JOB",
    # Operations, not in the daily DAG: lakehouse maintain / lakehouse restore.
    "maintain_tables": "lakehouse.maintenance:MAINTAIN_JOB",
    "restore_table": "lakehouse.maintenance:RESTORE_JOB",
}


def job(name: str) -> Job:
    """The job called ``name``; ``KeyError`` naming the known jobs otherwise."""
    try:
        module_name, attribute = JOB_INDEX[name].split(":")
    except KeyError:
        raise KeyError(f"unknown job {name!r}; known jobs: {', '.join(JOB_INDEX)}") from None
    value = getattr(importlib.import_module(module_name), attribute)
    return value[name] if isinstance(value, dict) else value


def check_dag(config: LakehouseConfig) -> None:
    """Every job conf's ``dag`` names must exist."""
    for name in config.dag:
        if name not in JOB_INDEX:
            raise ConfigError(f"config key 'dag' names unknown job {name!r}; known jobs: {', '.join(JOB_INDEX)}")
    for name, upstream in config.airflow.upstream.items():
        for job_name in (name, *upstream):
            if job_name not in config.dag:
                raise ConfigError(f"config key 'airflow.upstream.{name}' names {job_name!r}, which is not in 'dag'")
        later = [u for u in upstream if config.dag.index(u) >= config.dag.index(name)]
        if later:
            raise ConfigError(f"config key 'airflow.upstream.{name}': {later} come after it in 'dag' (run order)")
