"""Writes the Superset asset bundle ``conf/superset/bundle/`` from the registry and the config.

The bundle (Superset's unzipped export format: ``metadata.yaml``, ``databases/``, ``datasets/``,
``charts/``, ``dashboards/``, linked by UUID) is what ``lakehouse superset up`` imports and what
is reviewed in git. This module is how it is edited: change a chart or dashboard here, then

    .venv/bin/python -m lakehouse.serving.superset.bundle           # rewrites conf/superset/bundle/
    .venv/bin/python -m lakehouse.serving.superset.bundle --check   # exit 1 if the bundle is stale

and commit both. Hand edits to the YAML are overwritten by the next run, and
``tests/serving/test_superset_bundle.py`` fails while the committed bundle differs from what this
module writes.

Where things come from:

- **Datasets** are the tables of :data:`SERVED_TABLES`, one physical dataset each (the gold
  tables, and for the "Data health" dashboard the bookkeeping tables ``ops.job_runs``,
  ``ops.dq_results`` and ``ops.ingested_files``). Their columns (name, type, description) and their
  description (the table's grain) are read from :mod:`lakehouse.registry`, the only schema source: a
  column added to the registry appears here on the next run, and the test compares every dataset
  column with the registry. Where :data:`SERVED_COLUMNS` names a table's columns, its dataset has
  those only and Superset's Thrift user is granted those only (:func:`served_grants`): the
  bookkeeping tables carry parameters, messages and details the dashboards do not show.
  One virtual dataset, :data:`ANOMALIES_LAST_30_DAYS`, selects the anomalies of the 30 days ending
  at the anomaly table's newest day (a window relative to the data, which a chart filter on a
  physical dataset cannot state: "the last 30 days" before today would be empty on an old sample).
- **Audiences** (the "Audiences" dashboard): conf's ``audiences`` (name -> a condition on
  ``gold.user_status_weekly``, a restricted table: it holds user ids) are written into the SQL of three
  virtual datasets (:func:`audience_datasets`): each audience's members per complete week, the lifecycle
  flow of the newest complete week, and the members themselves. The bundle follows conf: when conf's
  audiences change, regenerate it (the test fails until then).
- **Metrics** are computed by the gold jobs and declared in the registry, not here. Charts
  only display: a chart metric is either the sum of one registry column (DAU, user counts) or a
  rate rendered from a :class:`~lakehouse.registry.RatioMetric` of the chart's table
  (``spec.metric(name).sql()``), because a dashboard filter selects several
  ``(acq_source, country)`` segments and each user sits in exactly one of them: sums of segment
  counts are exact, averages of per-segment rates are not, and the registry states each rate as
  the ratio of the sums of its columns (stickiness ``dau_mau_rate`` and ``dau_wau_rate`` of
  ``gold.agg_engagement_daily``, ``quick_ratio`` of ``gold.agg_growth_accounting_weekly``,
  ``retention_rate`` of ``gold.agg_user_retention``, ``redemption_rate`` of ``gold.agg_miles_weekly``;
  for one segment each equals the stored
  column of the same name). The same declarations are each dataset's saved metrics, next to
  ``count``, for charts made in Explore. No ratio SQL is written in this module (the test
  compares every chart ratio and saved metric with the registry).
- **Week labels** ("weeks start on Sunday") follow ``week_start`` of the config, like the gold
  tables' week columns do.
- **Query contexts**: see :mod:`lakehouse.serving.superset.query_context` (built with
  Superset's own query builders, loaded from the Superset virtualenv; this module itself runs in
  the lakehouse virtualenv, where the registry and config are).

UUIDs are uuid5 of a fixed namespace and a stable key, so regenerating never changes them.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import yaml
from pyspark.sql import types as T

from lakehouse.config import PROJECT_ROOT, ConfigError, LakehouseConfig
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.gold.tables.agg_engagement_daily import SPEC as GOLD_ENGAGEMENT
from lakehouse.gold.tables.agg_growth_accounting_weekly import SPEC as GOLD_GROWTH
from lakehouse.gold.tables.agg_metric_anomalies import SPEC as GOLD_METRIC_ANOMALIES
from lakehouse.gold.tables.agg_miles_category_weekly import SPEC as GOLD_MILES_CATEGORY
from lakehouse.gold.tables.agg_miles_weekly import SPEC as GOLD_MILES_WEEKLY
from lakehouse.gold.tables.agg_user_lifecycle_weekly import SPEC as GOLD_LIFECYCLE
from lakehouse.gold.tables.agg_user_retention import SPEC as GOLD_RETENTION
from lakehouse.gold.tables.user_status_weekly import SPEC as GOLD_USER_STATUS
from lakehouse.registry import OPS_DQ_RESULTS, OPS_INGESTED_FILES, OPS_JOB_RUNS, RatioMetric, TableSpec
from lakehouse.serving.options import add_config_args, config_from_args
from lakehouse.serving.superset.query_context import (
    DEFAULT_SUPERSET_VENV,
    QueryFunctionsMissing,
    load_query_functions,
    query_context,
)

if TYPE_CHECKING:
    from lakehouse.serving.thrift.grants import Grant

BUNDLE_DIR = PROJECT_ROOT / "conf" / "superset" / "bundle"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "heymax-lakehouse/superset-bundle")
# Charts get their real ids on import; the query context carries this placeholder until then
# (superset.commands.utils.update_chart_config_dataset rewrites it).
PLACEHOLDER_DATASOURCE = "0__table"
EXPORT_VERSION = "1.0.0"
DATABASE_NAME = "heymax_lakehouse"
#: The tables served as Superset datasets (every chart reads one of them). A restricted table
#: (``TableSpec.restricted``: it holds user ids) is granted to Superset's Thrift user by name here only:
#: ``gold.user_status_weekly``, which the "Audiences" dashboard reads.
SERVED_TABLES: tuple[TableSpec, ...] = (
    GOLD_ACTIVE_USER, GOLD_LIFECYCLE, GOLD_RETENTION, GOLD_GROWTH, GOLD_ENGAGEMENT, GOLD_MILES_WEEKLY,
    GOLD_MILES_CATEGORY, GOLD_METRIC_ANOMALIES, GOLD_USER_STATUS, OPS_JOB_RUNS, OPS_DQ_RESULTS, OPS_INGESTED_FILES,
)  # fmt: skip
#: Tables served with some columns only (the rest: whole): what the "Data health" dashboard reads. Their
#: datasets have these columns and Superset's Thrift user is granted these (a column read by no chart is
#: not served: the runs' parameters and messages, the checks' details, the files' names and hashes).
SERVED_COLUMNS: dict[str, tuple[str, ...]] = {
    GOLD_METRIC_ANOMALIES.full_name: ("metric", "grain", "segment_type", "segment_value", "period_start", "value",
                                      "expected", "lower_bound", "upper_bound", "score", "is_anomaly", "direction"),
    OPS_JOB_RUNS.full_name: ("run_id", "job", "started_at", "ended_at", "status", "rows_in", "rows_out"),
    OPS_DQ_RESULTS.full_name: ("run_id", "job", "status", "checked_at"),
    OPS_INGESTED_FILES.full_name: ("status", "ingested_at", "max_event_date"),
}  # fmt: skip
#: Tables with week columns: their dataset description says when weeks start.
WEEKLY_TABLES = {GOLD_ACTIVE_USER.name, GOLD_LIFECYCLE.name, GOLD_RETENTION.name, GOLD_GROWTH.name,
                 GOLD_MILES_WEEKLY.name, GOLD_MILES_CATEGORY.name, GOLD_USER_STATUS.name}  # fmt: skip
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def stable_uuid(key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, key))


def served_fields(spec: TableSpec) -> list[T.StructField]:
    """The columns of ``spec`` its dataset has (all, or those of :data:`SERVED_COLUMNS`), in registry order."""
    columns = SERVED_COLUMNS.get(spec.full_name)
    if columns is None:
        return list(spec.schema.fields)
    unknown = set(columns) - set(spec.schema.fieldNames())
    if unknown:
        raise KeyError(f"SERVED_COLUMNS names columns {sorted(unknown)} that {spec.full_name} does not have")
    return [f for f in spec.schema.fields if f.name in columns]


def served_grants() -> list[Grant]:
    """What Superset's Thrift user is granted: each served table, whole or its :data:`SERVED_COLUMNS`."""
    # Imported here: the thrift package loads its server and client modules, which writing the bundle does not need.
    from lakehouse.serving.thrift.grants import Grant

    return [Grant(spec.full_name, SERVED_COLUMNS.get(spec.full_name)) for spec in SERVED_TABLES]


