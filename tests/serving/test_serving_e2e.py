"""End-to-end serving scenario: Delta tables -> Spark Thrift Server -> Superset -> a real browser.

One module-scoped stack, built the way a person would with the project's own entry points:

1. the Spark Thrift Server (``python -m lakehouse.serving.thrift start``) on a free port over an
   empty temporary warehouse, then Superset (``scripts/superset_up.sh``) on a free port wired to it;
2. while Superset starts (its connection authenticated as the service user ``superset``), the
   tables of the session's whole-pipeline run on the shipped sample
   (``lakehouse run`` in this process's Spark application, tests/conftest.py) are copied into that
   warehouse; the server registers them itself (``thrift register`` waits until it has);
3. the checks below; both servers are always stopped at the end, whatever happened.

Checks:
a. every gold table read over Thrift (PyHive) equals the same Delta table read by Spark;
b. every chart of the bundle, run by Superset from its saved query context, gives the numbers
   Spark computes independently from the Delta tables with the DataFrame API (also under a
   segment filter, and Explore's "Week" grain gives the configured week start);
c. every dashboard (five: active users, user lifecycle, cohort retention, miles economy, data health) opens in
   headless Chromium (Debian's ``/usr/bin/chromium``, Playwright), every
   chart draws and none shows an error; screenshots go to pytest's tmp dir, and with
   ``SAVE_SCREENSHOTS=1`` also to ``docs/screenshots/<slug>.png``;
d. jobs committing a new file while the server runs (bronze and silver appends and MERGEs, a gold
   overwrite) are seen by the next query, no restart;
e. the endpoint is read-only and authenticated, over PyHive and beeline: every write / DDL form is
   refused with the read-only message and no table gets a new Delta version; reads, DESCRIBE
   HISTORY and time travel answer; an analyst added with ``thrift add-user`` connects without a
   restart; a wrong password, an anonymous session, a removed user, a client that does not trust the
   server's CA, a plaintext one and a binary (SASL) one are refused (the server serves TLS only);
f. grants, over TLS with PyHive and beeline: a table not granted is refused with the user's and the
   table's names however it is reached (a view, a CTE, a join, a subquery, time travel, DESCRIBE ...), a
   column not granted is refused when read, a row filter returns exactly Spark's rows, a revoke counts
   at once, a malformed grants file keeps the previous grants; Superset's user reads the dashboards'
   tables only (a to c pass through it).

Needs: ``scripts/_serving_prereqs.sh`` (chromium; ``scripts/test.sh`` runs it), Java, and no
Superset already started from this checkout (``scripts/superset_down.sh``): Superset's pid file
and metadata DB live in ``.cache/superset``, so the test starts its own and stops it.
Note: the bundle import leaves the metadata DB pointing at the test's Thrift port; the next
``scripts/superset_up.sh`` re-imports it with the usual one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.config import load_config
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.gold.tables.agg_engagement_daily import SPEC as GOLD_ENGAGEMENT
from lakehouse.gold.tables.agg_growth_accounting_weekly import SPEC as GOLD_GROWTH
from lakehouse.gold.tables.agg_metric_anomalies import SPEC as GOLD_METRIC_ANOMALIES
from lakehouse.gold.tables.agg_miles_category_weekly import SPEC as GOLD_MILES_CATEGORY
from lakehouse.gold.tables.agg_miles_weekly import SPEC as GOLD_MILES_WEEKLY
from lakehouse.gold.tables.agg_user_lifecycle_weekly import SPEC as GOLD_LIFECYCLE
from lakehouse.gold.tables.agg_user_retention import SPEC as GOLD_RETENTION
from lakehouse.gold.tables.user_status_weekly import SPEC as GOLD_USER_STATUS
from lakehouse.registry import OPS_DQ_RESULTS, OPS_INGESTED_FILES, OPS_JOB_RUNS
from lakehouse.serving.superset import service
from lakehouse.serving.superset.bundle import SERVED_COLUMNS, SERVED_TABLES
from lakehouse.serving.thrift.server import log_file as thrift_server_log
from lakehouse.tables import TABLES
from tests.services import free_port, project_env, run_logged, start_logged, thrift_cli, thrift_server, wait_logged

pytestmark = pytest.mark.serving

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLE = REPO_ROOT / "conf" / "superset" / "bundle"
SCREENSHOT_DIR = REPO_ROOT / "docs" / "screenshots"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
]  # fmt: skip


# ------------------------------------------------------------------------------------------
# The stack
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    root: Path
    warehouse: Path
    thrift_host: str
    thrift_port: int
    thrift_state_dir: Path
    superset_url: str
    superset_user: str
    superset_password: str
    timings: dict[str, float]

    def path(self, spec) -> str:
        return f"{self.warehouse}/{spec.layer}/{spec.name}"

    @property
    def ca_file(self) -> Path:
        """The CA the server's certificate was made with (``thrift start``, serving.tls on by default)."""
        return self.thrift_state_dir / "tls" / "ca.pem"


def _env(**extra: str) -> dict[str, str]:
    return project_env(LAKEHOUSE_ENV="local", **extra)


def _pipeline(argv: list[str]) -> float:
    """``lakehouse run ARGV`` in this process's Spark application; its seconds."""
    from lakehouse import launcher

    began = time.monotonic()
    assert launcher.run_main(argv) == 0, f"lakehouse run {' '.join(argv)} failed (see the log above)"
    return time.monotonic() - began


def _superset_credentials() -> tuple[str, str]:
    stored = service.read_credentials(service.Layout().credentials)
    user = os.environ.get("SUPERSET_ADMIN_USER") or stored.get("SUPERSET_ADMIN_USER")
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD") or stored.get("SUPERSET_ADMIN_PASSWORD")
    assert user and password, f"no Superset credentials in the environment or {service.Layout().credentials}"
    return user, password


@pytest.fixture(scope="module")
def stack(tmp_path_factory, spark, sample_pipeline) -> Iterator[Stack]:
    # Locally a missing browser or a Superset already running skips; in CI they are failures.
    not_here = pytest.fail if os.environ.get("CI") else pytest.skip
    if not CHROMIUM.exists():
        not_here(f"{CHROMIUM} missing: run scripts/_serving_prereqs.sh (scripts/test.sh does)")
    if service.running(service.Layout()) is not None:
        not_here("Superset from .cache/superset is running: stop it with scripts/superset_down.sh "
                 "(this test starts and stops its own)")  # fmt: skip

    root = tmp_path_factory.mktemp("serving")
    warehouse = root / "warehouse"
    state_dir = root / "thrift"
    host, thrift_port, superset_port = "127.0.0.1", free_port(), free_port()
    timings: dict[str, float] = {}
    superset_started = False
    with thrift_server(state_dir, thrift_port, "--env", "local", "--warehouse", str(warehouse), env=_env()) as up:
        timings["thrift_start"] = up
        try:
            superset_started = True
            began = time.monotonic()
            superset_up = start_logged(
                ["bash", "scripts/superset_up.sh"], root / "superset_up.log",
                env=_env(THRIFT_HOST=host, THRIFT_PORT=str(thrift_port), SUPERSET_PORT=str(superset_port),
                         THRIFT_STATE_DIR=str(state_dir)),
            )  # fmt: skip
            # The tables appear after the Thrift server started (while Superset starts, which needs no
            # data): they must be served after a `register`, without a restart. They are the session's
            # whole-pipeline run on the sample (tests/conftest.py), copied in: Delta tables are folders
            # with relative paths. Jobs committing while the server runs: test d below.
            copied = time.monotonic()
            shutil.copytree(sample_pipeline.paths.warehouse, warehouse, dirs_exist_ok=True)
            timings["copy_sample_warehouse"] = time.monotonic() - copied
            timings["superset_up"] = wait_logged(superset_up, root / "superset_up.log", 900, began)
            not_created = [
                s.full_name for s in SERVED_TABLES if not Path(warehouse, s.layer, s.name, "_delta_log").is_dir()
            ]
            assert not not_created, (
                f"the pipeline (conf dag) did not create the tables the dashboards read: {not_created}"
            )
            register = [*thrift_cli(state_dir), "register", "--env", "local"]
            timings["register"] = run_logged(register, root / "register.log", 120, _env())
            user, password = _superset_credentials()
            yield Stack(
                root, warehouse, host, thrift_port, state_dir, f"http://{host}:{superset_port}", user, password, timings
            )
        finally:
            print(f"\n[serving] timings (s): { {k: round(v, 1) for k, v in timings.items()} }")
            if superset_started:
                down = subprocess.run(
                    ["bash", "scripts/superset_down.sh"], cwd=REPO_ROOT, capture_output=True, text=True
                )
                assert down.returncode == 0 and service.running(service.Layout()) is None, down.stderr[-2000:]


def _service_credentials(stack: Stack):
    from lakehouse.serving.thrift.auth import service_credentials

    return service_credentials(stack.thrift_state_dir)


@pytest.fixture(scope="module")
def thrift_cursor(stack: Stack):
    from lakehouse.serving.thrift import connect

    conn = connect(stack.thrift_host, stack.thrift_port, _service_credentials(stack), ca_file=stack.ca_file)
    yield conn.cursor()
    conn.close()


# ------------------------------------------------------------------------------------------
# a. Thrift answers = Delta tables
# ------------------------------------------------------------------------------------------


def _normalise(value: Any) -> Any:
    # PyHive hands DATE columns back as 'YYYY-MM-DD' strings and TIMESTAMP as datetimes.
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _sorted_rows(rows) -> list[tuple]:
    normalised = [tuple(_normalise(v) for v in row) for row in rows]
    return sorted(normalised, key=lambda row: tuple((v is None, str(v)) for v in row))


