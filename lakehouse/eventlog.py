"""Spark jobs from a Spark event log: what ran, when, and what Delta was doing (the benchmark's profile).

Spark writes one JSON object per line (``spark.eventLog.enabled``). Only job events are read:
``SparkListenerJobStart`` ("Job ID", "Submission Time" in epoch ms, "Properties" with the job's
``spark.job.description`` and ``callSite.short``) and ``SparkListenerJobEnd`` ("Completion Time",
"Job Result"). Delta names its own jobs in the description, which is how two kinds are counted:

* **snapshot loads**: descriptions containing "Compute snapshot for version", Delta's snapshot-state
  jobs (the state reconstruction that runs when a table's snapshot is loaded and its state read);
* **filtering jobs**: descriptions containing "Filtering files for query", Delta listing and
  filtering a table's files for a scan.

A run's log is one file (``<app id>``, ``.inprogress`` while the application runs) or, with rolling
event logs (``spark.eventLog.rolling.enabled``, on by default since Spark 4), a folder
``eventlog_v2_<app id>`` of ``events_<n>_<app id>`` files; both are read. Compressed logs are not
(the benchmark sets ``spark.eventLog.compress=false``): :class:`EventLogError` says so.

Pure Python, no Spark: the functions take a path or an iterable of event dicts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SNAPSHOT_LOAD = "Compute snapshot for version"
FILE_FILTERING = "Filtering files for query"

_ROLLING_DIR = "eventlog_v2_"
_ROLLING_FILE = re.compile(r"^events_(\d+)_")
_COMPRESSED = (".lz4", ".lzf", ".snappy", ".zstd", ".zst")


class EventLogError(ValueError):
    """An event log that cannot be read here (missing, or compressed)."""


@dataclass(frozen=True)
class SparkJob:
    """One Spark job of an event log."""

    job_id: int
    submitted_ms: int | None
    completed_ms: int | None = None
    description: str | None = None
    call_site: str | None = None
    #: "JobSucceeded", "JobFailed"; None if the log ends before the job did.
    result: str | None = None

    @property
    def snapshot_load(self) -> bool:
        return SNAPSHOT_LOAD in (self.description or "")

    @property
    def file_filtering(self) -> bool:
        return FILE_FILTERING in (self.description or "")


# --------------------------------------------------------------------------- files


def _is_event_file(path: Path) -> bool:
    """A file of events: not hidden (Hadoop's ``.crc``), not the rolling log's ``appstatus_`` marker."""
    return path.is_file() and not path.name.startswith((".", "appstatus_")) and not path.name.endswith(".crc")


def _rolling_files(folder: Path) -> list[Path]:
    """``events_<n>_<app id>`` files of one rolling log folder, by ``n``."""
    files = [(int(m.group(1)), p) for p in folder.iterdir() if _is_event_file(p) and (m := _ROLLING_FILE.match(p.name))]
    return [p for _, p in sorted(files)]


def event_log_files(path: str | Path) -> list[Path]:
    """The event files under ``path``, in order: ``path`` itself if it is a file; the ``events_*``
    files if it is a rolling log folder; else every single-file log and rolling folder in it."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir() and path.name.startswith(_ROLLING_DIR):
        files = _rolling_files(path)
    elif path.is_dir():
        files = []
        for child in sorted(path.iterdir()):
            if child.is_dir() and child.name.startswith(_ROLLING_DIR):
                files += _rolling_files(child)
            elif _is_event_file(child):
                files.append(child)
    else:
        raise EventLogError(f"no event log at {path}")
    compressed = [p for p in files if p.name.removesuffix(".inprogress").endswith(_COMPRESSED)]
    if compressed:
        raise EventLogError(f"compressed event log not supported (set spark.eventLog.compress=false): {compressed[0]}")
    return files


def read_events(paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
    """Every event of the files, in order. A line that is not a JSON object (a log cut short while
    the application was still writing) is skipped."""
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    yield event


# --------------------------------------------------------------------------- jobs


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def spark_jobs(events: Iterable[dict[str, Any]]) -> list[SparkJob]:
    """One record per Spark job started in ``events``, by job id, with its end where the log has it."""
    started: dict[int, SparkJob] = {}
    ended: dict[int, tuple[int | None, str | None]] = {}
    for event in events:
        kind = event.get("Event")
        if kind == "SparkListenerJobStart":
            properties = event.get("Properties") or {}
            job_id = int(event["Job ID"])
            started[job_id] = SparkJob(
                job_id=job_id,
                submitted_ms=_int(event.get("Submission Time")),
                description=properties.get("spark.job.description"),
                call_site=properties.get("callSite.short"),
            )
        elif kind == "SparkListenerJobEnd":
            result = event.get("Job Result") or {}
            ended[int(event["Job ID"])] = (_int(event.get("Completion Time")), result.get("Result"))
    jobs = []
    for job_id in sorted(started):
        completed, result = ended.get(job_id, (None, None))
        job = started[job_id]
        jobs.append(SparkJob(job_id, job.submitted_ms, completed, job.description, job.call_site, result))
    return jobs


def summarize(jobs: Iterable[SparkJob]) -> dict[str, int]:
    """Spark jobs, snapshot loads (Delta's snapshot-state jobs) and file-filtering jobs among ``jobs``."""
    jobs = list(jobs)
    return {
        "spark_jobs": len(jobs),
        "snapshot_loads": sum(j.snapshot_load for j in jobs),
        "filtering_jobs": sum(j.file_filtering for j in jobs),
    }


def window_of(submitted_ms: int | None, windows: Sequence[tuple[float, float]]) -> int | None:
    """Index of the window ``(start_ms, end_ms)`` holding ``submitted_ms`` (bounds included), or None.

    Where windows touch or overlap by rounding, the one that started last wins: a job submitted at
    the very end of a step cannot have completed inside it, so it belongs to the next step.
    """
    if submitted_ms is None:
        return None
    best = None
    for index, (start, end) in enumerate(windows):
        if start <= submitted_ms <= end and (best is None or start >= windows[best][0]):
            best = index
    return best


def by_window(
    jobs: Iterable[SparkJob], windows: Sequence[tuple[float, float]]
) -> tuple[list[dict[str, int]], dict[str, int]]:
    """:func:`summarize` per window (the steps of a run, by submission time), and for the jobs
    submitted outside every window."""
    grouped: list[list[SparkJob]] = [[] for _ in windows]
    outside: list[SparkJob] = []
    for job in jobs:
        index = window_of(job.submitted_ms, windows)
        (outside if index is None else grouped[index]).append(job)
    return [summarize(group) for group in grouped], summarize(outside)


def profile(path: str | Path, windows: Sequence[tuple[float, float]] = ()) -> dict[str, Any]:
    """Everything the benchmark reports from one run's event log at ``path`` (a file or folder):
    its files, the totals, per window and outside the windows."""
    files = event_log_files(path)
    jobs = spark_jobs(read_events(files))
    per_window, outside = by_window(jobs, windows)
    return {"files": [str(p) for p in files], **summarize(jobs), "windows": per_window, "outside_windows": outside}
