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
(Delta's ``numOutputRows`` of each commit). A file with a wrong header, or that cannot be read, is
refused whole (nothing of it written); the other files are still ingested. A batch whose
quarantined share is above ``bronze.max_quarantine_rate`` writes its quarantine rows and holds back
its accepted rows (status ``rejected``): a broken export must not flow into silver silently. Both
are recorded once in ``ops.ingested_files`` with the reason; see :func:`ingest` for what the run
and later runs do about them (``bronze.on_bad_file``). Every other file of the landing folder
(not a CSV export) is recorded as ``ignored``: nothing is skipped without a trace.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import batches, delta_io
from lakehouse.bronze import transform
from lakehouse.bronze.rules import RULE_NAMES, rule_severities
from lakehouse.bronze.sources import (
    IGNORED_REASON,
    ListedFile,
    SourceError,
    SourceFile,
    header_problem,
    identify,
    is_compressed,
    list_input_files,
    read_numbered_lines,
    spark_path_key,
)
from lakehouse.config import LakehouseConfig, local_path
from lakehouse.job_runtime import Decision, Job, JobContext, JobFailed, forced, param
from lakehouse.ops import FileRecord, IntentRecord, utc_now
from lakehouse.quality import DqResult
from lakehouse.registry import BRONZE_EVENTS, BRONZE_QUARANTINE, OPS_BATCH_INTENTS, OPS_INGESTED_FILES

log = logging.getLogger("lakehouse")


@dataclass(frozen=True)
class Params:
    input: str | None = param(None, "CSV file or folder of CSV files (default: paths.input)")
    full_refresh: bool = param(False, "rebuild bronze from every input file")
    retry_bad_files: bool = param(False, "process refused and rejected files again even if unchanged")


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
    by_key = {spark_path_key(s.path): s for s in sources}
    unmatched = [s.path for key, s in by_key.items() if key not in headers and s.size and not is_compressed(s.name)]
    if unmatched:  # an unmatched key would read as an empty file: never drop a file's lines silently
        raise JobFailed(f"Spark read no line of {unmatched} although they are not empty (paths it reported: "
                        f"{sorted(headers)[:5]}): nothing was written")  # fmt: skip
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
        # The intents before any row: a run stopped from here on leaves rows the next run can trace and undo.
        batches.record_intents(ctx, [
            IntentRecord(by_key[key].batch_id, run.run_id, by_key[key].name, by_key[key].sha256,
                         *_span(profile.get(by_key[key].batch_id)))
            for key in loadable
        ])  # fmt: skip

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
        lo, hi = _span(profile.get(b))
        message = rejection_message(source, c, failures[b], threshold) if rejected else ""
        manifest.append(_record(source, run.run_id, status, ingested_at, c.lines_read, c.accepted, c.quarantined,
                                lo, hi, message or None))  # fmt: skip
        results[key] = BatchResult(source, c.lines_read, c.accepted, c.quarantined, status, message)
    run.record_dq(dq)
    if broken:
        raise JobFailed("; ".join(broken))
    batches.add_files(ctx, manifest)
    return [results[key] for key in by_key]


def _span(profile_row) -> tuple[date | None, date | None]:
    """(earliest, latest) event_date of a batch's rows, from its profile row (None: no rows)."""
    return (profile_row["min_event_date"], profile_row["max_event_date"]) if profile_row else (None, None)


def _record_unwritten(ctx: JobContext, results: list[BatchResult], ingested_at: datetime) -> None:
    """Manifest rows of the files nothing was written for (refused): recorded once, with the reason."""
    batches.add_files(ctx, [
        _record(r.file, ctx.run.run_id, r.status, ingested_at, reason=r.message)
        for r in results
        if r.status == "refused"
    ])  # fmt: skip


def _record(
    source: SourceFile,
    run_id: str,
    status: str,
    ingested_at: datetime,
    lines: int = 0,
    accepted: int = 0,
    quarantined: int = 0,
    lo: date | None = None,
    hi: date | None = None,
    reason: str | None = None,
) -> FileRecord:
    """The ``ops.ingested_files`` row of a file the run decided on."""
    return FileRecord(
        batch_id=source.batch_id, run_id=run_id, source_file=source.path, file_name=source.name,
        content_sha256=source.sha256, file_size=source.size, lines_read=lines, rows_accepted=accepted,
        rows_quarantined=quarantined, status=status, ingested_at=ingested_at, file_modified_at=source.modified_at,
        min_event_date=lo, max_event_date=hi, status_reason=reason,
    )  # fmt: skip


def full_refresh(ctx: JobContext) -> None:
    """Empty bronze, its quarantine and the file manifest (the rest of the run re-ingests every file).

    Batch ids derive from file identity, so re-ingested batches keep their ids while their content
    may differ (a rule lowered to a warning accepts more rows). Every consumer's bookkeeping is
    therefore reset too: silver re-reads every batch (its MERGE only inserts event_ids it lacks)
    and dim_users recomputes from the first day.
    """
    # The manifest before the data: a killed refresh leaves files that the next run re-ingests.
    batches.full_refresh(ctx, None, OPS_INGESTED_FILES, OPS_BATCH_INTENTS, BRONZE_EVENTS, BRONZE_QUARANTINE)


def _ignored(ctx: JobContext, plan: LandingPlan, ingested_at: datetime) -> None:
    """Files that are not CSV exports: recorded once as ignored (with the reason), reminded every run."""
    for f in plan.new_others:
        log.warning("ignored %s: %s", f.path, IGNORED_REASON)
    batches.add_files(ctx, [
        _record(SourceFile(f.path, f.name, f.size, "", f.modified_at, _unread_id(f, "ignored")), ctx.run.run_id,
                batches.IGNORED, ingested_at, reason=IGNORED_REASON)
        for f in plan.new_others
    ])  # fmt: skip
    reminder = ignored_reminder(plan.others)
    if reminder:
        ctx.run.reminders.append(reminder)


def ignored_reminder(others: Sequence[ListedFile]) -> str | None:
    if not others:
        return None
    names = ", ".join(f.name for f in others[:10]) + (", ..." if len(others) > 10 else "")
    return (f"{len(others)} file(s) in the landing folder ignored, {IGNORED_REASON}: {names} "
            f"(ops.ingested_files, status 'ignored')")  # fmt: skip


def _unread_id(f: ListedFile, what: str) -> str:
    """Batch id of a file whose content was not read (ignored, unreadable): from its listing."""
    return hashlib.sha256(f"{what}:{f.name}:{f.size}:{f.modified_at}".encode()).hexdigest()[:16]


def _known_bad(f: FileRecord) -> str:
    return (
        f"{f.file_name}: {f.status} by an earlier run and unchanged since, not processed again "
        f"({(f.status_reason or '')[:160]}). Fix or replace the file (a changed file is processed again), "
        f"or run with --retry-bad-files"
    )


@dataclass(frozen=True)
class LandingPlan:
    """The landing folder against the bookkeeping, before any file is read: the one rule both the
    decision "is there anything to ingest?" (:class:`Landing`) and the job body follow."""

    listed: list[ListedFile]
    others: list[ListedFile]
    #: Same name, size and modification time as a committed batch: not read again.
    unchanged: list[ListedFile]
    #: Same name, size and modification time as a refused or rejected file: reminded, not read again.
    known_bad: list[tuple[ListedFile, FileRecord]]
    #: Everything else: hashed, then ingested unless its name and content match a batch.
    to_read: list[ListedFile]
    #: Files that are not CSV exports and are not recorded as ignored yet.
    new_others: list[ListedFile]
    committed_content: frozenset[tuple[str, str]]
    bad_content: dict[tuple[str, str], FileRecord]


def plan_landing(
    listed: list[ListedFile], others: list[ListedFile], book: batches.Ledger, retry_bad_files: bool
) -> LandingPlan:
    committed = book.committed().values()
    seen = {f.fingerprint for f in committed}
    unresolved = [] if retry_bad_files else book.unresolved()
    bad_seen = {f.fingerprint: f for f in unresolved}
    known_ignored = {f.fingerprint for f in book.ignored()}
    unchanged = [f for f in listed if f.fingerprint in seen]
    unknown = [f for f in listed if f.fingerprint not in seen]
    known_bad = [(f, bad_seen[f.fingerprint]) for f in unknown if f.fingerprint in bad_seen]
    to_read = [f for f in unknown if f.fingerprint not in bad_seen]
    return LandingPlan(
        listed, others, unchanged, known_bad, to_read, [f for f in others if f.fingerprint not in known_ignored],
        frozenset((f.file_name, f.content_sha256) for f in committed),
        {(f.file_name, f.content_sha256): f for f in unresolved if f.content_sha256},
    )  # fmt: skip


def read_sources(
    plan: LandingPlan, identify_file: Callable[[ListedFile], SourceFile]
) -> tuple[list[SourceFile], list[BatchResult], list[str]]:
    """Hash the files of ``plan.to_read``: (new sources to ingest, results of the others, reminders of
    known bad files). A copy of a batch (same name and content, another modification time) is skipped."""
    new: list[SourceFile] = []
    results: list[BatchResult] = []
    still_bad = [_known_bad(record) for _, record in plan.known_bad]
    results += [BatchResult(SourceFile(f.path, f.name, f.size, "", f.modified_at), 0, 0, 0, "skipped")
                for f, _ in plan.known_bad]  # fmt: skip
    for f in plan.to_read:
        try:
            source = identify_file(f)
        except SourceError as exc:
            source = SourceFile(f.path, f.name, f.size, "", f.modified_at, _unread_id(f, "unreadable"))
            results.append(BatchResult(source, 0, 0, 0, "refused", f"{exc}; nothing of it was written"))
            continue
        key = (source.name, source.sha256)
        if key in plan.committed_content:
            log.info("skip %s: already ingested (same content)", source.name)
            results.append(BatchResult(source, 0, 0, 0, "skipped"))
        elif key in plan.bad_content:
            still_bad.append(_known_bad(plan.bad_content[key]))
            results.append(BatchResult(source, 0, 0, 0, "skipped"))
        else:
            new.append(source)
    return new, results, still_bad


def identify_file(config: LakehouseConfig) -> Callable[[ListedFile], SourceFile]:
    """Hash files in this process, from their store (local or object storage)."""
    return lambda f: identify(f, config)


@dataclass(frozen=True)
class Landing:
    """Bronze's declared input: the landing folder (``--input`` or ``paths.input``). There is work when a
    stopped run's batches are to be undone, a file is new or changed (by content), a file that is not a
    CSV export is not recorded yet, or ``--full-refresh`` / ``--retry-bad-files`` over a bad file."""

    #: It reads files, not tables (it writes bronze and its quarantine).
    reads: tuple = ()

    def decide(self, ledger: batches.Ledger, config: LakehouseConfig, params: Any,
               spark: SparkSession | None) -> Decision:  # fmt: skip
        why = forced(params, ("full_refresh",))
        if why:
            return Decision(True, why)
        if ledger.unrecorded():
            return Decision(True, "a stopped run's batches are to be undone")
        path = getattr(params, "input", None) or config.paths.input
        try:
            plan = plan_landing(*list_input_files(path, config), ledger, bool(params.retry_bad_files))
        except SourceError as exc:
            return Decision(True, str(exc))  # the body fails the run with it
        new_bytes = sum(f.size for f in plan.to_read)
        if plan.new_others:
            return Decision(True, f"{len(plan.new_others)} file(s) to record as ignored", new_bytes=new_bytes)
        if not all(local_path(f.path) is not None for f in plan.to_read):
            return Decision(True, f"{len(plan.to_read)} new or changed file(s)", new_bytes=new_bytes)
        still_bad = [_known_bad(record) for _, record in plan.known_bad]
        for f in plan.to_read:  # hashed until the first file with new content
            try:
                source = identify(f, config)
            except SourceError:
                return Decision(True, f"{f.name} cannot be read (the run refuses it)", new_bytes=new_bytes)
            key = (source.name, source.sha256)
            if key in plan.bad_content:
                still_bad.append(_known_bad(plan.bad_content[key]))
            elif key not in plan.committed_content:
                return Decision(True, f"{len(plan.to_read)} new or changed file(s)", new_bytes=new_bytes)
        if still_bad and config.bronze.on_bad_file == "stop":
            return Decision(True, "a bad file is still in the landing folder (bronze.on_bad_file: stop)")
        reminders = [*still_bad, *filter(None, [ignored_reminder(plan.others)])]
        return Decision(False, f"nothing to do: no new file in {path}", tuple(reminders))


def ingest(
    ctx: JobContext,
    *,
    config: LakehouseConfig | None = None,
    refresh: bool = False,
    retry_bad_files: bool = False,
    ingested_at: datetime | None = None,
) -> list[BatchResult]:
    """Ingest every new file under ``paths.input``; account for every other file of the folder.

    A file whose name, size and modification time match a committed batch is skipped without
    being read (the fast path: a run's cost follows its new files, not the folder). Any other file
    is hashed; if its name and content hash match a committed batch (a copy that only got a new
    modification time) it is skipped too, else it is ingested (:func:`plan_landing`, :func:`read_sources`).

    Bad files are recorded once in ``ops.ingested_files`` (refused: wrong header or unreadable,
    nothing written; rejected: quarantine rate above the threshold, accepted rows held back). With
    ``bronze.on_bad_file: continue`` (default) the new ones make the job end ``partial`` (exit 1,
    the DAG goes on with the committed batches); later runs skip an unchanged bad file and only
    remind of it; ``retry_bad_files`` processes them again. With ``stop``, any bad file still in
    the folder fails the job on every run. Files that are not CSV exports are recorded as ignored.
    """
    config = config or ctx.config
    ingested_at = ingested_at or utc_now()
    if refresh:
        full_refresh(ctx)
    for stopped in batches.undo_unrecorded(ctx):
        log.warning("batch %s of %s: run %s stopped after writing it and before recording it; its rows removed",
                    stopped.batch_id, stopped.file_name, stopped.run_id)  # fmt: skip
    try:
        plan = plan_landing(*list_input_files(config.paths.input, config), batches.ledger(ctx), retry_bad_files)
    except SourceError as exc:
        raise JobFailed(str(exc)) from exc
    _ignored(ctx, plan, ingested_at)
    results = [BatchResult(SourceFile(f.path, f.name, f.size, "", f.modified_at), 0, 0, 0, "skipped")
               for f in plan.unchanged]  # fmt: skip
    if plan.unchanged:
        log.info("%d files already ingested (same name, size and modification time): skipped", len(plan.unchanged))
    new_sources, read, still_bad = read_sources(plan, identify_file(config))
    results += read
    if new_sources:
        for result in ingest_files(ctx, config, new_sources, ingested_at):
            log.info(
                "%s: %s, %d lines, %d accepted, %d quarantined",
                result.file.name, result.status, result.lines_read, result.rows_accepted, result.rows_quarantined,
            )  # fmt: skip
            results.append(result)
    _record_unwritten(ctx, results, ingested_at)
    order = {f.path: i for i, f in enumerate(plan.listed)}
    results.sort(key=lambda r: order[r.file.path])
    ctx.run.rows_in = sum(r.lines_read for r in results)
    ctx.run.rows_out = sum(r.rows_accepted for r in results if r.status == "committed")
    problems = [r.message for r in results if r.status in ("refused", "rejected")]
    if config.bronze.on_bad_file == "stop":
        if problems or still_bad:
            raise JobFailed("; ".join(problems + still_bad) + " (bronze.on_bad_file: stop)")
    else:
        ctx.run.problems.extend(problems)
        ctx.run.reminders.extend(still_bad)
    for message in still_bad:
        log.warning("%s", message)
    return results


def run(ctx: JobContext, params: Params) -> None:
    config = ctx.config.with_input(params.input) if params.input else ctx.config
    ingest(ctx, config=config, refresh=params.full_refresh, retry_bad_files=params.retry_bad_files)


JOB = Job(
    "bronze_fct_event_stream",
    "raw CSV event files -> bronze.fct_event_stream + bronze.fct_event_stream_quarantine",
    Params,
    run,
    inputs=Landing(),
)
