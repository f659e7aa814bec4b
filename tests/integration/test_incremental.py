"""Incremental runs give the tables of a full rebuild, and the operations around them keep them.

Small generated data (late, duplicated and invalid rows included) arrives file by file; the DAG
runs after each arrival. Every bronze, silver and gold table must then equal a warehouse built from
all files in one run; a re-run commits nothing; and a run killed after any number of Delta commits
(no bookkeeping written after that point), then run again, gives the same tables as a clean run.
On the daily warehouse: maintenance (OPTIMIZE + VACUUM) and a RESTORE after a bad publish keep the
same answers; two runs at once on one warehouse: the second exits 2 naming the first.
"""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse import delta_io, delta_rs, generator, launcher
from lakehouse.gold.refresh import GOLD_TABLES
from lakehouse.gold.refresh import consumer as gold_consumer
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.gold.tables.agg_metric_anomalies import SPEC as GOLD_METRIC_ANOMALIES
from lakehouse.job_catalog import job
from lakehouse.lock import LockHeld, lock_path, writer_lock
from lakehouse.maintenance import MAINTAIN_JOB, RESTORE_JOB, MaintainParams, RestoreParams, live_files, stored_files
from lakehouse.pipeline import run_jobs
from lakehouse.registry import (
    BRONZE_EVENTS,
    OPS_INGESTED_FILES,
    OPS_PROCESSED_BATCHES,
    SILVER_EVENTS,
    SILVER_USER_ACTIVITY,
)
from lakehouse.tables import TABLES
from lakehouse.warehouse_diff import compare
from tests.conftest import REPO_ROOT, history, make_config

pytestmark = pytest.mark.e2e

DATA_TABLES = [spec for spec in TABLES if spec.layer != "ops"]
#: Gold windows shorter than the data (18 days), so that every recomputed slice has older rows beside it
#: that must stay right: a one-week lifecycle lookback, retention offsets 0..1; anomalies judged on the same
#: weekday of the 2 weeks before (days 14-17 have rows), down to an expected count of 1. A late event of
#: day d then changes the training sets of days d + 7 and d + 14.
GOLD = {"gold__lookback_weeks": 1, "gold__max_week_offset": 1, "anomaly__training_periods": 2,
        "anomaly__min_training_periods": 2, "anomaly__min_expected": 1}  # fmt: skip


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


HEADER = "event_time,user_id,event_type,transaction_category,miles_amount,platform,utm_source,country\n"
SHARED_EVENT = "2025-03-04 09:15:00.000001,u_990101,miles_earned,dining,{miles},{platform},google,SG\n"


@pytest.fixture(scope="module")
def same_event_files(tmp_path_factory) -> tuple[Path, Path]:
    """The same event (same event_id) in two files that arrive as b.csv, then a.csv, each with an event of its
    own: the copy kept must not depend on the arrival order (the daily runs and the full rebuild keep
    a.csv's, the file whose name sorts first)."""
    out = tmp_path_factory.mktemp("same_event")
    b, a = out / "b.csv", out / "a.csv"
    b.write_text(HEADER + SHARED_EVENT.format(miles="120.0", platform="ios")
                 + "2025-03-05 10:00:00.000001,u_990102,like,,,web,tiktok,TH\n")  # fmt: skip
    a.write_text(HEADER + SHARED_EVENT.format(miles="80.0", platform="android")
                 + "2025-03-06 11:00:00.000001,u_990103,share,,,ios,google,SG\n")  # fmt: skip
    return b, a


def _dag(spark, config) -> int:
    return run_jobs(spark, config, [job(name) for name in config.dag], {"full_refresh": False})


def assert_same_tables(spark, config_a, config_b, may_be_empty: tuple[str, ...] = ()) -> None:
    """Every data table of the two warehouses holds the same rows (as multisets; ``_ingested_at`` left out,
    ``_source_file`` by file name): one aggregation per table (:func:`lakehouse.warehouse_diff.compare`)."""
    diff = compare(spark, config_a.paths.warehouse, config_b.paths.warehouse, DATA_TABLES)
    for name, d in diff.items():
        assert (d["only_left"], d["only_right"]) == (0, 0), (
            f"{name}: {d['only_left']} rows only in A, {d['only_right']} only in B"
        )
        assert d["rows_left"] > 0 or name in may_be_empty, f"{name} is empty"


