"""The readable end-of-run summary printed by ``lakehouse run`` (and so by ``scripts/run_pipeline.sh``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.config import LakehouseConfig, local_path
from lakehouse.gold.tables import agg_metric_anomalies
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.gold.tables.agg_engagement_daily import SPEC as GOLD_ENGAGEMENT
from lakehouse.gold.tables.agg_metric_anomalies import SPEC as GOLD_METRIC_ANOMALIES
from lakehouse.gold.tables.agg_miles_weekly import SPEC as GOLD_MILES_WEEKLY
from lakehouse.gold.tables.agg_user_lifecycle_weekly import SPEC as GOLD_LIFECYCLE
from lakehouse.gold.tables.agg_user_retention import SPEC as GOLD_RETENTION
from lakehouse.ops import JobRun
from lakehouse.registry import BRONZE_QUARANTINE, GOLD_NEGATIVE_BALANCE, OPS_DQ_RESULTS, OPS_JOB_RUNS, TableSpec
from lakehouse.tables import TABLES


def _table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    cells = [tuple(str(c) for c in headers), *[tuple("" if c is None else str(c) for c in r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


def table_counts(spark: SparkSession, config: LakehouseConfig) -> str:
    def count(spec: TableSpec) -> tuple[str, int] | None:
        return (spec.full_name, delta_io.read(spark, spec, config).count()) if delta_io.exists(spec, config) else None

    with ThreadPoolExecutor(4) as pool:
        rows = [r for r in pool.map(count, TABLES) if r]
    return _table(rows, ("table", "rows"))


def quarantine_by_rule(spark: SparkSession, config: LakehouseConfig) -> str:
    if not delta_io.exists(BRONZE_QUARANTINE, config):
        return "  (no quarantine table yet)"
    rows = (
        delta_io.read(spark, BRONZE_QUARANTINE, config)
        .select(F.explode("failed_checks").alias("rule"))
        .groupBy("rule")
        .count()
        .orderBy(F.desc("count"), "rule")
        .collect()
    )
    return _table([(r["rule"], r["count"]) for r in rows], ("rule", "quarantined rows")) if rows else "  none"


def weekly_active(spark: SparkSession, config: LakehouseConfig, weeks: int = 6) -> str:
    week_start = config.week_start
    rows = (
        delta_io.read(spark, GOLD_ACTIVE_USER, config)
        .where(F.col("period_type") == "weekly")
        .groupBy("period_start_date", "is_partial_period")
        .agg(F.sum("active_users").alias("wau"))
        .orderBy(F.desc("period_start_date"))
        .limit(weeks)
        .collect()
    )
    return _table(
        [(r["period_start_date"], r["wau"], "partial (to date)" if r["is_partial_period"] else "") for r in rows[::-1]],
        (f"week (from {week_start.capitalize()})", "weekly active users", ""),
    )


def engagement_last_days(spark: SparkSession, config: LakehouseConfig, days: int = 3) -> str:
    rows = (
        delta_io.read(spark, GOLD_ENGAGEMENT, config)
        .groupBy("activity_date")
        .agg(F.sum("dau").alias("dau"), F.sum("wau_7d").alias("wau"), F.sum("mau_30d").alias("mau"))
        .orderBy(F.desc("activity_date"))
        .limit(days)
        .collect()
    )
    return _table(
        [(r["activity_date"], r["dau"], r["wau"], r["mau"], f"{r['dau'] / r['mau']:.1%}" if r["mau"] else "")
         for r in rows[::-1]],
        ("day", "DAU", "WAU (7d)", "MAU (30d)", "DAU/MAU"),
    )  # fmt: skip


def lifecycle_last_weeks(spark: SparkSession, config: LakehouseConfig, weeks: int = 4) -> str:
    df = delta_io.read(spark, GOLD_LIFECYCLE, config)
    pivot = (
        df.groupBy("cutoff_week", "is_partial_period")
        .pivot("user_status", ["new", "retained", "resurrected", "dormant", "churned"])
        .agg(F.sum("user_count"))
        .orderBy(F.desc("cutoff_week"))
        .limit(weeks)
        .collect()
    )
    return _table(
        [(r["cutoff_week"], *[r[s] or 0 for s in ("new", "retained", "resurrected", "dormant", "churned")],
          "partial" if r["is_partial_period"] else "") for r in pivot[::-1]],
        ("week", "new", "retained", "resurrected", "dormant", "churned", ""),
    )  # fmt: skip


def retention_latest_cohorts(spark: SparkSession, config: LakehouseConfig, cohorts: int = 4, offsets: int = 4) -> str:
    df = delta_io.read(spark, GOLD_RETENTION, config).where(F.col("week_offset") <= offsets)
    complete = df.where(~F.col("is_partial_period"))
    cells = (
        complete.groupBy("cohort_week", "week_offset")
        .agg(F.sum("retained_users").alias("r"), F.sum("cohort_size").alias("n"))
        .collect()
    )
    by_cohort: dict = {}
    for c in cells:
        by_cohort.setdefault(c["cohort_week"], {})[c["week_offset"]] = (c["r"], c["n"])
    full = sorted(w for w, v in by_cohort.items() if len(v) == offsets + 1)[-cohorts:]
    rows = [(w, by_cohort[w][0][1], *[f"{by_cohort[w][k][0] / by_cohort[w][k][1]:.0%}" for k in range(offsets + 1)])
            for w in full]  # fmt: skip
    return _table(rows, ("cohort week", "users", *[f"week {k}" for k in range(offsets + 1)]))


def miles_last_weeks(spark: SparkSession, config: LakehouseConfig, weeks: int = 4) -> str:
    """Miles issued and burned in the last weeks, and what the program owes at each week's end."""
    rows = (
        delta_io.read(spark, GOLD_MILES_WEEKLY, config)
        .groupBy("week_start", "is_partial_period")
        .agg(*[F.sum(c).alias(c) for c in ("miles_earned", "miles_redeemed", "outstanding_miles", "liability_miles",
                                           "negative_balance_users")])
        .orderBy(F.desc("week_start"))
        .limit(weeks)
        .collect()
    )  # fmt: skip
    miles = lambda v: f"{v:,.0f}"  # noqa: E731
    return _table(
        [(r["week_start"], miles(r["miles_earned"]), miles(r["miles_redeemed"]), miles(r["outstanding_miles"]),
          miles(r["liability_miles"]), r["negative_balance_users"], "partial" if r["is_partial_period"] else "")
         for r in rows[::-1]],
        ("week", "earned", "redeemed", "outstanding", "liability", "negative-balance users", ""),
    )  # fmt: skip


