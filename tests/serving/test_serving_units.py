"""Fast checks of the serving helpers (no JVM, no server): the Thrift server's command line,
its state handling, and scripts/sql.sh's statement splitting and table rendering."""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from lakehouse.config import load_config
from lakehouse.serving import thrift
from lakehouse.serving.sql import render_table, split_statements


def test_server_command_serves_delta_from_an_in_memory_catalog_on_loopback(tmp_path: Path) -> None:
    config = load_config(env="local", overrides={"paths.warehouse": str(tmp_path / "wh"), "timezone": "Asia/Singapore"})
    cmd = thrift.server_command(config, "127.0.0.1", 10123, tmp_path, driver_memory="1g")
    confs = dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "--conf")
    hiveconfs = dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "--hiveconf")
    assert cmd[cmd.index("--class") + 1] == thrift.THRIFT_CLASS
    assert "spark-internal" in cmd
    assert confs["spark.sql.catalogImplementation"] == "in-memory"
    assert confs["spark.sql.session.timeZone"] == "Asia/Singapore"
    assert confs["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert confs["spark.driver.memory"] == "1g"
    # Delta's jars on the driver class path, or the server's sessions cannot find the data source.
    assert confs["spark.driver.extraClassPath"] == confs["spark.jars"].replace(",", os.pathsep)
    assert confs[thrift.STATE_MARKER_CONF] == str(tmp_path)
    assert hiveconfs["hive.server2.thrift.bind.host"] == "127.0.0.1"
    assert hiveconfs["hive.server2.thrift.port"] == "10123"


def test_a_pid_file_of_another_process_is_not_a_running_server(tmp_path: Path) -> None:
    (tmp_path / "thrift.pid").write_text(f"{os.getpid()}\n")  # this pytest process: alive, not ours
    (tmp_path / "thrift.json").write_text(json.dumps({"pid": os.getpid()}))
    assert thrift.running_server(tmp_path) is None
    assert thrift.stop(tmp_path) == 0  # says "not running", removes the stale files
    assert not (tmp_path / "thrift.pid").exists()
    assert thrift.status(tmp_path) == 3


def test_table_existence_is_the_delta_log(tmp_path: Path) -> None:
    assert thrift.table_exists_locally(str(tmp_path / "t")) is False
    (tmp_path / "t" / "_delta_log").mkdir(parents=True)
    assert thrift.table_exists_locally(str(tmp_path / "t")) is False
    (tmp_path / "t" / "_delta_log" / "00000000000000000000.json").write_text("{}")
    assert thrift.table_exists_locally(str(tmp_path / "t")) is True
    assert thrift.table_exists_locally("s3a://bucket/warehouse/gold/t") is None


def test_split_statements_ignores_semicolons_in_quotes() -> None:
    text = "SELECT ';' AS a; SELECT `x;y` FROM t ;\n; SELECT \"q;\""
    assert split_statements(text) == ["SELECT ';' AS a", "SELECT `x;y` FROM t", 'SELECT "q;"']


def test_render_table_aligns_numbers_right_and_shows_nulls() -> None:
    out = render_table(
        ["day", "users", "miles", "note"],
        [(date(2025, 1, 5), 12, Decimal("1.50"), None), (datetime(2025, 1, 6, 7, 8, 9), 3, None, "a\nb")],
        truncated=True,
    )
    lines = out.splitlines()
    assert lines[0] == "day                 | users | miles | note"
    assert lines[2] == "2025-01-05          |    12 |  1.50 | NULL"
    assert lines[3] == "2025-01-06 07:08:09 |     3 |  NULL | a\\nb"
    assert lines[-1].startswith("(2 rows, more not shown")
    assert render_table([], []) == "OK"
