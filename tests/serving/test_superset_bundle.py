"""Static checks of the Superset asset bundle in conf/superset/bundle (no server, no Spark).

The bundle is imported by lakehouse superset up; Superset's importer links files by UUID and
silently drops what does not resolve (a chart whose uuid is missing from a dashboard position
is just not on the dashboard), and a chart that names a column its dataset lacks only fails
when someone opens it. These tests catch both before an import, and fail while the committed
bundle differs from what lakehouse.serving.superset.bundle writes from the registry and config.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import types as T

from lakehouse.config import ConfigError, load_config
from lakehouse.gold.tables.user_status_weekly import SPEC as USER_STATUS
from lakehouse.serving.superset import bundle as builder
from lakehouse.serving.superset.query_context import load_query_functions, query_functions_path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLE = REPO_ROOT / "conf" / "superset" / "bundle"
SUPERSET_CODE = REPO_ROOT / "lakehouse" / "serving" / "superset"

# How Spark names each type over Thrift (what Superset stores as the column type). Stated here,
# independently of the builder, as the serving contract.
SPARK_TYPE_NAMES = {
    T.StringType(): "STRING",
    T.LongType(): "BIGINT",
    T.IntegerType(): "INT",
    T.DoubleType(): "DOUBLE",
    T.DateType(): "DATE",
    T.TimestampType(): "TIMESTAMP",
    T.BooleanType(): "BOOLEAN",
    T.DecimalType(18, 2): "DECIMAL(18,2)",
    T.DecimalType(20, 2): "DECIMAL(20,2)",
}
# Chart types seen rendering against Spark Thrift here (the live e2e test renders each one).
RENDERING_VIZ_TYPES = {"echarts_timeseries_line", "echarts_timeseries_bar", "pivot_table_v2", "table"}
# The Hive engine spec's week grains break on Spark 3+; charts use the Sunday date columns.
WEEK_GRAINS = {"P1W", "1969-12-28T00:00:00Z/P1W", "1969-12-29T00:00:00Z/P1W"}
# How bundle.split_by_partial filters each column of a metric to complete or partial periods.
PARTIAL_WRAP = re.compile(r"CASE WHEN ((?:NOT )?is_partial_period) THEN (\w+) END")
# The datasets' SQL keywords (upper case, so not in SQL_WORDS: a chart's expressions never use them).
QUERY_WORDS = {"SELECT", "FROM", "WHERE", "GROUP", "BY", "UNION", "ALL", "AS", "THEN", "ELSE", "END", "CASE", "WHEN",
               "NOT"}  # fmt: skip
SQL_WORDS = {
    "and", "or", "not", "case", "when", "then", "else", "end", "null", "is", "in", "true",
    "false", "as", "distinct", "interval", "day", "between", "like",
}  # fmt: skip


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def files(kind: str) -> list[Path]:
    return sorted((BUNDLE / kind).rglob("*.yaml"))


def virtual_datasets() -> tuple[Any, ...]:
    """The bundle's virtual datasets for the committed config: row filters and conf's audience datasets."""
    return builder.virtual_datasets(load_config())


@pytest.fixture(scope="module")
def bundle() -> dict[str, dict[str, dict[str, Any]]]:
    """kind -> uuid -> config, for databases, datasets, charts, dashboards."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in ("databases", "datasets", "charts", "dashboards"):
        out[kind] = {}
        for path in files(kind):
            config = load(path)
            out[kind][config["uuid"]] = config | {"_path": str(path.relative_to(BUNDLE))}
    return out


def sql_identifiers(expression: str) -> set[str]:
    """Bare column names in a SQL expression: words that are not functions, keywords,
    string literals or table-qualified names."""
    without_strings = re.sub(r"'(?:[^']|'')*'", "''", expression)
    names = set()
    for match in re.finditer(r"(?<![.\w])([A-Za-z_]\w*)\b(?!\s*[.(])", without_strings):
        word = match.group(1)
        if word.lower() not in SQL_WORDS:
            names.add(word)
    return names