def latest_anomalies(spark: SparkSession, config: LakehouseConfig, shown: int = 10) -> str:
    """The anomalies of the data's last ``anomaly.alert_days`` days (weekly: weeks ending in them), newest first."""
    df = delta_io.read(spark, GOLD_METRIC_ANOMALIES, config)
    period_end = F.when(F.col("grain") == "week", F.date_add("period_start", 6)).otherwise(F.col("period_start"))
    last = df.agg(F.max(period_end)).first()[0]
    days = config.anomaly.alert_days
    if last is None:
        return "  no point evaluated yet"
    rows = [r.asDict() for r in agg_metric_anomalies.alert_window(df.where(F.col("is_anomaly")), last, days)
            .orderBy(F.desc("period_start"), "grain", "metric", "segment_type", "segment_value").collect()]  # fmt: skip
    if not rows:
        return f"  none in the last {days} days (to {last})"
    lines = [f"  {agg_metric_anomalies.describe(r)}" for r in rows[:shown]]
    if len(rows) > shown:
        lines.append(f"  ... and {len(rows) - shown} more (gold.agg_metric_anomalies, is_anomaly)")
    return "\n".join(lines)


def checks_state(spark: SparkSession, config: LakehouseConfig) -> dict[str, Any]:
    """What the checks section shows: the latest run of each job (status, message), and the findings
    and passed count of the latest run of each job that checked its data.

    A run with nothing new checks nothing (its tables did not change): the findings shown are
    then those of the job's last run that did, i.e. the current state of the tables.
    """
    runs = delta_io.read(spark, OPS_JOB_RUNS, config).select("run_id", "job", "started_at", "status", "message")
    latest = runs.groupBy("job").agg(F.max("started_at").alias("started_at"))
    latest_runs = {r["job"]: [r["status"], r["message"]] for r in runs.join(latest, on=["job", "started_at"]).collect()}
    dq = delta_io.read(spark, OPS_DQ_RESULTS, config)
    checking = dq.groupBy("job").agg(F.max_by("run_id", "checked_at").alias("run_id"))
    current = dq.join(checking.select("run_id"), on="run_id", how="inner").cache()
    try:
        findings = current.where(F.col("status").isin("fail", "warn")).orderBy("status", "table_name", "check_name")
        lines = []
        for r in findings.collect():
            detail = f" ({r['details']})" if r["details"] else ""
            lines.append(f"  {r['status'].upper():5} {r['table_name']}.{r['check_name']}: "
                         f"{r['failed_rows']} of {r['rows_checked']}{detail}")  # fmt: skip
        passed = current.where(F.col("status") == "pass").count()
    finally:
        current.unpersist()
    return {"latest": latest_runs, "findings": lines, "passed": passed}


