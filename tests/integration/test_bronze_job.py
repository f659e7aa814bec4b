"""bronze_fct_event_stream on real files: the shipped sample, re-runs, new files, bad files."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse import delta_io, launcher
from lakehouse.bronze import fct_event_stream as bronze
from lakehouse.bronze.sources import IGNORED_REASON, SourceFile, read_numbered_lines
from lakehouse.job_runtime import JobFailed
from lakehouse.registry import BRONZE_EVENTS, BRONZE_QUARANTINE, OPS_DQ_RESULTS, OPS_INGESTED_FILES, TableSpec
from tests.conftest import REPO_ROOT, history, job_context, make_config, run_step
from tests.reference import spec_reference

SAMPLE = sorted((REPO_ROOT / "data" / "sample").glob("*.csv"))
INGESTED_AT = datetime(2025, 7, 10)
HEADER = "event_time,user_id,event_type,transaction_category,miles_amount,platform,utm_source,country\n"
GOOD = "2025-03-07 10:00:00.000000,u_0001,miles_earned,dining,516.0,ios,google,SG\n"

pytestmark = pytest.mark.e2e


def _run(spark, config, **kwargs):
    return run_step(spark, config, bronze.ingest, ingested_at=INGESTED_AT, _job=bronze.JOB.name, **kwargs)


def _run_with_notes(spark, config, **kwargs):
    """Results, plus the run's problems (new bad files: exit 1) and reminders (known ones)."""
    ctx = job_context(spark, config, bronze.JOB.name)
    try:
        results = bronze.ingest(ctx, ingested_at=INGESTED_AT, **kwargs)
    finally:
        ctx.run.sink.flush(spark, config)
    return results, ctx.run.problems, ctx.run.reminders


def _version(spark, config, spec) -> int:
    return history(spark, spec.path(config), 1).first()["version"]


def _source(path: Path) -> SourceFile:
    """A file as the job identifies it (Hadoop's URI of the local path, name, size, content SHA-256)."""
    data = path.read_bytes()
    return SourceFile(f"file:{path}", path.name, len(data), hashlib.sha256(data).hexdigest())


def _columns(spec: TableSpec, names: list[str]) -> T.StructType:
    return T.StructType([spec.schema[name] for name in names])


def _expected_bronze(spark, ref: spec_reference.Reference, sources: dict[str, SourceFile]) -> DataFrame:
    """bronze.fct_event_stream as the reference accepts the files (all error-level rules, no warnings)."""
    rows = [
        (a["event_time"], a["user_id"], a["event_type"], a["transaction_category"], a["miles_amount"], a["platform"],
         a["utm_source"], a["country"], a["event_time"].date(), sources[a["source_file"]].path, a["source_line"],
         INGESTED_AT, sources[a["source_file"]].batch_id, [])
        for a in ref.accepted
    ]  # fmt: skip
    return spark.createDataFrame(rows, BRONZE_EVENTS.schema)


#: The quarantine columns the reference decides (it does not keep raw fields).
QUARANTINE_KEY = ["_source_file", "_source_line", "_ingested_at", "_batch_id", "failed_checks"]


def _expected_quarantine_key(spark, ref: spec_reference.Reference, sources: dict[str, SourceFile]) -> DataFrame:
    rows = [
        (sources[q["source_file"]].path, q["source_line"], INGESTED_AT, sources[q["source_file"]].batch_id,
         sorted(q["failed_checks"], key=bronze.RULE_NAMES.index))  # the job lists broken rules in rule order
        for q in ref.quarantined
    ]  # fmt: skip
    return spark.createDataFrame(rows, _columns(BRONZE_QUARANTINE, QUARANTINE_KEY))


DQ_COLUMNS = ["job", "table_name", "batch_id", "check_name", "severity", "rows_checked", "failed_rows", "status"]