def _versions(spark, config) -> dict[str, int | None]:
    """Each data table's latest version, from its log's listing (no Spark job)."""
    return {s.full_name: delta_io.latest_version(s.path(config), config) for s in DATA_TABLES}


def _copy(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, folder / path.name)


#: Every function that commits to a Delta table: Spark's writers (the table's spec second) and the
#: delta-rs append of the bookkeeping on a local warehouse (the spec first).
SPARK_WRITERS = ("append", "replace_where", "overwrite", "merge_insert_new", "merge_insert_or_replace", "merge_upsert")


def intercept_writes(monkeypatch, before_write) -> None:
    """Call ``before_write(spec)`` before every Delta commit of the run, whichever writer makes it (it
    raises :class:`Killed` to make the process "die" there)."""
    for name in SPARK_WRITERS:
        real = getattr(delta_io, name)

        def spark_write(df, spec, *args, _real=real, **kwargs):
            before_write(spec)
            return _real(df, spec, *args, **kwargs)

        monkeypatch.setattr(delta_io, name, spark_write)
    real_append_rows = delta_rs.append_rows

    def rs_append(spec, *args, **kwargs):
        before_write(spec)
        return real_append_rows(spec, *args, **kwargs)

    monkeypatch.setattr(delta_rs, "append_rows", rs_append)


def _killing_after(monkeypatch, commits: int) -> None:
    """Make the process "die" once ``commits`` Delta writes (of any table, ops included) have started:
    every later write raises instead of committing (the ops tables are written side by side, so a
    kill can land in the middle of the bookkeeping)."""
    started = {"n": 0}
    lock = threading.Lock()

    def count(_spec) -> None:
        with lock:
            if started["n"] >= commits:
                raise Killed()
            started["n"] += 1

    intercept_writes(monkeypatch, count)


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory, day_files, same_event_files) -> dict:
    """A full rebuild from all files, and the same files arriving one run at a time ("daily"); plus two
    copies of the daily warehouse taken before its last arrival ("crashed" for the kill test, "held" for
    the lock test)."""
    root = tmp_path_factory.mktemp("incremental")
    b, a = same_event_files
    full = make_config(root / "full", root / "full_in" / "landing", **GOLD)
    _copy([*day_files, a, b], root / "full_in" / "landing")
    assert _dag(spark, full) == 0

    # Daily: the first three files as a backfill, then one file per run (later files carry late
    # events for earlier days, duplicates of earlier rows and invalid rows; b.csv comes a run before
    # a.csv, which holds the same event).
    daily = make_config(root / "daily", root / "daily_in" / "landing", **GOLD)
    arrivals = [day_files[:3], [day_files[3], b], [day_files[4], a], [day_files[5]]]
    for files in arrivals[:-1]:
        _copy(files, root / "daily_in" / "landing")
        assert _dag(spark, daily) == 0
    # Before the last arrival: a copy of the warehouse whose next runs get killed.
    for copy in ("crashed", "held"):
        shutil.copytree(root / "daily", root / copy)
        shutil.copytree(root / "daily_in", root / f"{copy}_in")
    _copy(arrivals[-1], root / "daily_in" / "landing")
    assert _dag(spark, daily) == 0
    crashed = make_config(root / "crashed", root / "crashed_in" / "landing", **GOLD)
    held = make_config(root / "held", root / "held_in" / "landing", **GOLD)
    return {"full": full, "daily": daily, "crashed": crashed, "held": held, "last": arrivals[-1], "root": root}


def test_daily_runs_equal_a_full_rebuild_and_reruns_commit_nothing(spark, runs):
    daily, full = runs["daily"], runs["full"]
    assert_same_tables(spark, daily, full)
    # The event delivered in b.csv, then a.csv: a.csv's copy (its name sorts first) in both warehouses.
    shared = delta_io.read(spark, SILVER_EVENTS, daily).where(F.col("user_id") == "u_990101").collect()
    assert [(r["miles_amount"], r["platform"]) for r in shared] == [(80, "android")]

    # The last arrival carried events of days inside the training windows of the latest points: its run
    # recomputed points from the earliest of them on (a late day d is a training point of d + 7 and d + 14).
    last_batch = max(delta_io.read(spark, OPS_INGESTED_FILES, daily).where(F.col("status") == "committed")
                     .collect(), key=lambda r: r["ingested_at"])  # fmt: skip
    anomalies = delta_io.read(spark, GOLD_METRIC_ANOMALIES, daily)
    latest = anomalies.agg(F.max("period_start")).first()[0]
    assert last_batch["min_event_date"] <= latest - timedelta(days=7)
    assert anomalies.where(F.col("period_start") >= F.lit(last_batch["min_event_date"] + timedelta(days=7))).count() > 0

    before = _versions(spark, daily)
    assert _dag(spark, daily) == 0
    assert _versions(spark, daily) == before, "a run with nothing new committed to a data table"

    # The activity table is the compact input of gold: one row per user and active day.
    activity = delta_io.read(spark, SILVER_USER_ACTIVITY, daily).select("user_id", "activity_date")
    days = delta_io.read(spark, SILVER_EVENTS, daily).select("user_id", F.col("event_date").alias("activity_date"))
    assert activity.exceptAll(days.distinct()).count() == 0
    assert days.distinct().exceptAll(activity).count() == 0