def chart_columns(params: dict[str, Any]) -> set[str]:
    """Every dataset column a chart's params refer to."""
    cols: set[str] = set()
    for key in ("x_axis", "granularity_sqla"):
        if isinstance(params.get(key), str):
            cols.add(params[key])
    for key in ("groupby", "groupbyRows", "groupbyColumns", "columns", "all_columns"):
        for column in params.get(key) or []:
            # A computed column of a table chart: the columns its SQL reads.
            cols.update([column] if isinstance(column, str) else sql_identifiers(column["sqlExpression"]))
    cols.update(json.loads(pair)[0] for pair in params.get("order_by_cols") or [])
    cols.update(params.get("temporal_columns_lookup") or {})
    for metric in [*(params.get("metrics") or []), *([params["timeseries_limit_metric"]]
                   if params.get("timeseries_limit_metric") else [])]:  # fmt: skip
        if isinstance(metric, dict) and metric.get("expressionType") == "SQL":
            cols.update(sql_identifiers(metric["sqlExpression"]))
        elif isinstance(metric, dict):
            cols.add(metric["column"]["column_name"])
    for adhoc in params.get("adhoc_filters") or []:
        if adhoc["expressionType"] == "SIMPLE":
            cols.add(adhoc["subject"])
        else:
            cols.update(sql_identifiers(adhoc["sqlExpression"]))
    return cols


