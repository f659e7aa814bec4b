"""Config: strict keys, typed values, overlays, overrides, and messages that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.config import ConfigError, load_config, parse_override
from lakehouse.job_catalog import JOB_INDEX
from tests.conftest import REPO_ROOT


def test_repo_config_loads_with_defaults_and_local_overlay():
    config = load_config(env="local")
    assert config.timezone == "UTC" and config.week_start == "sunday"
    assert config.gold.lookback_weeks == 4 and config.gold.max_week_offset == 16
    assert config.paths.input == str(REPO_ROOT / "data" / "sample")
    assert config.table_path("gold", "agg_user_retention").endswith("data/warehouse/gold/agg_user_retention")
    assert config.dag[0] == "bronze_fct_event_stream" and config.dag[-1] == "gold_data_quality_report"


def test_anomaly_section_is_typed_with_the_contract_defaults():
    anomaly = load_config(env="local").anomaly
    assert (anomaly.training_periods, anomaly.min_training_periods, anomaly.alert_days, anomaly.freshness_hours) == (
        8, 4, 7, 36,
    )  # fmt: skip
    assert (anomaly.sensitivity, anomaly.min_expected) == (4.5, 5.0)
    assert isinstance(anomaly.min_expected, float)  # written 5 in the YAML: an int is accepted where a float is due
    changed = load_config(overrides=["anomaly.training_periods=6", "anomaly.min_training_periods=6"]).anomaly
    assert (changed.training_periods, changed.min_training_periods) == (6, 6)
    dag = load_config().dag
    assert dag.index("gold_agg_metric_anomalies") < dag.index("gold_data_quality_report")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["gold.lookback_wekks=3"], "unknown config key 'gold.lookback_wekks'"),
        (["gold.lookback_weeks=four"], "config key 'gold.lookback_weeks' must be int"),
        (["gold.lookback_weeks=0"], "config key 'gold.lookback_weeks' must be >= 1"),
        (["week_start=tuesday"], "config key 'week_start' must be one of"),
        (["bronze.max_quarantine_rate=2"], "config key 'bronze.max_quarantine_rate' must be between 0 and 1"),
        (["bronze.rule_severity={country_allowed: info}"], "'bronze.rule_severity.country_allowed' must be"),
        (["spark.shuffle_partitions=true"], "config key 'spark.shuffle_partitions' must be int"),
        (["serving.thrift_port=70000"], "config key 'serving.thrift_port' must be a TCP port"),
        (["anomaly.sensitivty=3"], "unknown config key 'anomaly.sensitivty'"),
        (["anomaly.training_periods=eight"], "config key 'anomaly.training_periods' must be int"),
        (["anomaly.training_periods=1"], "config key 'anomaly.training_periods' must be >= 2"),
        (["anomaly.min_training_periods=9"], "config key 'anomaly.min_training_periods' must be between 2 and"),
        (["anomaly.min_training_periods=1"], "config key 'anomaly.min_training_periods' must be between 2 and"),
        (["anomaly.sensitivity=0"], "config key 'anomaly.sensitivity' must be > 0"),
        (["anomaly.sensitivity=high"], "config key 'anomaly.sensitivity' must be float"),
        (["anomaly.min_expected=0"], "config key 'anomaly.min_expected' must be > 0"),
        (["anomaly.alert_days=0"], "config key 'anomaly.alert_days' must be >= 1"),
        (["anomaly.freshness_hours=0"], "config key 'anomaly.freshness_hours' must be >= 1"),
        (["anomaly.freshness_hours=true"], "config key 'anomaly.freshness_hours' must be int"),
        (["serving.tls=yes please"], "config key 'serving.tls' must be bool"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as excinfo:
        load_config(overrides=overrides)
    assert message in str(excinfo.value)


def test_a_dag_naming_an_unknown_job_stops_every_entry_point():
    from lakehouse.cli import main as lakehouse
    from lakehouse.job_catalog import JOB_INDEX, check_dag
    from lakehouse.job_runtime import EXIT_USAGE
    from lakehouse.launcher import run_main as run_pipeline

    check_dag(load_config())  # the shipped DAG names real jobs
    bad = load_config(overrides=["dag=[bronze_fct_event_stream, no_such_job]"])
    with pytest.raises(ConfigError, match="config key 'dag' names unknown job 'no_such_job'"):
        check_dag(bad)
    # Both commands that read the DAG refuse it before starting Spark.
    assert run_pipeline(["--set", "dag=[no_such_job]", "--no-summary"]) == EXIT_USAGE
    assert lakehouse(["jobs", "--set", "dag=[no_such_job]"]) == EXIT_USAGE
    assert "gold_agg_engagement_daily" in JOB_INDEX


def test_contradictory_job_arguments_exit_2_before_spark_starts():
    from lakehouse.job_catalog import job
    from lakehouse.job_runtime import EXIT_USAGE
    from lakehouse.launcher import job_main

    dim_users = job("silver_dim_users")
    both = ["--ds", "2025-01-01", "--start-date", "2025-01-01", "--end-date", "2025-01-02"]
    assert job_main(dim_users, both) == EXIT_USAGE
    assert job_main(dim_users, ["--start-date", "2025-01-01"]) == EXIT_USAGE
    assert job_main(dim_users, ["--start-date", "2025-01-03", "--end-date", "2025-01-02"]) == EXIT_USAGE
    assert job_main(dim_users, ["--set", "gold.no_such_key=1"]) == EXIT_USAGE


def test_overlay_and_overrides_layer_in_order(tmp_path: Path):
    conf_dir = tmp_path / "conf"
    (conf_dir / "env").mkdir(parents=True)
    (conf_dir / "lakehouse.yaml").write_text(
        "paths: {input: in, warehouse: wh, jar_cache: jars}\ngold: {lookback_weeks: 4}\n"
    )
    (conf_dir / "env" / "cluster.yaml").write_text(
        "paths: {warehouse: 's3a://bucket/wh'}\ngold: {lookback_weeks: 6, max_week_offset: 8}\n"
    )
    config = load_config(conf_dir / "lakehouse.yaml", env="cluster", overrides=["gold.lookback_weeks=5"])
    assert config.paths.warehouse == "s3a://bucket/wh"  # URIs are kept as written
    assert config.paths.input == str(tmp_path / "in")  # relative paths resolve against the project root
    assert (config.gold.lookback_weeks, config.gold.max_week_offset) == (5, 8)
    with pytest.raises(ConfigError, match="environment overlay 'nope' not found"):
        load_config(conf_dir / "lakehouse.yaml", env="nope")


def test_missing_required_and_bad_yaml(tmp_path: Path):
    (tmp_path / "conf").mkdir()
    bad = tmp_path / "conf" / "a.yaml"
    bad.write_text("timezone: UTC\n")
    with pytest.raises(ConfigError, match="config key 'paths' is required"):
        load_config(bad, env="")  # "" = no overlay, whatever LAKEHOUSE_ENV says
    bad.write_text("paths: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, env="")


def test_parse_override():
    assert parse_override("gold.lookback_weeks=6") == ("gold.lookback_weeks", 6)
    assert parse_override("paths.warehouse=s3a://b/w") == ("paths.warehouse", "s3a://b/w")
    with pytest.raises(ConfigError, match=r"dotted\.key=value"):
        parse_override("gold.lookback_weeks")


@pytest.mark.parametrize("name", sorted(JOB_INDEX))
def test_each_job_has_an_entry_point_that_runs_through_the_launcher(name, monkeypatch, capsys):
    """``spark-submit jobs/<name>.py`` exists for every job and goes through the launcher (its ``--help``)."""
    import runpy

    from lakehouse import launcher

    path = REPO_ROOT / "jobs" / f"{name}.py"
    assert path.is_file(), f"jobs/{name}.py missing"
    called = []
    real = launcher.job_main
    monkeypatch.setattr(
        launcher, "job_main", lambda selected, *a, **k: called.append(selected.name) or real(selected, *a, **k)
    )
    monkeypatch.setattr("sys.argv", [str(path), "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(path), run_name="__main__")
    assert exited.value.code == 0
    assert called == [name]
    assert name in capsys.readouterr().out