def test_gold_tables_over_thrift_equal_the_delta_tables(stack, thrift_cursor, spark) -> None:
    gold = [spec for spec in TABLES if spec.layer == "gold"]
    compared = []
    for spec in gold:
        if not Path(stack.path(spec), "_delta_log").is_dir():
            assert spec not in SERVED_TABLES, f"the pipeline did not create {spec.full_name}"
            continue
        thrift_cursor.execute(f"SELECT * FROM {spec.full_name}")
        served_columns = [d[0] for d in thrift_cursor.description]
        served = _sorted_rows(thrift_cursor.fetchall())
        df = spark.read.format("delta").load(stack.path(spec))
        assert served_columns == df.columns, spec.full_name
        expected = _sorted_rows(df.collect())
        assert len(served) == len(expected) > 0, spec.full_name
        assert served == expected, f"{spec.full_name}: Thrift rows differ from the Delta table"
        compared.append(f"{spec.full_name} ({len(served)} rows)")
    print(f"[serving] equal over Thrift: {', '.join(compared)}")


# ------------------------------------------------------------------------------------------
# b. Superset's chart data = Spark's answer
# ------------------------------------------------------------------------------------------


class SupersetApi:
    def __init__(self, base_url: str, user: str, password: str) -> None:
        import requests

        self.base = base_url
        self.session = requests.Session()
        login = self.session.post(
            f"{base_url}/api/v1/security/login",
            json={"username": user, "password": password, "provider": "db", "refresh": False},
            timeout=30,
        )
        assert login.status_code == 200, login.text
        self.session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        csrf = self.session.get(f"{base_url}/api/v1/security/csrf_token/", timeout=30)
        assert csrf.status_code == 200, csrf.text
        self.session.headers.update({"X-CSRFToken": csrf.json()["result"], "Referer": base_url})

    def get(self, path: str, **params: Any) -> Any:
        response = self.session.get(f"{self.base}{path}", params=params, timeout=60)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def chart_data(self, query_context: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.base}/api/v1/chart/data", json=query_context, timeout=200)
        assert response.status_code == 200, f"chart data: {response.status_code} {response.text[:1000]}"
        return response.json()


def _bundle_charts() -> dict[str, dict[str, Any]]:
    charts = {}
    for path in sorted((BUNDLE / "charts").glob("*.yaml")):
        chart = yaml.safe_load(path.read_text())
        charts[chart["slice_name"]] = chart
    return charts


def _bundle_dashboards() -> dict[str, dict[str, Any]]:
    dashboards = {}
    for path in sorted((BUNDLE / "dashboards").glob("*.yaml")):
        dashboard = yaml.safe_load(path.read_text())
        dashboards[dashboard["slug"]] = dashboard
    return dashboards


def _day(epoch_ms: float) -> date:
    return (datetime(1970, 1, 1) + timedelta(milliseconds=epoch_ms)).date()


def _as_date(value: Any) -> date:
    """A temporal x value of Superset's chart data: epoch milliseconds, or a date string."""
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return _day(value)


def _series(data: list[dict], x: str, column: str, temporal: bool = True) -> dict[Any, Any]:
    """{x: value} of one result column, null cells left out."""
    return {(_day(row[x]) if temporal else row[x]): row[column] for row in data if row.get(column) is not None}


def _assert_close(actual: dict, expected: dict, what: str) -> None:
    assert expected, f"{what}: Spark found nothing to compare with"
    assert set(actual) == set(expected), (
        f"{what}: keys differ; only in chart {sorted(set(actual) - set(expected))[:5]}, "
        f"only in Spark {sorted(set(expected) - set(actual))[:5]}"
    )
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-12), f"{what} at {key}"


def _collect(df, keys: list[str], value: str = "v") -> dict[Any, Any]:
    out = {}
    for row in df.collect():
        key = tuple(row[k] for k in keys) if len(keys) > 1 else row[keys[0]]
        if row[value] is not None:
            out[key] = row[value]
    return out


class Expected:
    """The charts' questions, answered by Spark's DataFrame API on the Delta tables."""

    def __init__(self, spark, stack: Stack) -> None:
        from pyspark.sql import functions as F

        self.F = F
        self.spark = spark
        read = lambda spec: spark.read.format("delta").load(stack.path(spec))  # noqa: E731
        self.au = read(GOLD_ACTIVE_USER)
        self.lc = read(GOLD_LIFECYCLE)
        self.rt = read(GOLD_RETENTION)
        self.gr = read(GOLD_GROWTH)
        self.en = read(GOLD_ENGAGEMENT)
        self.mw = read(GOLD_MILES_WEEKLY)
        self.mc = read(GOLD_MILES_CATEGORY)
        self.an = read(GOLD_METRIC_ANOMALIES)
        self.runs = read(OPS_JOB_RUNS)
        self.dq = read(OPS_DQ_RESULTS)
        self.files = read(OPS_INGESTED_FILES)
        self.users = read(GOLD_USER_STATUS)
        self.audiences = load_config().audiences

    def audience_sizes(self, name: str) -> dict[date, int]:
        """Members of an audience per complete week (conf's condition on gold.user_status_weekly)."""
        F = self.F
        complete = self.users.where("NOT is_partial_period")
        counts = complete.groupBy("cutoff_week").agg(F.count(F.when(F.expr(self.audiences[name]), 1)).alias("v"))
        return _collect(counts, ["cutoff_week"])

    def flow(self) -> dict[tuple[str, str], int]:
        """(previous status, status) -> users of the newest complete week."""
        F = self.F
        latest = self.users.where("NOT is_partial_period").agg(F.max("cutoff_week")).first()[0]
        week = self.users.where(F.col("cutoff_week") == F.lit(latest))
        flow = week.groupBy(F.coalesce("previous_status", F.lit("(first week)")).alias("p"), "user_status").count()
        return {(r["p"], r["user_status"]): r["count"] for r in flow.collect()}

    def members(self, name: str) -> list[tuple[str, date]]:
        rows = self.users.where(self.audiences[name]).select("user_id", "cutoff_week").collect()
        return sorted((r["user_id"], r["cutoff_week"]) for r in rows)

    def active(
        self, period_type: str, partial: bool | None, segment: dict[str, list[str]] | None = None
    ) -> dict[date, int]:
        F = self.F
        df = self.au.filter(F.col("period_type") == period_type)
        for column, values in (segment or {}).items():
            df = df.filter(F.col(column).isin(values))
        if partial is not None:
            df = df.filter(F.col("is_partial_period") == partial)
        return _collect(df.groupBy("period_start_date").agg(F.sum("active_users").alias("v")), ["period_start_date"])

    def stickiness(self, window: str, segment: dict[str, list[str]] | None = None) -> dict[date, float]:
        """Actives of the day / actives of the rolling window, as ratios of segment sums."""
        F = self.F
        df = self.en
        for column, values in (segment or {}).items():
            df = df.filter(F.col(column).isin(values))
        df = df.groupBy("activity_date").agg(F.sum("dau").alias("dau"), F.sum(window).alias("w"))
        return _collect(df.select("activity_date", F.when(F.col("w") > 0, F.col("dau") / F.col("w")).alias("v")),
                        ["activity_date"])  # fmt: skip

    def dau_mau_rate(self, acq_source: str, country: str) -> dict[date, float]:
        """The gold table's own per-segment stickiness column."""
        F = self.F
        df = self.en.filter((F.col("acq_source") == acq_source) & (F.col("country") == country))
        return _collect(df.select("activity_date", F.col("dau_mau_rate").alias("v")), ["activity_date"])

    def lifecycle(self) -> dict[tuple[date, str], int]:
        F = self.F
        df = self.lc.filter(~F.col("is_partial_period")).groupBy("cutoff_week", "user_status")
        return _collect(df.agg(F.sum("user_count").alias("v")), ["cutoff_week", "user_status"])

    def quick_ratio(self, partial: bool) -> dict[date, float]:
        F = self.F
        df = (
            self.gr.filter(F.col("is_partial_period") == partial)
            .groupBy("week_start")
            .agg(
                F.sum("new_users").alias("n"), F.sum("resurrected_users").alias("r"), F.sum("churned_users").alias("c")
            )
            .select("week_start", F.when(F.col("c") > 0, (F.col("n") + F.col("r")) / F.col("c")).alias("v"))
        )
        return _collect(df, ["week_start"])

    def retention(self, keys: list[str]) -> dict[Any, float]:
        F = self.F
        df = self.rt.filter(~F.col("is_partial_period")).groupBy(*keys)
        return _collect(df.agg((F.sum("retained_users") / F.sum("cohort_size")).alias("v")), keys)

    def miles(self, column: str, partial: bool | None) -> dict[date, float]:
        """A miles_weekly column summed over segments per week (all weeks when ``partial`` is None)."""
        F = self.F
        df = self.mw if partial is None else self.mw.filter(F.col("is_partial_period") == partial)
        return _collect(df.groupBy("week_start").agg(F.sum(column).cast("double").alias("v")), ["week_start"])

    def redemption_rate(self, partial: bool) -> dict[date, float]:
        F = self.F
        df = self.mw.filter(F.col("is_partial_period") == partial).groupBy("week_start")
        df = df.agg(F.sum("miles_redeemed").cast("double").alias("r"), F.sum("miles_earned").cast("double").alias("e"))
        return _collect(df.select("week_start", F.when(F.col("e") > 0, F.col("r") / F.col("e")).alias("v")),
                        ["week_start"])  # fmt: skip

    def category(self, event_type: str, column: str) -> dict[tuple[date, str], float]:
        F = self.F
        df = self.mc.filter((F.col("event_type") == event_type) & ~F.col("is_partial_period"))
        df = df.groupBy("week_start", "transaction_category").agg(F.sum(column).cast("double").alias("v"))
        return _collect(df, ["week_start", "transaction_category"])

    def cohort_size(self) -> dict[date, int]:
        F = self.F
        df = self.rt.filter(F.col("week_offset") == 0).groupBy("cohort_week")
        return _collect(df.agg(F.sum("cohort_size").alias("v")), ["cohort_week"])

    def anomaly_series(self, series: dict[str, list[str]], column: str, flagged: bool = False) -> dict[date, float]:
        """One column of the series the filters choose, per period (its anomalies only when ``flagged``)."""
        F = self.F
        df = self.an
        for key, values in series.items():
            df = df.filter(F.col(key).isin(values))
        if flagged:
            df = df.filter(F.col("is_anomaly"))
        return _collect(df.select("period_start", F.col(column).alias("v")), ["period_start"])

    def recent_anomalies(self) -> list[dict[str, Any]]:
        """Anomalies whose period (a day, or a week's seven days) ends in the 30 days ending at the newest day."""
        F = self.F
        newest = self.an.filter(F.col("grain") == "day").agg(F.max("period_start")).first()[0]
        ends = F.when(F.col("grain") == "week", F.date_add("period_start", 6)).otherwise(F.col("period_start"))
        df = self.an.filter(F.col("is_anomaly") & (ends > F.lit(newest - timedelta(days=30))))
        return [row.asDict() for row in df.orderBy(F.desc("period_start"), "score").collect()]

    def freshness(self) -> tuple[date, int, datetime]:
        F = self.F
        committed = self.files.filter(F.col("status") == "committed")
        newest, ingested = committed.agg(F.max("max_event_date"), F.max("ingested_at")).first()
        return newest, (date.today() - newest).days, ingested

    def job_runs(self) -> list[tuple]:
        """(job, status, seconds, rows_in, rows_out), newest first."""
        F = self.F
        seconds = F.round((F.unix_micros("ended_at") - F.unix_micros("started_at")) / 1e6, 1)
        df = self.runs.orderBy(F.desc("started_at"), "job").limit(50)
        return [tuple(r) for r in df.select("job", "status", seconds, "rows_in", "rows_out").collect()]

    def checks(self) -> list[tuple]:
        """(run_id, job, passed, warned, failed, quarantined) of each run with checks, newest first."""
        F = self.F
        count = lambda status: F.sum(F.when(F.col("status") == status, 1).otherwise(0))  # noqa: E731
        df = self.dq.groupBy("job", "run_id").agg(
            F.max("checked_at").alias("at"), *(count(s).alias(s) for s in ("pass", "warn", "fail", "quarantined"))
        )
        rows = df.orderBy(F.desc("at")).collect()
        return [(r["run_id"], r["job"], r["pass"], r["warn"], r["fail"], r["quarantined"]) for r in rows]