def _expected_bronze_dq(spark, ref: spec_reference.Reference, sources: dict[str, SourceFile]) -> DataFrame:
    """Per batch: every rule with the rows the reference quarantines for it, then the two batch checks."""
    rows = []
    lines_by_file = Counter(r["source_file"] for r in [*ref.accepted, *ref.quarantined])
    for name, source in sources.items():
        lines = lines_by_file[name]
        failures = Counter(rule for q in ref.quarantined if q["source_file"] == name for rule in q["failed_checks"])
        batch = (bronze.JOB.name, BRONZE_EVENTS.full_name, source.batch_id)
        rows += [(*batch, rule, "error", lines, failures[rule], "quarantined" if failures[rule] else "pass")
                 for rule in bronze.RULE_NAMES]  # fmt: skip
        rows += [(*batch, "conservation_accepted_plus_quarantined", "error", lines, 0, "pass"),
                 (*batch, "quarantine_rate_within_threshold", "error", lines, 0, "pass")]  # fmt: skip
    return spark.createDataFrame(rows, _columns(OPS_DQ_RESULTS, DQ_COLUMNS))


#: Every manifest column but run_id.
#: The manifest columns compared with expected rows (the listing time and the event-date range are checked apart).
MANIFEST_COLUMNS = [
    f.name for f in OPS_INGESTED_FILES.schema.fields
    if f.name not in ("run_id", "file_modified_at", "min_event_date", "max_event_date", "status_reason")
]  # fmt: skip


def _expected_manifest(spark, rows: list[tuple[SourceFile, int, int, int, str]]) -> DataFrame:
    """ops.ingested_files from (file, lines read, accepted, quarantined, status)."""
    return spark.createDataFrame(
        [(f.batch_id, f.path, f.name, f.sha256, f.size, *counts, status, INGESTED_AT) for f, *counts, status in rows],
        _columns(OPS_INGESTED_FILES, MANIFEST_COLUMNS),
    )


def _manifest(spark, config) -> DataFrame:
    return delta_io.read(spark, OPS_INGESTED_FILES, config).select(*MANIFEST_COLUMNS)


def _manifest_reasons(spark, config) -> dict[str, str | None]:
    rows = delta_io.read(spark, OPS_INGESTED_FILES, config).select("file_name", "status_reason").collect()
    return {r["file_name"]: r["status_reason"] for r in rows}