def test_killed_runs_recover(spark, runs, monkeypatch):
    # The last arrival on the copy, killed after 1 commit (in bronze), then the re-run killed
    # after 4 (past silver), that one's re-run after 8 (among the gold tables), then after 12 (in
    # the end-of-run bookkeeping); a last run completes. The tables equal the clean ones.
    crashed = runs["crashed"]
    _copy(runs["last"], Path(crashed.paths.input))
    for kill_after in (1, 4, 8, 12):
        with monkeypatch.context() as patch:
            _killing_after(patch, kill_after)
            with pytest.raises(Killed):
                _dag(spark, crashed)
    assert _dag(spark, crashed) == 0
    assert_same_tables(spark, crashed, runs["full"])


def _file_counts(spark, config) -> dict[str, tuple[int, int]]:
    return {s.full_name: (live_files(spark, s.path(config)), stored_files(s.path(config), config))
            for s in TABLES if delta_io.exists(s, config)}  # fmt: skip


def test_maintenance_compacts_daily_fragments_keeps_answers_and_history(spark, runs):
    """OPTIMIZE merges the small files of the daily runs; VACUUM with 168 h deletes nothing younger."""
    daily = runs["daily"]
    before = _file_counts(spark, daily)
    first_events = spark.read.format("delta").option("versionAsOf", 1).load(SILVER_EVENTS.path(daily)).count()
    assert MAINTAIN_JOB.execute(spark, daily, MaintainParams()) == 0
    after = _file_counts(spark, daily)
    for name, (live, stored) in after.items():
        assert live <= before[name][0], name
        assert stored >= live, name  # VACUUM kept the files the history still references
        assert stored >= before[name][1], f"{name}: VACUUM deleted files younger than the retention"
    fragmented = [n for n in before if before[n][0] > after[n][0]]
    assert SILVER_EVENTS.full_name in fragmented and BRONZE_EVENTS.full_name in fragmented, (before, after)
    assert_same_tables(spark, daily, runs["full"])  # the same answers
    # Time travel still reads an early version (its files are within the retention).
    again = spark.read.format("delta").option("versionAsOf", 1).load(SILVER_EVENTS.path(daily)).count()
    assert again == first_events
    operations = history(spark, SILVER_EVENTS.path(daily)).select("operation").collect()
    assert {"OPTIMIZE", "VACUUM START", "VACUUM END"} <= {r["operation"] for r in operations}


def test_restore_a_gold_table_after_a_bad_publish(spark, runs):
    daily = runs["daily"]
    path = GOLD_ACTIVE_USER.path(daily)
    good_version = history(spark, path, 1).first()["version"]
    bad = delta_io.read(spark, GOLD_ACTIVE_USER, daily).withColumn("active_users", F.col("active_users") * 2)
    delta_io.overwrite(bad.localCheckpoint(), GOLD_ACTIVE_USER, daily)  # a bad publish

    params = RestoreParams(table=GOLD_ACTIVE_USER.full_name, version=good_version)
    assert RESTORE_JOB.execute(spark, daily, params) == 0
    assert_same_tables(spark, daily, runs["full"])
    # Its bookkeeping was forgotten: the next run rebuilds it whole, with the same rows.
    assert _dag(spark, daily) == 0
    operations = history(spark, path, 2).select("operation").collect()
    assert [r["operation"] for r in operations] == ["WRITE", "RESTORE"]
    assert_same_tables(spark, daily, runs["full"])