def _check_split(data, x: str, label: str, complete: dict, partial: dict) -> None:
    _assert_close(_series(data, x, f"{label} (complete)"), complete, f"{label} (complete)")
    if partial:
        _assert_close(_series(data, x, f"{label} (partial, to date)"), partial, f"{label} (partial)")
    else:
        assert not _series(data, x, f"{label} (partial, to date)"), f"{label}: a partial point with no partial period"


STICKINESS = "Stickiness (DAU / MAU, DAU / WAU)"
CHECKS: dict[str, Callable[[list[dict], Expected], None]] = {
    "Daily active users (DAU)": lambda data, e: _assert_close(
        _series(data, "period_start_date", "DAU"), e.active("daily", None), "DAU"
    ),
    "Weekly active users (WAU)": lambda data, e: _check_split(
        data, "period_start_date", "WAU", e.active("weekly", False), e.active("weekly", True)
    ),
    "Monthly active users (MAU)": lambda data, e: _check_split(
        data, "period_start_date", "MAU", e.active("monthly", False), e.active("monthly", True)
    ),
    STICKINESS: lambda data, e: (
        _assert_close(_series(data, "activity_date", "DAU/MAU (30-day)"), e.stickiness("mau_30d"), "DAU/MAU"),
        _assert_close(_series(data, "activity_date", "DAU/WAU (7-day)"), e.stickiness("wau_7d"), "DAU/WAU"),
    ),
    "Weekly user lifecycle (complete weeks)": lambda data, e: _assert_close(
        {
            (_day(row["cutoff_week"]), status): value
            for row in data
            for status, value in row.items()
            if status != "cutoff_week" and value is not None
        },
        e.lifecycle(),
        "lifecycle",
    ),
    "Weekly quick ratio": lambda data, e: _check_split(
        data, "week_start", "Quick ratio", e.quick_ratio(False), e.quick_ratio(True)
    ),
    "Weekly cohort retention (complete weeks)": lambda data, e: _assert_close(
        {(row["cohort_label"], row["week_offset"]): row["Retention"] for row in data},
        e.retention(["cohort_label", "week_offset"]),
        "retention triangle",
    ),
    "Cohort size": lambda data, e: _assert_close(
        _series(data, "cohort_week", "Cohort size"), e.cohort_size(), "cohort size"
    ),
    "Average retention curve": lambda data, e: _assert_close(
        _series(data, "week_offset", "Weighted retention", temporal=False),
        e.retention(["week_offset"]),
        "retention curve",
    ),
}


#: The anomaly series the Data health dashboard opens with (its native filters' defaults), and another one
#: with anomalies in the sample, chosen as the filter bar would (the filters reach the query as IN filters).
ANOMALY_SERIES = "Series inside its expected band"
DEFAULT_SERIES = {"grain": ["day"], "metric": ["events"], "segment_type": ["all"], "segment_value": ["all"]}
OTHER_SERIES = {"grain": ["day"], "metric": ["earn_events"], "segment_type": ["country"], "segment_value": ["ID"]}
#: Charts that need filters to mean anything: the dashboard's defaults, applied to the saved query context.
CHART_FILTERS = {ANOMALY_SERIES: DEFAULT_SERIES, "Audience members": {"audience": ["just_churned"]}}


def _check_audience_sizes(data, e: Expected) -> None:
    for name in e.audiences:
        _assert_close(_series(data, "cutoff_week", name), e.audience_sizes(name), f"audience {name}")


def _check_flow(data, e: Expected) -> None:
    actual = {(r["previous_status"], r["user_status"]): r["Users"] for r in data}
    assert actual == e.flow()


def _check_members(data, e: Expected) -> None:
    assert {r["audience"] for r in data} == {"just_churned"}
    assert sorted((r["user_id"], _as_date(r["cutoff_week"])) for r in data) == e.members("just_churned")


def _check_anomaly_series(data, e: Expected, series: dict[str, list[str]]) -> None:
    for label, column in (("Value", "value"), ("Expected", "expected"), ("Band__yhat_lower", "lower_bound"),
                          ("Band__yhat_upper", "upper_bound")):  # fmt: skip
        _assert_close(_series(data, "period_start", label), e.anomaly_series(series, column), f"{label} of {series}")
    flagged = e.anomaly_series(series, "value", flagged=True)
    if flagged:
        _assert_close(_series(data, "period_start", "Value (anomaly)"), flagged, f"anomalies of {series}")
    else:
        assert not _series(data, "period_start", "Value (anomaly)"), f"{series}: an anomaly marked where none is"


def _as_datetime(value: Any) -> datetime:
    """A timestamp of Superset's chart data: epoch milliseconds, or an ISO string."""
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("T", " ").rstrip("Z"))
    return datetime(1970, 1, 1) + timedelta(milliseconds=value)


def _check_recent_anomalies(data, e: Expected) -> None:
    expected = e.recent_anomalies()
    assert expected, "Spark finds no anomaly in the last 30 days of the sample"
    keys = ("metric", "grain", "segment_type", "segment_value", "direction")
    numbers = ("value", "expected", "lower_bound", "upper_bound", "score")
    # Newest first, then the deepest drop: the table's order is Spark's.
    assert [(_as_date(r["period_start"]), *(r[k] for k in keys)) for r in data] == [
        (r["period_start"], *(r[k] for k in keys)) for r in expected
    ]  # fmt: skip
    for row, want in zip(data, expected, strict=True):
        for column in numbers:
            assert row[column] == pytest.approx(want[column], rel=1e-9), f"{column} of {want}"


def _check_freshness(data, e: Expected) -> None:
    (row,) = data
    newest, days, ingested = e.freshness()
    assert _as_date(row["Newest event date"]) == newest
    assert row["Days before today"] == days > 0
    assert abs(_as_datetime(row["Last file ingested"]) - ingested) < timedelta(milliseconds=1)


def _check_job_runs(data, e: Expected) -> None:
    actual = [(r["job"], r["status"], r["seconds"], r["rows_in"], r["rows_out"]) for r in data]
    expected = e.job_runs()
    assert [a[:2] for a in actual] == [x[:2] for x in expected], "jobs and statuses, newest first"
    for a, x in zip(actual, expected, strict=True):
        assert a[2] == pytest.approx(float(x[2])) and a[3:] == x[3:], a


def _check_checks(data, e: Expected) -> None:
    labels = ("passed", "warned", "failed", "quarantined")
    actual = [(r["run_id"], *(r[label] for label in labels)) for r in data]
    assert actual == [(run_id, *counts) for run_id, _, *counts in e.checks()]
    assert sum(r["passed"] for r in data) > 0


def _check_category(data, event_type: str, column: str, e: Expected) -> None:
    """A stacked category chart: one column per category, one row per complete week."""
    actual = {(_day(row["week_start"]), category): value for row in data for category, value in row.items()
              if category != "week_start" and value is not None}  # fmt: skip
    _assert_close(actual, e.category(event_type, column), f"{event_type} by category")