def render_checks(state: dict[str, Any]) -> str:
    """Failed jobs (latest run of each job), then the findings and the passed count."""
    lines = [
        f"  job {'completed with problems' if status == 'partial' else 'failed'}: {job}: {message}"
        for job, (status, message) in sorted(state["latest"].items())
        if status != "succeeded"
    ]
    lines += state["findings"]
    lines.append(f"  {state['passed']} checks passed in the latest checking run of each job")
    return "\n".join(lines)


def checks(spark: SparkSession, config: LakehouseConfig) -> str:
    return render_checks(checks_state(spark, config))


Title = str | Callable[[LakehouseConfig], str]
Section = Callable[[SparkSession, LakehouseConfig], "str | None"]


def _section(title: Title, body: Callable[[SparkSession, LakehouseConfig], str], *needs: TableSpec) -> Section:
    def render(spark: SparkSession, config: LakehouseConfig) -> str | None:
        if not all(delta_io.exists(spec, config) for spec in needs):
            return None
        return (title if isinstance(title, str) else title(config)) + body(spark, config)

    return render


def _negative(spark: SparkSession, config: LakehouseConfig) -> str:
    n = delta_io.read(spark, GOLD_NEGATIVE_BALANCE, config).count()
    return f"{n} (listed in {GOLD_NEGATIVE_BALANCE.full_name})"


def this_run(runs: list[JobRun]) -> str:
    """Each job of the run: status, seconds, rows in / out, and why it failed (no query: from memory)."""
    rows = []
    for r in runs:
        seconds = f"{(r.ended_at - r.started_at).total_seconds():.1f}" if r.ended_at else ""
        rows.append((r.job, r.status or "", seconds, _n(r.rows_in), _n(r.rows_out), (r.message or "")[:80]))
    return _table(rows, ("job", "status", "seconds", "rows in", "rows out", ""))


def attention(runs: list[JobRun]) -> str | None:
    """What a person should act on: new problems (the run exits 1) and reminders of known ones."""
    lines = [f"  NEW    {r.job}: {p}" for r in runs for p in r.problems]
    lines += [f"  KNOWN  {r.job}: {p}" for r in runs for p in r.reminders]
    return "\n".join(lines) if lines else None