@dataclass(frozen=True)
class Week:
    """The configured week, in words: weeks run from ``first`` to ``last``."""

    first: str
    last: str

    @classmethod
    def from_config(cls, config: LakehouseConfig) -> Week:
        first = DAY_NAMES.index(config.week_start.capitalize())
        return cls(DAY_NAMES[first], DAY_NAMES[(first - 1) % 7])

    @property
    def span(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def note(self) -> str:
        return f"Weeks start on {self.first} (week_start in conf/lakehouse.yaml)."


# --------------------------------------------------------------------------------------------
# Database and datasets: from the registry
# --------------------------------------------------------------------------------------------

DATABASE_UUID = stable_uuid(f"database:{DATABASE_NAME}")


def build_database(config: LakehouseConfig) -> dict[str, Any]:
    return {
        "database_name": DATABASE_NAME,
        # A placeholder from the config; lakehouse superset up substitutes the URI it was given.
        "sqlalchemy_uri": f"hive://superset@{config.serving.thrift_host}:{config.serving.thrift_port}/gold",
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


def superset_type(data_type: T.DataType) -> str:
    """The column type as Spark reports it through PyHive (``BIGINT``, ``DATE``...)."""
    return data_type.simpleString().upper()


def dataset_uuid(name: str) -> str:
    # Keyed by the table name alone (the gold datasets' uuids predate the ops ones): names are unique
    # across layers.
    return stable_uuid(f"dataset:gold.{name}")


def dataset_description(spec: TableSpec, week: Week) -> str:
    return f"{spec.grain} {week.note}" if spec.name in WEEKLY_TABLES else spec.grain


def saved_metric(metric: RatioMetric) -> dict[str, Any]:
    """A registry rate as a dataset metric: what Explore offers next to the stored per-row column."""
    return {
        "metric_name": metric.name,
        # Tells it apart from the column of the same name (the rate of one row) in Explore's pickers.
        "verbose_name": f"{metric.name} (ratio of sums)",
        "metric_type": None,
        "expression": metric.sql(),
        "description": metric.description,
        "d3format": None,
        "currency": None,
        "extra": {},
        "warning_text": None,
    }


@dataclass(frozen=True)
class VirtualDataset:
    """A dataset that is a query over one served table: a row filter a chart cannot state, no metric logic.

    ``columns`` are columns of ``spec`` (among its served ones), selected as they are."""

    name: str
    spec: TableSpec
    columns: tuple[str, ...]
    where: str
    description: str

    def fields(self) -> list[T.StructField]:
        served = {f.name: f for f in served_fields(self.spec)}
        return [served[c] for c in self.columns]

    @property
    def sql(self) -> str:
        return f"SELECT {', '.join(self.columns)}\nFROM {self.spec.full_name}\nWHERE {self.where}"


#: A point belongs to the last 30 days when its period ends in the 30 days that end at the table's newest
#: day (a day's period is the day; a week's its seven days): the window follows the data, like the
#: anomaly job's alert window (``anomaly.alert_days``) does.
ANOMALIES_LAST_30_DAYS = VirtualDataset(
    "agg_metric_anomalies_last_30_days",
    GOLD_METRIC_ANOMALIES,
    ("period_start", "grain", "metric", "segment_type", "segment_value", "direction", "value", "expected",
     "lower_bound", "upper_bound", "score"),
    "is_anomaly\n  AND date_add(period_start, CASE WHEN grain = 'week' THEN 6 ELSE 0 END) > date_sub(\n"
    "    (SELECT MAX(period_start) FROM gold.agg_metric_anomalies WHERE grain = 'day'), 30)",
    "The anomalies (is_anomaly) of gold.agg_metric_anomalies whose period ends in the 30 days ending at the "
    "table's newest day.",
)  # fmt: skip
VIRTUAL_DATASETS: tuple[VirtualDataset, ...] = (ANOMALIES_LAST_30_DAYS,)


@dataclass(frozen=True)
class AudienceDataset:
    """A dataset whose SQL is generated from conf's ``audiences`` (:func:`audience_datasets`), over one served table.

    Unlike a :class:`VirtualDataset` it may count (a GROUP BY) or stack (a UNION ALL): an audience is conf's
    condition, not a gold table's column, so no gold table can hold its counts; each count is the number of the
    table's rows matching the condition, as ``lakehouse audience list`` counts them. ``struct``: the dataset's
    columns, the table's as they are and the computed ones with their type and description."""

    name: str
    spec: TableSpec
    struct: T.StructType
    sql: str
    description: str

    def fields(self) -> list[T.StructField]:
        return list(self.struct.fields)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.struct.fieldNames())


#: An audience's name as conf's ``audiences`` allows it: safe in a SQL string literal and, in backticks, as a column.
AUDIENCE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
AUDIENCE_SIZES, AUDIENCE_FLOW, AUDIENCE_MEMBERS = (
    "user_status_weekly_audience_sizes", "user_status_weekly_flow_latest_week", "user_status_weekly_audience_members",
)  # fmt: skip
#: The columns of a member row (after the audience's name), as ``lakehouse audience show`` lists a member.
MEMBER_COLUMNS = ("user_id", "cutoff_week", "user_status", "previous_status", "weeks_since_active", "last_active_date",
                  "miles_balance", "acq_source", "country")  # fmt: skip
FIRST_WEEK = "(first week)"
#: The newest complete week of gold.user_status_weekly, in SQL (the week ``lakehouse audience`` calls latest).
LATEST_COMPLETE_WEEK = f"(SELECT MAX(cutoff_week) FROM {GOLD_USER_STATUS.full_name} WHERE NOT is_partial_period)"


def audience_conditions(config: LakehouseConfig) -> dict[str, str]:
    """conf's audiences, name -> ``(condition)``, in conf's order; refuses what would not be safe in generated SQL
    (the config has already refused a name it does not allow and a condition that reads anything but the table)."""
    import sqlglot  # a dependency of the config's own audience checks

    out = {}
    for name, condition in config.audiences.items():
        # The sizes dataset has a column per audience next to cutoff_week.
        if not AUDIENCE_NAME.fullmatch(name) or name == "cutoff_week":
            raise ConfigError(f"audiences.{name}: not usable as a column name of the Audiences dashboard's datasets")
        # A "--" comment would comment out the generated SQL that follows the condition on its line.
        if any(token.comments for token in sqlglot.tokenize(condition, read="spark")):
            raise ConfigError(f"audiences.{name}: the Superset bundle takes conditions without SQL comments")
        out[name] = f"({condition})"
    return out


def audience_datasets(config: LakehouseConfig) -> tuple[AudienceDataset, ...]:
    """The datasets of the "Audiences" dashboard, generated from conf's audiences (none when conf has none)."""
    conditions = audience_conditions(config)
    if not conditions:
        return ()
    table = GOLD_USER_STATUS.full_name
    field = {f.name: f for f in served_fields(GOLD_USER_STATUS)}
    counts = [T.StructField(name, T.LongType(), False, {"comment": f"rows of the week matching audiences.{name} of "
                            f"conf: {condition}"}) for name, condition in conditions.items()]  # fmt: skip
    sums = ",\n".join(
        f"  SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS `{name}`" for name, condition in conditions.items()
    )
    previous = T.StructField("previous_status", T.StringType(), False, {"comment": "user_status in the week before; "
                             f"'{FIRST_WEEK}' in the user's first week"})  # fmt: skip
    audience = T.StructField("audience", T.StringType(), False, {"comment": "the audience's name in conf's audiences"})
    members = "\nUNION ALL\n".join(
        f"SELECT '{name}' AS audience, {', '.join(MEMBER_COLUMNS)}\nFROM {table}\nWHERE {condition}"
        for name, condition in conditions.items()
    )
    return (
        AudienceDataset(
            AUDIENCE_SIZES, GOLD_USER_STATUS, T.StructType([field["cutoff_week"], *counts]),
            f"SELECT cutoff_week,\n{sums}\nFROM {table}\nWHERE NOT is_partial_period\nGROUP BY cutoff_week",
            f"Per complete week of {table}: the rows matching each audience of conf (one column per audience).",
        ),
        AudienceDataset(
            AUDIENCE_FLOW, GOLD_USER_STATUS, T.StructType([field["cutoff_week"], previous, field["user_status"]]),
            f"SELECT cutoff_week, COALESCE(previous_status, '{FIRST_WEEK}') AS previous_status, user_status\n"
            f"FROM {table}\nWHERE cutoff_week = {LATEST_COMPLETE_WEEK}",
            f"The rows of {table} of its newest complete week: each user's status and the one the week before.",
        ),
        AudienceDataset(
            AUDIENCE_MEMBERS, GOLD_USER_STATUS, T.StructType([audience, *(field[c] for c in MEMBER_COLUMNS)]),
            members,
            f"The members of each audience of conf: the rows of {table} matching its condition, every week.",
        ),
    )  # fmt: skip


def virtual_datasets(config: LakehouseConfig) -> tuple[VirtualDataset | AudienceDataset, ...]:
    """Every virtual dataset of the bundle: the declared row filters and those generated from conf's audiences."""
    return (*VIRTUAL_DATASETS, *audience_datasets(config))


def dataset_column(field: T.StructField) -> dict[str, Any]:
    return {
        "column_name": field.name,
        "verbose_name": None,
        # Date columns can be an x-axis or a time filter.
        "is_dttm": isinstance(field.dataType, T.DateType),
        "is_active": True,
        "type": superset_type(field.dataType),
        "advanced_data_type": None,
        "groupby": True,
        "filterable": True,
        "expression": None,
        "description": field.metadata.get("comment"),
        "python_date_format": None,
        "extra": {},
    }


def build_dataset(
    spec: TableSpec, week: Week, virtual: VirtualDataset | AudienceDataset | None = None
) -> dict[str, Any]:
    """The physical dataset of ``spec`` (its served columns); with ``virtual``, that query over ``spec``."""
    fields = served_fields(spec) if virtual is None else virtual.fields()
    dates = [f.name for f in fields if isinstance(f.dataType, T.DateType)]
    return {
        "table_name": spec.name if virtual is None else virtual.name,
        # The table's first date column is its time axis (period/week/day start).
        "main_dttm_col": dates[0] if dates else None,
        "description": dataset_description(spec, week) if virtual is None else virtual.description,
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "catalog": None,
        "schema": spec.layer,
        "sql": None if virtual is None else virtual.sql,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "always_filter_main_dttm": False,
        "uuid": dataset_uuid(spec.name if virtual is None else virtual.name),
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
            },
            *(saved_metric(metric) for metric in spec.metrics if virtual is None),
        ],
        "columns": [dataset_column(field) for field in fields],
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


