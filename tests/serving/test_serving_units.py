"""Fast checks of the serving helpers (no JVM, no server): the Thrift server's command line and
state handling, table registration against a fake executor, Superset's settings and credentials,
and scripts/sql.sh's statement splitting and table rendering."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lakehouse.config import load_config
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.gold.tables.agg_engagement_daily import SPEC as GOLD_ENGAGEMENT
from lakehouse.registry import SILVER_EVENTS
from lakehouse.serving import catalog
from lakehouse.serving.sql import render_table, split_statements
from lakehouse.serving.superset import service
from lakehouse.serving.thrift import auth, grants, server, server_jar, tls
from lakehouse.tables import TABLES


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
    java_options = confs["spark.driver.extraJavaOptions"].split()
    assert f"-Dlakehouse.thrift.users={tmp_path / 'auth' / 'users'}" in java_options
    assert f"-Dlakehouse.thrift.grants={tmp_path / 'auth' / 'grants.json'}" in java_options
    assert confs[server.STATE_MARKER_CONF] == str(tmp_path)
    assert hiveconfs["hive.server2.thrift.bind.host"] == "127.0.0.1"
    assert hiveconfs["hive.server2.authentication"] == "CUSTOM"
    assert hiveconfs["hive.server2.custom.authentication.class"] == server_jar.AUTHENTICATOR
    # Nobody logs in as someone else: the grants are the logged-in user's.
    assert hiveconfs["hive.server2.allow.user.substitution"] == "false"
    # TLS by default: HTTP transport on the port, the keystore's password read from its file by our main class.
    assert config.serving.tls is True
    assert hiveconfs["hive.server2.transport.mode"] == "http"
    assert hiveconfs["hive.server2.thrift.http.port"] == "10123" and "hive.server2.thrift.port" not in hiveconfs
    assert hiveconfs["hive.server2.use.SSL"] == "true"
    assert hiveconfs["hive.server2.keystore.path"] == str(tmp_path / "tls" / "server.p12")
    assert "TLSv1.1" in hiveconfs["hive.ssl.protocol.blacklist"].split(",")
    assert f"-Dlakehouse.thrift.keystorePasswordFile={tmp_path / 'tls' / 'keystore.password'}" in java_options
    assert not any("keystore.password=" in arg for arg in cmd)

    plain = load_config(env="local", overrides={"serving.tls": False})
    cmd = server.server_command(plain, "127.0.0.1", 10123, tmp_path, server_jar=jar)
    hiveconfs = dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "--hiveconf")
    assert hiveconfs["hive.server2.transport.mode"] == "binary" and hiveconfs["hive.server2.thrift.port"] == "10123"
    assert "hive.server2.use.SSL" not in hiveconfs and "keystorePasswordFile" not in " ".join(cmd)


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


# ------------------------------------------------------------------------------------------
# Grants: resolution, the file, the commands
# ------------------------------------------------------------------------------------------

GRANTS = {
    "version": 1,
    "users": {
        "maria": [{"object": "gold.*"}],
        "finance": [
            {"object": "gold.*"},
            {"object": "gold.agg_miles_weekly", "columns": ["week_start", "miles_earned"]},
            {"object": "silver.dim_users", "columns": ["user_id", "Country"], "where": "country = 'SG'"},
        ],
        "self": [{"object": "silver.fct_events", "where": "user_id = current_user()"}],
        "nothing": [],
        "crm": [{"object": "gold.*"}, {"object": "gold.user_status_weekly", "columns": ["user_id", "user_status"]}],
    },
}

#: (user, table) -> (columns or "*", where or "") or None: not granted.
EXPECTED = {
    ("maria", "gold.agg_active_user"): ("*", ""),  # the layer's wildcard
    ("maria", "GOLD.Agg_Active_User"): ("*", ""),  # names are case-insensitive, as in Spark
    ("maria", "silver.dim_users"): None,  # gold.* says nothing about silver
    ("finance", "gold.agg_active_user"): ("*", ""),
    ("finance", "gold.agg_miles_weekly"): ("week_start,miles_earned", ""),  # the table's own grant wins
    ("finance", "silver.dim_users"): ("user_id,country", "country = 'SG'"),
    ("finance", "silver.fct_events"): None,
    ("self", "silver.fct_events"): ("*", "user_id = current_user()"),
    ("nothing", "gold.agg_active_user"): None,  # a user with no grant reads nothing
    ("stranger", "gold.agg_active_user"): None,  # unknown user
    # Restricted tables (they hold user ids) are granted by name only: gold.* does not include them.
    ("maria", "gold.user_status_weekly"): None,
    ("maria", "gold.rpt_negative_balance_users"): None,
    ("crm", "gold.user_status_weekly"): ("user_id,user_status", ""),
    ("crm", "gold.rpt_negative_balance_users"): None,
    ("crm", "gold.agg_user_lifecycle_weekly"): ("*", ""),
}

MALFORMED = {
    "not JSON": ('{"users": {"maria": [{"object": "gold.*"},]}}', "not valid JSON"),
    "duplicate key": ('{"users": {"maria": [], "maria": []}}', "duplicate"),
    "no users": ('{"grants": {}}', 'unknown key "grants"'),
    "bad object": ('{"users": {"maria": [{"object": "gold"}]}}', 'must be "layer.table" or "layer.*"'),
    "columns on a wildcard": ('{"users": {"m": [{"object": "gold.*", "columns": ["a"]}]}}', "takes no columns"),
    "where on a wildcard": ('{"users": {"m": [{"object": "gold.*", "where": "a = 1"}]}}', "takes no row filter"),
    "empty columns": ('{"users": {"m": [{"object": "gold.t", "columns": []}]}}', "non-empty list"),
    "bad column": ('{"users": {"m": [{"object": "gold.t", "columns": ["a b"]}]}}', "is not a column name"),
    "empty where": ('{"users": {"m": [{"object": "gold.t", "where": " "}]}}', "non-empty SQL condition"),
    "granted twice": ('{"users": {"m": [{"object": "gold.t"}, {"object": "GOLD.T"}]}}', "granted twice"),
    "unknown entry key": ('{"users": {"m": [{"object": "gold.t", "rows": "a"}]}}', 'unknown key "rows"'),
    "bad user": ('{"users": {"no body": []}}', "not a valid user name"),
    "grants not a list": ('{"users": {"m": {"object": "gold.t"}}}', "must be a list of grants"),
}


def _as_expected(grant: grants.Grant | None):
    if grant is None:
        return None
    return ("*" if grant.columns is None else ",".join(grant.columns), grant.where or "")


def test_grant_resolution_wildcards_columns_filters_and_unknown_users() -> None:
    parsed = grants.parse_grants(json.dumps(GRANTS))
    for (user, table), expected in EXPECTED.items():
        assert _as_expected(grants.resolve(parsed, user, table)) == expected, (user, table)
    columns = grants.resolve(parsed, "finance", "silver.dim_users")
    assert columns.may_read("COUNTRY") and columns.may_read("user_id") and not columns.may_read("miles_balance")
    assert grants.resolve(parsed, "maria", "gold.agg_active_user").may_read("anything")


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_grants_file_is_refused_with_its_reason(case: str) -> None:
    text, message = MALFORMED[case]
    with pytest.raises(grants.GrantsError, match=message):
        grants.parse_grants(text)


def test_the_server_resolves_grants_as_the_command_line_does(tmp_path: Path) -> None:
    """Grants.java (the guard's) and grants.py (the commands') on the same cases, the malformed files too."""
    from lakehouse.jars import jdk_tool, spark_home

    jar = server_jar.ensure_server_jar(load_config().paths.jar_cache)
    classpath = os.pathsep.join([str(jar), str(spark_home() / "jars" / "*")])

    files = [tmp_path / "grants.json", *(tmp_path / f"malformed-{i}.json" for i in range(len(MALFORMED)))]
    files[0].write_text(json.dumps(GRANTS))
    for path, (text, _) in zip(files[1:], MALFORMED.values(), strict=True):
        path.write_text(text)
    restricted = ",".join(sorted(grants.restricted_tables()))
    assert restricted == "gold.rpt_negative_balance_users,gold.user_status_weekly"
    proc = subprocess.run(
        [jdk_tool("java"), "-XX:TieredStopAtLevel=1", f"-Dlakehouse.thrift.restricted={restricted}", "-cp", classpath,
         f"{server_jar.PACKAGE}.Grants", *map(str, files)],
        input="".join(f"{user}\t{table}\n" for user, table in EXPECTED), capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    verdicts, answers = lines[: len(files)], lines[len(files) :]
    assert verdicts[0] == f"OK\t{files[0]}"
    for verdict, path, case in zip(verdicts[1:], files[1:], MALFORMED, strict=True):
        assert verdict.startswith(f"MALFORMED\t{path}\t"), case
    for line, ((user, table), expected) in zip(answers, EXPECTED.items(), strict=True):
        fields = line.split("\t")
        assert fields[:2] == [user, table]
        assert (None if fields[2] == "-" else (fields[2], fields[3])) == expected, line


def test_grant_revoke_and_the_defaults_of_new_and_service_users(tmp_path: Path, capsys) -> None:
    from lakehouse.serving.thrift.cli import main as thrift

    state = ["--state-dir", str(tmp_path)]
    auth.ensure_credentials(tmp_path)
    grants.ensure_grants(tmp_path, "lakehouse", grants.service_grants())  # what the server's start does
    os.environ["THRIFT_NEW_PASSWORD"] = "pw-of-maria"
    try:
        assert thrift([*state, "add-user", "maria"]) == 0
    finally:
        del os.environ["THRIFT_NEW_PASSWORD"]
    assert grants.user_grants(tmp_path, "maria") == [grants.Grant("gold.*")]  # a new user reads gold only
    assert thrift([*state, "grant", "maria", "silver.dim_users", "--columns", "user_id,country",
                   "--where", "country = 'SG'"]) == 0  # fmt: skip
    parsed = grants.read_grants(tmp_path)
    assert grants.resolve(parsed, "maria", "silver.dim_users") == grants.Grant(
        "silver.dim_users", ("user_id", "country"), "country = 'SG'"
    )
    assert grants.resolve(parsed, "maria", "silver.fct_events") is None
    assert grants.grants_file(tmp_path).stat().st_mode & 0o777 == 0o600
    # The registry is checked: a column, table or layer that does not exist is refused, nothing written.
    before = grants.grants_file(tmp_path).read_text()
    assert thrift([*state, "grant", "maria", "silver.dim_users", "--columns", "user_id,balance"]) == 1
    assert thrift([*state, "grant", "maria", "silver.no_such_table"]) == 1
    assert thrift([*state, "grant", "maria", "platinum.*"]) == 1
    assert thrift([*state, "grant", "maria", "gold.*", "--where", "1 = 1"]) == 1
    assert thrift([*state, "grant", "nobody", "gold.*"]) == 1  # not a user
    assert thrift([*state, "revoke", "lakehouse", "bronze.*"]) == 1  # the project's own client keeps every layer
    # ... and reads the restricted tables by name (it checks their registration); a new user does not.
    parsed = grants.read_grants(tmp_path)
    for table in ("gold.user_status_weekly", "gold.rpt_negative_balance_users"):
        assert grants.resolve(parsed, "lakehouse", table) == grants.Grant(table)
        assert grants.resolve(parsed, "maria", table) is None
    assert grants.grants_file(tmp_path).read_text() == before
    capsys.readouterr()
    assert thrift([*state, "grants", "maria"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "maria:", "  gold.*: all columns, all rows",
        "  silver.dim_users: columns user_id, country, rows where country = 'SG'",
    ]  # fmt: skip
    assert thrift([*state, "revoke", "maria", "gold.*"]) == 0
    assert thrift([*state, "revoke", "maria", "gold.*"]) == 1  # nothing left to revoke
    assert grants.resolve(grants.read_grants(tmp_path), "maria", "gold.agg_active_user") is None
    # Removing a user forgets their grants: added again, they start from gold.* only.
    assert thrift([*state, "remove-user", "maria"]) == 0 and "maria" not in grants.read_grants(tmp_path)
    # A malformed file: the commands say so and write nothing.
    grants.grants_file(tmp_path).write_text("{")
    assert thrift([*state, "grant", "superset", "gold.*"]) == 1
    assert "is malformed: not valid JSON" in capsys.readouterr().err
    assert grants.grants_file(tmp_path).read_text() == "{"


def test_superset_is_granted_the_dashboards_tables_and_columns_and_nothing_else(tmp_path: Path) -> None:
    from lakehouse.serving.superset.bundle import SERVED_COLUMNS, SERVED_TABLES

    auth.ensure_credentials(tmp_path)
    settings = service.Settings.from_config(load_config(), {"THRIFT_STATE_DIR": str(tmp_path)})
    service.grant_dashboard_tables(settings)
    parsed = grants.read_grants(tmp_path)
    assert sorted(parsed["superset"]) == sorted(spec.full_name for spec in SERVED_TABLES)
    # The bookkeeping tables and the anomaly table: the columns the Data health dashboard reads, all rows.
    assert {name for name, grant in parsed["superset"].items() if grant.columns} == set(SERVED_COLUMNS)
    for name, grant in parsed["superset"].items():
        assert grant == grants.Grant(name, SERVED_COLUMNS.get(name)), name
    job_runs = grants.resolve(parsed, "superset", "ops.job_runs")
    assert job_runs.may_read("status") and not job_runs.may_read("parameters") and not job_runs.may_read("message")
    assert not grants.resolve(parsed, "superset", "ops.dq_results").may_read("details")
    assert all(grants.resolve(parsed, "superset", spec.full_name) is None for spec in TABLES
               if spec not in SERVED_TABLES)  # fmt: skip
    # Grants it has are kept: an administrator's wider (or narrower) grant is neither narrowed nor widened.
    grants.grant(tmp_path, "superset", grants.Grant("ops.job_runs"))
    grants.revoke(tmp_path, "superset", "ops.dq_results")
    grants.grant(tmp_path, "superset", grants.make_grant("ops.dq_results", ["run_id", "status"]))
    assert service.grant_dashboard_tables(settings) is None
    again = grants.read_grants(tmp_path)["superset"]
    assert again["ops.job_runs"] == grants.Grant("ops.job_runs")
    assert again["ops.dq_results"] == grants.Grant("ops.dq_results", ("run_id", "status"))
    # A served column the registry does not have is refused before anything is written.
    with pytest.raises(grants.GrantsError, match="has no column"):
        grants.ensure_grants(tmp_path, "analyst", [grants.Grant("ops.job_runs", ("no_such_column",))])


# ------------------------------------------------------------------------------------------
# TLS: the local CA and certificate, the clients' settings
# ------------------------------------------------------------------------------------------


def test_tls_files_are_made_once_private_and_name_the_loopback(tmp_path: Path) -> None:
    files = tls.ensure_tls(tmp_path, "127.0.0.1")
    made = {p.name for p in files.root.iterdir()}
    assert made == {"server.p12", "keystore.password", "ca.pem", "server.pem", "truststore.p12",
                    "truststore.password", "tls.json"}  # the CA's private key is gone  # fmt: skip
    assert files.root.stat().st_mode & 0o777 == 0o700
    assert all((files.root / name).stat().st_mode & 0o777 == 0o600 for name in made)
    certificate = ssl._ssl._test_decode_cert(str(files.certificate))
    assert set(certificate["subjectAltName"]) == {("DNS", "localhost"), ("IP Address", "127.0.0.1")}
    issuer = ssl._ssl._test_decode_cert(str(files.ca))
    assert certificate["issuer"] == issuer["subject"] != certificate["subject"]
    context = tls.client_context(files.ca)  # the CA loads as the clients' only trust anchor
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    ca, keystore = files.ca.read_bytes(), files.keystore.read_bytes()
    assert tls.ensure_tls(tmp_path, "localhost") == files  # made once: the second start reuses them
    assert (files.ca.read_bytes(), files.keystore.read_bytes()) == (ca, keystore)
    with pytest.raises(tls.TlsError, match=re.escape("names localhost, 127.0.0.1, not 10.1.2.3")):
        tls.ensure_tls(tmp_path, "10.1.2.3")
    url = tls.jdbc_url("127.0.0.1", 10123, files)
    assert url.startswith("jdbc:hive2://127.0.0.1:10123/default;transportMode=http;httpPath=cliservice;ssl=true;")
    assert f"sslTrustStore={files.truststore};trustStorePassword=$(cat {files.truststore_password})" in url


def test_superset_connects_over_https_and_verifies_the_servers_ca(tmp_path: Path) -> None:
    config = load_config()
    settings = service.Settings.from_config(config, {"THRIFT_STATE_DIR": str(tmp_path)})
    assert settings.database_uri == "hive+https://superset@127.0.0.1:10000/gold?ssl_cert=required&check_hostname=true"
    layout = service.Layout(tmp_path)
    layout.cache.mkdir(parents=True)
    with pytest.raises(service.SupersetError, match="start the Thrift server first"):
        service.write_ca_bundle(layout, settings)
    ca = tls.tls_files(tmp_path).ca
    ca.parent.mkdir()
    ca.write_text("-----BEGIN CERTIFICATE-----\nthe server's CA\n-----END CERTIFICATE-----\n")
    service.write_ca_bundle(layout, settings)
    assert layout.ca_bundle.read_text().endswith(ca.read_text())
    assert service.superset_env(layout, settings, {})["SSL_CERT_FILE"] == str(layout.ca_bundle)
    plain = service.Settings.from_config(load_config(overrides={"serving.tls": False}), {})
    assert plain.database_uri == "hive://superset@127.0.0.1:10000/gold?auth=CUSTOM"
    assert "SSL_CERT_FILE" not in service.superset_env(layout, plain, {})
