"""Writes the Superset asset bundle in conf/superset/bundle/ from the definitions below.

The bundle (Superset's unzipped export format: metadata.yaml, databases/, datasets/, charts/,
dashboards/, linked by UUID) is what scripts/superset_up.sh imports and what is reviewed in git.
This script is how it is edited: change a definition here, run

    .cache/superset-venv/bin/python conf/superset/build_bundle.py

and commit both. Hand edits to the YAML would be overwritten on the next run.

Why generate: every chart also stores a `query_context` (so `GET /api/v1/chart/<id>/data/`
works without anyone opening the chart in a browser first). It must match the chart's params
exactly, and it is built here with Superset's own Python port of the frontend query builders
(`superset/migrations/shared/migrate_viz/query_functions.py`, the code Superset uses to build
query contexts for migrated charts), loaded from the Superset virtualenv.

UUIDs are uuid5 of a fixed namespace and a stable key, so regenerating never changes them.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import shutil
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLE_DIR = Path(__file__).resolve().parent / "bundle"
DEFAULT_SUPERSET_VENV = REPO_ROOT / ".cache" / "superset-venv"
QUERY_FUNCTIONS_RELPATH = Path("site-packages/superset/migrations/shared/migrate_viz/query_functions.py")

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "heymax-lakehouse/superset-bundle")
# Charts get their real ids on import; the query context carries this placeholder until then
# (superset.commands.utils.update_chart_config_dataset rewrites it).
PLACEHOLDER_DATASOURCE = "0__table"
# Default URI; superset_up.sh rewrites it from THRIFT_USER/THRIFT_HOST/THRIFT_PORT at import.
DEFAULT_SQLALCHEMY_URI = "hive://superset@127.0.0.1:10000/gold"
EXPORT_VERSION = "1.0.0"


def stable_uuid(key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, key))


# --------------------------------------------------------------------------------------------
# Database and datasets
# --------------------------------------------------------------------------------------------

DATABASE_UUID = stable_uuid("database:heymax_lakehouse")

DATABASE: dict[str, Any] = {
    "database_name": "heymax_lakehouse",
    "sqlalchemy_uri": DEFAULT_SQLALCHEMY_URI,
    "cache_timeout": None,
    "expose_in_sqllab": True,
    "allow_run_async": False,
    "allow_ctas": False,
    "allow_cvas": False,
    "allow_dml": False,
    "allow_file_upload": False,
    "extra": {
        "allows_virtual_table_explore": True,
        "metadata_params": {},
        "engine_params": {},
        "schemas_allowed_for_file_upload": [],
    },
    "uuid": DATABASE_UUID,
    "version": EXPORT_VERSION,
}

# Column types as Spark reports them through PyHive. `is_dttm` marks the date columns that can be
# an x-axis or a time filter.
STRING, DATE, BIGINT, INT, DOUBLE, BOOLEAN = "STRING", "DATE", "BIGINT", "INT", "DOUBLE", "BOOLEAN"

SEGMENT_COLUMNS: list[tuple[str, str, str]] = [
    ("acq_source", STRING, "utm_source of the user's first event (one segment per user)"),
    ("country", STRING, "country of the user's first event"),
]

DATASETS: dict[str, dict[str, Any]] = {
    "agg_active_user": {
        "description": "DAU / WAU / MAU: one row per (period_type, period_start_date, "
        "acq_source, country) with active_users > 0.",
        "main_dttm_col": "period_start_date",
        "columns": [
            ("period_type", STRING, "daily, weekly or monthly"),
            ("period_start_date", DATE, "first day of the period (weeks start on Sunday)"),
            ("period_end_date", DATE, "last day of the period"),
            ("period_label", STRING, "period_start_date as yyyy-MM-dd"),
            *SEGMENT_COLUMNS,
            ("active_users", BIGINT, "distinct users with at least one event in the period"),
            ("is_partial_period", BOOLEAN, "period ends after the data's last date"),
        ],
    },
    "agg_user_lifecycle_weekly": {
        "description": "Weekly lifecycle status: one row per (cutoff_week, acq_source, "
        "country, user_status) with user_count > 0.",
        "main_dttm_col": "cutoff_week",
        "columns": [
            ("cutoff_week", DATE, "Sunday starting the week"),
            ("cutoff_week_label", STRING, "cutoff_week as yyyy-MM-dd"),
            *SEGMENT_COLUMNS,
            ("user_status", STRING, "new, retained, resurrected, dormant or churned"),
            ("user_count", BIGINT, "users with that status in the week"),
            ("is_partial_period", BOOLEAN, "week ends after the data's last date"),
        ],
    },
    "agg_user_retention": {
        "description": "Weekly cohort retention: one row per (cohort_week, week_offset, acq_source, country).",
        "main_dttm_col": "cohort_week",
        "columns": [
            ("cohort_week", DATE, "Sunday week of the users' first event"),
            ("cohort_label", STRING, "cohort_week as yyyy-MM-dd"),
            ("week_offset", INT, "weeks since the cohort week (0 = cohort week)"),
            ("period_start_date", DATE, "cohort_week + 7 * week_offset"),
            *SEGMENT_COLUMNS,
            ("cohort_size", BIGINT, "users of the cohort and segment"),
            ("retained_users", BIGINT, "cohort users active in the offset week"),
            ("retention_rate", DOUBLE, "retained_users / cohort_size of this row"),
            ("unbounded_retained_users", BIGINT, "cohort users active in that week or later"),
            ("is_partial_period", BOOLEAN, "offset week ends after the data's last date"),
        ],
    },
    "agg_growth_accounting_weekly": {
        "description": "Weekly growth accounting: one row per (week_start, acq_source, country).",
        "main_dttm_col": "week_start",
        "columns": [
            ("week_start", DATE, "Sunday starting the week"),
            ("week_label", STRING, "week_start as yyyy-MM-dd"),
            *SEGMENT_COLUMNS,
            ("active_users", BIGINT, "active users in the week"),
            ("prev_active_users", BIGINT, "active users in the previous week"),
            ("new_users", BIGINT, "first active this week"),
            ("retained_users", BIGINT, "active this week and last week"),
            ("resurrected_users", BIGINT, "active this week, not last week, seen before"),
            ("churned_users", BIGINT, "active last week, not this week"),
            ("quick_ratio", DOUBLE, "(new + resurrected) / churned of this row"),
            ("is_partial_period", BOOLEAN, "week ends after the data's last date"),
        ],
    },
}

# DAU/MAU needs each day's actives next to the actives of its calendar month, per segment. The
# spine is every (day, segment) whose month has actives, so a segment that is active in the
# month but not on a given day still counts in that day's denominator (with 0 daily actives);
# joining daily rows to monthly rows alone would drop it and overstate stickiness.
# Spark SQL; no CTE because Superset wraps this in a subquery.
STICKINESS_SQL = """\
SELECT
  spine.activity_date,
  m.period_start_date AS month_start_date,
  m.acq_source,
  m.country,
  COALESCE(d.active_users, 0) AS daily_active_users,
  m.active_users AS monthly_active_users,
  m.is_partial_period AS is_partial_month