#: Renders a metric's SQL with each aggregated column passed through a wrapper (see
#: :meth:`lakehouse.registry.RatioMetric.sql`); ``lambda c: c`` leaves the columns as they are.
MetricSql = Callable[[Callable[[str], str]], str]


def column_sum(spec: TableSpec, column: str) -> MetricSql:
    """``SUM(column)`` of a registry column of ``spec`` (a count: segments add up), as a :data:`MetricSql`."""
    if column not in spec.schema.fieldNames():
        raise KeyError(f"{spec.full_name} has no column {column!r}")
    return lambda wrap: f"SUM({wrap(column)})"


def ratio(spec: TableSpec, name: str) -> MetricSql:
    """The registry's :class:`~lakehouse.registry.RatioMetric` ``name`` of ``spec``, as a :data:`MetricSql`."""
    return spec.metric(name).sql


def formula(spec: TableSpec, name: str) -> str:
    """The registry metric's SQL, for a chart description."""
    return spec.metric(name).sql()


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


def metric(label: str, expression: MetricSql) -> dict[str, Any]:
    """One series of the metric over every row the chart's filters keep."""
    return sql_metric(label, expression(lambda c: c))


def split_by_partial(label: str, expression: MetricSql, flag: str) -> list[dict[str, Any]]:
    """Two series of one metric: complete periods, and the period still in progress.

    Each aggregated column of ``expression`` is wrapped in ``CASE WHEN [NOT] flag THEN column
    END``: complete periods keep rows with NOT flag, the partial series keeps the rest (numerator
    and denominator alike). The partial series is a single point at the right end of the line, in
    its own colour and legend entry, so a week- or month-to-date number never reads as a drop.
    """
    return [
        sql_metric(f"{label} (complete)", expression(lambda c: f"CASE WHEN NOT {flag} THEN {c} END")),
        sql_metric(f"{label} (partial, to date)", expression(lambda c: f"CASE WHEN {flag} THEN {c} END")),
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
        # The date columns already hold the period's first day (configured week start,
        # calendar months) or the day; a day grain keeps them as they are (the Hive spec's
        # week grain is broken on Spark, see superset_config.py).
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
    *,
    totals: bool = False,
) -> dict[str, Any]:
    """A pivot table; ``totals``: row and column totals, summed in the browser (for counts only, never rates)."""
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
        # Cells hold ratios of sums computed in SQL; client-side totals would add ratios up (counts add up).
        "aggregateFunction": "Sum",
        "rowTotals": totals,
        "rowSubTotals": False,
        "colTotals": totals,
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


def sql_column(label: str, expression: str) -> dict[str, Any]:
    """A computed column of a table chart (an adhoc column)."""
    return {"label": label, "sqlExpression": expression, "expressionType": "SQL"}


