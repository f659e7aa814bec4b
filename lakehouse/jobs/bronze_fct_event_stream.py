"""Job: raw CSV event files -> ``bronze.fct_event_stream`` + ``bronze.fct_event_stream_quarantine``.

One batch per file. A file already ingested (same name and same content SHA-256) is skipped, so a
re-run changes nothing and a new file in the input folder adds only its rows. The batch id is
derived from the file identity and every bronze write replaces that batch's rows (``replaceWhere
_batch_id = ...``), so a run that died half-way is repaired by running again. ``ops.ingested_files``
is written last: a batch counts as ingested only once its rows are committed.

Per batch: accepted + quarantined = data lines read, checked against what was written. A file
with a wrong header is refused whole (nothing of it written) and the job exits non-zero; the other
files are still ingested. A batch whose quarantined share is above ``bronze.max_quarantine_rate``
writes its quarantine rows, holds back its accepted rows (status ``rejected``), and fails the job:
a broken export must not flow into silver silently. Fix the file or raise the threshold and
re-run: a rejected file is retried.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.bronze import transform
from lakehouse.bronze.rules import RULE_NAMES, rule_severities
from lakehouse.config import LakehouseConfig
from lakehouse.jobs.common import JobFailed, run_job
from lakehouse.ops import DqResult, JobRun, utc_now
from lakehouse.registry import BRONZE_EVENTS, BRONZE_QUARANTINE, OPS_INGESTED_FILES, OPS_PROCESSED_BATCHES

JOB = "bronze_fct_event_stream"
log = logging.getLogger("lakehouse")


@dataclass(frozen=True)
class SourceFile:
    path: str
    name: str
    size: int
    sha256: str

    @property
    def batch_id(self) -> str:
        return hashlib.sha256(f"{self.name}:{self.sha256}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BatchResult:
    file: SourceFile
    lines_read: int
    rows_accepted: int
    rows_quarantined: int
    status: str  # committed | rejected | refused | skipped
    message: str = ""


def _hadoop_fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    jpath = jvm.org.apache.hadoop.fs.Path(path)
    return jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jpath


def list_input_files(spark: SparkSession, input_path: str) -> list[str]:
    """A CSV file, or every ``*.csv`` directly in a folder, in name order (local or object storage)."""
    fs, jpath = _hadoop_fs(spark, input_path)
    if not fs.exists(jpath):
        raise JobFailed(f"input path does not exist: {input_path}")
    status = fs.getFileStatus(jpath)
    if status.isFile():
        return [status.getPath().toString()]
    files = [s.getPath().toString() for s in fs.listStatus(jpath) if s.isFile()]
    return sorted((f for f in files if f.lower().endswith(".csv")), key=lambda p: p.rsplit("/", 1)[-1])


def identify(spark: SparkSession, path: str) -> SourceFile:
    """Name, size and content SHA-256, streamed in the JVM (works for any Hadoop file system)."""
    fs, jpath = _hadoop_fs(spark, path)
    jvm = spark.sparkContext._jvm
    try:
        stream = fs.open(jpath)
        try:
            digest = jvm.org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream)
        finally:
            stream.close()
        size = fs.getFileStatus(jpath).getLen()
    except Exception as exc:  # py4j wraps the Java IOException
        raise JobFailed(f"cannot read input file {path}: {exc}") from exc
    return SourceFile(path=path, name=path.rsplit("/", 1)[-1], size=int(size), sha256=str(digest))


def spark_path_key(spark: SparkSession, path: str) -> str:
    """The form in which Spark reports a file's path (``_metadata.file_path``: a URI, %-encoded)."""
    return str(spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path).toUri().toString())


