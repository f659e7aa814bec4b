"""Job ``bronze_fct_event_stream``: raw CSV files -> ``bronze.fct_event_stream`` + its quarantine.

Grain: ``bronze.fct_event_stream`` has one row per accepted source record (partitioned by
``event_date``); ``bronze.fct_event_stream_quarantine`` one row per record that broke an
error-level rule, with its raw field strings and ``failed_checks``.

One batch per file. A file already ingested is skipped, so a re-run changes nothing and a new file
in the input folder adds only its rows: first by name, size and modification time against
``ops.ingested_files`` (no file is opened: the cost of a run follows its new files, not the size
of the folder), then, for the files that differ, by name and content SHA-256 (a copy of an
ingested file with a new modification time is not ingested twice). The batch id is derived from
the file identity (name and hash) and every bronze write replaces that batch's rows
(``replaceWhere _batch_id = ...``), so a run that died half-way is repaired by running again.
``ops.ingested_files`` rows are written after the data, with the run's bookkeeping: a batch counts
as ingested only once its rows are committed.

Per batch: accepted + quarantined = data lines read, checked against what the two writes committed
(Delta's ``numOutputRows`` of each commit). A file
with a wrong header is refused whole (nothing of it written) and the job exits non-zero; the other
files are still ingested. A batch whose quarantined share is above ``bronze.max_quarantine_rate``
writes its quarantine rows, holds back its accepted rows (status ``rejected``), and fails the job:
a broken export must not flow into silver silently. Fix the file or raise the threshold and
re-run: a rejected file is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import batches, delta_io
from lakehouse.bronze import transform
from lakehouse.bronze.rules import RULE_NAMES, rule_severities
from lakehouse.bronze.sources import (
    SourceError,
    SourceFile,
    header_problem,
    identify,
    list_input_files,
    read_numbered_lines,
    spark_path_key,
)
from lakehouse.config import LakehouseConfig
from lakehouse.jobkit import Job, JobContext, JobFailed, param
from lakehouse.ops import utc_now
from lakehouse.quality import DqResult
from lakehouse.registry import BRONZE_EVENTS, BRONZE_QUARANTINE, OPS_INGESTED_FILES

log = logging.getLogger("lakehouse")


@dataclass(frozen=True)
class Params:
    input: str | None = param(None, "CSV file or folder of CSV files (default: paths.input)")
    full_refresh: bool = param(False, "rebuild bronze from every input file")


@dataclass(frozen=True)
class BatchResult:
    file: SourceFile
    lines_read: int
    rows_accepted: int
    rows_quarantined: int
    status: str  # committed | rejected | refused | skipped
    message: str = ""


@dataclass(frozen=True)
class BatchCounts:
    """What validation found in one batch, before anything is written."""

    lines_read: int
    quarantined: int

    @property
    def accepted(self) -> int:
        return self.lines_read - self.quarantined

    @property
    def quarantine_rate(self) -> float:
        return self.quarantined / self.lines_read if self.lines_read else 0.0


def is_rejected(counts: BatchCounts, max_quarantine_rate: float) -> bool:
    """A batch whose quarantined share is above the threshold is held back whole."""
    return counts.quarantine_rate > max_quarantine_rate


def batch_results(
    source: SourceFile,
    counts: BatchCounts,
    rule_failures: Mapping[str, int],
    severities: Mapping[str, str],
    rejected: bool,
    stored_accepted: int,
    stored_quarantined: int,
    threshold: float,
) -> tuple[list[DqResult], str | None]:
    """Rule results, conservation and quarantine-rate checks of one batch; and a conservation error."""
    b = source.batch_id
    dq = [
        DqResult(BRONZE_EVENTS.full_name, name, severities[name], counts.lines_read, rule_failures.get(name, 0),
                 batch_id=b, failure_status="quarantined")
        for name in RULE_NAMES
    ]  # fmt: skip
    # A rejected batch's accepted rows are held back on purpose: they count as kept for conservation.
    kept = counts.accepted if rejected else stored_accepted
    gap = abs(counts.lines_read - stored_quarantined - kept)
    details = f"lines {counts.lines_read}, accepted {counts.accepted}, quarantined {stored_quarantined}"
    dq.append(DqResult(BRONZE_EVENTS.full_name, "conservation_accepted_plus_quarantined", "error",
                       counts.lines_read, gap, details, b))  # fmt: skip
    dq.append(DqResult(BRONZE_EVENTS.full_name, "quarantine_rate_within_threshold", "error", counts.lines_read,
                       counts.quarantined if rejected else 0,
                       f"rate {counts.quarantine_rate:.4f}, threshold {threshold}", b))  # fmt: skip
    return dq, (f"{source.path}: conservation broken, {details}" if gap else None)


def rejection_message(
    source: SourceFile, counts: BatchCounts, rule_failures: Mapping[str, int], threshold: float
) -> str:
    top = sorted(rule_failures.items(), key=lambda kv: -kv[1])[:5]
    return (
        f"{source.path}: {counts.quarantined} of {counts.lines_read} rows ({counts.quarantine_rate:.1%}) broke "
        f"error-level rules, above bronze.max_quarantine_rate={threshold}; rows quarantined, "
        f"accepted rows held back. Top rules: {', '.join(f'{k}={v}' for k, v in top)}"
    )


def ingest_files(
    ctx: JobContext, config: LakehouseConfig, sources: list[SourceFile], ingested_at: datetime
) -> list[BatchResult]:
    """Validate and write several files in one Spark pass; still one batch (and one result) per file."""
    lines_df, raw_cache, headers = read_numbered_lines(ctx.spark, [s.path for s in sources])
    try:
        return _ingest_lines(ctx, config, sources, ingested_at, lines_df, headers)
    finally:
        raw_cache.unpersist()


def _in_list(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ingest_lines(
    ctx: JobContext,
    config: LakehouseConfig,
    sources: list[SourceFile],
    ingested_at: datetime,
    lines_df: DataFrame,
    headers: Mapping[str, str],
) -> list[BatchResult]:
    spark, run = ctx.spark, ctx.run
    by_key = {spark_path_key(spark, s.path): s for s in sources}
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

    threshold = config.bronze.max_quarantine_rate
    severities = rule_severities(config.bronze.rule_severity)
    batch_df = spark.createDataFrame(
        [(key, by_key[key].path, by_key[key].batch_id) for key in loadable],
        "_file_key string, _source_file string, _batch_id string",
    )
    data_df = lines_df.where(F.col("_source_line") > 1).join(F.broadcast(batch_df), on="_file_key", how="inner")
    data_df = data_df.select(
        "value", "_source_file", "_source_line", F.lit(ingested_at).cast("timestamp").alias("_ingested_at"), "_batch_id"
    )
    checked_df = transform.with_checks(
        transform.split_fields(data_df), severities, config.bronze.future_slack_minutes
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        profile = {r["_batch_id"]: r for r in transform.batch_profile(checked_df).collect()}
        batch_ids = [by_key[key].batch_id for key in loadable]
        counts = {
            b: BatchCounts(int(profile[b]["lines"]), int(profile[b]["quarantined"])) if b in profile
            else BatchCounts(0, 0)
            for b in batch_ids
        }  # fmt: skip
        failures = {b: {n: int(profile[b][n]) for n in RULE_NAMES if b in profile and profile[b][n]} for b in batch_ids}
        accepted_ids = [b for b in batch_ids if not is_rejected(counts[b], threshold)]

        stored_quarantined = delta_io.replace_where(
            transform.quarantined_rows(checked_df), BRONZE_QUARANTINE, config, _in_list("_batch_id", batch_ids)
        ).get("numOutputRows", 0)
        stored_accepted = 0
        if accepted_ids:
            accepted_df = transform.accepted_rows(checked_df.where(F.col("_batch_id").isin(accepted_ids)))
            stored_accepted = delta_io.replace_where(
                accepted_df, BRONZE_EVENTS, config, _in_list("_batch_id", accepted_ids)
            ).get("numOutputRows", 0)
    finally:
        checked_df.unpersist()

    # Conservation against Delta's own commit metrics (rows the two writes committed): one check per
    # write covering its batches, so a mismatch names every batch of that write.
    expected_quarantined = sum(counts[b].quarantined for b in batch_ids)
    expected_accepted = sum(counts[b].accepted for b in accepted_ids)
    quarantine_ok = stored_quarantined == expected_quarantined
    accepted_ok = stored_accepted == expected_accepted
    dq: list[DqResult] = []
    manifest = []
    broken: list[str] = []
    for key in loadable:
        source = by_key[key]
        b, c = source.batch_id, counts[source.batch_id]
        rejected = b not in accepted_ids
        batch_dq, conservation_error = batch_results(
            source, c, failures[b], severities, rejected,
            c.accepted if accepted_ok else -1, c.quarantined if quarantine_ok else -1, threshold,
        )  # fmt: skip
        dq += batch_dq
        if conservation_error:
            broken.append(
                f"{conservation_error} (the write committed {stored_accepted} accepted rows for {expected_accepted} "
                f"expected and {stored_quarantined} quarantined rows for {expected_quarantined})"
            )
        status = "rejected" if rejected else "committed"
        lo, hi = (profile[b]["min_event_date"], profile[b]["max_event_date"]) if b in profile else (None, None)
        manifest.append((b, run.run_id, source.path, source.name, source.sha256, source.size, c.lines_read,
                         c.accepted, c.quarantined, status, ingested_at, source.modified_at, lo, hi))  # fmt: skip
        message = rejection_message(source, c, failures[b], threshold) if rejected else ""
        results[key] = BatchResult(source, c.lines_read, c.accepted, c.quarantined, status, message)
    run.record_dq(dq)
    if broken:
        raise JobFailed("; ".join(broken))
    batches.add_files(ctx, manifest)
    return [results[key] for key in by_key]


def full_refresh(ctx: JobContext) -> None:
    """Empty bronze, its quarantine and the file manifest (the rest of the run re-ingests every file).

    Batch ids derive from file identity, so re-ingested batches keep their ids while their content
    may differ (a rule lowered to a warning accepts more rows). Every consumer's bookkeeping is
    therefore reset too: silver re-reads every batch (its MERGE only inserts event_ids it lacks)
    and dim_users recomputes from the first day.
    """
    # The manifest before the data: a killed refresh leaves files that the next run re-ingests.
    batches.full_refresh(ctx, None, OPS_INGESTED_FILES, BRONZE_EVENTS, BRONZE_QUARANTINE)


def ingest(
    ctx: JobContext,
    *,
    config: LakehouseConfig | None = None,
    refresh: bool = False,
    ingested_at: datetime | None = None,
) -> list[BatchResult]:
    """Ingest every new file under ``paths.input``; raise :class:`JobFailed` after the others if any failed.

    A file whose name, size and modification time match a committed batch is skipped without
    being read (the fast path: a run's cost follows its new files, not the folder). Any other file
    is hashed; if its name and content hash match a committed batch (a copy that only got a new
    modification time) it is skipped too, else it is ingested.
    """
    spark = ctx.spark
    config = config or ctx.config
    if refresh:
        full_refresh(ctx)
    committed = batches.ledger(ctx).committed().values()
    seen = {(f.file_name, f.file_size, f.file_modified_at) for f in committed}
    done = {(f.file_name, f.content_sha256) for f in committed}
    results: list[BatchResult] = []
    new_sources: list[SourceFile] = []
    try:
        listed = list_input_files(spark, config.paths.input)
        unchanged = [f for f in listed if f.fingerprint in seen]
        identities = [identify(spark, f) for f in listed if f.fingerprint not in seen]
    except SourceError as exc:
        raise JobFailed(str(exc)) from exc
    for f in unchanged:
        results.append(BatchResult(SourceFile(f.path, f.name, f.size, "", f.modified_at), 0, 0, 0, "skipped"))
    if unchanged:
        log.info("%d files already ingested (same name, size and modification time): skipped", len(unchanged))
    for source in identities:
        if (source.name, source.sha256) in done:
            log.info("skip %s: already ingested (same content)", source.name)
            results.append(BatchResult(source, 0, 0, 0, "skipped"))
        else:
            new_sources.append(source)
    if new_sources:
        for result in ingest_files(ctx, config, new_sources, ingested_at or utc_now()):
            log.info(
                "%s: %s, %d lines, %d accepted, %d quarantined",
                result.file.name, result.status, result.lines_read, result.rows_accepted, result.rows_quarantined,
            )  # fmt: skip
            results.append(result)
    order = {f.path: i for i, f in enumerate(listed)}
    results.sort(key=lambda r: order[r.file.path])
    ctx.run.rows_in = sum(r.lines_read for r in results)
    ctx.run.rows_out = sum(r.rows_accepted for r in results if r.status == "committed")
    problems = [r.message for r in results if r.status in ("refused", "rejected")]
    if problems:
        raise JobFailed("; ".join(problems))
    return results


def run(ctx: JobContext, params: Params) -> None:
    config = ctx.config.with_input(params.input) if params.input else ctx.config
    ingest(ctx, config=config, refresh=params.full_refresh)


JOB = Job(
    "bronze_fct_event_stream",
    "raw CSV event files -> bronze.fct_event_stream + bronze.fct_event_stream_quarantine",
    Params,
    run,
)