FROM (
  SELECT explode(sequence(first_day, last_day, INTERVAL 1 DAY)) AS activity_date
  FROM (
    SELECT MIN(period_start_date) AS first_day, MAX(period_end_date) AS last_day
    FROM gold.agg_active_user
    WHERE period_type = 'daily'
  ) AS bounds
) AS spine
JOIN gold.agg_active_user AS m
  ON m.period_type = 'monthly'
 AND m.period_start_date = trunc(spine.activity_date, 'MM')
LEFT JOIN gold.agg_active_user AS d
  ON d.period_type = 'daily'
 AND d.period_start_date = spine.activity_date
 AND d.acq_source = m.acq_source
 AND d.country = m.country
"""

VIRTUAL_DATASETS: dict[str, dict[str, Any]] = {
    "vw_dau_mau_stickiness": {
        "description": "Virtual dataset over gold.agg_active_user: one row per (day, segment "
        "active in that day's month) with daily and monthly actives, for DAU/MAU.",
        "main_dttm_col": "activity_date",
        "sql": STICKINESS_SQL,
        "columns": [
            ("activity_date", DATE, "the day"),
            ("month_start_date", DATE, "first day of the day's calendar month"),
            *SEGMENT_COLUMNS,
            ("daily_active_users", BIGINT, "actives of the segment on the day (0 if none)"),
            ("monthly_active_users", BIGINT, "actives of the segment in the calendar month"),
            ("is_partial_month", BOOLEAN, "the month ends after the data's last date"),
        ],
    },
}


def dataset_uuid(name: str) -> str:
    return stable_uuid(f"dataset:gold.{name}")


def build_dataset(name: str, spec: dict[str, Any], sql: str | None) -> dict[str, Any]:
    columns = [
        {
            "column_name": col_name,
            "verbose_name": None,
            "is_dttm": col_type == DATE,
            "is_active": True,
            "type": col_type,
            "advanced_data_type": None,
            "groupby": True,
            "filterable": True,
            "expression": None,
            "description": description,
            "python_date_format": None,
            "extra": {},
        }
        for col_name, col_type, description in spec["columns"]
    ]
    return {
        "table_name": name,
        "main_dttm_col": spec["main_dttm_col"],
        "description": spec["description"],
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "catalog": None,
        "schema": "gold",
        "sql": sql,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "always_filter_main_dttm": False,
        "uuid": dataset_uuid(name),
        "metrics": [
            {
                "metric_name": "count",
                "verbose_name": "COUNT(*)",
                "metric_type": "count",
                "expression": "COUNT(*)",
                "description": None,
                "d3format": None,
                "currency": None,
                "extra": {},
                "warning_text": None,
            }
        ],
        "columns": columns,
        "version": EXPORT_VERSION,
        "database_uuid": DATABASE_UUID,
    }


# --------------------------------------------------------------------------------------------
# Chart building blocks
# --------------------------------------------------------------------------------------------


def sql_metric(label: str, expression: str) -> dict[str, Any]:
    return {
        "expressionType": "SQL",
        "sqlExpression": expression,
        "label": label,
        "hasCustomLabel": True,
        "optionName": "metric_" + uuid.uuid5(NAMESPACE, label + expression).hex[:12],
    }


def where_equals(column: str, value: Any) -> dict[str, Any]:
    return {
        "expressionType": "SIMPLE",
        "clause": "WHERE",
        "subject": column,
        "operator": "==",
        "comparator": value,
    }


def where_sql(expression: str) -> dict[str, Any]:
    return {"expressionType": "SQL", "clause": "WHERE", "sqlExpression": expression}


def no_time_filter(column: str) -> dict[str, Any]:
    # What Explore adds for a temporal x-axis; lets a dashboard time-range filter apply to it.
    return {
        "expressionType": "SIMPLE",
        "clause": "WHERE",
        "subject": column,
        "operator": "TEMPORAL_RANGE",
        "comparator": "No filter",
    }


def split_by_partial(label: str, expression: str, flag: str) -> list[dict[str, Any]]:
    """Two series of one metric: complete periods, and the period still in progress.

    `expression` uses the placeholder {only} where each aggregated column goes, e.g.
    "SUM({only}active_users)"; complete periods keep rows with NOT flag, the partial series
    keeps the rest. The partial series is a single point at the right end of the line, in its
    own colour and legend entry, so a week- or month-to-date number never reads as a drop.
    """
    complete = expression.replace("{only}", "CASE WHEN NOT {flag} THEN ").replace("{end}", " END")
    partial = expression.replace("{only}", "CASE WHEN {flag} THEN ").replace("{end}", " END")
    return [
        sql_metric(f"{label} (complete)", complete.format(flag=flag)),
        sql_metric(f"{label} (partial, to date)", partial.format(flag=flag)),
    ]


def timeseries_params(
    viz_type: str,
    x_axis: str,
    metrics: list[dict[str, Any]],
    adhoc_filters: list[dict[str, Any]],
    *,
    temporal: bool = True,
    groupby: list[str] | None = None,
    y_axis_format: str = "SMART_NUMBER",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "viz_type": viz_type,
        "datasource": PLACEHOLDER_DATASOURCE,
        "x_axis": x_axis,
        "x_axis_sort_asc": True,
        "x_axis_sort_series": "name",
        "x_axis_sort_series_ascending": True,
        "metrics": metrics,
        "groupby": groupby or [],
        "adhoc_filters": ([no_time_filter(x_axis)] if temporal else []) + adhoc_filters,
        "order_desc": True,
        "row_limit": 10000,
        "truncate_metric": True,
        "show_empty_columns": True,
        "comparison_type": "values",
        "annotation_layers": [],
        "forecastPeriods": 10,
        "forecastInterval": 0.8,
        "x_axis_title_margin": 15,
        "y_axis_title_margin": 30,
        "y_axis_title_position": "Left",
        "sort_series_type": "name",
        "sort_series_ascending": True,
        "color_scheme": "supersetColors",
        "only_total": True,
        "show_legend": True,
        "legendType": "scroll",
        "legendOrientation": "top",
        "rich_tooltip": True,
        "showTooltipTotal": False,
        "tooltipTimeFormat": "smart_date",
        "x_axis_time_format": "smart_date",
        "y_axis_format": y_axis_format,
        "truncateXAxis": True,
        "truncateYAxis": False,
        "y_axis_bounds": [None, None],
        "zoomable": False,
        "extra_form_data": {},
    }
    if temporal:
        # The date columns already hold the period's first day (Sunday weeks, calendar
        # months); a day grain keeps them as they are (the Hive spec's week grain is broken
        # on Spark, see superset_config.py).
        params["time_grain_sqla"] = "P1D"
        params["temporal_columns_lookup"] = {x_axis: True}
    if viz_type == "echarts_timeseries_line":
        params.update({"seriesType": "line", "markerEnabled": True, "markerSize": 6, "opacity": 0.2})
    params.update(extra or {})
    return params


def pivot_params(
    rows: list[str],
    columns: list[str],
    metrics: list[dict[str, Any]],
    adhoc_filters: list[dict[str, Any]],
    value_format: str,
) -> dict[str, Any]:
    return {
        "viz_type": "pivot_table_v2",
        "datasource": PLACEHOLDER_DATASOURCE,
        "groupbyRows": rows,
        "groupbyColumns": columns,
        "metrics": metrics,
        "metricsLayout": "COLUMNS",
        "adhoc_filters": adhoc_filters,
        "row_limit": 10000,
        "order_desc": True,
        # Cells hold ratios of sums computed in SQL; client-side totals would add ratios up.
        "aggregateFunction": "Sum",
        "rowTotals": False,
        "rowSubTotals": False,
        "colTotals": False,
        "colSubTotals": False,
        "transposePivot": False,
        "combineMetric": False,
        "rowOrder": "key_a_to_z",
        "colOrder": "key_a_to_z",
        "valueFormat": value_format,
        "date_format": "smart_date",
        "conditional_formatting": [],
        "temporal_columns_lookup": {},
        "annotation_layers": [],
        "extra_form_data": {},
    }


def load_query_functions(superset_venv: Path) -> ModuleType:
    candidates = sorted((superset_venv / "lib").glob(f"python3*/{QUERY_FUNCTIONS_RELPATH}"))
    if not candidates:
        raise SystemExit(
            f"Superset's query_functions.py not found under {superset_venv}; run "
            "scripts/superset_up.sh once (it creates the virtualenv) or pass --superset-venv"
        )
    spec = importlib.util.spec_from_file_location("superset_query_functions", candidates[0])
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
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


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------

ACTIVE_USERS_DAILY = where_equals("period_type", "daily")
ACTIVE_USERS_WEEKLY = where_equals("period_type", "weekly")
ACTIVE_USERS_MONTHLY = where_equals("period_type", "monthly")
COMPLETE_PERIODS_ONLY = where_sql("NOT is_partial_period")

RETENTION_EXPR = "SUM(retained_users) / NULLIF(SUM(cohort_size), 0)"
QUICK_RATIO_EXPR = (
    "(SUM({only}new_users{end}) + SUM({only}resurrected_users{end})) / NULLIF(SUM({only}churned_users{end}), 0)"
)

CHARTS: dict[str, dict[str, Any]] = {
    "dau": {
        "slice_name": "Daily active users (DAU)",
        "description": "Distinct users with an event on the day; segments add up because "
        "each user sits in one (acq_source, country).",
        "dataset": "agg_active_user",
        "params": timeseries_params(
            "echarts_timeseries_line",
            "period_start_date",
            # A day is never partial (its last day is at most the data's last date).
            [sql_metric("DAU", "SUM(active_users)")],
            [ACTIVE_USERS_DAILY],
        ),
    },
    "wau": {
        "slice_name": "Weekly active users (WAU)",
        "description": "Distinct users with an event in the Sunday-Saturday week. The last "
        "week is week-to-date when the data ends mid-week: it is its own series.",
        "dataset": "agg_active_user",
        "params": timeseries_params(
            "echarts_timeseries_line",
            "period_start_date",
            split_by_partial("WAU", "SUM({only}active_users{end})", "is_partial_period"),
            [ACTIVE_USERS_WEEKLY],
        ),
    },
    "mau": {
        "slice_name": "Monthly active users (MAU)",
        "description": "Distinct users with an event in the calendar month. The last month is "
        "month-to-date when the data ends mid-month: it is its own series.",
        "dataset": "agg_active_user",
        "params": timeseries_params(
            "echarts_timeseries_line",
            "period_start_date",
            split_by_partial("MAU", "SUM({only}active_users{end})", "is_partial_period"),
            [ACTIVE_USERS_MONTHLY],
        ),
    },
    "stickiness": {
        "slice_name": "DAU / MAU stickiness",
        "description": "Daily actives / actives of the day's calendar month (sums over the "
        "selected segments). Days of the month in progress are compared with a "
        "month-to-date MAU: their own series.",
        "dataset": "vw_dau_mau_stickiness",
        "params": timeseries_params(
            "echarts_timeseries_line",
            "activity_date",
            split_by_partial(
                "DAU/MAU",
                "SUM({only}daily_active_users{end}) / NULLIF(SUM({only}monthly_active_users{end}), 0)",
                "is_partial_month",
            ),
            [],
            y_axis_format=".1%",
        ),
    },
    "lifecycle": {
        "slice_name": "Weekly user lifecycle (complete weeks)",
        "description": "Users by lifecycle status per Sunday week: new + retained + "
        "resurrected = weekly actives; all five = users acquired so far. The week in progress "
        "is left out (chart filter NOT is_partial_period).",
        "dataset": "agg_user_lifecycle_weekly",
        "params": timeseries_params(
            "echarts_timeseries_bar",
            "cutoff_week",
            [sql_metric("Users", "SUM(user_count)")],
            [COMPLETE_PERIODS_ONLY],
            groupby=["user_status"],
            extra={
                "stack": "Stack",
                "orientation": "vertical",
                "show_value": False,
                "only_total": True,
                "x_axis_time_format": "%Y-%m-%d",
            },
        ),
    },
    "quick_ratio": {
        "slice_name": "Weekly quick ratio",
        "description": "(new + resurrected) / churned users per week, as a ratio of sums over "
        "the selected segments. The week in progress is its own series.",
        "dataset": "agg_growth_accounting_weekly",
        "params": timeseries_params(
            "echarts_timeseries_line",
            "week_start",
            split_by_partial("Quick ratio", QUICK_RATIO_EXPR, "is_partial_period"),
            [],
            y_axis_format=".2f",
        ),
    },
    "retention_triangle": {
        "slice_name": "Weekly cohort retention (complete weeks)",
        "description": "Share of each Sunday cohort active N weeks later: SUM(retained_users) "
        "/ SUM(cohort_size) over the selected segments. Cells of the week in progress are "
        "left out (chart filter NOT is_partial_period).",
        "dataset": "agg_user_retention",
        "params": pivot_params(
            ["cohort_label"],
            ["week_offset"],
            [sql_metric("Retention", RETENTION_EXPR)],
            [COMPLETE_PERIODS_ONLY],
            ".1%",
        ),
    },
    "cohort_size": {
        "slice_name": "Cohort size",
        "description": "Users per weekly cohort (first event in that Sunday week).",
        "dataset": "agg_user_retention",
        # Bars rather than a one-column table: 26+ cohorts fit without scrolling.
        "params": timeseries_params(
            "echarts_timeseries_bar",
            "cohort_week",
            [sql_metric("Cohort size", "SUM(cohort_size)")],
            [where_equals("week_offset", 0)],
            y_axis_format=",d",
            extra={"orientation": "vertical", "show_value": False, "x_axis_time_format": "%Y-%m-%d"},
        ),
    },
    "retention_curve": {
        "slice_name": "Average retention curve",
        "description": "Retention by weeks since the cohort week, weighted by cohort size: "
        "SUM(retained_users) / SUM(cohort_size) over every cohort that has completed that "
        "week. Cells of the week in progress are left out.",
        "dataset": "agg_user_retention",
        "params": timeseries_params(
            "echarts_timeseries_line",
            "week_offset",
            [sql_metric("Weighted retention", RETENTION_EXPR)],
            [COMPLETE_PERIODS_ONLY],
            temporal=False,
            y_axis_format=".1%",
            extra={"x_axis_title": "weeks since cohort week", "x_axis_title_margin": 30},
        ),
    },
}


def chart_uuid(key: str) -> str:
    return stable_uuid(f"chart:{key}")


def build_chart(key: str, spec: dict[str, Any], qf: ModuleType) -> dict[str, Any]:
    params = spec["params"]
    if params["viz_type"] == "pivot_table_v2":
        query_context = pivot_query_context(qf, params)
    else:
        query_context = timeseries_query_context(qf, params)
    return {
        "slice_name": spec["slice_name"],
        "description": spec["description"],
        "certified_by": None,
        "certification_details": None,
        "viz_type": params["viz_type"],
        "params": params,
        "query_context": json.dumps(query_context, sort_keys=True),
        "cache_timeout": None,
        "uuid": chart_uuid(key),
        "version": EXPORT_VERSION,
        "dataset_uuid": dataset_uuid(spec["dataset"]),
    }


# --------------------------------------------------------------------------------------------
# Dashboards
# --------------------------------------------------------------------------------------------

PARTIAL_NOTE = (
    "**Partial periods.** A period is *partial* when it ends after the data's last event "
    "date (`is_partial_period`): its numbers are to-date and not comparable with full "
    "periods."
)
SEGMENT_NOTE = (
    "Filter by **acquisition source** and **country** in the filter bar: each user sits in "
    "exactly one (acq_source, country) segment, so every chart sums segments."
)

DASHBOARDS: dict[str, dict[str, Any]] = {
    "active_users": {
        "title": "Active users",
        "slug": "active-users",
        "filter_dataset": "agg_active_user",
        "note": "## Active users\n"
        "DAU, WAU (Sunday-Saturday weeks) and MAU (calendar months) from "
        "`gold.agg_active_user`, and DAU/MAU stickiness. "
        + SEGMENT_NOTE
        + "\n\n"
        + PARTIAL_NOTE
        + " Weekly and monthly lines draw the partial period as a separate series "
        "*(partial, to date)*.",
        "rows": [["dau", "wau"], ["mau", "stickiness"]],
    },
    "user_lifecycle": {
        "title": "User lifecycle",
        "slug": "user-lifecycle",
        "filter_dataset": "agg_user_lifecycle_weekly",
        "note": "## User lifecycle\n"
        "Weekly status of every acquired user (`gold.agg_user_lifecycle_weekly`): new, "
        "retained, resurrected (active) and dormant, churned (inactive; churned = no activity "
        "in the look-back window). Quick ratio = (new + resurrected) / churned "
        "(`gold.agg_growth_accounting_weekly`). "
        + SEGMENT_NOTE
        + "\n\n"
        + PARTIAL_NOTE
        + " The lifecycle bars show complete weeks only; the quick ratio draws the week in "
        "progress as a separate series.",
        "rows": [["lifecycle"], ["quick_ratio"]],
    },
    "cohort_retention": {
        "title": "Cohort retention",
        "slug": "cohort-retention",
        "filter_dataset": "agg_user_retention",
        "note": "## Cohort retention\n"
        "Users grouped by the Sunday week of their first event "
        "(`gold.agg_user_retention`); week N retention = share of the cohort active in its "
        "N-th week after the cohort week. Rates are ratios of sums, so filtered segments "
        "are weighted by their cohort sizes. "
        + SEGMENT_NOTE
        + "\n\n"
        + PARTIAL_NOTE
        + " Cells of the week in progress are left out of the triangle and the curve "
        "(chart filter `NOT is_partial_period`).",
        # The triangle has 17 offset columns (0..16): it gets the whole width, and the height
        # of the sample's 27 weekly cohorts without scrolling.
        "rows": [["retention_triangle"], ["retention_curve", "cohort_size"]],
    },
}

# Grid units: 12 columns wide; height in 8 px rows. Charts split a row evenly unless listed.
ROW_HEIGHTS = {1: 60, 2: 55}
CHART_WIDTHS = {"retention_curve": 7, "cohort_size": 5}
CHART_HEIGHTS = {"retention_triangle": 110, "retention_curve": 60, "cohort_size": 60}

# One colour per lifecycle status wherever it appears.
LABEL_COLORS = {
    "new": "#5AC189",
    "retained": "#1FA8C9",
    "resurrected": "#FCC700",
    "dormant": "#A1A6BD",
    "churned": "#E04355",
}

NATIVE_FILTER_COLUMNS = [("acq_source", "Acquisition source"), ("country", "Country")]


def build_position(dashboard_key: str, spec: dict[str, Any], chart_ids: dict[str, int]) -> dict[str, Any]:
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": spec["title"]}},
    }
    grid_parents = ["ROOT_ID", "GRID_ID"]

    note_row, note_id = "ROW-note", "MARKDOWN-note"
    position["GRID_ID"]["children"].append(note_row)
    position[note_row] = {
        "type": "ROW",
        "id": note_row,
        "children": [note_id],
        "parents": grid_parents,
        "meta": {"background": "BACKGROUND_TRANSPARENT"},
    }
    position[note_id] = {
        "type": "MARKDOWN",
        "id": note_id,
        "children": [],
        "parents": [*grid_parents, note_row],
        "meta": {"width": 12, "height": 25, "code": spec["note"]},
    }

    for row_index, row in enumerate(spec["rows"], start=1):
        row_id = f"ROW-{row_index}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {
            "type": "ROW",
            "id": row_id,
            "children": [],
            "parents": grid_parents,
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        default_width = 12 // len(row)
        for chart_key in row:
            chart_node = f"CHART-{chart_key}"
            position[row_id]["children"].append(chart_node)
            position[chart_node] = {
                "type": "CHART",
                "id": chart_node,
                "children": [],
                "parents": [*grid_parents, row_id],
                "meta": {
                    # chartId is only an old-id placeholder for the importer's id remapping;
                    # uuid is what links the chart.
                    "chartId": chart_ids[chart_key],
                    "uuid": chart_uuid(chart_key),
                    "sliceName": CHARTS[chart_key]["slice_name"],
                    "width": CHART_WIDTHS.get(chart_key, default_width),
                    "height": CHART_HEIGHTS.get(chart_key, ROW_HEIGHTS[len(row)]),
                },
            }
    return position


def build_native_filters(dashboard_key: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    filters = []
    for column, name in NATIVE_FILTER_COLUMNS:
        filters.append(
            {
                "id": f"NATIVE_FILTER-{dashboard_key}-{column}",
                "name": name,
                "filterType": "filter_select",
                "type": "NATIVE_FILTER",
                "description": f"Users whose first event had this {column}.",
                "targets": [{"datasetUuid": dataset_uuid(spec["filter_dataset"]), "column": {"name": column}}],
                "controlValues": {
                    "multiSelect": True,
                    "enableEmptyFilter": False,
                    "defaultToFirstItem": False,
                    "inverseSelection": False,
                    "searchAllOptions": False,
                },
                "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
                "cascadeParentIds": [],
                # Every chart of the dashboard; the frontend derives chartsInScope from this
                # scope when the dashboard loads (the importer cannot remap chart ids in it).
                "scope": {"rootPath": ["ROOT_ID"], "excluded": []},
            }
        )
    return filters


def build_dashboard(key: str, spec: dict[str, Any], chart_ids: dict[str, int]) -> dict[str, Any]:
    return {
        "dashboard_title": spec["title"],
        "description": None,
        "css": "",
        "slug": spec["slug"],
        "certified_by": None,
        "certification_details": None,
        "published": True,
        "uuid": stable_uuid(f"dashboard:{key}"),
        "position": build_position(key, spec, chart_ids),
        "metadata": {
            "color_scheme": "supersetColors",
            "label_colors": LABEL_COLORS,
            "shared_label_colors": [],
            "map_label_colors": {},
            "color_scheme_domain": [],
            "cross_filters_enabled": False,
            "refresh_frequency": 0,
            "timed_refresh_immune_slices": [],
            "expanded_slices": {},
            "default_filters": "{}",
            "chart_configuration": {},
            "global_chart_configuration": {},
            "native_filter_configuration": build_native_filters(key, spec),
        },
        "version": EXPORT_VERSION,
    }


# --------------------------------------------------------------------------------------------


def file_stem(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def dump_yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    path.write_text(text, encoding="utf-8")


def build(bundle_dir: Path, qf: ModuleType) -> None:
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    dump_yaml(
        bundle_dir / "metadata.yaml",
        # "assets": imported with ImportAssetsCommand, which overwrites databases, datasets
        # and charts too (a "Dashboard" import only overwrites the dashboards themselves).
        {"version": EXPORT_VERSION, "type": "assets", "timestamp": "2025-01-01T00:00:00+00:00"},
    )
    dump_yaml(bundle_dir / "databases" / "heymax_lakehouse.yaml", DATABASE)
    for name, spec in DATASETS.items():
        dump_yaml(
            bundle_dir / "datasets" / "heymax_lakehouse" / f"{name}.yaml",
            build_dataset(name, spec, None),
        )
    for name, spec in VIRTUAL_DATASETS.items():
        dump_yaml(
            bundle_dir / "datasets" / "heymax_lakehouse" / f"{name}.yaml",
            build_dataset(name, spec, spec["sql"]),
        )
    chart_ids = {key: index for index, key in enumerate(CHARTS, start=1)}
    for key, spec in CHARTS.items():
        dump_yaml(
            bundle_dir / "charts" / f"{file_stem(spec['slice_name'])}_{chart_ids[key]}.yaml",
            build_chart(key, spec, qf),
        )
    for key, spec in DASHBOARDS.items():
        dump_yaml(
            bundle_dir / "dashboards" / f"{file_stem(spec['title'])}.yaml",
            build_dashboard(key, spec, chart_ids),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUNDLE_DIR, help="bundle directory")
    parser.add_argument(
        "--superset-venv",
        type=Path,
        default=DEFAULT_SUPERSET_VENV,
        help="virtualenv with apache-superset (for its query-context builders)",
    )
    args = parser.parse_args(argv)
    build(args.out, load_query_functions(args.superset_venv))
    print(f"bundle written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
