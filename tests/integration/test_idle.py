"""Runs with nothing to do are decided from the jobs' declared inputs and recorded without Spark
(lakehouse/launcher.py): the same decisions and bookkeeping as a run under Spark, tables Spark still
reads, the summary from its kept sections; anything to do (a new file) goes to Spark."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse import delta_io, launcher
from lakehouse.bronze.sources import identify, list_input_files, spark_path_key
from lakehouse.gold.refresh import JOBS as GOLD_JOBS
from lakehouse.registry import OPS_INGESTED_FILES, OPS_JOB_RUNS
from lakehouse.tables import TABLES
from tests.conftest import SAMPLE_FILES, make_config

pytestmark = pytest.mark.e2e

RUN_COLUMNS = ("job", "status", "rows_in", "rows_out", "message", "parameters")


def _commits(config) -> dict[str, set[int]]:
    out = {}
    for spec in TABLES:
        log_dir = Path(spec.path(config)) / "_delta_log"
        if log_dir.is_dir():
            out[spec.full_name] = {int(p.stem) for p in log_dir.glob("*.json") if p.stem.isdigit()}
    return out


def _engine(config, spec, version: int) -> str:
    path = Path(spec.path(config)) / "_delta_log" / f"{version:020d}.json"
    for line in path.read_text().splitlines():
        if '"commitInfo"' in line:
            return json.loads(line)["commitInfo"].get("engineInfo", "")
    return ""


#: The freshness reminder of an idle anomaly job names its own moment: the age and the run's start.
FRESHNESS_MOMENT = re.compile(r"is [\d,.]+ h old at the run's start \([^)]*\)")


def _timeless(text: str | None) -> str | None:
    return None if text is None else FRESHNESS_MOMENT.sub("is <age> h old at the run's start (<start>)", text)


def _runs_of(spark, config, run_ids_before: set[str]) -> list[tuple]:
    rows = delta_io.read(spark, OPS_JOB_RUNS, config).where(~F.col("run_id").isin(sorted(run_ids_before)))
    return sorted(tuple(_timeless(r[c]) if c == "message" else r[c] for c in RUN_COLUMNS) for r in rows.collect())


def _run_ids(spark, config) -> set[str]:
    return {r["run_id"] for r in delta_io.read(spark, OPS_JOB_RUNS, config).select("run_id").collect()}


def _args(config, *extra: str) -> list[str]:
    return ["--env", "local", "--input", config.paths.input, "--warehouse", config.paths.warehouse,
            "--set", "spark.shuffle_partitions=2", *extra]  # fmt: skip


def test_listing_and_file_keys_equal_what_spark_reports(spark, tmp_path):
    """The client lists, hashes and names files itself (no JVM): its paths, sizes, times and keys are Spark's own."""
    names = ("b.csv", "A.CSV", "a b.csv", "per%cent.csv", "x%20y.csv", "c+d;e.csv", "ünï.csv", "h#a.csv", "q?x.csv")
    for i, name in enumerate(names):
        (tmp_path / name).write_text("x" * (i + 1) + "\n")
    (tmp_path / "notes.txt").write_text("n")
    (tmp_path / "sub").mkdir()
    csv, others = list_input_files(str(tmp_path))
    assert sorted(f.name for f in csv) == sorted(names) and [f.name for f in others] == ["notes.txt"]
    seen = {
        r["file_path"]: r
        for r in spark.read.text([f.path for f in csv])
        .select("_metadata.file_path", "_metadata.file_size", "_metadata.file_modification_time")
        .distinct()
        .collect()
    }
    for f in csv:
        row = seen[spark_path_key(f.path)]
        assert (row["file_size"], row["file_modification_time"]) == (f.size, f.modified_at), f.name
    assert [identify(f).sha256 for f in csv] == [hashlib.sha256(Path(f.path.removeprefix("file:")).read_bytes())
                                                 .hexdigest() for f in csv]  # fmt: skip
    one = str(tmp_path / "b.csv")
    assert list_input_files(one) == ([f for f in csv if f.name == "b.csv"], [])


