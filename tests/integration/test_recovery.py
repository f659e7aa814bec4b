"""Two recovery edges: every row traceable to a recorded batch after a crash, and a dedup rule that does
not depend on the order files arrive in.

1. A run is killed after bronze and silver committed a file's rows, before the run's bookkeeping (or in the
   middle of it: the consumers' records committed, the file manifest not); the file is then changed in
   place. The next run must undo the rows of the batch that was started and never recorded (in every table
   that received them) and ingest the new content as an ordinary batch:
   every table equals a clean run on the changed file, and ``ops.ingested_files`` accounts for every
   bronze row.
2. The same event in two files delivered as b.csv, then a.csv, over two daily runs: every table equals a
   full refresh of the folder (one run over both files).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse import delta_io, generator
from lakehouse.registry import BRONZE_EVENTS, OPS_INGESTED_FILES, SILVER_EVENTS
from tests.conftest import make_config
from tests.integration.test_incremental import GOLD, Killed, _copy, _dag, assert_same_tables

pytestmark = pytest.mark.e2e

#: The generated files here have no invalid rows, and 12 days: no day has two weeks of training points.
NO_BAD_ROWS = ("bronze.fct_event_stream_quarantine", "gold.agg_metric_anomalies")
HEADER = "event_time,user_id,event_type,transaction_category,miles_amount,platform,utm_source,country\n"


@pytest.fixture(scope="module")
def base_files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("recovery_generated")
    generator.generate(out, users=25, days=12, start_date="2025-03-02", seed=11, events_per_day=1.5, files=2)
    files = sorted(out.glob("*.csv"))
    assert len(files) == 2
    return files


#: Where the run dies: at the first write to a table it refuses (every write before it commits).
KILL_POINTS = {
    # After bronze, its intents and silver.fct_events committed the new file's rows: no bookkeeping written.
    "after_silver_events": lambda spec: (
        spec.layer != "bronze" and spec.full_name not in ("silver.fct_events", "ops.batch_intents")
    ),
    # During the bookkeeping, written side by side: every table but ops.ingested_files committed (the
    # consumers recorded the batch, the manifest never did).
    "mid_bookkeeping": lambda spec: spec.full_name == "ops.ingested_files",
}


def _killing_at(monkeypatch, refused) -> None:
    for name in ("append", "replace_where", "overwrite", "merge_insert_new", "merge_insert_or_replace", "merge_upsert"):
        real = getattr(delta_io, name)

        def guarded(df, spec, *args, _real=real, **kwargs):
            if refused(spec):
                raise Killed()
            return _real(df, spec, *args, **kwargs)

        monkeypatch.setattr(delta_io, name, guarded)


def _change_in_place(path: Path) -> None:
    """New content under the same name: the last third of the lines dropped, one miles amount changed."""
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[: max(2, len(lines) * 2 // 3)]
    for i, line in enumerate(kept[1:], start=1):
        fields = line.rstrip("\n").split(",")
        if fields[2] == "miles_earned" and fields[4]:
            fields[4] = f"{float(fields[4]) + 7:.1f}"
            kept[i] = ",".join(fields) + "\n"
            break
    stat = path.stat()
    path.write_text("".join(kept))
    os.utime(path, (stat.st_atime, stat.st_mtime + 60))


@pytest.mark.parametrize("kill_point", sorted(KILL_POINTS))
def test_a_killed_run_then_a_file_changed_in_place_leaves_no_untraced_rows(
    spark, tmp_path, base_files, monkeypatch, kill_point
):
    first, second = base_files
    crashed = make_config(tmp_path / "crashed", tmp_path / "crashed_in", **GOLD)
    _copy([first], tmp_path / "crashed_in")
    assert _dag(spark, crashed) == 0
    before = {spec: delta_io.read(spark, spec, crashed).count() for spec in (BRONZE_EVENTS, SILVER_EVENTS)}
    _copy([second], tmp_path / "crashed_in")
    with monkeypatch.context() as patch:
        _killing_at(patch, KILL_POINTS[kill_point])
        with pytest.raises(Killed):
            _dag(spark, crashed)
    for spec, rows in before.items():  # the killed run had committed the old content's rows
        assert delta_io.read(spark, spec, crashed).count() > rows, spec.full_name
    _change_in_place(tmp_path / "crashed_in" / second.name)
    assert _dag(spark, crashed) == 0

    clean = make_config(tmp_path / "clean", tmp_path / "clean_in", **GOLD)
    _copy([first], tmp_path / "clean_in")
    assert _dag(spark, clean) == 0
    shutil.copy(tmp_path / "crashed_in" / second.name, tmp_path / "clean_in" / second.name)
    assert _dag(spark, clean) == 0
    assert_same_tables(spark, crashed, clean, NO_BAD_ROWS)

    # Every bronze row belongs to a committed batch, and each batch's count is the one recorded.
    bronze = delta_io.read(spark, BRONZE_EVENTS, crashed).groupBy("_batch_id").count()
    files = delta_io.read(spark, OPS_INGESTED_FILES, crashed).where(F.col("status") == "committed")
    recorded = {r["batch_id"]: r["rows_accepted"] for r in files.collect()}
    counted = {r["_batch_id"]: r["count"] for r in bronze.collect()}
    untraced = {b: n for b, n in counted.items() if recorded.get(b) != n}
    assert not untraced, f"bronze rows of batches ops.ingested_files does not account for: {untraced}"


def test_the_same_event_in_two_files_keeps_the_same_copy_whatever_the_arrival_order(spark, tmp_path, base_files):
    first = base_files[0]
    shared = "2025-03-04 09:15:00.000001,u_990101,miles_earned,dining,{miles},{platform},google,SG\n"
    files = {
        "b.csv": HEADER + shared.format(miles="120.0", platform="ios")
        + "2025-03-05 10:00:00.000001,u_990102,like,,,web,tiktok,TH\n",
        "a.csv": HEADER + shared.format(miles="80.0", platform="android")
        + "2025-03-06 11:00:00.000001,u_990103,share,,,ios,google,SG\n",
    }  # fmt: skip
    source = tmp_path / "source"
    source.mkdir()
    for name, text in files.items():
        (source / name).write_text(text)

    daily = make_config(tmp_path / "daily", tmp_path / "daily_in", **GOLD)
    _copy([first, source / "b.csv"], tmp_path / "daily_in")
    assert _dag(spark, daily) == 0
    _copy([source / "a.csv"], tmp_path / "daily_in")
    assert _dag(spark, daily) == 0

    full = make_config(tmp_path / "full", tmp_path / "full_in", **GOLD)
    _copy([first, source / "a.csv", source / "b.csv"], tmp_path / "full_in")
    assert _dag(spark, full) == 0
    assert_same_tables(spark, daily, full, NO_BAD_ROWS)