def table_params(
    adhoc_filters: list[dict[str, Any]],
    *,
    columns: list[str | dict[str, Any]] | None = None,
    order_by: list[tuple[str, bool]] | None = None,
    groupby: list[str] | None = None,
    metrics: list[dict[str, Any]] | None = None,
    sort_by: dict[str, Any] | None = None,
    row_limit: int = 100,
    number_formats: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A table chart: rows as they are (``columns``, ordered by ``order_by`` pairs of column and
    ascending) or, with ``metrics``, one row per ``groupby`` group ordered by ``sort_by`` descending.
    ``number_formats``: a d3 format per column (display only)."""
    raw = metrics is None
    params: dict[str, Any] = {
        "viz_type": "table",
        "datasource": PLACEHOLDER_DATASOURCE,
        "query_mode": "raw" if raw else "aggregate",
        "adhoc_filters": adhoc_filters,
        "row_limit": row_limit,
        "server_pagination": False,
        "order_desc": True,
        "table_timestamp_format": "smart_date",
        "show_cell_bars": False,
        "color_pn": False,
        "allow_rearrange_columns": False,
        "conditional_formatting": [],
        "column_config": {column: {"d3NumberFormat": fmt} for column, fmt in (number_formats or {}).items()},
        "temporal_columns_lookup": {},
        "extra_form_data": {},
    }
    if raw:
        # Never a time column in raw mode (the frontend's buildQuery sets this too).
        params.update({"all_columns": columns or [], "include_time": False,
                       "order_by_cols": [json.dumps([c, asc]) for c, asc in order_by or []]})  # fmt: skip
    else:
        params.update({"groupby": groupby or [], "metrics": metrics, "timeseries_limit_metric": sort_by})
    return params


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------

ACTIVE_USERS_DAILY = where_equals("period_type", "daily")
ACTIVE_USERS_WEEKLY = where_equals("period_type", "weekly")
ACTIVE_USERS_MONTHLY = where_equals("period_type", "monthly")
COMPLETE_PERIODS_ONLY = where_sql("NOT is_partial_period")

ACTIVE_USERS = column_sum(GOLD_ACTIVE_USER, "active_users")
RETENTION = ratio(GOLD_RETENTION, "retention_rate")


def category_mix(event_type: str, slice_name: str, column: str, label: str, description: str) -> dict[str, Any]:
    """Stacked weekly bars of one event type of ``gold.agg_miles_category_weekly``, one colour per category."""
    return {
        "slice_name": slice_name,
        "description": description,
        "dataset": GOLD_MILES_CATEGORY.name,
        "params": timeseries_params(
            "echarts_timeseries_bar",
            "week_start",
            [metric(label, column_sum(GOLD_MILES_CATEGORY, column))],
            [where_equals("event_type", event_type), COMPLETE_PERIODS_ONLY],
            groupby=["transaction_category"],
            y_axis_format=",d",
            extra={"stack": "Stack", "orientation": "vertical", "show_value": False, "x_axis_time_format": "%Y-%m-%d"},
        ),
    }


def miles_charts(week: Week) -> dict[str, dict[str, Any]]:
    """The charts of the "Miles economy" dashboard (gold.agg_miles_weekly and gold.agg_miles_category_weekly)."""
    miles = lambda column: column_sum(GOLD_MILES_WEEKLY, column)  # noqa: E731
    return {
        "miles_flows": {
            "slice_name": "Miles issued and burned per week",
            "description": f"Miles earned (issued) and redeemed (burned) per {week.span} week, summed over the "
            "selected segments. The week in progress is its own series (week-to-date).",
            "dataset": GOLD_MILES_WEEKLY.name,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "week_start",
                [
                    *split_by_partial("Earned", miles("miles_earned"), "is_partial_period"),
                    *split_by_partial("Redeemed", miles("miles_redeemed"), "is_partial_period"),
                ],
                [],
                y_axis_format=",d",
            ),
        },
        "miles_stocks": {
            "slice_name": "Outstanding miles and liability",
            "description": "At each week's end (the data's last date for the week in progress): outstanding = "
            "sum of the members' balances; liability = sum of the positive balances, what the program owes "
            "(a negative balance is a finding, not a credit).",
            "dataset": GOLD_MILES_WEEKLY.name,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "week_start",
                [metric("Liability", miles("liability_miles")), metric("Outstanding", miles("outstanding_miles"))],
                [],
                y_axis_format=",d",
            ),
        },
        "redemption_rate": {
            "slice_name": "Redemption rate",
            "description": "Miles redeemed / miles earned per week: "
            f"{formula(GOLD_MILES_WEEKLY, 'redemption_rate')} over the selected segments (the registry's "
            "redemption_rate, equal to the table's column for one segment; never an average of rates). "
            "Above 100%: members burned more than they earned that week. The week in progress is its own series.",
            "dataset": GOLD_MILES_WEEKLY.name,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "week_start",
                split_by_partial("Redemption rate", ratio(GOLD_MILES_WEEKLY, "redemption_rate"), "is_partial_period"),
                [],
                y_axis_format=".0%",
            ),
        },
        "earning_mix": category_mix(
            "miles_earned",
            "Where miles are earned (complete weeks)",
            "miles",
            "Miles earned",
            "Miles earned per merchant category (dining, ecommerce, shopping) and week.",
        ),
        "redemption_mix": category_mix(
            "miles_redeemed",
            "What miles are redeemed for (complete weeks)",
            "miles",
            "Miles redeemed",
            "Miles redeemed per reward type (flight, hotel) and week.",
        ),
        "search_interest": category_mix(
            "reward_search",
            "Reward searches by brand (complete weeks)",
            "events",
            "Searches",
            "Reward-search events per brand (apple, lululemon, shopee) and week: interest before a redemption.",
        ),
        "miles_users": {
            "slice_name": "Earning and redeeming members",
            "description": f"Distinct members with a miles_earned (miles_redeemed) event in the {week.span} "
            "week; segments add up because each member sits in one. The week in progress is its own series.",
            "dataset": GOLD_MILES_WEEKLY.name,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "week_start",
                [
                    *split_by_partial("Earning", miles("earning_users"), "is_partial_period"),
                    *split_by_partial("Redeeming", miles("redeeming_users"), "is_partial_period"),
                ],
                [],
                y_axis_format=",d",
            ),
        },
    }


#: Superset's line charts draw series named ``<name>__yhat_lower`` and ``<name>__yhat_upper`` as one shaded
#: band between the two (the names its forecasts use; the frontend recognises them by name alone, so any
#: query's series can be a band).
BAND_LOWER, BAND_UPPER = "__yhat_lower", "__yhat_upper"
#: What each count series of gold.agg_metric_anomalies is, for the notes.
ANOMALY_SERIES_NOTE = (
    "daily (grain `day`): events, active_users, new_users, earn_events, redeem_events; weekly (grain `week`, "
    "complete weeks): active_users, new_users, churned_users, resurrected_users"
)


def flagged_sum(spec: TableSpec, column: str, flag: str) -> MetricSql:
    """``SUM(CASE WHEN flag THEN column END)``: a registry column summed over the rows where the boolean
    column ``flag`` holds (null elsewhere, so a line chart draws those rows' points only)."""
    for name in (column, flag):
        if name not in spec.schema.fieldNames():
            raise KeyError(f"{spec.full_name} has no column {name!r}")
    return lambda wrap: f"SUM(CASE WHEN {wrap(flag)} THEN {wrap(column)} END)"


RUN_SECONDS = sql_column("seconds", "ROUND((unix_micros(ended_at) - unix_micros(started_at)) / 1e6, 1)")
#: The anomaly table's numbers: counts whole, expected value and band to a tenth, scores to a hundredth.
ANOMALY_NUMBER_FORMATS = {"value": ",.0f", "expected": ",.1f", "lower_bound": ",.1f", "upper_bound": ",.1f",
                          "score": ".2f"}  # fmt: skip
CHECKED_AT = sql_metric("checked at", "MAX(checked_at)")
#: Column label and ops.dq_results status of each outcome of a check.
CHECK_OUTCOMES = (("passed", "pass"), ("warned", "warn"), ("failed", "fail"), ("quarantined", "quarantined"))


def health_charts() -> dict[str, dict[str, Any]]:
    """The charts of the "Data health" dashboard: anomalies (gold.agg_metric_anomalies), the data's
    freshness (ops.ingested_files), the jobs' runs (ops.job_runs) and checks (ops.dq_results)."""
    anomalies = lambda column: column_sum(GOLD_METRIC_ANOMALIES, column)  # noqa: E731
    return {
        "anomaly_series": {
            "slice_name": "Series inside its expected band",
            "description": "The series chosen in the filter bar (metric, grain, segment type and value): its "
            "value per period, the expected value (a Theil-Sen line through the same weekday, or week, of the "
            "previous periods) and the band [lower_bound, upper_bound] (expected +- sensitivity x robust "
            "spread); the points outside the band, is_anomaly, are marked again as 'Value (anomaly)'. One "
            "series per filter choice: each sum is over one row per period.",
            "dataset": GOLD_METRIC_ANOMALIES.name,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "period_start",
                [
                    metric("Value", anomalies("value")),
                    metric("Expected", anomalies("expected")),
                    metric(f"Band{BAND_LOWER}", anomalies("lower_bound")),
                    metric(f"Band{BAND_UPPER}", anomalies("upper_bound")),
                    metric("Value (anomaly)", flagged_sum(GOLD_METRIC_ANOMALIES, "value", "is_anomaly")),
                ],
                [],
                extra={"markerSize": 5, "x_axis_time_format": "%Y-%m-%d"},
            ),
        },
        "anomalies_table": {
            "slice_name": "Anomalies of the last 30 days",
            "description": "Every flagged point (|score| > anomaly.sensitivity) whose period ends in the 30 "
            "days ending at the table's newest day, newest first: series, segment, value, band and score "
            "(negative: a drop).",
            "dataset": ANOMALIES_LAST_30_DAYS.name,
            "params": table_params(
                [],
                columns=list(ANOMALIES_LAST_30_DAYS.columns),
                order_by=[("period_start", False), ("score", True)],
                row_limit=1000,
                number_formats=ANOMALY_NUMBER_FORMATS,
            ),
        },
        "freshness": {
            "slice_name": "Data freshness",
            "description": "The newest event date among the committed files (ops.ingested_files, "
            "max_event_date of the batches whose rows were written), how many days before today that is, "
            "and when the last file was ingested. The anomaly job's data_freshness check (ops.dq_results) "
            "warns when the newest event is older than anomaly.freshness_hours at a run's start.",
            "dataset": OPS_INGESTED_FILES.name,
            "params": table_params(
                [where_equals("status", "committed")],
                metrics=[
                    sql_metric("Newest event date", "MAX(max_event_date)"),
                    sql_metric("Days before today", "DATEDIFF(CURRENT_DATE(), MAX(max_event_date))"),
                    sql_metric("Last file ingested", "MAX(ingested_at)"),
                ],
                row_limit=10,
            ),
        },
        "job_runs": {
            "slice_name": "Recent job runs",
            "description": "The latest runs of the jobs (ops.job_runs), newest first: status (succeeded, "
            "partial, failed), seconds from start to end, rows read and written.",
            "dataset": OPS_JOB_RUNS.name,
            "params": table_params(
                [],
                columns=["started_at", "job", "status", RUN_SECONDS, "rows_in", "rows_out"],
                order_by=[("started_at", False), ("job", True)],
                row_limit=50,
            ),
        },
        "checks": {
            "slice_name": "Checks per run",
            "description": "The data-quality checks of each job run that checked its data (ops.dq_results; the "
            "run id is the run's start, its job and a random part), newest first: how many passed, warned "
            "(warn-level findings, anomaly alerts, stale data), failed (error level: the run failed) and, for "
            "bronze's rules, set rows aside (quarantined).",
            "dataset": OPS_DQ_RESULTS.name,
            "params": table_params(
                [],
                # The run id names its job (and when it started).
                groupby=["run_id"],
                metrics=[
                    CHECKED_AT,
                    *(sql_metric(label, f"COUNT_IF(status = '{status}')") for label, status in CHECK_OUTCOMES),
                ],
                sort_by=dict(CHECKED_AT),  # a copy: the YAML would alias the same object
                row_limit=50,
            ),
        },
    }


#: Members listed by the table chart at most (like the anomalies table); the CLI exports whole audiences.
MEMBER_ROWS = 1000


def audience_list(config: LakehouseConfig) -> str:
    """conf's audiences in words: ``name: condition; ...``."""
    return "; ".join(f"{name}: {condition}" for name, condition in config.audiences.items())


def audience_charts(week: Week, config: LakehouseConfig) -> dict[str, dict[str, Any]]:
    """The charts of the "Audiences" dashboard (datasets generated from conf's audiences; none without audiences)."""
    if not audience_datasets(config):
        return {}
    first = next(iter(config.audiences))
    return {
        "audience_sizes": {
            "slice_name": "Audience sizes per week",
            "description": f"Members of each audience of conf (audiences in conf/lakehouse.yaml) per {week.span} week: "
            "the rows of gold.user_status_weekly (one per user and week) matching the audience's condition, one "
            "series per audience. Complete weeks only (the dataset's SQL keeps NOT is_partial_period). Conditions: "
            f"{audience_list(config)}.",
            "dataset": AUDIENCE_SIZES,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "cutoff_week",
                [sql_metric(name, f"SUM(`{name}`)") for name in config.audiences],
                [],
                y_axis_format=",d",
                extra={"x_axis_time_format": "%Y-%m-%d"},
            ),
        },
        "lifecycle_flow": {
            "slice_name": "Lifecycle flow, latest complete week",
            "description": "Users of gold.user_status_weekly in its newest complete week (the newest cutoff_week with "
            "NOT is_partial_period: the week lakehouse audience calls latest) by their status the week before "
            f"(rows; '{FIRST_WEEK}': the user's first week, always new) and their status that week (columns), "
            "with totals. The dataset's SQL selects the week.",
            "dataset": AUDIENCE_FLOW,
            # A pivot, not a Sankey: a status often follows itself (retained -> retained), a cycle ECharts' Sankey
            # refuses to draw, and query_context.py has no Sankey query builder.
            "params": pivot_params(
                ["previous_status"], ["user_status"], [sql_metric("Users", "COUNT(*)")], [], ",d", totals=True
            ),
        },
        "audience_members": {
            "slice_name": "Audience members",
            "description": "The members of the audience and week chosen in the filter bar: the rows of "
            "gold.user_status_weekly matching the audience's condition in conf, ordered by user_id within a week, "
            f"newest week first, at most {MEMBER_ROWS:,} rows. The audience opens on {first}; no week is chosen "
            "when the dashboard opens (a filter default here is a fixed value, and the latest complete week moves "
            "with the data): choose one (every week is listed, the week in progress too, its numbers to date). "
            "Restricted data (user ids). Whole lists: lakehouse audience show|export NAME [--week W].",
            "dataset": AUDIENCE_MEMBERS,
            "params": table_params(
                [],
                columns=["audience", *MEMBER_COLUMNS],
                order_by=[("cutoff_week", False), ("user_id", True)],
                row_limit=MEMBER_ROWS,
                number_formats={"miles_balance": ",.2f"},
            ),
        },
    }