def _cli_args(config) -> list[str]:
    """``lakehouse run`` arguments for ``config``'s warehouse and input, with the test's gold windows."""
    gold = [f"--set={k.replace('__', '.')}={v}" for k, v in GOLD.items()]
    return ["--env", "local", "--warehouse", config.paths.warehouse, "--input", config.paths.input, "--no-summary",
            *gold, "--set=spark.shuffle_partitions=2"]  # fmt: skip


def test_two_runs_at_once_one_exits_2_with_the_holder_and_a_stale_lock_is_taken_over(spark, runs, tmp_path):
    """A real second process holds the lock (the last arrival's run, on a copy of the daily warehouse taken
    before it); this run exits 2 naming it; the tables equal a clean run's."""
    shutil.copytree(runs["held"].paths.warehouse, tmp_path / "wh")
    shutil.copytree(Path(runs["held"].paths.input).parent, tmp_path / "in")
    _copy(runs["last"], tmp_path / "in" / "landing")
    config = make_config(tmp_path / "wh", tmp_path / "in" / "landing", **GOLD)
    args = _cli_args(config)
    holder = subprocess.Popen([sys.executable, "-m", "lakehouse.cli", "run", *args], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        lock_file = Path(lock_path(config))
        deadline = time.monotonic() + 60
        while not lock_file.exists() and holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lock_file.exists(), "the first run never took the lock"
        started = time.monotonic()
        held = rf"another run is writing the warehouse .*pid {holder.pid} on host"
        with pytest.raises(LockHeld, match=held), writer_lock(config):
            pass
        assert launcher.run_main(args) == 2  # the command: exit 2, before starting anything
        assert time.monotonic() - started < 10
        output, _ = holder.communicate(timeout=600)
        assert holder.returncode == 0, output[-3000:]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert not lock_file.exists(), "the lock was not released"
    assert_same_tables(spark, config, runs["full"])

    # A lock left by a killed run (its pid is gone) is taken over by the next run.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = {"token": "x", "pid": dead.pid, "host": socket.gethostname(), "command": "lakehouse run",
            "started_at": 0, "heartbeat_at": time.time()}  # fmt: skip
    lock_file.write_text(json.dumps(left))
    before = _versions(spark, config)
    assert launcher.run_main(args) == 0
    assert _versions(spark, config) == before and not lock_file.exists()


def test_a_bad_file_does_not_block_good_data(spark, runs, day_files, tmp_path):
    """Good files, a gzipped export, a refused file and a stray note: the good and gzipped rows reach
    gold, the run exits 1 once; the next run exits 0 and commits nothing; the fixed file is ingested."""
    landing = tmp_path / "landing"
    _copy(day_files[:2], landing)
    with open(day_files[2], "rb") as src, gzip.open(landing / (day_files[2].name + ".gz"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    bad = landing / day_files[3].name
    bad.write_text("when,who,what\n" + "".join(day_files[3].read_text().splitlines(keepends=True)[1:]))
    (landing / "README.txt").write_text("exports land here")
    config = make_config(tmp_path / "wh", landing, **GOLD)
    args = _cli_args(config)

    assert launcher.run_main(args) == 1
    files = {r["file_name"]: r["status"] for r in delta_io.read(spark, OPS_INGESTED_FILES, config).collect()}
    assert files == {day_files[0].name: "committed", day_files[1].name: "committed",
                     day_files[2].name + ".gz": "committed", bad.name: "refused", "README.txt": "ignored"}  # fmt: skip
    committed = {r["batch_id"] for r in delta_io.read(spark, OPS_INGESTED_FILES, config).collect()
                 if r["status"] == "committed"}  # fmt: skip
    processed = delta_io.read(spark, OPS_PROCESSED_BATCHES, config)
    for gold in GOLD_TABLES.values():
        spec = gold.spec
        consumer = gold_consumer(spec, config)
        got = {r["batch_id"] for r in processed.where(F.col("consumer") == consumer).collect()}
        assert got == committed, f"{spec.full_name} did not consume every good batch"

    before = _versions(spark, config)
    assert launcher.run_main(args) == 0
    assert _versions(spark, config) == before

    shutil.copy(day_files[3], bad)  # fixed in place
    assert launcher.run_main(args) == 0
    statuses = delta_io.read(spark, OPS_INGESTED_FILES, config).where(F.col("file_name") == bad.name)
    assert sorted(r["status"] for r in statuses.collect()) == ["committed", "refused"]
