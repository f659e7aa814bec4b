"""Fast checks of the serving helpers (no JVM, no server): the Thrift server's command line and
state handling, table registration against a fake executor, Superset's settings and credentials,
and scripts/sql.sh's statement splitting and table rendering."""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lakehouse.config import load_config
from lakehouse.registry import GOLD_ACTIVE_USER, GOLD_ENGAGEMENT, SILVER_EVENTS, TABLES
from lakehouse.serving import catalog
from lakehouse.serving.sql import render_table, split_statements
from lakehouse.serving.superset import service
from lakehouse.serving.thrift import auth, server, server_jar


def test_server_command_serves_delta_read_only_with_passwords_on_loopback(tmp_path: Path) -> None:
    config = load_config(env="local", overrides={"paths.warehouse": str(tmp_path / "wh"), "timezone": "Asia/Singapore"})
    jar = tmp_path / "lakehouse-thrift.jar"
    cmd = server.server_command(config, "127.0.0.1", 10123, tmp_path, driver_memory="1g", server_jar=jar)
    confs = dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "--conf")
    hiveconfs = dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "--hiveconf")
    assert cmd[cmd.index("--class") + 1] == server.THRIFT_CLASS == server_jar.MAIN_CLASS
    assert str(jar) in cmd  # the primary resource: our main class
    assert confs["spark.sql.catalogImplementation"] == "in-memory"
    assert confs["spark.sql.session.timeZone"] == "Asia/Singapore"
    # Delta's extension and the read-only guard, in every session (a static setting).
    assert confs["spark.sql.extensions"] == f"io.delta.sql.DeltaSparkSessionExtension,{server_jar.GUARD_EXTENSION}"
    assert confs["spark.driver.memory"] == "1g"
    # Delta's jars and ours on the driver class path, or the server's sessions cannot find them.
    assert confs["spark.driver.extraClassPath"] == os.pathsep.join([*confs["spark.jars"].split(","), str(jar)])
    assert f"-Dlakehouse.thrift.users={tmp_path / 'auth' / 'users'}" in confs["spark.driver.extraJavaOptions"]
    assert confs[server.STATE_MARKER_CONF] == str(tmp_path)
    assert hiveconfs["hive.server2.thrift.bind.host"] == "127.0.0.1"
    assert hiveconfs["hive.server2.thrift.port"] == "10123"
    assert hiveconfs["hive.server2.authentication"] == "CUSTOM"
    assert hiveconfs["hive.server2.custom.authentication.class"] == server_jar.AUTHENTICATOR


def test_the_server_gets_the_full_jit_after_the_short_jobs_flags() -> None:
    from lakehouse.jvm import JIT_OPTIONS
    from lakehouse.session import FULL_JIT

    env = server.server_environment({"SPARK_SUBMIT_OPTS": "-Dcaller=1"})
    # spark-env.sh writes its own flags (C1-only) first, then the caller's: the last JIT flag wins.
    assert env["SPARK_SUBMIT_OPTS"].split() == ["-Dcaller=1", FULL_JIT]
    assert FULL_JIT.startswith("-XX:TieredStopAtLevel=") and FULL_JIT not in JIT_OPTIONS
    assert server.server_environment({})["SPARK_SUBMIT_OPTS"] == FULL_JIT
    assert server.server_environment({})["SPARK_LOCAL_IP"] == "127.0.0.1"


def test_credentials_are_generated_once_private_and_hashed(tmp_path: Path) -> None:
    first = auth.ensure_credentials(tmp_path)
    assert set(first) == set(auth.SERVICE_USERS)
    assert len({c.password for c in first.values()}) == len(first)  # random, not a default
    assert auth.ensure_credentials(tmp_path) == first  # idempotent
    users = auth.users_file(tmp_path)
    for path in (users, auth.clients_file(tmp_path)):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert auth.auth_dir(tmp_path).stat().st_mode & 0o777 == 0o700
    text = users.read_text()
    assert all(c.password not in text for c in first.values())
    hashes = auth.read_users(tmp_path)
    assert all(auth.verify_password(c.password, hashes[c.user]) for c in first.values())
    assert not auth.verify_password(first["superset"].password + "x", hashes["superset"])
    assert auth.service_credentials(tmp_path, "superset") == first["superset"]