def charts(week: Week, config: LakehouseConfig) -> dict[str, dict[str, Any]]:
    """Chart key -> definition; the key is the chart's identity (its uuid) and its place."""
    return {
        "dau": {
            "slice_name": "Daily active users (DAU)",
            "description": "Distinct users with an event on the day; segments add up because "
            "each user sits in one (acq_source, country).",
            "dataset": GOLD_ACTIVE_USER.name,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "period_start_date",
                # A day is never partial (its last day is at most the data's last date).
                [metric("DAU", ACTIVE_USERS)],
                [ACTIVE_USERS_DAILY],
            ),
        },
        "wau": {
            "slice_name": "Weekly active users (WAU)",
            "description": f"Distinct users with an event in the {week.span} week. The last "
            "week is week-to-date when the data ends mid-week: it is its own series.",
            "dataset": GOLD_ACTIVE_USER.name,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "period_start_date",
                split_by_partial("WAU", ACTIVE_USERS, "is_partial_period"),
                [ACTIVE_USERS_WEEKLY],
            ),
        },
        "mau": {
            "slice_name": "Monthly active users (MAU)",
            "description": "Distinct users with an event in the calendar month. The last month is "
            "month-to-date when the data ends mid-month: it is its own series.",
            "dataset": GOLD_ACTIVE_USER.name,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "period_start_date",
                split_by_partial("MAU", ACTIVE_USERS, "is_partial_period"),
                [ACTIVE_USERS_MONTHLY],
            ),
        },
        "stickiness": {
            "slice_name": "Stickiness (DAU / MAU, DAU / WAU)",
            "description": "Users active on the day / users active in the 30 (7) days ending that "
            f"day, from gold.agg_engagement_daily: {formula(GOLD_ENGAGEMENT, 'dau_mau_rate')} over "
            "the selected segments (the registry's dau_mau_rate, equal to the table's column for "
            "one segment; each user sits in one segment, so the sums are exact; per-segment rates "
            "are never averaged). In the data's first 29 days the window reaches back before the "
            "first event.",
            "dataset": GOLD_ENGAGEMENT.name,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "activity_date",
                [
                    metric("DAU/MAU (30-day)", ratio(GOLD_ENGAGEMENT, "dau_mau_rate")),
                    metric("DAU/WAU (7-day)", ratio(GOLD_ENGAGEMENT, "dau_wau_rate")),
                ],
                [],
                y_axis_format=".1%",
            ),
        },
        "lifecycle": {
            "slice_name": "Weekly user lifecycle (complete weeks)",
            "description": f"Users by lifecycle status per {week.span} week: new + retained + "
            "resurrected = weekly actives; all five = users acquired so far. The week in progress "
            "is left out (chart filter NOT is_partial_period).",
            "dataset": GOLD_LIFECYCLE.name,
            "params": timeseries_params(
                "echarts_timeseries_bar",
                "cutoff_week",
                [metric("Users", column_sum(GOLD_LIFECYCLE, "user_count"))],
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
            "description": "(new + resurrected) / churned users per week: "
            f"{formula(GOLD_GROWTH, 'quick_ratio')} over the selected segments (the registry's "
            "quick_ratio, equal to the table's column for one segment). The week in progress is "
            "its own series.",
            "dataset": GOLD_GROWTH.name,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "week_start",
                split_by_partial("Quick ratio", ratio(GOLD_GROWTH, "quick_ratio"), "is_partial_period"),
                [],
                y_axis_format=".2f",
            ),
        },
        "retention_triangle": {
            "slice_name": "Weekly cohort retention (complete weeks)",
            "description": f"Share of each weekly cohort ({week.span} weeks) active N weeks later: "
            f"{formula(GOLD_RETENTION, 'retention_rate')} over the selected segments (the registry's "
            "retention_rate, equal to the table's column for one segment). Cells of the week in "
            "progress are left out (chart filter NOT is_partial_period).",
            "dataset": GOLD_RETENTION.name,
            "params": pivot_params(
                ["cohort_label"],
                ["week_offset"],
                [metric("Retention", RETENTION)],
                [COMPLETE_PERIODS_ONLY],
                ".1%",
            ),
        },
        "cohort_size": {
            "slice_name": "Cohort size",
            "description": f"Users per weekly cohort (first event in that {week.span} week).",
            "dataset": GOLD_RETENTION.name,
            # Bars rather than a one-column table: 26+ cohorts fit without scrolling.
            "params": timeseries_params(
                "echarts_timeseries_bar",
                "cohort_week",
                [metric("Cohort size", column_sum(GOLD_RETENTION, "cohort_size"))],
                [where_equals("week_offset", 0)],
                y_axis_format=",d",
                extra={"orientation": "vertical", "show_value": False, "x_axis_time_format": "%Y-%m-%d"},
            ),
        },
        "retention_curve": {
            "slice_name": "Average retention curve",
            "description": "Retention by weeks since the cohort week, weighted by cohort size: "
            f"{formula(GOLD_RETENTION, 'retention_rate')} over every cohort that has completed that "
            "week. Cells of the week in progress are left out.",
            "dataset": GOLD_RETENTION.name,
            "params": timeseries_params(
                "echarts_timeseries_line",
                "week_offset",
                [metric("Weighted retention", RETENTION)],
                [COMPLETE_PERIODS_ONLY],
                temporal=False,
                y_axis_format=".1%",
                extra={"x_axis_title": "weeks since cohort week", "x_axis_title_margin": 30},
            ),
        },
        **miles_charts(week),
        **health_charts(),
        **audience_charts(week, config),
    }


