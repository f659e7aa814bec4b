"""The readable end-of-run summary printed by ``lakehouse run`` (and so by ``scripts/run_pipeline.sh``)."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.config import LakehouseConfig
from lakehouse.registry import (
    BRONZE_QUARANTINE,
    GOLD_ACTIVE_USER,
    GOLD_ENGAGEMENT,
    GOLD_LIFECYCLE,
    GOLD_NEGATIVE_BALANCE,
    GOLD_RETENTION,
    OPS_DQ_RESULTS,
    OPS_JOB_RUNS,
    TABLES,
)


def _table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    cells = [tuple(str(c) for c in headers), *[tuple("" if c is None else str(c) for c in r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


def table_counts(spark: SparkSession, config: LakehouseConfig) -> str:
    rows = []
    for spec in TABLES:
        if delta_io.exists(spark, spec, config):
            rows.append((spec.full_name, delta_io.read(spark, spec, config).count()))
    return _table(rows, ("table", "rows"))


def quarantine_by_rule(spark: SparkSession, config: LakehouseConfig) -> str:
    if not delta_io.exists(spark, BRONZE_QUARANTINE, config):
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


def checks(spark: SparkSession, config: LakehouseConfig) -> str:
    """Failed jobs (latest run of each job) and the findings of the latest run of each job that checked.

    A run with nothing new checks nothing (its tables did not change): the findings shown are
    then those of the job's last run that did, i.e. the current state of the tables.
    """
    runs = delta_io.read(spark, OPS_JOB_RUNS, config).select("run_id", "job", "started_at", "status", "message")
    latest = runs.groupBy("job").agg(F.max("started_at").alias("started_at"))
    failed_jobs = [
        r for r in runs.join(latest, on=["job", "started_at"], how="inner").collect() if r["status"] != "succeeded"
    ]
    dq = delta_io.read(spark, OPS_DQ_RESULTS, config)
    checking = dq.groupBy("job").agg(F.max_by("run_id", "checked_at").alias("run_id"))
    current = dq.join(checking.select("run_id"), on="run_id", how="inner").cache()
    try:
        findings = current.where(F.col("status").isin("fail", "warn")).orderBy("status", "table_name", "check_name")
        lines = [f"  job failed: {r['job']}: {r['message']}" for r in failed_jobs]
        for r in findings.collect():
            detail = f" ({r['details']})" if r["details"] else ""
            lines.append(f"  {r['status'].upper():5} {r['table_name']}.{r['check_name']}: "
                         f"{r['failed_rows']} of {r['rows_checked']}{detail}")  # fmt: skip
        passed = current.where(F.col("status") == "pass").count()
    finally:
        current.unpersist()
    lines.append(f"  {passed} checks passed in the latest checking run of each job")
    return "\n".join(lines)


def build_summary(spark: SparkSession, config: LakehouseConfig) -> str:
    sections = [
        f"Warehouse: {config.paths.warehouse}",
        "Rows per table:\n" + table_counts(spark, config),
        "Quarantined rows per rule (a row may break several):\n" + quarantine_by_rule(spark, config),
    ]
    if delta_io.exists(spark, GOLD_ACTIVE_USER, config):
        sections.append("Weekly active users, last weeks (all segments):\n" + weekly_active(spark, config))
    if delta_io.exists(spark, GOLD_ENGAGEMENT, config):
        sections.append("Stickiness on the latest days (all segments, rolling windows):\n"
                        + engagement_last_days(spark, config))  # fmt: skip
    if delta_io.exists(spark, GOLD_LIFECYCLE, config):
        sections.append(f"User lifecycle, last weeks (lookback {config.gold.lookback_weeks} weeks):\n"
                        + lifecycle_last_weeks(spark, config))  # fmt: skip
    if delta_io.exists(spark, GOLD_RETENTION, config):
        sections.append("Retention of the latest complete cohorts (share of the cohort active in week k):\n"
                        + retention_latest_cohorts(spark, config))  # fmt: skip
    if delta_io.exists(spark, GOLD_NEGATIVE_BALANCE, config):
        n = delta_io.read(spark, GOLD_NEGATIVE_BALANCE, config).count()
        sections.append(f"Users with a negative miles balance: {n} (listed in {GOLD_NEGATIVE_BALANCE.full_name})")
    if delta_io.exists(spark, OPS_JOB_RUNS, config) and delta_io.exists(spark, OPS_DQ_RESULTS, config):
        sections.append(
            "Checks (failures and warnings of the latest run of each job that checked its data):\n"
            + checks(spark, config)
        )
    return "\n\n".join(sections)