def test_add_and_remove_an_analyst(tmp_path: Path) -> None:
    auth.ensure_credentials(tmp_path)
    analyst = auth.add_user(tmp_path, "analyst")
    assert auth.verify_password(analyst.password, auth.read_users(tmp_path)["analyst"])
    given = auth.add_user(tmp_path, "analyst", "chosen-password")  # a reset
    assert given.password == "chosen-password"
    assert not auth.verify_password(analyst.password, auth.read_users(tmp_path)["analyst"])
    assert auth.remove_user(tmp_path, "analyst") and "analyst" not in auth.read_users(tmp_path)
    assert not auth.remove_user(tmp_path, "analyst")
    with pytest.raises(auth.AuthError, match="cannot be removed"):
        auth.remove_user(tmp_path, "lakehouse")
    with pytest.raises(auth.AuthError, match="invalid user name"):
        auth.add_user(tmp_path, "bad:name")
    # A service user whose hash no longer matches its kept password gets a new one.
    hand_edited = auth.read_users(tmp_path)
    hand_edited["superset"] = auth.hash_password("something else")
    auth._write_users(tmp_path, hand_edited)
    fixed = auth.ensure_credentials(tmp_path)["superset"]
    assert auth.verify_password(fixed.password, auth.read_users(tmp_path)["superset"])


def test_the_hash_format_is_pbkdf2_sha256() -> None:
    import base64
    import hashlib

    encoded = auth.hash_password("pw", salt=b"0123456789abcdef", iterations=1000)
    scheme, iterations, salt, digest = encoded.split(":")
    assert (scheme, iterations, base64.b64decode(salt)) == ("pbkdf2_sha256", "1000", b"0123456789abcdef")
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac("sha256", b"pw", b"0123456789abcdef", 1000, dklen=32)


def test_a_pid_file_of_another_process_is_not_a_running_server(tmp_path: Path) -> None:
    (tmp_path / "thrift.pid").write_text(f"{os.getpid()}\n")  # this pytest process: alive, not ours
    (tmp_path / "thrift.json").write_text(json.dumps({"pid": os.getpid()}))
    assert server.running_server(tmp_path) is None
    assert server.stop(tmp_path) == 0  # says "not running", removes the stale files
    assert not (tmp_path / "thrift.pid").exists()
    assert server.status(tmp_path) == 3


def test_table_existence_is_the_delta_log(tmp_path: Path) -> None:
    assert catalog.table_exists_locally(str(tmp_path / "t")) is False
    (tmp_path / "t" / "_delta_log").mkdir(parents=True)
    assert catalog.table_exists_locally(str(tmp_path / "t")) is False
    (tmp_path / "t" / "_delta_log" / "00000000000000000000.json").write_text("{}")
    assert catalog.table_exists_locally(str(tmp_path / "t")) is True
    assert catalog.table_exists_locally("s3a://bucket/warehouse/gold/t") is None


def _make_delta_log(config, spec) -> None:
    log_dir = Path(spec.path(config)) / "_delta_log"
    log_dir.mkdir(parents=True)
    (log_dir / "00000000000000000000.json").write_text("{}")


class FakeCatalog:
    """Records statements; knows the tables listed in ``present``."""

    def __init__(self, present: dict[str, list[str]], fail_on: str | None = None) -> None:
        self.present, self.fail_on, self.statements = present, fail_on, []

    def __call__(self, statement: str) -> list[tuple]:
        self.statements.append(statement)
        if self.fail_on and self.fail_on in statement:
            raise RuntimeError("boom")
        if statement.startswith("SHOW TABLES IN "):
            layer = statement.removeprefix("SHOW TABLES IN ")
            return [(layer, name, False) for name in self.present.get(layer, [])]
        return []


def test_registration_creates_existing_tables_only_and_skips_registered_ones(tmp_path: Path) -> None:
    config = load_config(env="local", overrides={"paths.warehouse": str(tmp_path / "wh's")})
    for spec in (GOLD_ACTIVE_USER, GOLD_ENGAGEMENT, SILVER_EVENTS):
        _make_delta_log(config, spec)
    fake = FakeCatalog(present={"gold": ["agg_active_user"]})
    result = catalog.register_tables(fake, config)
    assert result.present == ["gold.agg_active_user"]
    assert sorted(result.new) == ["gold.agg_engagement_daily", "silver.fct_events"]
    assert sorted(result.missing) == sorted({s.full_name for s in TABLES} - {*result.new, *result.present})
    creates = [s for s in fake.statements if s.startswith("CREATE TABLE")]

    # The path is a SQL string literal even with a quote in it (the warehouse is "wh's").
    def literal(spec) -> str:
        return "'" + spec.path(config).replace("'", "\\'") + "'"

    assert creates == [
        f"CREATE TABLE IF NOT EXISTS silver.fct_events USING DELTA LOCATION {literal(SILVER_EVENTS)}",
        f"CREATE TABLE IF NOT EXISTS gold.agg_engagement_daily USING DELTA LOCATION {literal(GOLD_ENGAGEMENT)}",
    ]
    layers = {s.layer for s in TABLES}
    assert {f"CREATE DATABASE IF NOT EXISTS {layer}" for layer in layers} <= set(fake.statements)
    # Idempotent: once registered, nothing is created again.
    again = catalog.register_tables(FakeCatalog(present={"gold": ["agg_active_user", "agg_engagement_daily"],
                                                         "silver": ["fct_events"]}), config)  # fmt: skip
    assert not again.new and sorted(again.served) == sorted(result.served)