def chart_uuid(key: str) -> str:
    return stable_uuid(f"chart:{key}")


def build_chart(key: str, spec: dict[str, Any], qf: ModuleType | None) -> dict[str, Any]:
    """The chart's YAML; without ``qf`` (no Superset virtualenv) it has no ``query_context``."""
    params = spec["params"]
    chart: dict[str, Any] = {
        "slice_name": spec["slice_name"],
        "description": spec["description"],
        "certified_by": None,
        "certification_details": None,
        "viz_type": params["viz_type"],
        "params": params,
    }
    if qf is not None:
        chart["query_context"] = json.dumps(query_context(qf, params), sort_keys=True)
    return chart | {
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
    "exactly one (acq_source, country) segment, so every chart sums segments, and rates are "
    "ratios of those sums."
)


def markdown_code(text: str) -> str:
    """``text`` as inline code in markdown (a longer fence when it holds a backtick)."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def audiences_dashboard(week: Week, config: LakehouseConfig) -> dict[str, dict[str, Any]]:
    """The "Audiences" dashboard (none when conf has no audiences)."""
    if not audience_datasets(config):
        return {}
    first = next(iter(config.audiences))
    return {
        "audiences": {
            "title": "Audiences",
            "slug": "audiences",
            "filter_dataset": AUDIENCE_MEMBERS,
            "note": "## Audiences\n"
            "Named user lists of conf (`audiences` in conf/lakehouse.yaml), each a condition on "
            f"`gold.user_status_weekly` (one row per user and {week.span} week): "
            + "; ".join(f"**{name}** {markdown_code(condition)}" for name, condition in config.audiences.items())
            + ". Every number here is a count of that table's rows matching a condition. The **members table is "
            "restricted data** (user ids): Superset's Thrift user is granted `gold.user_status_weekly` by name. "
            "Choose the **audience** and the **week** in the filter bar (they apply to the members table). "
            "Whole lists: `lakehouse audience list|show|export` (the same conditions).\n\n"
            + PARTIAL_NOTE
            + " Audience sizes and the lifecycle flow show complete weeks only; the members table lists every week.",
            "filters": (
                NativeFilter("audience", "Audience", "An audience of conf (audiences in conf/lakehouse.yaml).",
                             default=first),
                NativeFilter("cutoff_week", "Week", "The week (its first day); none chosen: every week, newest first."),
            ),
            "filter_scope": "audience_members",
            # The members table has ten columns: the whole width.
            "rows": [["audience_sizes", "lifecycle_flow"], ["audience_members"]],
        },
    }  # fmt: skip


def dashboards(week: Week, config: LakehouseConfig) -> dict[str, dict[str, Any]]:
    return {
        "active_users": {
            "title": "Active users",
            "slug": "active-users",
            "filter_dataset": GOLD_ACTIVE_USER.name,
            "note": "## Active users\n"
            f"DAU, WAU ({week.span} weeks) and MAU (calendar months) from "
            "`gold.agg_active_user`; stickiness DAU/MAU and DAU/WAU over rolling 30- and 7-day "
            "windows from `gold.agg_engagement_daily`. "
            + SEGMENT_NOTE
            + "\n\n"
            + PARTIAL_NOTE
            + " Weekly and monthly lines draw the partial period as a separate series "
            "*(partial, to date)*; rolling windows have no partial days.",
            "rows": [["dau", "wau"], ["mau", "stickiness"]],
        },
        "user_lifecycle": {
            "title": "User lifecycle",
            "slug": "user-lifecycle",
            "filter_dataset": GOLD_LIFECYCLE.name,
            "note": "## User lifecycle\n"
            f"Weekly status ({week.span} weeks) of every acquired user "
            "(`gold.agg_user_lifecycle_weekly`): new, retained, resurrected (active) and dormant, "
            "churned (inactive; churned = no activity in the look-back window). Quick ratio = "
            "(new + resurrected) / churned (`gold.agg_growth_accounting_weekly`). "
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
            "filter_dataset": GOLD_RETENTION.name,
            "note": "## Cohort retention\n"
            f"Users grouped by the {week.span} week of their first event "
            "(`gold.agg_user_retention`); week N retention = share of the cohort active in its "
            "N-th week after the cohort week. Rates are ratios of sums, so filtered segments "
            "are weighted by their cohort sizes. "
            + SEGMENT_NOTE
            + "\n\n"
            + PARTIAL_NOTE
            + " Cells of the week in progress are left out of the triangle and the curve "
            "(chart filter `NOT is_partial_period`).",
            # The triangle has 17 offset columns (0..16): it gets the whole width, and the
            # height of the sample's 27 weekly cohorts without scrolling.
            "rows": [["retention_triangle"], ["retention_curve", "cohort_size"]],
        },
        "miles_economy": {
            "title": "Miles economy",
            "slug": "miles-economy",
            "filter_dataset": GOLD_MILES_WEEKLY.name,
            "note": "## Miles economy\n"
            f"The program's currency per {week.span} week (`gold.agg_miles_weekly`): miles issued (earned) "
            "and burned (redeemed), what members hold at each week's end (outstanding) and what the program "
            "owes (liability: positive balances only), and where miles are earned, searched for and spent "
            "(`gold.agg_miles_category_weekly`). "
            + SEGMENT_NOTE
            + "\n\n"
            + PARTIAL_NOTE
            + " Flow lines draw the week in progress as a separate series; the category bars show complete "
            "weeks only.",
            "rows": [
                ["miles_flows", "miles_stocks"],
                ["redemption_rate", "miles_users"],
                ["earning_mix", "redemption_mix", "search_interest"],
            ],
        },
        "data_health": {
            "title": "Data health",
            "slug": "data-health",
            "filter_dataset": GOLD_METRIC_ANOMALIES.name,
            "note": "## Data health\n"
            "Is the data fresh, did anything move that should not have, and did the jobs run and pass their "
            "checks. **Anomalies** (`gold.agg_metric_anomalies`): each count series, for all users and per "
            "country and acquisition source, is compared with the same weekday (week) of the previous "
            "periods through a line that follows growth; a point outside its band is an anomaly. Series: "
            + ANOMALY_SERIES_NOTE
            + ". Choose the drawn series with the filters **grain, metric, segment type and segment value** "
            "(they apply to that chart only). **Freshness**: the newest event date ingested. **Runs and "
            "checks**: `ops.job_runs` and `ops.dq_results`, newest first.",
            "filters": ANOMALY_FILTERS,
            "label_colors": ANOMALY_COLORS,
            "filter_scope": "anomaly_series",
            # Tables of many columns get the whole width (Superset scrolls a table sideways, hiding columns).
            "rows": [["freshness", "job_runs"], ["anomalies_table"], ["anomaly_series"], ["checks"]],
        },
        **audiences_dashboard(week, config),
    }


# Grid units: 12 columns wide; height in 8 px rows. Charts split a row evenly unless listed.
ROW_HEIGHTS = {1: 60, 2: 55, 3: 55}
CHART_WIDTHS = {"retention_curve": 7, "cohort_size": 5, "freshness": 4, "job_runs": 8, "audience_sizes": 5,
                "lifecycle_flow": 7}  # fmt: skip
CHART_HEIGHTS = {"retention_triangle": 110, "retention_curve": 60, "cohort_size": 60, "freshness": 55,
                 "job_runs": 55, "anomalies_table": 50, "anomaly_series": 65, "checks": 55,
                 "audience_members": 70}  # fmt: skip

# One colour per lifecycle status wherever it appears.
LABEL_COLORS = {
    "new": "#5AC189",
    "retained": "#1FA8C9",
    "resurrected": "#FCC700",
    "dormant": "#A1A6BD",
    "churned": "#E04355",
}
# The anomaly series: the value, its expected value and band, the points outside the band.
ANOMALY_COLORS = {"Value": "#1FA8C9", "Expected": "#666666", "Band": "#A1A6BD", "Value (anomaly)": "#E04355"}


@dataclass(frozen=True)
class NativeFilter:
    """A select filter of a dashboard's filter bar on one column of its filter dataset."""

    column: str
    name: str
    description: str
    #: One value, required, this value when the dashboard opens (the anomaly series: a chart draws one).
    default: str | None = None
    #: The column of the filter whose choice narrows this one's values (a segment value of the segment type).
    parent: str | None = None