def _n(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


CHECKS_TITLE = "Checks (failures and warnings of the latest run of each job that checked its data):\n"
SECTIONS = (
    _section("Quarantined rows per rule (a row may break several):\n", quarantine_by_rule),
    _section("Weekly active users, last weeks (all segments):\n", weekly_active, GOLD_ACTIVE_USER),
    _section("Stickiness on the latest days (all segments, rolling windows):\n", engagement_last_days, GOLD_ENGAGEMENT),
    _section(lambda c: f"User lifecycle, last weeks (lookback {c.gold.lookback_weeks} weeks):\n", lifecycle_last_weeks,
             GOLD_LIFECYCLE),
    _section("Retention of the latest complete cohorts (share of the cohort active in week k):\n",
             retention_latest_cohorts, GOLD_RETENTION),
    _section("Miles economy, last weeks (all segments; outstanding and liability at the week's end):\n",
             miles_last_weeks, GOLD_MILES_WEEKLY),
    _section(lambda c: f"Anomalies of the last {c.anomaly.alert_days} days (newest first; value, expected [band]):\n",
             latest_anomalies, GOLD_METRIC_ANOMALIES),
    _section("Users with a negative miles balance: ", _negative, GOLD_NEGATIVE_BALANCE),
)  # fmt: skip
COUNTS = _section("Rows per table:\n", table_counts)

# --------------------------------------------------------------------------- kept sections

#: The rendered sections of the last summary, with the versions of the tables they were read at,
#: in ``<warehouse>/_lakehouse/`` (local warehouses): a run that changed no table prints them again
#: without Spark (:func:`kept_summary`). ``ops.job_runs`` changes on every run: the checks section keeps
#: the latest status of each job instead, brought up to date with the run's own jobs.
CACHE_FILE = "summary.json"
CACHE_FORMAT = 2


def _cache_path(config: LakehouseConfig) -> Path | None:
    warehouse = local_path(config.paths.warehouse)
    return None if warehouse is None else warehouse / "_lakehouse" / CACHE_FILE


def table_versions(config: LakehouseConfig) -> dict[str, int]:
    """Latest committed version of every existing table but ``ops.job_runs`` (a listing of each log)."""
    versions = {}
    for spec in TABLES:
        if spec.full_name == OPS_JOB_RUNS.full_name:
            continue
        log_dir = Path(spec.path(config)) / "_delta_log"
        if log_dir.is_dir():
            names = [p.name.removesuffix(".json") for p in log_dir.iterdir() if p.name.endswith(".json")]
            commits = [int(n) for n in names if n.isdigit()]
            if commits:
                versions[spec.full_name] = max(commits)
    return versions


def _read_cache(config: LakehouseConfig) -> dict[str, Any] | None:
    path = _cache_path(config)
    if path is None or not path.exists():
        return None
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if cached.get("format") != CACHE_FORMAT or cached.get("versions") != table_versions(config):
        return None
    return cached


def _write_cache(config: LakehouseConfig, cached: dict[str, Any]) -> None:
    path = _cache_path(config)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"format": CACHE_FORMAT, **cached}, indent=1, default=str))
    tmp.replace(path)


def kept_summary(config: LakehouseConfig, runs: list[JobRun] | None = None) -> str | None:
    """The summary without Spark: the sections the last summary kept, when no table changed since they
    were rendered (the checks brought up to date with ``runs``); None when they are out of date."""
    cached = _read_cache(config)
    if cached is None:
        return None
    for r in runs or []:
        if r.status:
            cached["checks"]["latest"][r.job] = [r.status, r.message]
    _write_cache(config, cached)
    return _assemble(config, runs, [*cached["sections"], CHECKS_TITLE + render_checks(cached["checks"])])


def build_summary(
    spark: SparkSession,
    config: LakehouseConfig,
    runs: list[JobRun] | None = None,
    *,
    table_counts: bool = False,
    workers: int = 4,
) -> str:
    """The end-of-run summary: the run's jobs (``runs``), headline numbers of the gold tables, checks.

    Every table's row count (``table_counts``) is optional: on a cold JVM each table's first read
    loads its Delta snapshot (about 0.8 s a table here), which would dominate a daily run's time.
    The sections are independent queries, run a few at a time (Spark accepts jobs from several
    threads, and most of a small query's time is driver-side planning and log reading). The sections
    are kept with the table versions they were read at (:func:`kept_summary`).
    """
    versions = table_versions(config)
    sections = [*([COUNTS] if table_counts else []), *SECTIONS]
    have_checks = all(delta_io.exists(spec, config) for spec in (OPS_JOB_RUNS, OPS_DQ_RESULTS))
    with ThreadPoolExecutor(workers) as pool:
        state = pool.submit(checks_state, spark, config) if have_checks else None
        parts = list(pool.map(lambda section: section(spark, config), sections))
        checks_now = state.result() if state is not None else None
    if checks_now is not None:
        parts.append(CHECKS_TITLE + render_checks(checks_now))
        if not table_counts:
            _write_cache(config, {"versions": versions, "sections": parts[:-1], "checks": checks_now})
    return _assemble(config, runs, parts)


def _assemble(config: LakehouseConfig, runs: list[JobRun] | None, parts: list[str | None]) -> str:
    head = [f"Warehouse: {config.paths.warehouse}"]
    if runs:
        head.append("This run:\n" + this_run(runs))
        todo = attention(runs)
        if todo:
            head.append("Needs attention (input files: ops.ingested_files has every decision; runs: ops.job_runs):\n"
                        + todo)  # fmt: skip
    return "\n\n".join([*head, *[p for p in parts if p]])