def test_registration_of_a_remote_table_that_fails_counts_as_missing_and_a_local_one_raises(tmp_path: Path) -> None:
    remote = load_config(env="local", overrides={"paths.warehouse": "s3a://bucket/wh"})
    skipped = []
    fake = FakeCatalog(present={}, fail_on="gold.agg_engagement_daily")
    result = catalog.register_tables(fake, remote, on_skip=lambda table, message: skipped.append((table, message)))
    assert result.missing == ["gold.agg_engagement_daily"] and skipped == [("gold.agg_engagement_daily", "boom")]
    assert len(result.new) == len(TABLES) - 1

    local = load_config(env="local", overrides={"paths.warehouse": str(tmp_path / "wh")})
    _make_delta_log(local, GOLD_ENGAGEMENT)
    with pytest.raises(catalog.RegistrationError, match=r"gold\.agg_engagement_daily: boom"):
        catalog.register_tables(FakeCatalog(present={}, fail_on="gold.agg_engagement_daily"), local)


def test_superset_settings_come_from_the_serving_config_and_the_environment_wins(tmp_path) -> None:
    config = load_config(
        overrides={"serving.superset_host": "127.0.0.2", "serving.superset_port": 18088, "week_start": "monday"}
    )
    settings = service.Settings.from_config(config, {})
    assert (settings.host, settings.port, settings.week_start) == ("127.0.0.2", 18088, "monday")
    assert (settings.thrift_host, settings.thrift_port) == (config.serving.thrift_host, config.serving.thrift_port)
    assert settings.thrift_user == "superset" and settings.url == "http://127.0.0.2:18088"
    given = service.Settings.from_config(config, {"SUPERSET_PORT": "18090", "THRIFT_STATE_DIR": str(tmp_path)})
    assert (given.port, given.thrift_state_dir) == (18090, tmp_path.resolve())


def test_superset_credentials_are_generated_once_private_and_the_environment_is_never_written(tmp_path) -> None:
    layout = service.Layout(tmp_path)
    first = service.credentials(layout, {"SUPERSET_ADMIN_USER": "ops"})
    assert first["SUPERSET_ADMIN_USER"] == "ops" and len(first["SUPERSET_ADMIN_PASSWORD"]) >= 20
    assert layout.credentials.stat().st_mode & 0o777 == 0o600
    stored = service.read_credentials(layout.credentials)
    assert "SUPERSET_ADMIN_USER" not in stored  # from the environment: never on disk
    assert stored["SUPERSET_ADMIN_PASSWORD"] == first["SUPERSET_ADMIN_PASSWORD"]
    again = service.credentials(layout, {"SUPERSET_ADMIN_PASSWORD": "given"})
    assert again["SUPERSET_SECRET_KEY"] == first["SUPERSET_SECRET_KEY"] and again["SUPERSET_ADMIN_PASSWORD"] == "given"
    assert again["SUPERSET_ADMIN_USER"] == "superset_admin"  # generated now, kept from here on
    assert service.read_credentials(layout.credentials)["SUPERSET_ADMIN_PASSWORD"] == first["SUPERSET_ADMIN_PASSWORD"]


def test_superset_down_stops_nothing_it_did_not_start(tmp_path) -> None:
    layout = service.Layout(tmp_path)
    layout.cache.mkdir(parents=True)
    layout.state.pid_file(service.SERVICE).write_text(f"{os.getpid()}\n")  # alive, but not gunicorn
    assert service.running(layout) is None
    assert service.down(layout) == 0
    assert not layout.state.pid_file(service.SERVICE).exists()


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