SEGMENT_FILTERS = (
    NativeFilter("acq_source", "Acquisition source", "Users whose first event had this acq_source."),
    NativeFilter("country", "Country", "Users whose first event had this country."),
)
ANOMALY_FILTERS = (
    NativeFilter("grain", "Grain", "day or week.", default="day"),
    NativeFilter("metric", "Metric", "The count series (those of the chosen grain).", default="events",
                 parent="grain"),
    NativeFilter("segment_type", "Segment type", "all, country or acq_source.", default="all"),
    NativeFilter("segment_value", "Segment value", "'all', a country or an acquisition source (of the chosen "
                 "segment type).", default="all", parent="segment_type"),
)  # fmt: skip


def build_position(
    spec: dict[str, Any], chart_specs: dict[str, dict[str, Any]], chart_ids: dict[str, int]
) -> dict[str, Any]:
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
                    "sliceName": chart_specs[chart_key]["slice_name"],
                    "width": CHART_WIDTHS.get(chart_key, default_width),
                    "height": CHART_HEIGHTS.get(chart_key, ROW_HEIGHTS[len(row)]),
                },
            }
    return position


def row_of(spec: dict[str, Any], chart_key: str) -> str:
    """The layout id of the row that holds ``chart_key`` (as :func:`build_position` names rows)."""
    for row_index, row in enumerate(spec["rows"], start=1):
        if chart_key in row:
            return f"ROW-{row_index}"
    raise KeyError(f"{spec['title']} has no chart {chart_key!r}")


