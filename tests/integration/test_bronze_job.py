"""bronze_fct_event_stream on real files: the shipped sample, re-runs, new files, bad files."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.bronze import fct_event_stream as bronze
from lakehouse.bronze.sources import read_numbered_lines
from lakehouse.jobkit import JobFailed
from lakehouse.ops import JobRun
from lakehouse.registry import BRONZE_EVENTS, BRONZE_QUARANTINE, OPS_DQ_RESULTS, OPS_INGESTED_FILES
from tests.conftest import REPO_ROOT, make_config
from tests.reference import spec_reference

SAMPLE = sorted((REPO_ROOT / "data" / "sample").glob("*.csv"))
INGESTED_AT = datetime(2025, 7, 10)
HEADER = "event_time,user_id,event_type,transaction_category,miles_amount,platform,utm_source,country\n"
GOOD = "2025-03-07 10:00:00.000000,u_0001,miles_earned,dining,516.0,ios,google,SG\n"

pytestmark = pytest.mark.e2e


def _run(spark, config, **kwargs):
    run = JobRun(spark, config, bronze.JOB.name, {})
    return bronze.ingest(spark, config, run, ingested_at=INGESTED_AT, **kwargs)


def _version(spark, config, spec) -> int:
    return DeltaTable.forPath(spark, spec.path(config)).history(1).first()["version"]


def test_sample_conservation_rerun_and_new_file(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    for path in SAMPLE[:2]:
        shutil.copy(path, input_dir)
    config = make_config(tmp_path / "wh", input_dir)

    first = _run(spark, config)
    assert [r.status for r in first] == ["committed", "committed"]

    # Conservation per batch, against the rows actually written.
    bronze_df = delta_io.read(spark, BRONZE_EVENTS, config)
    quarantine_df = delta_io.read(spark, BRONZE_QUARANTINE, config)
    for result in first:
        lines = len(Path(result.file.path.removeprefix("file:")).read_text().splitlines()) - 1
        accepted = bronze_df.where(F.col("_batch_id") == result.file.batch_id).count()
        quarantined = quarantine_df.where(F.col("_batch_id") == result.file.batch_id).count()
        assert accepted + quarantined == lines == result.lines_read

    # Which record went where, and why, equals the independent reference reading of SPEC.md.
    ref = spec_reference.compute([str(p) for p in SAMPLE[:2]], ingested_at=INGESTED_AT)
    actual_q = {
        (Path(r["_source_file"]).name, r["_source_line"], tuple(sorted(r["failed_checks"])))
        for r in quarantine_df.collect()
    }
    expected_q = {(q["source_file"], q["source_line"], tuple(q["failed_checks"])) for q in ref.quarantined}
    assert actual_q == expected_q
    assert len(actual_q) > 0
    actual_a = {(Path(r["_source_file"]).name, r["_source_line"]) for r in bronze_df.select(
        "_source_file", "_source_line").collect()}  # fmt: skip
    assert actual_a == {(a["source_file"], a["source_line"]) for a in ref.accepted}

    # DQ results recorded for every rule of every batch.
    dq = delta_io.read(spark, OPS_DQ_RESULTS, config)
    assert dq.select("check_name").distinct().count() == len(bronze.RULE_NAMES) + 2
    assert dq.where(F.col("check_name") == "conservation_accepted_plus_quarantined").where(
        F.col("status") == "pass").count() == 2  # fmt: skip

    # A re-run on the same input changes no table.
    versions = {s.full_name: _version(spark, config, s) for s in (BRONZE_EVENTS, BRONZE_QUARANTINE, OPS_INGESTED_FILES)}
    second = _run(spark, config)
    assert [r.status for r in second] == ["skipped", "skipped"]
    assert versions == {
        s.full_name: _version(spark, config, s) for s in (BRONZE_EVENTS, BRONZE_QUARANTINE, OPS_INGESTED_FILES)
    }

    # A new file adds only its own rows.
    before = delta_io.read(spark, BRONZE_EVENTS, config).groupBy("_batch_id").count().collect()
    shutil.copy(SAMPLE[2], input_dir)
    third = _run(spark, config)
    assert [r.status for r in third] == ["skipped", "skipped", "committed"]
    after = {r["_batch_id"]: r["count"] for r in delta_io.read(spark, BRONZE_EVENTS, config)
             .groupBy("_batch_id").count().collect()}  # fmt: skip
    for row in before:
        assert after[row["_batch_id"]] == row["count"]
    assert after[third[2].file.batch_id] == third[2].rows_accepted > 0


def test_wrong_header_is_refused_whole_and_others_still_load(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "a good.csv").write_text(HEADER + GOOD)  # a space: Spark reports the path %-encoded
    (input_dir / "b_bad.csv").write_text(HEADER.replace("user_id", "member_id") + GOOD)
    config = make_config(tmp_path / "wh", input_dir)

    with pytest.raises(JobFailed, match=r"b_bad\.csv: header is .*member_id.*nothing of it was written"):
        _run(spark, config)

    files = {r["_source_file"].rsplit("/", 1)[-1] for r in delta_io.read(spark, BRONZE_EVENTS, config).collect()}
    assert files == {"a good.csv"}
    assert delta_io.read(spark, BRONZE_QUARANTINE, config).count() == 0
    manifest = [r["file_name"] for r in delta_io.read(spark, OPS_INGESTED_FILES, config).collect()]
    assert manifest == ["a good.csv"]


def test_empty_file_is_a_recorded_zero_row_batch(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "empty.csv").write_text("")
    (input_dir / "header_only.csv").write_text(HEADER)
    config = make_config(tmp_path / "wh", input_dir)

    results = _run(spark, config)
    assert [(r.file.name, r.status, r.lines_read) for r in results] == [
        ("empty.csv", "committed", 0),
        ("header_only.csv", "committed", 0),
    ]
    assert delta_io.read(spark, OPS_INGESTED_FILES, config).count() == 2


def test_quarantine_rate_above_threshold_fails_and_holds_back_accepted_rows(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    bad = GOOD.replace("516.0", "-1")
    (input_dir / "broken_export.csv").write_text(HEADER + GOOD + bad + bad)
    config = make_config(tmp_path / "wh", input_dir)

    with pytest.raises(JobFailed, match=r"2 of 3 rows .* above bronze.max_quarantine_rate=0.05"):
        _run(spark, config)
    assert delta_io.read(spark, BRONZE_QUARANTINE, config).count() == 2
    assert delta_io.read(spark, BRONZE_EVENTS, config).count() == 0
    assert [r["status"] for r in delta_io.read(spark, OPS_INGESTED_FILES, config).collect()] == ["rejected"]

    # Raising the threshold and re-running retries the file without duplicating its quarantine rows.
    relaxed = make_config(tmp_path / "wh", input_dir, bronze__max_quarantine_rate=0.9)
    assert [r.status for r in _run(spark, relaxed)] == ["committed"]
    assert delta_io.read(spark, BRONZE_QUARANTINE, relaxed).count() == 2
    assert delta_io.read(spark, BRONZE_EVENTS, relaxed).count() == 1


def test_job_entry_point_exit_codes(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "bad.csv").write_text("nope\n" + GOOD)
    args = ["--env", "local", "--input", str(input_dir), "--warehouse", str(tmp_path / "wh")]
    assert bronze.main(args) == 1
    (input_dir / "bad.csv").write_text(HEADER + GOOD)
    assert bronze.main(args) == 0
    assert bronze.main([*args, "--set", "bronze.no_such_key=1"]) == 2


def test_line_numbers_survive_a_file_split_into_many_blocks(spark, tmp_path):
    """Spark reads big files in blocks, in any order: _source_line must still be the physical line."""
    path = tmp_path / "many_blocks.csv"
    rows = [f"2025-03-07 10:{i // 60:02d}:{i % 60:02d}.000000,u_{i:04d},share,,,ios,google,SG\n" for i in range(3000)]
    path.write_text(HEADER + "".join(rows))
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")  # about 50 blocks of ~80 lines
    try:
        lines_df, cache = read_numbered_lines(spark, [str(path)])
        assert spark.read.text(str(path)).rdd.getNumPartitions() > 10
        numbered = {r["_source_line"]: r["value"] for r in lines_df.collect()}
        cache.unpersist()
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
    expected = dict(enumerate([HEADER.rstrip("\n"), *[r.rstrip("\n") for r in rows]], start=1))
    assert numbered == expected