def dataset_columns(dataset: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {col["column_name"]: col for col in dataset["columns"]}


def test_every_yaml_parses_and_metadata_is_an_assets_bundle() -> None:
    paths = sorted(BUNDLE.rglob("*"))
    yaml_paths = [p for p in paths if p.is_file()]
    assert yaml_paths, "bundle is empty"
    for path in yaml_paths:
        assert path.suffix == ".yaml", f"unexpected file in bundle: {path}"
        load(path)
    metadata = load(BUNDLE / "metadata.yaml")
    # lakehouse superset up imports with ImportAssetsCommand, which only accepts type "assets".
    assert metadata["type"] == "assets"
    assert metadata["version"] == "1.0.0"


def test_uuids_are_unique_and_valid(bundle) -> None:
    seen: dict[str, str] = {}
    for kind in ("databases", "datasets", "charts", "dashboards"):
        for path in files(kind):
            uuid_ = load(path)["uuid"]
            assert re.fullmatch(r"[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}", uuid_), path
            assert uuid_ not in seen, f"{path} reuses the uuid of {seen[uuid_]}"
            seen[uuid_] = str(path)
    assert len(bundle["dashboards"]) == 6


def test_database_is_the_gold_schema_over_hive(bundle) -> None:
    (database,) = bundle["databases"].values()
    assert database["database_name"] == "heymax_lakehouse"
    assert re.fullmatch(r"hive://[^@/:]+@[^/:]+:\d+/gold", database["sqlalchemy_uri"])
    layers = {spec.name: spec.layer for spec in builder.SERVED_TABLES}
    layers.update({virtual.name: virtual.spec.layer for virtual in virtual_datasets()})
    for dataset in bundle["datasets"].values():
        assert dataset["database_uuid"] == database["uuid"], dataset["_path"]
        # The bookkeeping tables are read in their own schema (ops) of the same connection.
        assert dataset["schema"] == layers[dataset["table_name"]], dataset["_path"]
    assert {d["schema"] for d in bundle["datasets"].values()} == {"gold", "ops"}


def test_datasets_are_the_served_tables_with_the_registrys_columns(bundle) -> None:
    """Names, types and descriptions of every dataset column are the registry's, in its order: every column,
    or those of SERVED_COLUMNS (the same names the grants of Superset's Thrift user list)."""
    datasets = {d["table_name"]: d for d in bundle["datasets"].values()}
    virtual = {v.name: v for v in builder.VIRTUAL_DATASETS}
    audience = {v.name: v for v in builder.audience_datasets(load_config())}
    assert set(datasets) == {spec.name for spec in builder.SERVED_TABLES} | set(virtual) | set(audience)
    assert set(builder.SERVED_COLUMNS) <= {spec.full_name for spec in builder.SERVED_TABLES}
    for spec in builder.SERVED_TABLES:
        dataset = datasets[spec.name]
        assert dataset["schema"] == spec.layer
        served = builder.SERVED_COLUMNS.get(spec.full_name, spec.schema.fieldNames())
        expected = [(f.name, SPARK_TYPE_NAMES[f.dataType], f.metadata["comment"]) for f in spec.schema.fields
                    if f.name in served]  # fmt: skip
        assert len(expected) == len(served), f"{spec.full_name}: SERVED_COLUMNS names a column it lacks"
        actual = [(c["column_name"], c["type"], c["description"]) for c in dataset["columns"]]
        assert actual == expected, spec.full_name
        assert dataset["description"].startswith(spec.grain), spec.full_name
        for col in dataset["columns"]:
            assert col["is_dttm"] == (col["type"] == "DATE"), f"{spec.name}.{col['column_name']}"
            assert not col.get("expression"), f"{spec.name}.{col['column_name']} should be a physical column"
        assert dataset["main_dttm_col"] in [*dataset_columns(dataset), None]
        assert dataset["main_dttm_col"] or not any(c["is_dttm"] for c in dataset["columns"]), spec.full_name
    for name, view in virtual.items():
        # A row filter over one served table: its columns as they are, none it may not read.
        dataset, served = datasets[name], {f.name: f for f in view.spec.schema.fields}
        assert [(c["column_name"], c["type"]) for c in dataset["columns"]] == [
            (c, SPARK_TYPE_NAMES[served[c].dataType]) for c in view.columns], name  # fmt: skip
        selected = dataset["sql"].split("FROM")[0].removeprefix("SELECT").split(",")
        assert [c.strip() for c in selected] == list(view.columns), name
        read = sql_identifiers(dataset["sql"].replace(view.spec.full_name, "")) - {"SELECT", "FROM", "WHERE"}
        assert read <= set(builder.SERVED_COLUMNS.get(view.spec.full_name, served)), f"{name} reads {read}"
    for name, view in audience.items():
        # The table's columns as the registry has them; the computed ones: an audience's name and its counts.
        dataset, served = datasets[name], {f.name: f for f in view.spec.schema.fields}
        actual = [(c["column_name"], c["type"]) for c in dataset["columns"]]
        assert actual == [(c, SPARK_TYPE_NAMES[served[c].dataType] if c in served else
                           "STRING" if c == "audience" else "BIGINT") for c in view.columns], name  # fmt: skip
        assert all(c["description"] for c in dataset["columns"]), name
        assert dataset["sql"] == view.sql and dataset["description"] == view.description, name


def test_audience_datasets_are_conf_audiences_over_user_status_weekly(bundle) -> None:
    """The Audiences datasets' SQL is generated from conf: every audience's condition (as conf states it, in
    parentheses) under its name, over gold.user_status_weekly alone and its columns only; counts and the flow on
    complete weeks."""
    config = load_config()
    assert config.audiences, "conf/lakehouse.yaml declares audiences"
    datasets = {d["table_name"]: d for d in bundle["datasets"].values()}
    columns = set(USER_STATUS.schema.fieldNames())
    sizes, flow, members = (datasets[name]["sql"] for name in
                            (builder.AUDIENCE_SIZES, builder.AUDIENCE_FLOW, builder.AUDIENCE_MEMBERS))  # fmt: skip
    for sql in (sizes, flow, members):
        # No other table; no column but the table's (and the datasets' own names: audiences, "audience").
        assert set(re.findall(r"\bFROM\s+([\w.]+)", sql)) == {USER_STATUS.full_name}, sql
        read = sql_identifiers(sql.replace(USER_STATUS.full_name, "")) - QUERY_WORDS
        assert read - set(config.audiences) - {"audience"} <= columns, f"reads {read - columns}"
    for name, condition in config.audiences.items():
        assert f"SUM(CASE WHEN ({condition}) THEN 1 ELSE 0 END) AS `{name}`" in sizes, name
        assert f"SELECT '{name}' AS audience, " in members and f"WHERE ({condition})" in members, name
    assert members.count("UNION ALL") == len(config.audiences) - 1
    assert sizes.endswith("WHERE NOT is_partial_period\nGROUP BY cutoff_week")
    assert flow.endswith("WHERE cutoff_week = (SELECT MAX(cutoff_week) FROM gold.user_status_weekly WHERE NOT "
                         "is_partial_period)")  # fmt: skip
    assert "COALESCE(previous_status, '(first week)') AS previous_status" in flow
    # The sizes chart: one series per audience, the sum of its column.
    chart = next(c for c in bundle["charts"].values() if c["slice_name"] == "Audience sizes per week")
    assert [(m["label"], m["sqlExpression"]) for m in chart["params"]["metrics"]] == [
        (name, f"SUM(`{name}`)") for name in config.audiences]  # fmt: skip


def test_audience_sql_follows_conf_and_refuses_unsafe_audiences() -> None:
    config = load_config()
    more = dataclasses.replace(config, audiences={**config.audiences, "big_earners": "miles_earned_in_week > 500"})
    files = "\n".join(builder.render(more, None).values())
    assert "SUM(CASE WHEN (miles_earned_in_week > 500) THEN 1 ELSE 0 END) AS `big_earners`" in files
    assert "SELECT ''big_earners'' AS audience" in files  # in a YAML single-quoted string
    assert builder.stale_files(BUNDLE, more, None), "a new audience makes the committed bundle stale"
    # The same config, the same bundle.
    assert builder.render(config, None) == builder.render(config, None)
    # No audiences: no Audiences dashboard, its datasets or charts; the table stays served.
    none = builder.render(dataclasses.replace(config, audiences={}), None)
    assert "dashboards/Audiences.yaml" not in none and not any("audience" in path for path in none)
    assert f"datasets/heymax_lakehouse/{USER_STATUS.name}.yaml" in none
    for audiences in ({"x": "user_status = 'new' -- a comment"}, {"cutoff_week": "user_status = 'new'"},
                      {"Bad-Name": "user_status = 'new'"}):  # fmt: skip
        with pytest.raises(ConfigError):
            builder.render(dataclasses.replace(config, audiences=audiences), None)


def unwrap_partial_split(expression: str) -> tuple[str, Callable[[str], str]]:
    """The expression with each ``CASE WHEN [NOT] is_partial_period THEN column END`` replaced by
    the column, and that wrapper (the same around every column of one metric: numerator and
    denominator see the same rows)."""
    conditions = {match.group(1) for match in PARTIAL_WRAP.finditer(expression)}
    assert len(conditions) <= 1, f"columns filtered differently: {expression}"
    if not conditions:
        return expression, lambda c: c
    condition = conditions.pop()
    return PARTIAL_WRAP.sub(r"\2", expression), lambda c: f"CASE WHEN {condition} THEN {c} END"


def test_metrics_live_in_gold_tables_not_in_the_bundle(bundle) -> None:
    """No virtual dataset (SQL) but the declared row filters and the audience datasets of conf (their counts are
    conf's conditions, which no gold table holds); every chart metric of a physical gold table is the sum
    of one column (of the rows where a boolean column holds, for a chart's marked points) or a registry rate.

    A rate is the rendering of a RatioMetric the registry declares for the chart's table (with
    the same complete/partial filter around every column), so no ratio is defined in the bundle.
    The bookkeeping tables (ops) hold no metric: their charts count check outcomes and show newest dates.
    """
    virtual = {v.name: v.sql for v in virtual_datasets()}
    for dataset in bundle["datasets"].values():
        assert dataset.get("sql") == virtual.get(dataset["table_name"]), (
            f"{dataset['_path']}: virtual datasets hold metric logic; add a gold table"
        )
    specs = {spec.name: spec for spec in builder.SERVED_TABLES}
    rates_used = set()
    for chart in bundle["charts"].values():
        spec = specs.get(bundle["datasets"][chart["dataset_uuid"]]["table_name"])
        if spec is None or spec.layer != "gold":
            continue
        for metric in chart["params"].get("metrics") or []:
            expression = metric["sqlExpression"]
            bare, wrap = unwrap_partial_split(expression)
            if re.fullmatch(r"SUM\(\w+\)", bare):
                continue
            flagged = re.fullmatch(r"SUM\(CASE WHEN (\w+) THEN (\w+) END\)", bare)
            if flagged:
                assert isinstance(spec.schema[flagged.group(1)].dataType, T.BooleanType), chart["_path"]
                continue
            declared = {m.sql(): m for m in spec.metrics}
            assert bare in declared, f"{chart['_path']}: {expression} is no metric of {spec.full_name} in the registry"
            assert expression == declared[bare].sql(wrap), f"{chart['_path']}: {expression}"
            rates_used.add((spec.name, declared[bare].name))
    assert rates_used, "the rate charts read registry metrics"


def test_datasets_offer_the_registry_metrics_as_saved_metrics(bundle) -> None:
    """Each dataset's saved metrics: COUNT(*) and its table's RatioMetrics, as the registry renders them."""
    datasets = {d["table_name"]: d for d in bundle["datasets"].values()}
    for spec in builder.SERVED_TABLES:
        count, *saved = datasets[spec.name]["metrics"]
        assert (count["metric_name"], count["expression"]) == ("count", "COUNT(*)"), spec.full_name
        assert [(m["metric_name"], m["expression"], m["description"]) for m in saved] == [
            (m.name, m.sql(), m.description) for m in spec.metrics
        ], spec.full_name
        assert all(m["verbose_name"] and not m["metric_type"] for m in saved), spec.full_name
    assert any(spec.metrics for spec in builder.SERVED_TABLES)


def test_every_chart_uses_an_existing_dataset_and_its_columns(bundle) -> None:
    for chart in bundle["charts"].values():
        dataset = bundle["datasets"].get(chart["dataset_uuid"])
        assert dataset is not None, f"{chart['_path']}: dataset {chart['dataset_uuid']} missing"
        params = chart["params"]
        assert params["viz_type"] == chart["viz_type"] in RENDERING_VIZ_TYPES, chart["_path"]
        missing = chart_columns(params) - set(dataset_columns(dataset))
        assert not missing, f"{chart['_path']}: columns not in {dataset['table_name']}: {missing}"
        assert params.get("metrics") or (params.get("query_mode") == "raw" and params["all_columns"]), chart["_path"]


def test_temporal_x_axes_are_date_columns_with_a_day_grain(bundle) -> None:
    for chart in bundle["charts"].values():
        params = chart["params"]
        assert params.get("time_grain_sqla") not in WEEK_GRAINS, chart["_path"]
        x_axis = params.get("x_axis")
        if x_axis is None:
            continue
        column = dataset_columns(bundle["datasets"][chart["dataset_uuid"]])[x_axis]
        if column["is_dttm"]:
            assert params["time_grain_sqla"] == "P1D", chart["_path"]
            assert params["temporal_columns_lookup"] == {x_axis: True}, chart["_path"]
        else:
            assert "time_grain_sqla" not in params, chart["_path"]


def test_saved_query_context_matches_the_params(bundle) -> None:
    """GET /api/v1/chart/<id>/data/ runs the saved query context, not the params."""
    for chart in bundle["charts"].values():
        params = chart["params"]
        query_context = json.loads(chart["query_context"])
        assert query_context["form_data"] == params, chart["_path"]
        assert query_context["datasource"]["type"] == "table"
        columns = set(dataset_columns(bundle["datasets"][chart["dataset_uuid"]]))
        for query in query_context["queries"]:
            labels = [m["label"] for m in query.get("metrics") or []]
            assert labels == [m["label"] for m in params.get("metrics") or []], chart["_path"]
            for column in query["columns"]:
                names = {column} if isinstance(column, str) else sql_identifiers(column["sqlExpression"])
                assert names <= columns, f"{chart['_path']}: query column {column}"
            for flt in query["filters"]:
                assert flt["col"] in columns, f"{chart['_path']}: filter on {flt['col']}"
            where = query["extras"].get("where") or ""
            assert sql_identifiers(where) <= columns, f"{chart['_path']}: {where}"


def chart_nodes(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in dashboard["position"].values() if isinstance(n, dict) and n["type"] == "CHART"]


def test_dashboard_positions_link_existing_charts(bundle) -> None:
    on_a_dashboard = set()
    for dashboard in bundle["dashboards"].values():
        position = dashboard["position"]
        nodes = chart_nodes(dashboard)
        assert nodes, dashboard["_path"]
        chart_ids = [n["meta"]["chartId"] for n in nodes]
        # The importer maps old chartIds to new ones through this table: they must be unique.
        assert len(set(chart_ids)) == len(chart_ids), dashboard["_path"]
        for node in nodes:
            uuid_ = node["meta"].get("uuid")
            assert uuid_ in bundle["charts"], f"{dashboard['_path']}: {node['id']} -> {uuid_}"
            assert node["meta"]["sliceName"] == bundle["charts"][uuid_]["slice_name"]
            on_a_dashboard.add(uuid_)
        # The layout is a tree: every child exists and lists its parent.
        for node_id, node in position.items():
            if not isinstance(node, dict):
                continue
            assert node["id"] == node_id
            for child in node.get("children", []):
                assert child in position, f"{dashboard['_path']}: {node_id} -> {child}"
                assert position[child]["parents"][-1] == node_id
            if node["type"] == "ROW":
                widths = [position[child]["meta"]["width"] for child in node["children"]]
                assert sum(widths) <= 12, f"{dashboard['_path']}: {node_id} is wider than the grid"
    assert on_a_dashboard == set(bundle["charts"]), "every chart belongs on a dashboard"


FILTERED_COLUMNS = {
    "data-health": {"grain", "metric", "segment_type", "segment_value"},  # the anomaly series
    "audiences": {"audience", "cutoff_week"},  # the members table
}


def test_native_filters_target_existing_columns_of_the_charts_in_scope(bundle) -> None:
    for dashboard in bundle["dashboards"].values():
        filters = dashboard["metadata"]["native_filter_configuration"]
        targeted = {f["targets"][0]["column"]["name"] for f in filters}
        assert targeted == FILTERED_COLUMNS.get(dashboard["slug"], {"acq_source", "country"}), dashboard["_path"]
        ids = [f["id"] for f in filters]
        assert len(set(ids)) == len(ids)
        for native_filter in filters:
            assert native_filter["id"].startswith("NATIVE_FILTER-")
            assert native_filter["filterType"] == "filter_select"
            # Scope is "all charts" or the charts of one row: a layout path, from which Superset derives
            # chartsInScope on load (a stale chartsInScope from another DB would misdirect the filter).
            (root,) = native_filter["scope"]["rootPath"]
            assert native_filter["scope"]["excluded"] == []
            assert "chartsInScope" not in native_filter
            in_scope = [n for n in chart_nodes(dashboard) if root in n["parents"]]
            assert in_scope, f"{dashboard['_path']}: {native_filter['id']} applies to no chart"
            (target,) = native_filter["targets"]
            dataset = bundle["datasets"].get(target["datasetUuid"])
            assert dataset is not None, f"{dashboard['_path']}: {target['datasetUuid']}"
            column = target["column"]["name"]
            assert column in dataset_columns(dataset)
            # The filter applies by column name to every chart in scope.
            for node in in_scope:
                chart_dataset = bundle["datasets"][bundle["charts"][node["meta"]["uuid"]]["dataset_uuid"]]
                assert column in dataset_columns(chart_dataset), f"{dashboard['_path']}: {node['id']}"
            # A required filter opens with its value (its charts draw one series); a cascade names a filter here.
            required = native_filter["controlValues"]["enableEmptyFilter"]
            values = native_filter["defaultDataMask"]["filterState"].get("value")
            assert bool(values) == required and (not required or not native_filter["controlValues"]["multiSelect"])
            if values:
                assert native_filter["defaultDataMask"]["extraFormData"]["filters"] == [
                    {"col": column, "op": "IN", "val": values}]  # fmt: skip
            assert set(native_filter["cascadeParentIds"]) <= set(ids)


def test_audiences_dashboard_has_its_three_charts_and_member_filters(bundle) -> None:
    config = load_config()
    (dashboard,) = [d for d in bundle["dashboards"].values() if d["slug"] == "audiences"]
    charts = {bundle["charts"][n["meta"]["uuid"]]["slice_name"]: bundle["charts"][n["meta"]["uuid"]]
              for n in chart_nodes(dashboard)}  # fmt: skip
    datasets = bundle["datasets"]
    assert {name: (c["viz_type"], datasets[c["dataset_uuid"]]["table_name"]) for name, c in charts.items()} == {
        "Audience sizes per week": ("echarts_timeseries_line", builder.AUDIENCE_SIZES),
        "Lifecycle flow, latest complete week": ("pivot_table_v2", builder.AUDIENCE_FLOW),
        "Audience members": ("table", builder.AUDIENCE_MEMBERS),
    }
    flow = charts["Lifecycle flow, latest complete week"]["params"]
    assert (flow["groupbyRows"], flow["groupbyColumns"]) == (["previous_status"], ["user_status"])
    members = charts["Audience members"]["params"]
    assert members["all_columns"] == ["audience", *builder.MEMBER_COLUMNS] and members["row_limit"] == 1000
    assert json.dumps(["user_id", True]) in members["order_by_cols"]
    # Counts and the flow on complete weeks; the members of any week (the one chosen), and the description says so.
    assert all("omplete week" in charts[name]["description"]
               for name in ("Audience sizes per week", "Lifecycle flow, latest complete week"))  # fmt: skip
    assert "the week in progress too" in charts["Audience members"]["description"]
    # The audience filter opens on conf's first audience (one, required); the week has no default.
    filters = {f["targets"][0]["column"]["name"]: f for f in dashboard["metadata"]["native_filter_configuration"]}
    assert filters["audience"]["defaultDataMask"]["filterState"]["value"] == [next(iter(config.audiences))]
    assert not filters["cutoff_week"]["defaultDataMask"]["filterState"]
    note = dashboard["position"]["MARKDOWN-note"]["meta"]["code"]
    assert "restricted data" in note and "lakehouse audience list|show|export" in note
    assert all(f"**{name}**" in note for name in config.audiences)


def test_superset_is_granted_restricted_tables_by_name_only_where_a_dashboard_reads_them(bundle) -> None:
    """gold.user_status_weekly (the Audiences dashboard) is granted explicitly; no other restricted table is,
    since no dashboard reads one (the Data health dashboard reads no gold.rpt_negative_balance_users)."""
    from lakehouse.serving.thrift.grants import Grant, restricted_tables

    granted = {grant.object: grant for grant in builder.served_grants()}
    assert granted[USER_STATUS.full_name] == Grant(USER_STATUS.full_name)
    read = {spec.full_name for spec in builder.SERVED_TABLES} | {v.spec.full_name for v in virtual_datasets()}
    assert set(granted) == {spec.full_name for spec in builder.SERVED_TABLES}
    assert set(granted) & restricted_tables() == read & restricted_tables() == {USER_STATUS.full_name}
    assert "gold.rpt_negative_balance_users" in restricted_tables() and "gold.rpt_negative_balance_users" not in granted
    assert not any(grant.is_wildcard for grant in granted.values())


def test_sql_identifier_extraction_finds_columns_only() -> None:
    expression = (
        "(SUM(CASE WHEN NOT is_partial_period THEN new_users END) + SUM(x.y))"
        " / NULLIF(SUM(churned_users), 0) AND period_type = 'daily stuff'"
    )
    assert sql_identifiers(expression) == {
        "is_partial_period",
        "new_users",
        "churned_users",
        "period_type",
    }


def test_bundle_is_what_the_builder_writes_from_the_registry_and_config() -> None:
    """Everything but the charts' query contexts, which need Superset's venv (next test)."""
    stale = builder.stale_files(BUNDLE, load_config(), qf=None)
    assert not stale, f"run python -m lakehouse.serving.superset.bundle: {stale} differ"


def test_saved_query_contexts_are_what_superset_builds() -> None:
    """Checked at run time, not collection time: in a fresh checkout the serving e2e test (which
    runs first) installs the Superset virtualenv this needs."""
    if query_functions_path() is None:
        pytest.skip("needs .cache/superset-venv (scripts/superset_up.sh)")
    stale = builder.stale_files(BUNDLE, load_config(), qf=load_query_functions())
    assert not stale, f"run python -m lakehouse.serving.superset.bundle: {stale} differ ({sys.executable})"


def test_week_labels_follow_week_start() -> None:
    sunday = "\n".join(builder.render(load_config(overrides={"week_start": "sunday"}), None).values())
    monday = "\n".join(builder.render(load_config(overrides={"week_start": "monday"}), None).values())
    assert "Sunday-Saturday" in sunday and "Weeks start on Sunday" in sunday
    assert "Monday-Sunday" in monday and "Weeks start on Monday" in monday
    assert "Sunday-Saturday" not in monday and "on Sunday" not in monday
    assert "Monday" not in sunday


def test_no_python_under_conf() -> None:
    assert not sorted((REPO_ROOT / "conf").rglob("*.py")), "code belongs in the lakehouse package"


@pytest.mark.parametrize("module", ["bootstrap.py", "superset_config.py"])
def test_modules_run_by_superset_import_no_lakehouse_code(module: str) -> None:
    """They run in Superset's venv, which has no pyspark (the registry's import) and no lakehouse.
    Superset's own dependencies (flask, werkzeug, sqlalchemy) are there."""
    allowed = {"argparse", "logging", "os", "sys", "pathlib", "typing", "__future__", "yaml", "flask", "superset",
               "werkzeug", "sqlalchemy"}  # fmt: skip
    tree = ast.parse((SUPERSET_CODE / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= allowed, f"{module} imports {imported - allowed}"


def test_superset_config_week_grains_follow_the_lakehouse_week_start(monkeypatch) -> None:
    monkeypatch.setenv("SUPERSET_SECRET_KEY", "test")
    grains = {}
    for week_start in ("sunday", "monday"):
        monkeypatch.setenv("LAKEHOUSE_WEEK_START", week_start)
        settings = runpy.run_path(str(SUPERSET_CODE / "superset_config.py"))
        grains[week_start] = settings["TIME_GRAIN_ADDON_EXPRESSIONS"]["hive"]
    # "Week" is the configured week; the explicitly named weeks do not depend on it.
    assert grains["sunday"]["P1W"] == grains["sunday"]["1969-12-28T00:00:00Z/P1W"]
    assert grains["monday"]["P1W"] == grains["monday"]["1969-12-29T00:00:00Z/P1W"]
    assert grains["sunday"]["P1W"] != grains["monday"]["P1W"]
    for key in ("1969-12-28T00:00:00Z/P1W", "1969-12-29T00:00:00Z/P1W", "P1W/1970-01-03T00:00:00Z"):
        assert grains["sunday"][key] == grains["monday"][key]
    # Spark 3+ rejects the Hive spec's 'u' day-of-week pattern.
    assert all("'u'" not in expression for expression in grains["sunday"].values())
    monkeypatch.delenv("LAKEHOUSE_WEEK_START")
    with pytest.raises(RuntimeError, match="LAKEHOUSE_WEEK_START"):
        runpy.run_path(str(SUPERSET_CODE / "superset_config.py"))