def build_native_filters(dashboard_key: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    filter_id = lambda column: f"NATIVE_FILTER-{dashboard_key}-{column}"  # noqa: E731
    # Every chart of the dashboard, or those of one row; the frontend derives chartsInScope from this
    # scope when the dashboard loads (the importer cannot remap chart ids in it, so a scope is a layout
    # path, never a list of excluded chart ids).
    root = row_of(spec, spec["filter_scope"]) if "filter_scope" in spec else "ROOT_ID"
    filters = []
    for native in spec.get("filters", SEGMENT_FILTERS):
        if native.default is None:
            data_mask: dict[str, Any] = {"extraFormData": {}, "filterState": {}, "ownState": {}}
        else:
            data_mask = {
                "extraFormData": {"filters": [{"col": native.column, "op": "IN", "val": [native.default]}]},
                "filterState": {"value": [native.default], "label": native.default},
                "ownState": {},
            }
        filters.append(
            {
                "id": filter_id(native.column),
                "name": native.name,
                "filterType": "filter_select",
                "type": "NATIVE_FILTER",
                "description": native.description,
                "targets": [{"datasetUuid": dataset_uuid(spec["filter_dataset"]), "column": {"name": native.column}}],
                "controlValues": {
                    "multiSelect": native.default is None,
                    "enableEmptyFilter": native.default is not None,
                    "defaultToFirstItem": False,
                    "inverseSelection": False,
                    "searchAllOptions": False,
                },
                "defaultDataMask": data_mask,
                "cascadeParentIds": [filter_id(native.parent)] if native.parent else [],
                "scope": {"rootPath": [root], "excluded": []},
            }
        )
    return filters


def build_dashboard(
    key: str, spec: dict[str, Any], chart_specs: dict[str, dict[str, Any]], chart_ids: dict[str, int]
) -> dict[str, Any]:
    return {
        "dashboard_title": spec["title"],
        "description": None,
        "css": "",
        "slug": spec["slug"],
        "certified_by": None,
        "certification_details": None,
        "published": True,
        "uuid": stable_uuid(f"dashboard:{key}"),
        "position": build_position(spec, chart_specs, chart_ids),
        "metadata": {
            "color_scheme": "supersetColors",
            "label_colors": spec.get("label_colors", LABEL_COLORS),
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
# The bundle as files
# --------------------------------------------------------------------------------------------


def file_stem(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def to_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def render(config: LakehouseConfig, qf: ModuleType | None) -> dict[str, str]:
    """Every bundle file, keyed by its path inside the bundle.

    Without ``qf`` the charts have no ``query_context`` (everything else is complete).
    """
    week = Week.from_config(config)
    chart_specs = charts(week, config)
    files = {
        # "assets": imported with ImportAssetsCommand, which overwrites databases, datasets
        # and charts too (a "Dashboard" import only overwrites the dashboards themselves).
        "metadata.yaml": {"version": EXPORT_VERSION, "type": "assets", "timestamp": "2025-01-01T00:00:00+00:00"},
        f"databases/{DATABASE_NAME}.yaml": build_database(config),
    }
    for spec in SERVED_TABLES:
        files[f"datasets/{DATABASE_NAME}/{spec.name}.yaml"] = build_dataset(spec, week)
    for virtual in virtual_datasets(config):
        files[f"datasets/{DATABASE_NAME}/{virtual.name}.yaml"] = build_dataset(virtual.spec, week, virtual)
    chart_ids = {key: index for index, key in enumerate(chart_specs, start=1)}
    for key, spec in chart_specs.items():
        files[f"charts/{file_stem(spec['slice_name'])}_{chart_ids[key]}.yaml"] = build_chart(key, spec, qf)
    for key, spec in dashboards(week, config).items():
        files[f"dashboards/{file_stem(spec['title'])}.yaml"] = build_dashboard(key, spec, chart_specs, chart_ids)
    return {path: to_yaml(data) for path, data in files.items()}


def write(bundle_dir: Path, files: dict[str, str]) -> None:
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    for relative, text in files.items():
        path = bundle_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def read(bundle_dir: Path) -> dict[str, str]:
    return {
        path.relative_to(bundle_dir).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(bundle_dir.rglob("*"))
        if path.is_file()
    }


def without_query_contexts(files: dict[str, str]) -> dict[str, str]:
    """The files with every chart's query_context dropped (to compare without Superset's venv)."""
    out = {}
    for path, text in files.items():
        if path.startswith("charts/"):
            data = yaml.safe_load(text)
            data.pop("query_context", None)
            text = to_yaml(data)
        out[path] = text
    return out


def stale_files(bundle_dir: Path, config: LakehouseConfig, qf: ModuleType | None) -> list[str]:
    """Bundle paths that differ from what :func:`render` writes (missing or extra ones too)."""
    generated, committed = render(config, qf), read(bundle_dir)
    if qf is None:
        generated, committed = without_query_contexts(generated), without_query_contexts(committed)
    return sorted(p for p in set(generated) | set(committed) if generated.get(p) != committed.get(p))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lakehouse.serving.superset.bundle",
        description="Write (or --check) the Superset asset bundle from the registry and the config.",
    )
    parser.add_argument("--out", type=Path, default=BUNDLE_DIR, help="bundle directory (default conf/superset/bundle)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the bundle is stale")
    parser.add_argument(
        "--superset-venv",
        type=Path,
        default=DEFAULT_SUPERSET_VENV,
        help="virtualenv with apache-superset, for its query-context builders (default .cache/superset-venv)",
    )
    add_config_args(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        audience_conditions(config)  # refuses, before anything is written, what the datasets' SQL cannot take
    except ConfigError as exc:
        print(f"[bundle] ERROR: {exc}", file=sys.stderr)
        return 2
    try:
        qf: ModuleType | None = load_query_functions(args.superset_venv)
    except QueryFunctionsMissing as exc:
        if not args.check:
            print(f"[bundle] ERROR: {exc}", file=sys.stderr)
            return 2
        print(f"[bundle] {exc}; checking everything but the charts' query contexts", file=sys.stderr)
        qf = None
    if args.check:
        stale = stale_files(args.out, config, qf)
        if stale:
            print(
                f"[bundle] {args.out} is stale ({', '.join(stale)}): run python -m lakehouse.serving.superset.bundle",
                file=sys.stderr,
            )
            return 1
        print(f"[bundle] {args.out} is up to date", file=sys.stderr)
        return 0
    write(args.out, render(config, qf))
    print(f"[bundle] written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
