"""Job modules. Each has ``JOB``, ``add_arguments(parser)``, ``execute(spark, config, run, args)``
and ``main(argv)``; ``jobs/<name>.py`` is the thin spark-submit entry point of each."""

from __future__ import annotations

import importlib
from types import ModuleType

#: Every job that exists, by name (the names conf's ``dag`` may use).
JOB_MODULES = {
    "bronze_fct_event_stream": "lakehouse.jobs.bronze_fct_event_stream",
    "silver_fct_events": "lakehouse.jobs.silver_fct_events",
    "silver_dim_users": "lakehouse.jobs.silver_dim_users",
    "gold_agg_active_user": "lakehouse.jobs.gold_agg_active_user",
    "gold_agg_user_lifecycle_weekly": "lakehouse.jobs.gold_agg_user_lifecycle_weekly",
    "gold_agg_user_retention": "lakehouse.jobs.gold_agg_user_retention",
    "gold_agg_growth_accounting_weekly": "lakehouse.jobs.gold_agg_growth_accounting_weekly",
    "gold_data_quality_report": "lakehouse.jobs.gold_data_quality_report",
}


def job_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(JOB_MODULES[name])
    except KeyError:
        raise KeyError(f"unknown job {name!r}; known jobs: {', '.join(JOB_MODULES)}") from None