CHECKS.update({
    "Miles issued and burned per week": lambda data, e: (
        _check_split(data, "week_start", "Earned", e.miles("miles_earned", False), e.miles("miles_earned", True)),
        _check_split(data, "week_start", "Redeemed", e.miles("miles_redeemed", False),
                     e.miles("miles_redeemed", True)),
    ),
    "Outstanding miles and liability": lambda data, e: (
        _assert_close(_series(data, "week_start", "Liability"), e.miles("liability_miles", None), "liability"),
        _assert_close(_series(data, "week_start", "Outstanding"), e.miles("outstanding_miles", None), "outstanding"),
    ),
    "Redemption rate": lambda data, e: _check_split(
        data, "week_start", "Redemption rate", e.redemption_rate(False), e.redemption_rate(True)
    ),
    "Where miles are earned (complete weeks)": lambda data, e: _check_category(data, "miles_earned", "miles", e),
    "What miles are redeemed for (complete weeks)": lambda data, e: _check_category(data, "miles_redeemed", "miles", e),
    "Reward searches by brand (complete weeks)": lambda data, e: _check_category(data, "reward_search", "events", e),
    "Earning and redeeming members": lambda data, e: (
        _check_split(data, "week_start", "Earning", e.miles("earning_users", False), e.miles("earning_users", True)),
        _check_split(data, "week_start", "Redeeming", e.miles("redeeming_users", False),
                     e.miles("redeeming_users", True)),
    ),
    ANOMALY_SERIES: lambda data, e: _check_anomaly_series(data, e, DEFAULT_SERIES),
    "Anomalies of the last 30 days": _check_recent_anomalies,
    "Data freshness": _check_freshness,
    "Recent job runs": _check_job_runs,
    "Checks per run": _check_checks,
    "Audience sizes per week": _check_audience_sizes,
    "Lifecycle flow, latest complete week": _check_flow,
    "Audience members": _check_members,
})  # fmt: skip


def _with_filters(query_context: dict[str, Any], filters: dict[str, list[str]]) -> dict[str, Any]:
    """The query context as the dashboard's filter bar sends it with ``filters`` chosen."""
    query_context = json.loads(json.dumps(query_context))
    for column, values in filters.items():
        query_context["queries"][0].setdefault("filters", []).append({"col": column, "op": "IN", "val": values})
    return query_context


def test_every_chart_gives_sparks_numbers(stack, spark) -> None:
    bundle_charts = _bundle_charts()
    assert set(CHECKS) == set(bundle_charts), "every chart of the bundle needs a check here (and no more)"
    api = SupersetApi(stack.superset_url, stack.superset_user, stack.superset_password)
    listed = api.get("/api/v1/chart/", q=json.dumps({"page_size": 100, "columns": ["id", "slice_name"]}))
    ids = {c["slice_name"]: c["id"] for c in listed["result"]}
    assert set(bundle_charts) <= set(ids), f"charts missing in Superset: {set(bundle_charts) - set(ids)}"
    expected = Expected(spark, stack)
    for name, check in CHECKS.items():
        chart = api.get(f"/api/v1/chart/{ids[name]}")["result"]
        assert chart["query_context"], f"{name}: no saved query context"
        query_context = _with_filters(json.loads(chart["query_context"]), CHART_FILTERS.get(name, {}))
        began = time.monotonic()
        result = api.chart_data(query_context)["result"][0]
        assert not result.get("error"), f"{name}: {result.get('error')}"
        data = result["data"]
        assert data, f"{name}: no rows"
        row_limit = query_context["queries"][0].get("row_limit") or 10000
        assert result["rowcount"] < row_limit, f"{name}: hit the row limit {row_limit}"
        check(data, expected)
        print(f"[serving] chart {name!r}: {result['rowcount']} rows match Spark ({time.monotonic() - began:.1f} s)")

    # A dashboard's native filter reaches the query as a filter on the segment column: the same
    # chart for one acquisition source and two countries must give Spark's numbers for them.
    query_context = json.loads(api.get(f"/api/v1/chart/{ids['Weekly active users (WAU)']}")["result"]["query_context"])
    segment = {"acq_source": ["google"], "country": ["SG", "MY"]}
    for column, values in segment.items():
        query_context["queries"][0].setdefault("filters", []).append({"col": column, "op": "IN", "val": values})
    data = api.chart_data(query_context)["result"][0]["data"]
    _check_split(
        data,
        "period_start_date",
        "WAU",
        expected.active("weekly", False, segment),
        expected.active("weekly", True, segment),
    )

    # Stickiness over several segments is the ratio of their sums; over one segment it is the
    # gold table's own dau_mau_rate.
    stickiness_context = json.loads(api.get(f"/api/v1/chart/{ids[STICKINESS]}")["result"]["query_context"])
    cases = [
        ({"acq_source": ["google", "tiktok"], "country": ["SG", "TH"]}, None),
        ({"acq_source": ["organic"], "country": ["MY"]}, ("organic", "MY")),
    ]
    for segment, single in cases:
        query_context = json.loads(json.dumps(stickiness_context))
        for column, values in segment.items():
            query_context["queries"][0]["filters"].append({"col": column, "op": "IN", "val": values})
        data = api.chart_data(query_context)["result"][0]["data"]
        series = _series(data, "activity_date", "DAU/MAU (30-day)")
        _assert_close(series, expected.stickiness("mau_30d", segment), f"DAU/MAU for {segment}")
        if single:
            _assert_close(series, expected.dau_mau_rate(*single), f"DAU/MAU = dau_mau_rate for {segment}")

    # The anomaly series follows the filter bar: another series (with anomalies in the sample) gives its numbers.
    series_context = json.loads(api.get(f"/api/v1/chart/{ids[ANOMALY_SERIES]}")["result"]["query_context"])
    data = api.chart_data(_with_filters(series_context, OTHER_SERIES))["result"][0]["data"]
    _check_anomaly_series(data, expected, OTHER_SERIES)
    assert expected.anomaly_series(OTHER_SERIES, "value", flagged=True), "the other series has anomalies to mark"

    # Explore's plain "Week" grain (superset_config.py) buckets days into the configured weeks.
    query_context = json.loads(json.dumps(stickiness_context))
    query = query_context["queries"][0]
    query["columns"][0]["timeGrain"] = query["extras"]["time_grain_sqla"] = "P1W"
    result = api.chart_data(query_context)["result"][0]
    assert not result.get("error"), result.get("error")
    buckets = {_as_date(row["activity_date"]) for row in result["data"]}
    first_weekday = {"monday": 0, "sunday": 6}[load_config(env="local").week_start]  # as date.weekday() numbers
    days = expected.stickiness("mau_30d").keys()
    assert buckets == {d - timedelta(days=(d.weekday() - first_weekday) % 7) for d in days}


# ------------------------------------------------------------------------------------------
# c. Dashboards in a real browser
# ------------------------------------------------------------------------------------------

CHARTS_DRAWN_JS = """(expected) => {
  const charts = [...document.querySelectorAll('[data-test="chart-grid-component"]')];
  if (charts.length < expected) return false;
  if (document.querySelector('[data-test="loading-indicator"]')) return false;
  return charts.every(c => c.querySelector('canvas, table, .ant-alert'));
}"""


#: Longer than Superset's own query timeout (SUPERSET_WEBSERVER_TIMEOUT, 180 s): a chart whose query hangs
#: then shows Superset's timeout error (the test names it) instead of leaving the test to time out first.
DRAW_TIMEOUT_S = 240
CHART_STATES_JS = """() => [...document.querySelectorAll('[data-test="chart-grid-component"]')].map(c => ({
  drawn: !!c.querySelector('canvas, table'),
  loading: !!c.querySelector('[data-test="loading-indicator"]'),
  text: (c.innerText || '').replace(/\\s+/g, ' ').slice(0, 160),
}))"""


class _RequestLog:
    """The page's requests to Superset's API that are still open or failed (for a timeout's message)."""

    def __init__(self) -> None:
        self.open: dict[int, tuple[str, float]] = {}
        self.failures: list[str] = []

    def started(self, request) -> None:
        if "/api/" in request.url:
            self.open[id(request)] = (f"{request.method} {request.url}", time.monotonic())

    def finished(self, request) -> None:
        self.open.pop(id(request), None)

    def failed(self, request) -> None:
        self.open.pop(id(request), None)
        self.failures.append(f"{request.method} {request.url}: {request.failure}")

    def report(self) -> list[str]:
        now = time.monotonic()
        pending = [f"open for {now - began:.0f} s: {what}" for what, began in self.open.values()]
        return pending + [f"failed: {what}" for what in self.failures]


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"({path} missing)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _why_not_drawn(page, stack: Stack, slug: str, requests: _RequestLog, tmp_path: Path) -> str:
    """What a dashboard that did not draw in time shows: each chart's state, the page's open or failed API
    requests, a screenshot, and the tails of the Superset and Thrift server logs."""
    shot = tmp_path / f"{slug}-timeout.png"
    try:
        states = page.evaluate(CHART_STATES_JS)
        page.screenshot(path=str(shot), full_page=True)
    except Exception as exc:  # the page itself may be what hangs
        states = [f"page unreadable: {exc}"]
    superset_log = service.Layout().state.log_file(service.SERVICE)
    thrift_log = thrift_server_log(stack.thrift_state_dir)
    return "\n".join([
        f"{slug}: the charts were not drawn within {DRAW_TIMEOUT_S} s (screenshot {shot})",
        "charts:", *(f"  {state}" for state in states),
        "requests:", *(f"  {line}" for line in requests.report()),
        f"{superset_log} (tail):", _tail(superset_log, 60),
        f"{thrift_log} (tail):", _tail(thrift_log),
    ])  # fmt: skip


def _chart_count(dashboard: dict[str, Any]) -> int:
    return sum(1 for node in dashboard["position"].values() if isinstance(node, dict) and node.get("type") == "CHART")


