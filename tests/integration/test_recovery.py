"""Every row traceable to a recorded batch after a crash.

A run is killed after bronze and silver committed a file's rows, before the run's bookkeeping (or in the
middle of it: the consumers' records committed, the file manifest not); the file is then changed in place.
The next run must undo the rows of the batch that was started and never recorded (in every table that
received them) and ingest the new content as an ordinary batch: every table equals a clean run on the
changed file (built once), and ``ops.ingested_files`` accounts for every bronze row.
(The same event in two files delivered as b.csv, then a.csv: in the arrivals of test_incremental.py.)
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
from tests.integration.test_incremental import GOLD, Killed, _copy, _dag, assert_same_tables, intercept_writes

pytestmark = pytest.mark.e2e

#: The generated files here have no invalid rows, and 12 days: no day has two weeks of training points.
NO_BAD_ROWS = ("bronze.fct_event_stream_quarantine", "gold.agg_metric_anomalies")


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
    def guard(spec) -> None:
        if refused(spec):
            raise Killed()

    intercept_writes(monkeypatch, guard)


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


@pytest.fixture(scope="module")
def first_day(spark, tmp_path_factory, base_files) -> Path:
    """A warehouse after the first file (copied for each case), and the changed second file."""
    root = tmp_path_factory.mktemp("recovery")
    config = make_config(root / "wh", root / "in", **GOLD)
    _copy([base_files[0]], root / "in")
    assert _dag(spark, config) == 0
    return root


@pytest.fixture(scope="module")
def clean(spark, first_day, base_files, tmp_path_factory):
    """The clean run on the changed file: the first day's warehouse, then the second file as it is after the
    change (built once: every kill point must end with these tables)."""
    root = tmp_path_factory.mktemp("recovery_clean")
    shutil.copytree(first_day, root, dirs_exist_ok=True)
    changed = root / "in" / base_files[1].name
    shutil.copy(base_files[1], changed)
    _change_in_place(changed)
    config = make_config(root / "wh", root / "in", **GOLD)
    assert _dag(spark, config) == 0
    return config


@pytest.mark.parametrize("kill_point", sorted(KILL_POINTS))
def test_a_killed_run_then_a_file_changed_in_place_leaves_no_untraced_rows(
    spark, tmp_path, first_day, clean, base_files, monkeypatch, kill_point
):
    second = base_files[1]
    shutil.copytree(first_day, tmp_path, dirs_exist_ok=True)
    crashed = make_config(tmp_path / "wh", tmp_path / "in", **GOLD)
    before = {spec: delta_io.read(spark, spec, crashed).count() for spec in (BRONZE_EVENTS, SILVER_EVENTS)}
    _copy([second], tmp_path / "in")
    with monkeypatch.context() as patch:
        _killing_at(patch, KILL_POINTS[kill_point])
        with pytest.raises(Killed):
            _dag(spark, crashed)
    for spec, rows in before.items():  # the killed run had committed the old content's rows
        assert delta_io.read(spark, spec, crashed).count() > rows, spec.full_name
    _change_in_place(tmp_path / "in" / second.name)
    assert _dag(spark, crashed) == 0
    assert_same_tables(spark, crashed, clean, NO_BAD_ROWS)

    # Every bronze row belongs to a committed batch, and each batch's count is the one recorded.
    bronze = delta_io.read(spark, BRONZE_EVENTS, crashed).groupBy("_batch_id").count()
    files = delta_io.read(spark, OPS_INGESTED_FILES, crashed).where(F.col("status") == "committed")
    recorded = {r["batch_id"]: r["rows_accepted"] for r in files.collect()}
    counted = {r["_batch_id"]: r["count"] for r in bronze.collect()}
    untraced = {b: n for b, n in counted.items() if recorded.get(b) != n}
    assert not untraced, f"bronze rows of batches ops.ingested_files does not account for: {untraced}"
