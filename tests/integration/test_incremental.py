"""Incremental runs give the tables of a full rebuild (issue 9's correctness contract).

Small generated data (late, duplicated and invalid rows included) arrives file by file; the DAG
runs after each arrival. Every bronze, silver and gold table must then equal a warehouse built from
all files in one run; a re-run commits nothing; and a run killed after any number of Delta commits
(no bookkeeping written after that point), then run again, gives the same tables as a clean run.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import delta_io, generator
from lakehouse.jobs import job
from lakehouse.pipeline import run_jobs
from lakehouse.registry import SILVER_EVENTS, SILVER_USER_ACTIVITY, TABLES
from tests.conftest import make_config

pytestmark = pytest.mark.e2e

DATA_TABLES = [spec for spec in TABLES if spec.layer != "ops"]
#: Gold windows shorter than the data (18 days), so that every recomputed slice has older rows beside it
#: that must stay right: a one-week lifecycle lookback, retention offsets 0..1.
GOLD = {"gold__lookback_weeks": 1, "gold__max_week_offset": 1}
#: Set by the run, not by the data: the ingestion time of a bronze row.
RUN_COLUMNS = {"_ingested_at"}


class Killed(BaseException):
    """The process died: nothing after this point runs (not even the end-of-run bookkeeping)."""


@pytest.fixture(scope="module")
def day_files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("generated")
    generator.generate(
        out, users=40, days=18, start_date="2025-03-02", seed=7, events_per_day=1.5, files=6,
        invalid_rate=0.01, duplicate_rate=0.03, late_rate=0.05,
    )  # fmt: skip
    files = sorted(out.glob("*.csv"))
    assert len(files) == 6
    return files


def _dag(spark, config) -> int:
    return run_jobs(spark, config, [job(name) for name in config.dag], {"full_refresh": False})


def _tables(spark, config) -> dict[str, DataFrame]:
    out = {}
    for spec in DATA_TABLES:
        df = delta_io.read(spark, spec, config)
        if "_source_file" in df.columns:  # lineage: compare the file's name, not the folder it was read from
            df = df.withColumn("_source_file", F.regexp_extract("_source_file", r"[^/]+$", 0))
        out[spec.full_name] = df.select(*[c for c in df.columns if c not in RUN_COLUMNS])
    return out


def assert_same_tables(spark, config_a, config_b) -> None:
    a, b = _tables(spark, config_a), _tables(spark, config_b)
    for name in a:
        left, right = a[name], b[name]
        extra, missing = left.exceptAll(right).count(), right.exceptAll(left).count()
        assert (extra, missing) == (0, 0), f"{name}: {extra} rows only in A, {missing} only in B"
        assert left.count() > 0, f"{name} is empty"


def _versions(spark, config) -> dict[str, int]:
    return {
        s.full_name: DeltaTable.forPath(spark, s.path(config)).history(1).first()["version"]
        for s in DATA_TABLES
        if delta_io.exists(spark, s, config)
    }


def _copy(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, folder / path.name)


def _killing_after(monkeypatch, commits: int) -> None:
    """Make the process "die" once ``commits`` Delta writes (of any table, ops included) have started:
    every later write raises instead of committing (the ops tables are written side by side, so a
    kill can land in the middle of the bookkeeping)."""
    started = {"n": 0}
    lock = threading.Lock()
    for name in ("append", "replace_where", "overwrite", "merge_insert_new", "merge_upsert"):
        real = getattr(delta_io, name)

        def counted(*args, _real=real, **kwargs):
            with lock:
                if started["n"] >= commits:
                    raise Killed()
                started["n"] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(delta_io, name, counted)


def test_daily_runs_equal_a_full_rebuild_reruns_commit_nothing_and_killed_runs_recover(
    spark, tmp_path, day_files, monkeypatch
):
    full = make_config(tmp_path / "full", tmp_path / "full_in" / "landing", **GOLD)
    _copy(day_files, tmp_path / "full_in" / "landing")
    assert _dag(spark, full) == 0

    # Daily: the first three files as a backfill, then one file per run (later files carry late
    # events for earlier days, duplicates of earlier rows and invalid rows).
    daily = make_config(tmp_path / "daily", tmp_path / "daily_in" / "landing", **GOLD)
    arrivals = [day_files[:3], *[[f] for f in day_files[3:]]]
    for files in arrivals[:-1]:
        _copy(files, tmp_path / "daily_in" / "landing")
        assert _dag(spark, daily) == 0
    # Before the last arrival: a copy of the warehouse whose next runs get killed.
    shutil.copytree(tmp_path / "daily", tmp_path / "crashed")
    shutil.copytree(tmp_path / "daily_in", tmp_path / "crashed_in")
    _copy(arrivals[-1], tmp_path / "daily_in" / "landing")
    assert _dag(spark, daily) == 0
    assert_same_tables(spark, daily, full)

    before = _versions(spark, daily)
    assert _dag(spark, daily) == 0
    assert _versions(spark, daily) == before, "a run with nothing new committed to a data table"

    # The activity table is the compact input of gold: one row per user and active day.
    activity = delta_io.read(spark, SILVER_USER_ACTIVITY, daily).select("user_id", "activity_date")
    days = delta_io.read(spark, SILVER_EVENTS, daily).select("user_id", F.col("event_date").alias("activity_date"))
    assert activity.exceptAll(days.distinct()).count() == 0
    assert days.distinct().exceptAll(activity).count() == 0

    # The same last arrival on the copy, killed after 1 commit (in bronze), then the re-run killed
    # after 4 (past silver), that one's re-run after 8 (among the gold tables), then after 12 (in
    # the end-of-run bookkeeping); a last run completes. The tables equal the clean ones.
    crashed = make_config(tmp_path / "crashed", tmp_path / "crashed_in" / "landing", **GOLD)
    _copy(arrivals[-1], tmp_path / "crashed_in" / "landing")
    for kill_after in (1, 4, 8, 12):
        with monkeypatch.context() as patch:
            _killing_after(patch, kill_after)
            with pytest.raises(Killed):
                _dag(spark, crashed)
    assert _dag(spark, crashed) == 0
    assert_same_tables(spark, crashed, full)