def test_dashboards_render_in_chromium(stack, tmp_path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    dashboards = _bundle_dashboards()
    assert len(dashboards) == 6
    save = os.environ.get("SAVE_SCREENSHOTS") == "1"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        try:
            # bypass_csp is not needed: nothing is injected into the page.
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page_errors: list[str] = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            slow_requests = _RequestLog()
            page.on("request", slow_requests.started)
            page.on("requestfinished", slow_requests.finished)
            page.on("requestfailed", slow_requests.failed)
            page.goto(f"{stack.superset_url}/login/")
            page.fill('[data-test="username-input"]', stack.superset_user)
            page.fill('[data-test="password-input"]', stack.superset_password)
            page.click('[data-test="login-button"]')
            page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
            for slug, dashboard in dashboards.items():
                expected_charts = _chart_count(dashboard)
                began = time.monotonic()
                page.goto(f"{stack.superset_url}/superset/dashboard/{slug}/")
                try:
                    page.wait_for_function(
                        CHARTS_DRAWN_JS, arg=expected_charts, timeout=DRAW_TIMEOUT_S * 1000, polling=500
                    )
                except PlaywrightTimeout:
                    pytest.fail(_why_not_drawn(page, stack, slug, slow_requests, tmp_path))
                page.wait_for_load_state("networkidle")
                # Charts animate in; a still frame for the screenshot.
                page.wait_for_timeout(1500)
                title = page.locator('[data-test="editable-title-input"]').first.input_value()
                assert title == dashboard["dashboard_title"], slug
                errors = page.locator('[data-test="chart-grid-component"] .ant-alert').all_inner_texts()
                assert not errors, f"{slug}: charts show errors: {errors}"
                filter_bar = page.locator('[data-test="filter-bar"]').inner_text()
                assert "error" not in filter_bar.lower(), f"{slug}: filter bar: {filter_bar}"
                charts = page.locator('[data-test="chart-grid-component"]')
                assert charts.count() == expected_charts, slug
                for i in range(expected_charts):
                    assert charts.nth(i).locator("canvas, table").count() > 0, f"{slug}: chart {i} drew nothing"
                # Tables (pivot and table charts) show their numbers as text: at least one percentage, count or
                # date per chart (a table chart draws its header as a table of its own, without numbers).
                for i in range(expected_charts):
                    tables = charts.nth(i).locator("table")
                    if tables.count():
                        text = " ".join(tables.all_inner_texts())
                        assert any(ch.isdigit() for ch in text), f"{slug}: chart {i}: empty table: {text[:200]}"
                # The whole dashboard in one viewport, shot as it is: a full-page screenshot resizes the page
                # itself, and Superset then re-mounts its grid (seen: 0 charts in the DOM and a blank grid in
                # the picture, in 2 of 20 full-page shots; none in 24 viewport shots).
                height = page.evaluate("document.documentElement.scrollHeight")
                page.set_viewport_size({"width": 1400, "height": min(int(height), 4000)})
                page.wait_for_function(CHARTS_DRAWN_JS, arg=expected_charts, timeout=60_000, polling=250)
                page.wait_for_timeout(500)
                shot = tmp_path / f"{slug}.png"
                page.screenshot(path=str(shot))
                assert page.evaluate(CHARTS_DRAWN_JS, expected_charts), f"{slug}: the grid re-rendered during {shot}"
                page.set_viewport_size({"width": 1400, "height": 1000})
                print(
                    f"[serving] dashboard {slug}: {expected_charts} charts drawn in "
                    f"{time.monotonic() - began:.1f} s; screenshot {shot} ({shot.stat().st_size // 1024} KB)"
                )
                if save:
                    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(shot, SCREENSHOT_DIR / f"{slug}.png")
            assert not page_errors, f"JavaScript errors: {page_errors}"
        finally:
            browser.close()


# ------------------------------------------------------------------------------------------
# d. A commit while the server runs is visible at once
# ------------------------------------------------------------------------------------------

EXTRA_EVENTS = """\
event_time,user_id,event_type,transaction_category,miles_amount,platform,utm_source,country
2025-07-05 10:00:00.000001,u_990001,miles_earned,dining,100.0,ios,google,SG
2025-07-05 11:00:00.000001,u_990001,share,,,ios,google,SG
2025-07-05 12:00:00.000001,u_990002,like,,,web,tiktok,TH
"""


def test_a_job_commit_is_visible_to_the_next_query_without_restart(stack, thrift_cursor, spark) -> None:
    def counts() -> tuple[int, int, int]:
        thrift_cursor.execute(
            "SELECT (SELECT COUNT(*) FROM bronze.fct_event_stream), (SELECT COUNT(*) FROM silver.fct_events), "
            "(SELECT COUNT(*) FROM silver.fct_events WHERE user_id IN ('u_990001', 'u_990002'))"
        )
        return tuple(thrift_cursor.fetchone())

    bronze_before, silver_before, new_before = counts()
    assert new_before == 0
    extra = stack.root / "extra_input"
    extra.mkdir()
    (extra / "event_stream_extra.csv").write_text(EXTRA_EVENTS)
    # Jobs commit while the server runs: appends and MERGEs (bronze, silver), a gold overwrite.
    jobs = "bronze_fct_event_stream,silver_fct_events,gold_agg_engagement_daily"
    # A reader queries in a loop, on its own connection, while the run commits: no error, and only
    # whole versions (each count is the one before or the one after, never a part of a commit).
    from lakehouse.serving.thrift import connect

    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        conn = connect(stack.thrift_host, stack.thrift_port, _service_credentials(stack), ca_file=stack.ca_file)
        try:
            cursor = conn.cursor()
            while not done.is_set():
                cursor.execute("SELECT (SELECT COUNT(*) FROM bronze.fct_event_stream), "
                               "(SELECT COUNT(*) FROM silver.fct_events)")  # fmt: skip
                seen.append(tuple(cursor.fetchone()))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            conn.close()

    polling = threading.Thread(target=reader, daemon=True)
    polling.start()
    try:
        _pipeline(["--env", "local", "--warehouse", str(stack.warehouse), "--input", str(extra), "--jobs", jobs,
                   "--no-summary"])  # fmt: skip
    finally:
        time.sleep(1.0)  # a last query after the commits
        done.set()
        polling.join(timeout=120)
    assert not errors, f"a query failed while the run committed: {errors[0]!r}"
    assert len(seen) >= 3, seen
    assert set(b for b, _ in seen) <= {bronze_before, bronze_before + 3}, seen
    assert set(s for _, s in seen) <= {silver_before, silver_before + 3}, seen
    assert seen[-1] == (bronze_before + 3, silver_before + 3)
    # Same server, same session, no register: Delta serves the newest snapshot per query.
    assert counts() == (bronze_before + 3, silver_before + 3, 3)
    thrift_cursor.execute("SELECT SUM(dau) FROM gold.agg_engagement_daily WHERE activity_date = DATE'2025-07-05'")
    served_dau = thrift_cursor.fetchone()[0]
    dau = (
        spark.read.format("delta")
        .load(f"{stack.warehouse}/gold/agg_engagement_daily")
        .where("activity_date = DATE'2025-07-05'")
        .groupBy()
        .sum("dau")
        .first()[0]
    )
    assert served_dau == dau and dau >= 2  # the two new users are active that day
    delta_count = spark.read.format("delta").load(f"{stack.warehouse}/silver/fct_events").count()
    assert delta_count == silver_before + 3


# ------------------------------------------------------------------------------------------
# e. Read-only and authenticated, over PyHive and beeline
# ------------------------------------------------------------------------------------------

READ_ONLY = "This SQL endpoint is read-only"
PATHS_REFUSED = "This SQL endpoint serves the registered tables only"


def _write_forms(stack: Stack) -> list[str]:
    """Every statement form that would change data or metadata (the issue's list and a few more), and
    queries that would run a program or a Java method on the server."""
    active = stack.path(GOLD_ACTIVE_USER)
    scratch = stack.root / "must_not_exist"
    return [
        "INSERT INTO gold.agg_active_user SELECT * FROM gold.agg_active_user LIMIT 1",
        "INSERT OVERWRITE TABLE gold.agg_active_user SELECT * FROM gold.agg_active_user",
        "UPDATE gold.agg_active_user SET active_users = 0",
        "DELETE FROM gold.agg_active_user WHERE period_type = 'daily'",
        "MERGE INTO gold.agg_active_user t USING gold.agg_active_user s ON t.period_start_date = s.period_start_date "
        "AND t.period_type = s.period_type WHEN MATCHED THEN DELETE",
        f"CREATE TABLE gold.new_table (a INT) USING DELTA LOCATION '{scratch}/t1'",
        "CREATE TABLE gold.new_ctas USING DELTA AS SELECT * FROM gold.agg_active_user",
        "CREATE OR REPLACE TABLE gold.agg_active_user USING DELTA AS SELECT 1 AS a",
        "REPLACE TABLE gold.agg_active_user USING DELTA AS SELECT 1 AS a",
        "CREATE VIEW gold.new_view AS SELECT 1 AS a",
        "CREATE OR REPLACE TEMPORARY VIEW new_temp_view AS SELECT 1 AS a",
        "DROP TABLE gold.agg_active_user",
        "DROP VIEW IF EXISTS gold.new_view",
        "DROP DATABASE gold CASCADE",
        "ALTER TABLE gold.agg_active_user SET TBLPROPERTIES ('team' = 'me')",
        "ALTER TABLE gold.agg_active_user ADD COLUMNS (extra INT)",
        "ALTER TABLE gold.agg_active_user RENAME TO gold.renamed",
        "TRUNCATE TABLE gold.agg_active_user",
        "OPTIMIZE gold.agg_active_user",
        "VACUUM gold.agg_active_user RETAIN 168 HOURS",
        "RESTORE TABLE gold.agg_active_user TO VERSION AS OF 0",
        f"DELETE FROM delta.`{active}` WHERE period_type = 'daily'",
        f"UPDATE delta.`{active}` SET active_users = 0",
        f"INSERT INTO delta.`{active}` SELECT * FROM gold.agg_active_user LIMIT 1",
        f"OPTIMIZE delta.`{active}`",
        f"CREATE TABLE delta.`{scratch}/t2` USING DELTA AS SELECT 1 AS a",
        f"INSERT OVERWRITE DIRECTORY '{scratch}/dir' USING parquet SELECT 1 AS a",
        f"ADD JAR '{scratch}/x.jar'",
        "CACHE TABLE gold.agg_active_user",
        # Queries that would run something on the server: a program, a static Java method.
        "SELECT TRANSFORM(a) USING 'cat' AS (b) FROM (SELECT 'x' AS a)",
        "SELECT reflect('java.lang.Thread', 'sleep', CAST(1 AS BIGINT))",
        "SELECT COUNT(*) FROM gold.agg_active_user WHERE period_type IN "
        "(SELECT try_reflect('java.lang.System', 'getProperty', 'user.dir'))",
        # Settings that would change where and how data is read (a JDBC catalog over Derby writes files).
        "SET spark.sql.catalog.ev=org.apache.spark.sql.execution.datasources.v2.jdbc.JDBCTableCatalog",
        "SET spark.hadoop.fs.file.impl=org.apache.hadoop.fs.RawLocalFileSystem",
        "SET spark.sql.runSQLOnFiles=true",
    ]


def _path_reads(stack: Stack) -> list[str]:
    """Files of the server named as tables: refused, whatever the format and however nested."""
    secrets = stack.thrift_state_dir / "auth" / "clients.json"
    active = stack.path(GOLD_ACTIVE_USER)
    return [
        f"SELECT * FROM text.`{secrets}`",
        f"SELECT COUNT(*) FROM delta.`{active}`",
        f"SELECT COUNT(*) FROM parquet.`{active}`",
        f"WITH x AS (SELECT * FROM json.`{secrets}`) SELECT * FROM x",
        f"SELECT 1 AS a WHERE EXISTS (SELECT * FROM csv.`{secrets}`)",
    ]


def _delta_versions(warehouse: Path) -> dict[str, int]:
    """Latest commit version of every table of the warehouse (the newest ``_delta_log/N.json``)."""
    versions = {}
    for spec in TABLES:
        log_dir = warehouse / spec.layer / spec.name / "_delta_log"
        if log_dir.is_dir():
            versions[spec.full_name] = max(int(p.stem) for p in log_dir.glob("*.json"))
    return versions


def _jdbc_url(stack: Stack) -> str:
    """beeline's URL over TLS, as ``lakehouse thrift status`` prints it (the truststore password read here)."""
    from lakehouse.serving.thrift import tls

    files = tls.tls_files(stack.thrift_state_dir)
    return tls.jdbc_url(stack.thrift_host, stack.thrift_port, files).replace(
        f"$(cat {files.truststore_password})", files.truststore_password.read_text().strip()
    )


def _beeline(
    stack: Stack,
    user: str | None,
    password: str | None,
    statements: list[str],
    tmp: Path,
    url: str | None = None,
    *options: str,
) -> str:
    """beeline (the pyspark wheel's) running ``statements`` from a file, going on after errors, over TLS
    (or ``url``)."""
    script = tmp / "beeline.sql"
    script.write_text("".join(f"{s};\n" for s in statements))
    cmd = ["beeline", "-u", url or _jdbc_url(stack), "--force=true", "--silent=false", *options,
           "-f", str(script)]  # fmt: skip
    if user is not None:
        cmd += ["-n", user]
    if password is not None:
        password_file = tmp / "beeline.password"
        password_file.write_text(password)
        password_file.chmod(0o600)
        cmd += ["-w", str(password_file)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    return proc.stdout + proc.stderr


def _add_analyst(stack: Stack, name: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "lakehouse.serving.thrift", "--state-dir", str(stack.thrift_state_dir),
         "add-user", name],
        cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    line = next(line for line in proc.stdout.splitlines() if line.startswith(f"password for {name}"))
    users = stack.thrift_state_dir / "auth" / "users"
    assert users.stat().st_mode & 0o777 == 0o600
    assert line.rsplit(": ", 1)[1] not in users.read_text(), "the users file keeps hashes only"
    return line.rsplit(": ", 1)[1]


def _https(
    stack: Stack,
    user: str | None,
    password: str | None,
    trusts_the_ca: bool = True,
    configuration: dict[str, str] | None = None,
    timeout_s: float = 60,
):
    """A PyHive connection over HTTPS as a person would write it: the server's certificate verified against
    the server's CA (or, ``trusts_the_ca=False``, against the system's CAs only), the password in HTTP Basic
    authentication (none without a user)."""
    import base64
    import ssl

    from pyhive import hive
    from thrift.transport import THttpClient

    context = ssl.create_default_context(cafile=str(stack.ca_file) if trusts_the_ca else None)
    transport = THttpClient.THttpClient(f"https://{stack.thrift_host}:{stack.thrift_port}/cliservice",
                                        ssl_context=context)  # fmt: skip
    transport.setTimeout(int(timeout_s * 1000))
    if user is not None:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        transport.setCustomHeaders({"Authorization": f"Basic {basic}"})
    return hive.connect(thrift_transport=transport, username=user, configuration=configuration)


def _refused_login(stack: Stack, how: str, user: str | None = None, password: str | None = None) -> str:
    """The error of a login expected to fail (a 30 s socket timeout guards against a hang): over HTTPS
    (``https``), with no credentials (``anonymous``), with a client that does not trust the local CA
    (``untrusted``), in plain HTTP (``http``) or with the binary transport and SASL (``binary``)."""
    from pyhive import hive
    from thrift.transport import THttpClient

    try:
        if how == "https":
            conn = _https(stack, user, password, timeout_s=30)
        elif how == "anonymous":
            conn = _https(stack, None, None, timeout_s=30)
        elif how == "untrusted":
            conn = _https(stack, user, password, trusts_the_ca=False, timeout_s=30)
        elif how == "http":
            transport = THttpClient.THttpClient(f"http://{stack.thrift_host}:{stack.thrift_port}/cliservice")
            transport.setTimeout(30_000)
            conn = hive.connect(thrift_transport=transport, username=user)
        else:
            conn = hive.connect(host=stack.thrift_host, port=stack.thrift_port, auth="CUSTOM", username=user,
                                password=password)  # fmt: skip
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
    except Exception as exc:  # PyHive raises transport, SSL and operational errors of several types
        return f"{type(exc).__name__}: {exc}"
    pytest.fail(f"login {how} as {user} was accepted")


def test_the_endpoint_is_read_only_and_authenticated(stack, tmp_path) -> None:
    from lakehouse.serving.thrift.client import error_message

    forms = _write_forms(stack)
    before = _delta_versions(stack.warehouse)
    password = _add_analyst(stack, "analyst_e2e")  # while the server runs: no restart

    # PyHive over TLS, as the new analyst: each form refused with the read-only message.
    conn = _https(stack, "analyst_e2e", password)
    try:
        cursor = conn.cursor()
        accepted = []
        for statement in forms:
            try:
                cursor.execute(statement)
                accepted.append(statement)
            except Exception as exc:
                assert READ_ONLY in error_message(exc), f"{statement}: {error_message(exc)}"
        assert not accepted, f"write statements accepted over PyHive: {accepted}"

        # Reads, history and time travel answer.
        cursor.execute("DESCRIBE HISTORY gold.agg_active_user")
        columns = [d[0] for d in cursor.description]
        history = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        first = min(history, key=lambda h: h["version"])
        cursor.execute("SELECT COUNT(*) FROM gold.agg_active_user")
        rows_now = cursor.fetchone()[0]
        cursor.execute(f"SELECT COUNT(*) FROM gold.agg_active_user VERSION AS OF {first['version']}")
        rows_first = cursor.fetchone()[0]
        cursor.execute(f"SELECT COUNT(*) FROM gold.agg_active_user TIMESTAMP AS OF '{first['timestamp']}'")
        assert cursor.fetchone()[0] == rows_first
        assert rows_now > 0
        # Files by path: refused (the endpoint serves the registered tables only).
        for statement in _path_reads(stack):
            with pytest.raises(Exception) as refused:
                cursor.execute(statement)
                cursor.fetchall()
            assert PATHS_REFUSED in error_message(refused.value), f"{statement}: {error_message(refused.value)}"
        reads = ("SHOW TABLES IN gold", "SHOW DATABASES", "DESCRIBE gold.agg_active_user",
                 "DESCRIBE DETAIL gold.agg_active_user", "SHOW TBLPROPERTIES gold.agg_active_user",
                 "EXPLAIN SELECT * FROM gold.agg_active_user", "SET spark.sql.shuffle.partitions=4")  # fmt: skip
        for statement in reads:
            cursor.execute(statement)
            assert cursor.fetchall(), statement
        cursor.execute("USE gold")  # no rows, no error
        cursor.execute("SELECT COUNT(*) FROM agg_active_user")
        assert cursor.fetchone()[0] == rows_now
    finally:
        conn.close()

    # beeline, same analyst: every form refused, reads answer.
    output = _beeline(stack, "analyst_e2e", password, [*forms, "SELECT 'beeline-read-ok' AS probe",
                      "SELECT COUNT(*) AS n FROM gold.agg_active_user VERSION AS OF 0"], tmp_path)  # fmt: skip
    # One "Error: ..." line per refused statement (beeline adds the server's stack trace after it).
    refused_lines = [line for line in output.splitlines() if "Error: " in line and READ_ONLY in line]
    assert len(refused_lines) == len(forms), output[-4000:]
    assert "beeline-read-ok" in output, output[-4000:]
    assert "rows affected" not in output, output[-4000:]

    # Settings sent when the connection opens (never a SET statement) make every statement refused,
    # starting with the USE that PyHive sends on connect.
    with pytest.raises(Exception) as refused:
        conn = _https(stack, "analyst_e2e", password,
                      configuration={"set:hiveconf:spark.sql.catalog.ev": "org.apache.spark.sql.execution."
                                     "datasources.v2.jdbc.JDBCTableCatalog"})  # fmt: skip
        try:
            conn.cursor().execute("SELECT 1")
        finally:
            conn.close()
    assert "carries the setting spark.sql.catalog.ev" in error_message(refused.value), error_message(refused.value)

    # Nothing was written: no new Delta version anywhere, no new folder.
    assert _delta_versions(stack.warehouse) == before
    assert not (stack.root / "must_not_exist").exists()

    # Who may connect: wrong password, unknown user and anonymous sessions refused over PyHive with TLS; a
    # client that does not trust the local CA, a plaintext HTTP one and a binary (SASL) one are refused too.
    refusals = {
        "wrong password": _refused_login(stack, "https", "analyst_e2e", password + "x"),
        "unknown user": _refused_login(stack, "https", "nobody", password),
        "anonymous (no credentials)": _refused_login(stack, "anonymous"),
        "untrusted (no CA)": _refused_login(stack, "untrusted", "analyst_e2e", password),
        "plaintext HTTP": _refused_login(stack, "http", "analyst_e2e", password),
        "binary transport, SASL": _refused_login(stack, "binary", "analyst_e2e", password),
    }
    assert "CERTIFICATE_VERIFY_FAILED" in refusals["untrusted (no CA)"], refusals["untrusted (no CA)"]
    for what, message in refusals.items():
        assert message, what
    # ... and over beeline (no user, wrong password).
    for user, pw in ((None, None), ("analyst_e2e", "wrong-password")):
        out = _beeline(stack, user, pw, ["SELECT 'must-not-answer' AS probe"], tmp_path)
        assert "must-not-answer" not in out.replace("SELECT 'must-not-answer'", ""), out[-3000:]
        assert "Could not open" in out or "Error validating" in out or "401" in out, out[-3000:]

    # A removed analyst is refused at the next login, again without a restart.
    subprocess.run(
        [sys.executable, "-m", "lakehouse.serving.thrift", "--state-dir", str(stack.thrift_state_dir), "remove-user",
         "analyst_e2e"], cwd=REPO_ROOT, env=_env(), check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert _refused_login(stack, "https", "analyst_e2e", password)
    print(f"[serving] read-only: {len(forms)} write forms refused over PyHive and beeline; refused logins: "
          f"{ {k: v[:80] for k, v in refusals.items()} }")  # fmt: skip


# ------------------------------------------------------------------------------------------
# f. Grants per user, table, column and row, over TLS with PyHive and beeline
# ------------------------------------------------------------------------------------------

DENIED = "Access denied: user {user} is not granted {table}"


def _thrift(stack: Stack, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``lakehouse thrift ARGS`` against the test's server (its state dir), while it runs."""
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.serving.thrift", "--state-dir", str(stack.thrift_state_dir), *args],
        cwd=REPO_ROOT, env=env or _env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _add_user(stack: Stack, name: str, password: str) -> None:
    added = _thrift(stack, "add-user", name, env=_env(THRIFT_NEW_PASSWORD=password))
    assert added.returncode == 0, added.stderr


def _refused(cursor, statement: str) -> str:
    """The server's message for a statement expected to be refused."""
    from lakehouse.serving.thrift.client import error_message

    try:
        cursor.execute(statement)
        rows = cursor.fetchall()
    except Exception as exc:
        return error_message(exc)
    pytest.fail(f"answered although it should be refused: {statement} -> {rows[:3]}")


def _metadata_rows(conn, request) -> list[tuple]:
    """The rows of a HiveServer2 metadata call (what JDBC's DatabaseMetaData.getTables / getColumns send)."""
    response = getattr(conn.client, type(request).__name__[1:-3])(request)  # TGetTablesReq -> GetTables
    cursor = conn.cursor()
    cursor._state, cursor._operationHandle = cursor._STATE_RUNNING, response.operationHandle
    return [tuple(row) for row in cursor.fetchall()]


def _wait_served(cursor, layer: str, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        cursor.execute(f"SHOW TABLES IN {layer}")
        if name in {row[1] for row in cursor.fetchall()}:
            return
        assert time.monotonic() < deadline, f"{layer}.{name} not registered after {timeout:.0f} s"
        time.sleep(0.5)


def test_grants_per_user_table_column_and_row_over_tls(stack, thrift_cursor, spark, tmp_path) -> None:
    from TCLIService import ttypes

    from lakehouse.registry import SILVER_DIM_USERS, SILVER_EVENTS
    from lakehouse.serving.thrift import grants

    began = time.monotonic()
    users, events = stack.path(SILVER_DIM_USERS), stack.path(SILVER_EVENTS)
    # A view over a member-level table, defined on the server (clients cannot create one): the server
    # registers it like a table (the registrations file) within seconds, no restart.
    registrations = stack.thrift_state_dir / "registrations.tsv"
    registrations.write_text(registrations.read_text() + "\t".join([
        "gold.v_members", users, "CREATE DATABASE IF NOT EXISTS gold",
        "CREATE VIEW IF NOT EXISTS gold.v_members AS SELECT * FROM silver.dim_users"]) + "\n")  # fmt: skip
    _wait_served(thrift_cursor, "gold", "v_members")

    # `thrift status` prints the beeline URL (the truststore, and where its password is): the one used below.
    status = _thrift(stack, "status")
    assert status.returncode == 0, status.stderr
    printed = _jdbc_url(stack).replace(
        (stack.thrift_state_dir / "tls" / "truststore.password").read_text().strip(),
        f"$(cat {stack.thrift_state_dir / 'tls' / 'truststore.password'})",
    )
    assert f'beeline -u "{printed}" -n USER -w PASSWORD_FILE' in status.stdout, status.stdout

    _add_user(stack, "finance_e2e", "finance-password-e2e")
    assert grants.user_grants(stack.thrift_state_dir, "finance_e2e") == [grants.Grant("gold.*")]  # the default
    conn = _https(stack, "finance_e2e", "finance-password-e2e")
    cursor = conn.cursor()
    try:
        # A granted table answers, equal to the Delta table.
        cursor.execute("SELECT COUNT(*) FROM gold.agg_active_user")
        assert cursor.fetchone()[0] == spark.read.format("delta").load(stack.path(GOLD_ACTIVE_USER)).count() > 0
        # A table not granted, however it is reached: refused with a message naming the user and the table.
        not_granted = [
            "SELECT * FROM silver.dim_users",
            "SELECT COUNT(*) FROM gold.v_members",  # a view in gold over silver
            "WITH m AS (SELECT * FROM silver.dim_users) SELECT COUNT(*) FROM m",
            "SELECT COUNT(*) FROM gold.agg_active_user a JOIN silver.dim_users u ON a.country = u.country",
            "SELECT COUNT(*) FROM gold.agg_active_user WHERE country IN (SELECT country FROM silver.dim_users)",
            "SELECT COUNT(*) FROM silver.dim_users VERSION AS OF 0",
            "DESCRIBE silver.dim_users",
            "SHOW COLUMNS IN silver.dim_users",
            "DESCRIBE HISTORY silver.dim_users",
        ]
        message = DENIED.format(user="finance_e2e", table="silver.dim_users")
        for statement in not_granted:
            assert message in _refused(cursor, statement), statement
        # A restricted table (it holds user ids) is not part of gold.*: refused however it is reached, and not
        # listed, until it is granted by name.
        restricted = [
            "SELECT COUNT(*) FROM gold.user_status_weekly",
            "WITH s AS (SELECT * FROM gold.user_status_weekly) SELECT COUNT(*) FROM s",
            "SELECT COUNT(*) FROM gold.agg_active_user a JOIN gold.user_status_weekly s ON a.country = s.country",
            "SELECT COUNT(*) FROM gold.agg_active_user WHERE country IN (SELECT country FROM gold.user_status_weekly)",
        ]
        for statement in restricted:
            assert DENIED.format(user="finance_e2e", table="gold.user_status_weekly") in _refused(cursor, statement)
        assert DENIED.format(user="finance_e2e", table="gold.rpt_negative_balance_users") in _refused(
            cursor, "SELECT COUNT(*) FROM gold.rpt_negative_balance_users")  # fmt: skip
        # EXPLAIN answers with the refusal in place of a plan.
        cursor.execute("EXPLAIN SELECT * FROM silver.dim_users")
        explained = "\n".join(row[0] for row in cursor.fetchall())
        assert message in explained and "Relation" not in explained, explained
        cursor.execute("SHOW TABLES IN silver")
        assert cursor.fetchall() == []  # nothing granted there
        cursor.execute("SHOW TABLES IN gold")
        listed_gold = {row[1] for row in cursor.fetchall()}
        assert "agg_active_user" in listed_gold and "v_members" in listed_gold
        assert not {"user_status_weekly", "rpt_negative_balance_users"} & listed_gold

        # What SQL does not go through: the HiveServer2 metadata calls (JDBC DatabaseMetaData). GetSchemas and
        # GetTables list every layer and served table, granted or not; GetColumns lists no column of a Delta
        # table for anyone (the in-memory catalog keeps no schema for them: the client lakehouse, granted
        # everything, gets none either).
        def metadata(connection, kind: str, **where: str) -> list[tuple]:
            request = getattr(ttypes, f"T{kind}Req")(sessionHandle=connection.sessionHandle, **where)
            return _metadata_rows(connection, request)

        schemas = {row[0] for row in metadata(conn, "GetSchemas", schemaName="%")}
        tables = {(row[1], row[2]) for row in metadata(conn, "GetTables", schemaName="%", tableName="%")}
        columns = metadata(conn, "GetColumns", schemaName="silver", tableName="dim_users", columnName="%")
        assert {"bronze", "silver", "gold", "ops"} <= schemas
        assert ("silver", "dim_users") in tables and ("silver", "fct_events") in tables
        assert columns == []
        own_columns = metadata(thrift_cursor._connection, "GetColumns", schemaName="gold", tableName="agg_active_user",
                               columnName="%")  # fmt: skip
        assert own_columns == []
        print(
            f"[serving] metadata calls to a user granted gold.* only: schemas {sorted(schemas)}, "
            f"{len(tables)} tables incl. {sorted(t for t in tables if t[0] != 'gold')[:4]}..., "
            f"GetColumns of silver.dim_users: {len(columns)} rows (lakehouse's of a gold table: {len(own_columns)})"
        )

        # Grant a part of silver.dim_users, without a restart: some columns, Singapore's rows only.
        granted = _thrift(stack, "grant", "finance_e2e", "silver.dim_users", "--columns",
                          "user_id,ds,acq_source,country", "--where", "country = 'SG'")  # fmt: skip
        assert granted.returncode == 0, granted.stderr
        cursor.execute("SHOW TABLES IN silver")
        assert [row[1] for row in cursor.fetchall()] == ["dim_users"]
        # A column not granted is refused when read, anywhere in the statement; never dropped silently.
        for statement in ("SELECT * FROM silver.dim_users", "SELECT user_id, miles_balance FROM silver.dim_users",
                          "SELECT user_id FROM silver.dim_users WHERE miles_balance < 0",
                          "SELECT user_id FROM silver.dim_users ORDER BY total_events",
                          "SELECT country, MAX(miles_balance) FROM silver.dim_users GROUP BY country"):  # fmt: skip
            refused = _refused(cursor, statement)
            assert "Access denied: user finance_e2e may not read column" in refused and "of silver.dim_users" in refused
        # The row filter: exactly Singapore's rows, whole result compared with Spark's; time travel too.
        selected = "user_id, ds, acq_source, country"
        full = spark.read.format("delta").load(users)
        expected = _sorted_rows(full.where("country = 'SG'").selectExpr(*selected.split(", ")).collect())
        cursor.execute(f"SELECT {selected} FROM silver.dim_users")
        assert _sorted_rows(cursor.fetchall()) == expected
        assert 0 < len(expected) < full.count()
        first = spark.read.format("delta").option("versionAsOf", 0).load(users)
        cursor.execute(f"SELECT {selected} FROM silver.dim_users VERSION AS OF 0")
        assert _sorted_rows(cursor.fetchall()) == _sorted_rows(
            first.where("country = 'SG'").selectExpr(*selected.split(", ")).collect()
        )
        # The filter holds through a CTE, a subquery, a join.
        cursor.execute("WITH m AS (SELECT user_id, country FROM silver.dim_users) SELECT DISTINCT country FROM m")
        assert cursor.fetchall() == [("SG",)]
        cursor.execute("SELECT COUNT(*) FROM gold.agg_active_user a JOIN (SELECT DISTINCT country FROM "
                       "silver.dim_users) u ON a.country = u.country")  # fmt: skip
        assert cursor.fetchone()[0] == spark.read.format("delta").load(stack.path(GOLD_ACTIVE_USER)).where(
            "country = 'SG'").count()  # fmt: skip

        # A malformed grants file (a hand edit gone wrong): the server keeps the grants it had.
        grants_path = grants.grants_file(stack.thrift_state_dir)
        kept = grants_path.read_text()
        grants_path.write_text(kept.replace('"users"', '"users":', 1))
        cursor.execute("SELECT COUNT(*) FROM silver.dim_users")
        assert cursor.fetchone()[0] == len(expected)
        assert "is malformed, the grants loaded before stay in force" in thrift_server_log(stack.thrift_state_dir
                                                                                          ).read_text()  # fmt: skip
        grants_path.write_text(kept)

        # The restricted table granted by name: it answers, equal to the Delta table, in every form.
        assert _thrift(stack, "grant", "finance_e2e", "gold.user_status_weekly").returncode == 0
        statuses = spark.read.format("delta").load(stack.path(GOLD_USER_STATUS))
        cursor.execute(restricted[0])
        assert cursor.fetchone()[0] == statuses.count() > 0
        cursor.execute(restricted[1])
        assert cursor.fetchone()[0] == statuses.count()
        assert _thrift(stack, "revoke", "finance_e2e", "gold.user_status_weekly").returncode == 0
        # Revoked: refused from the next statement, same connection, no restart.
        revoked = _thrift(stack, "revoke", "finance_e2e", "silver.dim_users")
        assert revoked.returncode == 0, revoked.stderr
        assert message in _refused(cursor, "SELECT COUNT(*) FROM silver.dim_users")
        # Asking to be another user is refused (the grants are the logged-in user's).
        with pytest.raises(Exception, match="Proxy user substitution is not allowed"):
            _https(stack, "finance_e2e", "finance-password-e2e", configuration={"hive.server2.proxy.user": "lakehouse"})
    finally:
        conn.close()

    # current_user() in a row filter: a member reads their own events only.
    member = spark.read.format("delta").load(events).select("user_id").orderBy("user_id").first()[0]
    _add_user(stack, member, "member-password-e2e")
    assert _thrift(stack, "grant", member, "silver.fct_events", "--where", "user_id = current_user()").returncode == 0
    own = _https(stack, member, "member-password-e2e")
    try:
        own_cursor = own.cursor()
        own_cursor.execute("SELECT user_id, COUNT(*) FROM silver.fct_events GROUP BY user_id")
        assert own_cursor.fetchall() == [(member, spark.read.format("delta").load(events).where(
            f"user_id = '{member}'").count())]  # fmt: skip
    finally:
        own.close()

    # beeline over TLS, the same rules: granted answers, not granted refused with the message, a column
    # refused, the row filter's rows; then a plaintext and an untrusted beeline are refused.
    assert _thrift(stack, "grant", "finance_e2e", "silver.dim_users", "--columns", "user_id,country",
                   "--where", "country = 'SG'").returncode == 0  # fmt: skip
    output = _beeline(stack, "finance_e2e", "finance-password-e2e", [
        "SELECT 'granted-ok' AS probe, COUNT(*) AS n FROM gold.agg_active_user",
        "SELECT 'rf' AS probe, user_id, country FROM silver.dim_users",
        "SELECT COUNT(*) FROM silver.fct_events", "SELECT COUNT(*) FROM gold.v_members",
        "WITH e AS (SELECT * FROM silver.fct_events) SELECT COUNT(*) FROM e",
        "SELECT COUNT(*) FROM silver.fct_events VERSION AS OF 0", "DESCRIBE silver.fct_events",
        "SELECT user_id, miles_balance FROM silver.dim_users",
        *restricted,
    ], tmp_path, None, "--outputformat=csv2")  # fmt: skip
    lines = output.splitlines()
    assert any(line.startswith("granted-ok,") for line in lines), output[-3000:]
    served = _sorted_rows(tuple(line.split(",")[1:]) for line in lines if line.startswith("rf,"))
    assert served == _sorted_rows(full.where("country = 'SG'").select("user_id", "country").collect())
    errors = [line for line in lines if line.startswith("Error: ")]
    assert sum(DENIED.format(user="finance_e2e", table="silver.fct_events") in e for e in errors) == 4, output[-4000:]
    denied = DENIED.format(user="finance_e2e", table="gold.user_status_weekly")
    assert sum(denied in e for e in errors) == len(restricted), output[-4000:]
    # The view reads every column of dim_users (a view is read whole); the last statement one not granted.
    column_refusals = [e for e in errors if "Access denied: user finance_e2e may not read column" in e]
    assert len(column_refusals) == 2 and all("miles_balance" in e for e in column_refusals), output[-4000:]
    plain = _beeline(stack, "finance_e2e", "finance-password-e2e", ["SELECT 'must-not-answer' AS probe"], tmp_path,
                     _jdbc_url(stack).split(";ssl=true;")[0])  # fmt: skip
    untrusted = _beeline(stack, "finance_e2e", "finance-password-e2e", ["SELECT 'must-not-answer' AS probe"],
                         tmp_path, _jdbc_url(stack).split(";sslTrustStore=")[0])  # fmt: skip
    for out in (plain, untrusted):
        assert "must-not-answer" not in out.replace("SELECT 'must-not-answer'", ""), out[-3000:]
        assert "Could not open" in out, out[-3000:]
    assert "PKIX" in untrusted or "certificat" in untrusted, untrusted[-3000:]

    # Superset's Thrift user reads the dashboards' tables and nothing else; of the bookkeeping and anomaly
    # tables, the columns the Data health dashboard reads (a to c passed through it).
    superset = grants.read_grants(stack.thrift_state_dir)["superset"]
    assert sorted(superset) == sorted(spec.full_name for spec in SERVED_TABLES)
    assert {name: grant.columns for name, grant in superset.items() if grant.columns} == SERVED_COLUMNS
    from lakehouse.serving.thrift import connect
    from lakehouse.serving.thrift.auth import service_credentials

    as_superset = connect(stack.thrift_host, stack.thrift_port, service_credentials(stack.thrift_state_dir, "superset"),
                          ca_file=stack.ca_file)  # fmt: skip
    try:
        superset_cursor = as_superset.cursor()
        superset_cursor.execute("SELECT COUNT(*) FROM ops.job_runs WHERE status = 'succeeded'")
        assert superset_cursor.fetchone()[0] > 0
        for statement in ("SELECT parameters FROM ops.job_runs", "SELECT details FROM ops.dq_results",
                          "SELECT file_name FROM ops.ingested_files"):  # fmt: skip
            assert "Access denied: user superset may not read column" in _refused(superset_cursor, statement)
        assert DENIED.format(user="superset", table="silver.fct_events") in _refused(
            superset_cursor, "SELECT COUNT(*) FROM silver.fct_events")  # fmt: skip
    finally:
        as_superset.close()
    print(
        f"[serving] grants: {len(not_granted)} ways to a table not granted refused over PyHive, 4 over beeline; "
        f"a restricted table refused {len(restricted)} ways over each until granted by name; "
        f"columns, row filters, revoke, plaintext and untrusted clients checked in {time.monotonic() - began:.1f} s"
    )