def test_nothing_new_is_recorded_without_spark_like_spark_does(spark, sample_pipeline, tmp_path, capsys):
    root = tmp_path / "copy"
    shutil.copytree(Path(sample_pipeline.paths.warehouse), root / "wh")
    shutil.copytree(Path(sample_pipeline.paths.input), root / "input")
    config = make_config(root / "wh", root / "input")

    # Under Spark (switched off): the reference decisions, and the summary rendered (and kept).
    before = _run_ids(spark, config)
    assert launcher.run_main(_args(config, "--set", "operations.idle_without_spark=false")) == 0
    under_spark = _runs_of(spark, config, before)
    first = capsys.readouterr().out
    assert len(under_spark) == len(config.dag)
    # The sample's data is of 2025: both paths remind of stale data on the anomaly job's idle run.
    stale = "data_freshness: newest event_time 2025-07-05 23:40:56"
    messages = {r[0]: r[4] for r in under_spark}
    assert f"; {stale} is <age> h old" in messages["gold_agg_metric_anomalies"]
    assert f"KNOWN  gold_agg_metric_anomalies: {stale}" in first
    # The anomalies of the sample's last 7 days, newest first, and each one a warning of the checks.
    anomalies = first.split("Anomalies of the last 7 days (newest first; value, expected [band]):\n")[1]
    newest = "  earn_events in country=ID on 2025-07-05: 31, expected 14 [-3, 30] (spike, score 4.7)\n"
    assert anomalies.startswith(newest)
    assert "WARN  gold.agg_metric_anomalies.metric_anomaly: 1 of 1 (events in all on 2025-07-05: 290" in first

    # Without Spark: the same rows, one ops.job_runs commit by delta-rs, no other table touched.
    commits, before = _commits(config), _run_ids(spark, config)
    assert launcher.run_main(_args(config)) == 0
    second = capsys.readouterr().out
    after = _commits(config)
    changed = {t: after[t] - commits.get(t, set()) for t in after if after[t] != commits.get(t)}
    assert list(changed) == [OPS_JOB_RUNS.full_name] and len(changed[OPS_JOB_RUNS.full_name]) == 1
    assert _engine(config, OPS_JOB_RUNS, max(changed[OPS_JOB_RUNS.full_name])).startswith("delta-rs")
    assert _runs_of(spark, config, before) == under_spark
    # The summary's sections are the kept ones: equal to those Spark rendered.
    sections = "Quarantined rows per rule"
    assert _timeless(first.split(sections)[1]) == _timeless(second.split(sections)[1])
    assert f"KNOWN  gold_agg_metric_anomalies: {stale}" in second

    # One job alone (spark-submit jobs/<job>.py, lakehouse job): recorded without Spark too.
    before = _run_ids(spark, config)
    job = GOLD_JOBS["gold_agg_active_user"]
    commits = _commits(config)
    assert launcher.job_main(job, ["--env", "local", "--warehouse", config.paths.warehouse]) == 0
    assert [r[:4] for r in _runs_of(spark, config, before)] == [("gold_agg_active_user", "succeeded", 0, 0)]
    after = _commits(config)
    assert [t for t in after if after[t] != commits.get(t)] == [OPS_JOB_RUNS.full_name]

    # Something to do (a new file): Spark takes over and ingests it.
    lines = SAMPLE_FILES[-1].read_text().splitlines(keepends=True)
    (root / "input" / "late_copy.csv").write_text("".join(lines[:40]))
    assert launcher.run_main(_args(config, "--no-summary")) == 0
    files = delta_io.read(spark, OPS_INGESTED_FILES, config).where(F.col("file_name") == "late_copy.csv")
    assert [(r["status"], r["rows_accepted"]) for r in files.collect()] == [("committed", 39)]