def test_sample_conservation_rerun_and_new_file(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    for path in SAMPLE[:2]:
        shutil.copy(path, input_dir)
    config = make_config(tmp_path / "wh", input_dir)

    first = _run(spark, config)
    assert [r.status for r in first] == ["committed", "committed"]

    # The manifest's event-date range per batch (what silver reads) is the range of the batch's bronze rows.
    bronze_df = delta_io.read(spark, BRONZE_EVENTS, config)
    ranges = {
        r[0]: (r[1], r[2])
        for r in bronze_df.groupBy("_batch_id").agg(F.min("event_date"), F.max("event_date")).collect()
    }
    manifest = delta_io.read(spark, OPS_INGESTED_FILES, config).collect()
    assert {r["batch_id"]: (r["min_event_date"], r["max_event_date"]) for r in manifest} == ranges
    assert all(r["file_modified_at"] is not None for r in manifest)

    # Conservation per batch, against the rows actually written.
    quarantine_df = delta_io.read(spark, BRONZE_QUARANTINE, config)
    for result in first:
        lines = len(Path(result.file.path.removeprefix("file:")).read_text().splitlines()) - 1
        accepted = bronze_df.where(F.col("_batch_id") == result.file.batch_id).count()
        quarantined = quarantine_df.where(F.col("_batch_id") == result.file.batch_id).count()
        assert accepted + quarantined == lines == result.lines_read

    # Which record went where, and why, equals the independent reference reading of SPEC.md: the whole
    # bronze table, and the quarantine's lineage and rules.
    ref = spec_reference.compute([str(p) for p in SAMPLE[:2]], ingested_at=INGESTED_AT)
    sources = {r.file.name: r.file for r in first}
    assert sources == {p.name: _source(input_dir / p.name) for p in SAMPLE[:2]}
    assert len(ref.quarantined) > 0
    assert_df_equality(bronze_df, _expected_bronze(spark, ref, sources), ignore_row_order=True)
    assert_df_equality(
        quarantine_df.select(*QUARANTINE_KEY), _expected_quarantine_key(spark, ref, sources), ignore_row_order=True
    )

    # DQ results recorded for every rule of every batch, with the reference's failure counts.
    dq = delta_io.read(spark, OPS_DQ_RESULTS, config)
    assert_df_equality(dq.select(*DQ_COLUMNS), _expected_bronze_dq(spark, ref, sources), ignore_row_order=True)

    # A re-run on the same input changes no table.
    versions = {s.full_name: _version(spark, config, s) for s in (BRONZE_EVENTS, BRONZE_QUARANTINE, OPS_INGESTED_FILES)}
    second = _run(spark, config)
    assert [r.status for r in second] == ["skipped", "skipped"]
    assert versions == {
        s.full_name: _version(spark, config, s) for s in (BRONZE_EVENTS, BRONZE_QUARANTINE, OPS_INGESTED_FILES)
    }

    # A new file adds only its own rows: the earlier batches keep theirs, and bronze is the reference of all three.
    shutil.copy(SAMPLE[2], input_dir)
    third = _run(spark, config)
    assert [r.status for r in third] == ["skipped", "skipped", "committed"]
    ref_all = spec_reference.compute([str(p) for p in SAMPLE[:3]], ingested_at=INGESTED_AT)
    sources[third[2].file.name] = third[2].file
    assert third[2].rows_accepted == sum(a["source_file"] == SAMPLE[2].name for a in ref_all.accepted) > 0
    assert_df_equality(
        delta_io.read(spark, BRONZE_EVENTS, config), _expected_bronze(spark, ref_all, sources), ignore_row_order=True
    )


def test_wrong_header_is_refused_whole_recorded_once_and_others_still_load(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "a good.csv").write_text(HEADER + GOOD)  # a space: Spark reports the path %-encoded
    (input_dir / "b_bad.csv").write_text(HEADER.replace("user_id", "member_id") + GOOD)
    config = make_config(tmp_path / "wh", input_dir)

    results, problems, reminders = _run_with_notes(spark, config)
    assert [(r.file.name, r.status) for r in results] == [("a good.csv", "committed"), ("b_bad.csv", "refused")]
    assert len(problems) == 1 and reminders == []
    assert re.search(r"b_bad\.csv: header is .*member_id.*nothing of it was written", problems[0])

    good, bad = _source(input_dir / "a good.csv"), _source(input_dir / "b_bad.csv")
    ref = spec_reference.compute([str(input_dir / "a good.csv")], ingested_at=INGESTED_AT)
    assert_df_equality(delta_io.read(spark, BRONZE_EVENTS, config), _expected_bronze(spark, ref, {good.name: good}))
    assert delta_io.read(spark, BRONZE_QUARANTINE, config).count() == 0
    expected = [(good, 1, 1, 0, "committed"), (bad, 0, 0, 0, "refused")]
    assert_df_equality(_manifest(spark, config), _expected_manifest(spark, expected), ignore_row_order=True)
    reason = _manifest_reasons(spark, config)
    assert reason["b_bad.csv"].startswith("file:") and "member_id" in reason["b_bad.csv"]

    # The next run does not process the unchanged bad file again and does not fail for it: it reminds.
    versions = {spec.name: _version(spark, config, spec) for spec in (BRONZE_EVENTS, OPS_INGESTED_FILES)}
    results, problems, reminders = _run_with_notes(spark, config)
    assert [r.status for r in results] == ["skipped", "skipped"] and problems == []
    assert len(reminders) == 1 and reminders[0].startswith("b_bad.csv: refused by an earlier run")
    assert {spec.name: _version(spark, config, spec) for spec in (BRONZE_EVENTS, OPS_INGESTED_FILES)} == versions

    # Fixing the file (same name, new content) ingests it.
    (input_dir / "b_bad.csv").write_text(HEADER + GOOD.replace("u_0001", "u_0002"))
    results, problems, reminders = _run_with_notes(spark, config)
    assert [r.status for r in results] == ["skipped", "committed"] and problems == reminders == []
    assert delta_io.read(spark, BRONZE_EVENTS, config).count() == 2


def test_on_bad_file_stop_fails_every_run_until_fixed(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "a.csv").write_text(HEADER + GOOD)
    (input_dir / "b_bad.csv").write_text("nonsense\n" + GOOD)
    config = make_config(tmp_path / "wh", input_dir, bronze__on_bad_file="stop")

    with pytest.raises(JobFailed, match=r"b_bad\.csv: header is 'nonsense'.*on_bad_file: stop"):
        _run(spark, config)
    with pytest.raises(JobFailed, match=r"b_bad\.csv: refused by an earlier run.*on_bad_file: stop"):
        _run(spark, config)
    assert delta_io.read(spark, BRONZE_EVENTS, config).count() == 1  # the good file was still committed
    (input_dir / "b_bad.csv").unlink()
    assert [r.status for r in _run(spark, config)] == ["skipped"]


def test_files_that_are_not_csv_are_recorded_as_ignored_once(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "a.csv").write_text(HEADER + GOOD)
    (input_dir / "notes.txt").write_text("not data")
    (input_dir / "export.csv.zip").write_bytes(b"PK")
    config = make_config(tmp_path / "wh", input_dir)

    results, problems, reminders = _run_with_notes(spark, config)
    assert [r.status for r in results] == ["committed"] and problems == []
    assert len(reminders) == 1 and "2 file(s) in the landing folder ignored" in reminders[0]
    assert "export.csv.zip, notes.txt" in reminders[0]
    manifest = delta_io.read(spark, OPS_INGESTED_FILES, config)
    ignored = manifest.where("status = 'ignored'").select("file_name", "file_size", "lines_read", "status_reason")
    expected = [(n, size, 0, IGNORED_REASON) for n, size in (("export.csv.zip", 2), ("notes.txt", 8))]
    assert_df_equality(ignored, spark.createDataFrame(expected, ignored.schema), ignore_row_order=True)

    _, _, reminders = _run_with_notes(spark, config)
    assert len(reminders) == 1  # still reminded while the files are there...
    assert delta_io.read(spark, OPS_INGESTED_FILES, config).count() == 3  # ...but recorded once


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
    assert_df_equality(
        _manifest(spark, config),
        _expected_manifest(
            spark, [(_source(input_dir / n), 0, 0, 0, "committed") for n in ("empty.csv", "header_only.csv")]
        ),
        ignore_row_order=True,
    )


def test_quarantine_rate_above_threshold_is_rejected_once_and_holds_back_accepted_rows(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    bad = GOOD.replace("516.0", "-1")
    (input_dir / "broken_export.csv").write_text(HEADER + GOOD + bad + bad)
    config = make_config(tmp_path / "wh", input_dir)

    source = _source(input_dir / "broken_export.csv")
    raw = bad.rstrip("\n")
    expected_quarantine = spark.createDataFrame(
        [(*raw.split(","), raw, source.path, n, INGESTED_AT, source.batch_id, ["miles_amount_valid"]) for n in (3, 4)],
        BRONZE_QUARANTINE.schema,
    )
    rejected = (source, 3, 1, 2, "rejected")

    _, problems, _ = _run_with_notes(spark, config)
    assert len(problems) == 1 and re.search(r"2 of 3 rows .* above bronze.max_quarantine_rate=0.05", problems[0])
    assert_df_equality(delta_io.read(spark, BRONZE_QUARANTINE, config), expected_quarantine, ignore_row_order=True)
    assert delta_io.read(spark, BRONZE_EVENTS, config).count() == 0
    assert_df_equality(_manifest(spark, config), _expected_manifest(spark, [rejected]))

    # Raising the threshold alone does not reprocess the unchanged file (it is reminded of)...
    relaxed = make_config(tmp_path / "wh", input_dir, bronze__max_quarantine_rate=0.9)
    results, problems, reminders = _run_with_notes(spark, relaxed)
    assert [r.status for r in results] == ["skipped"] and problems == [] and "--retry-bad-files" in reminders[0]
    # ...the explicit retry does, without duplicating its quarantine rows.
    assert [r.status for r in _run(spark, relaxed, retry_bad_files=True)] == ["committed"]
    assert_df_equality(delta_io.read(spark, BRONZE_QUARANTINE, relaxed), expected_quarantine, ignore_row_order=True)
    ref = spec_reference.compute([str(input_dir / "broken_export.csv")], ingested_at=INGESTED_AT)
    assert_df_equality(
        delta_io.read(spark, BRONZE_EVENTS, relaxed), _expected_bronze(spark, ref, {source.name: source})
    )
    # Both attempts stay in the manifest (its grain is one row per ingestion attempt that wrote rows).
    assert_df_equality(
        _manifest(spark, relaxed),
        _expected_manifest(spark, [rejected, (source, 3, 1, 2, "committed")]),
        ignore_row_order=True,
    )


def test_compressed_exports_are_ingested_like_plain_csv(spark, tmp_path):
    """A gzip and a bzip2 export of the same lines give the plain file's rows and line numbers."""
    import bz2
    import gzip

    lines = [f"2025-03-07 10:0{i}:00.000000,u_000{i},share,,,ios,google,SG\n" for i in range(1, 4)]
    data = (HEADER + "".join(lines)).encode()
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "a_plain.csv").write_bytes(data)
    (input_dir / "b_gzipped.csv.gz").write_bytes(gzip.compress(data))
    (input_dir / "c_bzipped.csv.bz2").write_bytes(bz2.compress(data))
    (input_dir / "d_notes.txt").write_text("not an export")
    config = make_config(tmp_path / "wh", input_dir)

    results = _run(spark, config)
    assert [(r.file.name, r.status, r.lines_read, r.rows_accepted) for r in results] == [
        ("a_plain.csv", "committed", 3, 3),
        ("b_gzipped.csv.gz", "committed", 3, 3),
        ("c_bzipped.csv.bz2", "committed", 3, 3),
    ]
    rows = delta_io.read(spark, BRONZE_EVENTS, config).select("_source_file", "_source_line", "user_id").collect()
    by_file = {}
    for r in rows:
        by_file.setdefault(r["_source_file"].rsplit("/", 1)[-1], set()).add((r["_source_line"], r["user_id"]))
    assert by_file == {name: {(2, "u_0001"), (3, "u_0002"), (4, "u_0003")} for name in
                       ("a_plain.csv", "b_gzipped.csv.gz", "c_bzipped.csv.bz2")}  # fmt: skip


def test_job_entry_point_exit_codes(spark, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "bad.csv").write_text("nope\n" + GOOD)
    args = ["--env", "local", "--input", str(input_dir), "--warehouse", str(tmp_path / "wh")]
    assert launcher.job_main(bronze.JOB, args) == 1
    (input_dir / "bad.csv").write_text(HEADER + GOOD)
    assert launcher.job_main(bronze.JOB, args) == 0
    assert launcher.job_main(bronze.JOB, [*args, "--set", "bronze.no_such_key=1"]) == 2


def test_line_numbers_survive_a_file_split_into_many_blocks(spark, tmp_path):
    """Spark reads big files in blocks, in any order: _source_line must still be the physical line."""
    path = tmp_path / "many_blocks.csv"
    rows = [f"2025-03-07 10:{i // 60:02d}:{i % 60:02d}.000000,u_{i:04d},share,,,ios,google,SG\n" for i in range(3000)]
    path.write_text(HEADER + "".join(rows))
    expected = spark.createDataFrame(
        list(enumerate([HEADER.rstrip("\n"), *[r.rstrip("\n") for r in rows]], start=1)),
        "_source_line long, value string",
    )
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")  # about 50 blocks of ~80 lines
    try:
        lines_df, cache, _ = read_numbered_lines(spark, [str(path)])
        try:
            assert spark.read.text(str(path)).select(F.spark_partition_id()).distinct().count() > 10
            actual = lines_df.select("_source_line", "value")
            assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
        finally:
            cache.unpersist()
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