def read_numbered_lines(spark: SparkSession, paths: list[str]) -> tuple[DataFrame, DataFrame]:
    """Every physical line of the files, with ``_file_key`` and its 1-based line number, in one pass.

    Spark splits large files into blocks and reads them in any order, so line numbers are rebuilt
    from (file, block start, position within the block): rows of one block are read in order and
    carry increasing ``monotonically_increasing_id`` values. Only the per-block counts reach the
    driver. The raw lines are persisted so the ids are computed once; the second DataFrame returned
    is that cache, which the caller must unpersist (a cached read of a path would otherwise serve
    stale content when the file changes).
    """
    raw = (
        spark.read.text(paths)
        .select(
            "value",
            F.col("_metadata.file_path").alias("_file_key"),
            F.col("_metadata.file_block_start").alias("_block_start"),
            F.monotonically_increasing_id().alias("_row_id"),
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    blocks = sorted(
        raw.groupBy("_file_key", "_block_start")
        .agg(F.count(F.lit(1)).alias("n"), F.min("_row_id").alias("first_id"))
        .collect()
    )
    offsets, seen = [], {}
    for block in blocks:
        before = seen.get(block["_file_key"], 0)
        offsets.append((block["_file_key"], block["_block_start"], block["first_id"], before))
        seen[block["_file_key"]] = before + block["n"]
    schema = "_file_key string, _block_start long, _first_id long, _lines_before long"
    offsets_df = spark.createDataFrame(offsets, schema)
    numbered = raw.join(F.broadcast(offsets_df), on=["_file_key", "_block_start"], how="inner").select(
        "value",
        "_file_key",
        (F.col("_lines_before") + F.col("_row_id") - F.col("_first_id") + 1).alias("_source_line"),
    )
    return numbered, raw


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def header_problem(first_line: str | None) -> str | None:
    if first_line is None:
        return None  # an empty file: a zero-row batch
    header = _strip_bom(first_line).rstrip("\r")
    if header == transform.EXPECTED_HEADER:
        return None
    return f"header is {header[:200]!r}, expected {transform.EXPECTED_HEADER!r}"


def committed_identities(spark: SparkSession, config: LakehouseConfig) -> set[tuple[str, str]]:
    manifest = delta_io.read(spark, OPS_INGESTED_FILES, config)
    rows = manifest.where(F.col("status") == "committed").select("file_name", "content_sha256").collect()
    return {(r["file_name"], r["content_sha256"]) for r in rows}


def ingest_files(
    spark: SparkSession,
    config: LakehouseConfig,
    run: JobRun,
    sources: list[SourceFile],
    ingested_at: datetime,
) -> list[BatchResult]:
    """Validate and write several files in one Spark pass; still one batch (and one result) per file."""
    lines_df, raw_cache = read_numbered_lines(spark, [s.path for s in sources])
    try:
        return _ingest_lines(spark, config, run, sources, ingested_at, lines_df)
    finally:
        raw_cache.unpersist()


def _in_list(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ingest_lines(
    spark: SparkSession,
    config: LakehouseConfig,
    run: JobRun,
    sources: list[SourceFile],
    ingested_at: datetime,
    lines_df: DataFrame,
) -> list[BatchResult]:
    by_key = {spark_path_key(spark, s.path): s for s in sources}
    headers = {r["_file_key"]: r["value"] for r in lines_df.where(F.col("_source_line") == 1).collect()}
    problems = {key: header_problem(headers.get(key)) for key in by_key}
    loadable = [key for key in by_key if not problems[key]]
    results: dict[str, BatchResult] = {
        key: BatchResult(
            by_key[key], 0, 0, 0, "refused", f"{by_key[key].path}: {problems[key]}; nothing of it was written"
        )
        for key in by_key
        if problems[key]
    }
    if not loadable:
        return [results[key] for key in by_key]

    severities = rule_severities(config.bronze.rule_severity)
    batches = spark.createDataFrame(
        [(key, by_key[key].path, by_key[key].batch_id) for key in loadable],
        "_file_key string, _source_file string, _batch_id string",
    )
    data_df = lines_df.where(F.col("_source_line") > 1).join(F.broadcast(batches), on="_file_key", how="inner")
    data_df = data_df.select(
        "value", "_source_file", "_source_line", F.lit(ingested_at).cast("timestamp").alias("_ingested_at"), "_batch_id"
    )
    checked_df = transform.with_checks(
        transform.split_fields(data_df), severities, config.bronze.future_slack_minutes
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {
            r["_batch_id"]: (int(r["lines"]), int(r["quarantined"]))
            for r in checked_df.groupBy("_batch_id")
            .agg(
                F.count(F.lit(1)).alias("lines"),
                F.count(F.when(F.size("failed_checks") > 0, 1)).alias("quarantined"),
            )
            .collect()
        }
        failures: dict[str, dict[str, int]] = {}
        for r in transform.rule_failure_counts(checked_df).collect():
            failures.setdefault(r["_batch_id"], {})[r["check_name"]] = int(r["failed_rows"])
        batch_ids = [by_key[key].batch_id for key in loadable]
        rate = {b: (counts.get(b, (0, 0))[1] / counts[b][0]) if counts.get(b, (0, 0))[0] else 0.0 for b in batch_ids}
        accepted_ids = [b for b in batch_ids if rate[b] <= config.bronze.max_quarantine_rate]

        delta_io.replace_where(
            transform.quarantined_rows(checked_df), BRONZE_QUARANTINE, config, _in_list("_batch_id", batch_ids)
        )
        if accepted_ids:
            accepted_df = transform.accepted_rows(checked_df.where(F.col("_batch_id").isin(accepted_ids)))
            delta_io.replace_where(accepted_df, BRONZE_EVENTS, config, _in_list("_batch_id", accepted_ids))
    finally:
        checked_df.unpersist()

    def written(spec, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        df = delta_io.read(spark, spec, config).where(F.col("_batch_id").isin(ids))
        return {r["_batch_id"]: int(r["count"]) for r in df.groupBy("_batch_id").count().collect()}

    written_accepted, written_quarantined = written(BRONZE_EVENTS, accepted_ids), written(BRONZE_QUARANTINE, batch_ids)
    dq: list[DqResult] = []
    manifest = []
    broken: list[str] = []
    for key in loadable:
        source = by_key[key]
        b = source.batch_id
        lines_read, n_quarantined = counts.get(b, (0, 0))
        expected_accepted = lines_read - n_quarantined
        rejected = b not in accepted_ids
        batch_failures = failures.get(b, {})
        dq += [
            DqResult(BRONZE_EVENTS.full_name, name, severities[name], lines_read, batch_failures.get(name, 0),
                     batch_id=b, failure_status="quarantined")
            for name in RULE_NAMES
        ]  # fmt: skip
        stored_accepted = expected_accepted if rejected else written_accepted.get(b, 0)
        gap = abs(lines_read - written_quarantined.get(b, 0) - stored_accepted)
        details = f"lines {lines_read}, accepted {expected_accepted}, quarantined {written_quarantined.get(b, 0)}"
        dq.append(DqResult(BRONZE_EVENTS.full_name, "conservation_accepted_plus_quarantined", "error", lines_read,
                           gap, details, b))  # fmt: skip
        dq.append(DqResult(BRONZE_EVENTS.full_name, "quarantine_rate_within_threshold", "error", lines_read,
                           n_quarantined if rejected else 0,
                           f"rate {rate[b]:.4f}, threshold {config.bronze.max_quarantine_rate}", b))  # fmt: skip
        if gap:
            broken.append(f"{source.path}: conservation broken, {details}")
        status = "rejected" if rejected else "committed"
        manifest.append((b, run.run_id, source.path, source.name, source.sha256, source.size, lines_read,
                         expected_accepted, n_quarantined, status, ingested_at))  # fmt: skip
        message = ""
        if rejected:
            top = sorted(batch_failures.items(), key=lambda kv: -kv[1])[:5]
            message = (
                f"{source.path}: {n_quarantined} of {lines_read} rows ({rate[b]:.1%}) broke error-level rules, "
                f"above bronze.max_quarantine_rate={config.bronze.max_quarantine_rate}; rows quarantined, "
                f"accepted rows held back. Top rules: {', '.join(f'{k}={v}' for k, v in top)}"
            )
        results[key] = BatchResult(source, lines_read, expected_accepted, n_quarantined, status, message)
    run.record_dq(dq)
    if broken:
        raise JobFailed("; ".join(broken))
    delta_io.append(spark.createDataFrame(manifest, OPS_INGESTED_FILES.schema), OPS_INGESTED_FILES, config)
    return [results[key] for key in by_key]


def full_refresh(spark: SparkSession, config: LakehouseConfig) -> None:
    """Empty bronze, its quarantine and the file manifest (the rest of the run re-ingests every file).

    Batch ids derive from file identity, so re-ingested batches keep their ids while their content
    may differ (a rule lowered to a warning accepts more rows). The downstream watermarks are
    therefore cleared too: silver re-reads every batch (its MERGE only inserts event_ids it lacks)
    and dim_users recomputes from the first day.
    """
    for spec in (BRONZE_EVENTS, BRONZE_QUARANTINE, OPS_INGESTED_FILES, OPS_PROCESSED_BATCHES):
        delta_io.ensure_table(spark, spec, config).delete()


def ingest(
    spark: SparkSession,
    config: LakehouseConfig,
    run: JobRun,
    *,
    refresh: bool = False,
    ingested_at: datetime | None = None,
) -> list[BatchResult]:
    """Ingest every new file under ``paths.input``; raise :class:`JobFailed` after the others if any failed."""
    if refresh:
        full_refresh(spark, config)
    done = committed_identities(spark, config)
    results: list[BatchResult] = []
    new_sources: list[SourceFile] = []
    paths = list_input_files(spark, config.paths.input)
    for path in paths:
        source = identify(spark, path)
        if (source.name, source.sha256) in done:
            log.info("skip %s: already ingested (batch %s)", source.name, source.batch_id)
            results.append(BatchResult(source, 0, 0, 0, "skipped"))
        else:
            new_sources.append(source)
    if new_sources:
        for result in ingest_files(spark, config, run, new_sources, ingested_at or utc_now()):
            log.info(
                "%s: %s, %d lines, %d accepted, %d quarantined",
                result.file.name, result.status, result.lines_read, result.rows_accepted, result.rows_quarantined,
            )  # fmt: skip
            results.append(result)
    order = {path: i for i, path in enumerate(paths)}
    results.sort(key=lambda r: order[r.file.path])
    run.rows_in = sum(r.lines_read for r in results)
    run.rows_out = sum(r.rows_accepted for r in results if r.status == "committed")
    problems = [r.message for r in results if r.status in ("refused", "rejected")]
    if problems:
        raise JobFailed("; ".join(problems))
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="CSV file or folder of CSV files (default: paths.input)")
    parser.add_argument("--full-refresh", action="store_true", help="rebuild bronze from every input file")


def execute(spark: SparkSession, config: LakehouseConfig, run: JobRun, args: argparse.Namespace) -> None:
    ingest(spark, config, run, refresh=getattr(args, "full_refresh", False))


def main(argv: list[str] | None = None) -> int:
    return run_job(JOB, __doc__.splitlines()[0], add_arguments, execute, argv)
