"""Saved query contexts for the bundle's charts, built with Superset's own code.

Every chart in the bundle stores a ``query_context`` (what ``GET /api/v1/chart/<id>/data/`` runs;
without it a chart only has data once someone opens it in a browser). It must match the chart's
params exactly, so it is built with Superset's Python port of the frontend query builders,
``superset/migrations/shared/migrate_viz/query_functions.py`` (the code Superset uses to build
query contexts for migrated charts).

Runs in the lakehouse virtualenv. ``query_functions.py`` imports only the standard library
(``json``, ``math``, ``enum``, ``typing``), so it is loaded by file path from the Superset
virtualenv's site-packages into this interpreter: nothing of Superset is imported or installed
here, and the registry (which needs pyspark) never has to be importable in Superset's venv. If a
Superset upgrade gives that file another import, loading fails with a message saying so.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from lakehouse.config import PROJECT_ROOT

DEFAULT_SUPERSET_VENV = PROJECT_ROOT / ".cache" / "superset-venv"
QUERY_FUNCTIONS_RELPATH = Path("site-packages/superset/migrations/shared/migrate_viz/query_functions.py")


class QueryFunctionsMissing(RuntimeError):
    """Superset's query_functions.py is not where the Superset virtualenv should have it."""


def query_functions_path(superset_venv: Path = DEFAULT_SUPERSET_VENV) -> Path | None:
    candidates = sorted((superset_venv / "lib").glob(f"python3*/{QUERY_FUNCTIONS_RELPATH}"))
    return candidates[0] if candidates else None


def load_query_functions(superset_venv: Path = DEFAULT_SUPERSET_VENV) -> ModuleType:
    path = query_functions_path(superset_venv)
    if path is None:
        raise QueryFunctionsMissing(
            f"Superset's query_functions.py not found under {superset_venv}; run scripts/superset_up.sh "
            "(lakehouse superset up) once (it creates the virtualenv) or pass --superset-venv"
        )
    spec = importlib.util.spec_from_file_location("superset_query_functions", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise QueryFunctionsMissing(
            f"{path} now imports {exc.name!r}, which is not in the standard library: this loader "
            "assumes it does not (see lakehouse/serving/superset/query_context.py)"
        ) from exc
    return module


def timeseries_query_context(qf: ModuleType, form_data: dict[str, Any]) -> dict[str, Any]:
    """Query context of echarts_timeseries_* (no time comparison, rolling or forecast):
    the same steps as TimeseriesChart._build_query in Superset's migrate_viz processors."""
    groupby = form_data.get("groupby")

    def build(base: dict[str, Any]) -> list[dict[str, Any]]:
        columns = qf.ensure_is_array(qf.get_x_axis_column(form_data)) + qf.ensure_is_array(groupby)
        return [
            {
                **base,
                "metrics": base.get("metrics") or [],
                "columns": columns,
                "series_columns": groupby,
                "orderby": qf.normalize_order_by(base).get("orderby"),
                "time_offsets": [],
                "post_processing": [
                    qf.pivot_operator(form_data, base),
                    qf.rename_operator(form_data, base),
                    qf.sort_operator(form_data, base),
                    qf.flatten_operator(form_data, base),
                ],
            }
        ]

    return qf.build_query_context(copy.deepcopy(form_data), build)


def pivot_query_context(qf: ModuleType, form_data: dict[str, Any]) -> dict[str, Any]:
    """Query context of pivot_table_v2 (same steps as MigratePivotTable._build_query)."""
    columns = qf.remove_duplicates(
        qf.ensure_is_array(form_data.get("groupbyColumns")) + qf.ensure_is_array(form_data.get("groupbyRows"))
    )

    def build(base: dict[str, Any]) -> list[dict[str, Any]]:
        query = dict(base)
        metrics = base.get("metrics")
        if metrics:
            query["orderby"] = [[metrics[0], not base.get("order_desc")]]
        query["columns"] = columns
        return [query]

    return qf.build_query_context(copy.deepcopy(form_data), build)


def table_query_context(qf: ModuleType, form_data: dict[str, Any]) -> dict[str, Any]:
    """Query context of the table chart (the steps of plugin-chart-table's buildQuery.ts, which Superset
    has no Python port of: migrate_viz has no table processor). Raw mode: the listed columns in the
    order of ``order_by_cols``; aggregate mode: ordered by ``timeseries_limit_metric`` (else the first
    metric), descending when ``order_desc``. No totals, percentages or server pagination."""
    aggregate = form_data.get("query_mode") != "raw"
    sort_by = qf.ensure_is_array(form_data.get("timeseries_limit_metric"))

    def build(base: dict[str, Any]) -> list[dict[str, Any]]:
        query = dict(base)
        if aggregate:
            metrics = base.get("metrics") or []
            if sort_by:
                query["orderby"] = [[sort_by[0], not form_data.get("order_desc")]]
            elif metrics:
                query["orderby"] = [[metrics[0], False]]
        query["post_processing"] = []
        query["time_offsets"] = []
        return [query]

    # extract_query_fields pops query_mode from the form data it is given: it gets a copy.
    context = qf.build_query_context(copy.deepcopy(form_data), build)
    context["form_data"] = copy.deepcopy(form_data)
    return context


def query_context(qf: ModuleType, form_data: dict[str, Any]) -> dict[str, Any]:
    if form_data["viz_type"] == "pivot_table_v2":
        return pivot_query_context(qf, form_data)
    if form_data["viz_type"] == "table":
        return table_query_context(qf, form_data)
    return timeseries_query_context(qf, form_data)
