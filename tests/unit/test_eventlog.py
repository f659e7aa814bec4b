"""Spark jobs from an event log (no Spark): hand-written events, the file layouts Spark writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakehouse import eventlog
from lakehouse.eventlog import SparkJob


def _start(job_id: int, submitted: int, description: str | None = None, call_site: str | None = "collect at x.py:1"):
    properties = {"spark.rdd.scope": "{}"}
    if description is not None:
        properties["spark.job.description"] = description
    if call_site is not None:
        properties["callSite.short"] = call_site
    return {
        "Event": "SparkListenerJobStart",
        "Job ID": job_id,
        "Submission Time": submitted,
        "Stage Infos": [],
        "Stage IDs": [job_id],
        "Properties": properties,
    }


def _end(job_id: int, completed: int, result: str = "JobSucceeded"):
    return {
        "Event": "SparkListenerJobEnd",
        "Job ID": job_id,
        "Completion Time": completed,
        "Job Result": {"Result": result},
    }


EVENTS = [
    {"Event": "SparkListenerLogStart", "Spark Version": "4.0.0"},
    {"Event": "SparkListenerApplicationStart", "App ID": "local-1", "Timestamp": 900},
    _start(0, 1000, "Delta: Compute snapshot for version: 3"),
    _end(0, 1200),
    _start(1, 1300, "Filtering files for query"),
    {"Event": "SparkListenerStageCompleted", "Stage Info": {}},
    _end(1, 1350, "JobFailed"),
    _start(2, 2000, None, None),
    _start(3, 2500, "Delta: Compute snapshot for version: 4"),
    _end(3, 2600),
]


def _write(path: Path, events: list[dict], tail: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + tail)
    return path


def test_jobs_are_read_by_id_with_their_end_description_and_call_site():
    assert eventlog.spark_jobs(EVENTS) == [
        SparkJob(0, 1000, 1200, "Delta: Compute snapshot for version: 3", "collect at x.py:1", "JobSucceeded"),
        SparkJob(1, 1300, 1350, "Filtering files for query", "collect at x.py:1", "JobFailed"),
        SparkJob(2, 2000, None, None, None, None),  # the log ends before the job did
        SparkJob(3, 2500, 2600, "Delta: Compute snapshot for version: 4", "collect at x.py:1", "JobSucceeded"),
    ]
    assert eventlog.spark_jobs([]) == []


@pytest.mark.parametrize(
    ("description", "snapshot_load", "file_filtering"),
    [
        pytest.param("Delta: Compute snapshot for version: 12", True, False, id="delta-snapshot-state"),
        pytest.param("Compute snapshot for version: 0", True, False, id="snapshot-without-prefix"),
        pytest.param("Delta: Filtering files for query", False, True, id="delta-file-filtering"),
        pytest.param("Delta: Writing merged data", False, False, id="other-delta-job"),
        pytest.param(None, False, False, id="no-description"),
    ],
)
def test_kinds_of_jobs_come_from_the_description(description, snapshot_load, file_filtering):
    job = SparkJob(0, 1, description=description)
    assert (job.snapshot_load, job.file_filtering) == (snapshot_load, file_filtering)


def test_summary_counts_jobs_snapshot_loads_and_filtering_jobs():
    jobs = eventlog.spark_jobs(EVENTS)
    assert eventlog.summarize(jobs) == {"spark_jobs": 4, "snapshot_loads": 2, "filtering_jobs": 1}
    assert eventlog.summarize([]) == {"spark_jobs": 0, "snapshot_loads": 0, "filtering_jobs": 0}


WINDOWS = [(1000, 2000), (2000, 3000), (4000, 5000)]


@pytest.mark.parametrize(
    ("submitted", "expected"),
    [
        pytest.param(1500, 0, id="inside-the-first"),
        pytest.param(1000, 0, id="at-a-start"),
        pytest.param(2000, 1, id="where-two-touch-the-later-wins"),
        pytest.param(3000, 1, id="at-an-end"),
        pytest.param(3500, None, id="between-windows"),
        pytest.param(999, None, id="before-every-window"),
        pytest.param(None, None, id="no-submission-time"),
    ],
)
def test_a_job_belongs_to_the_window_holding_its_submission_time(submitted, expected):
    assert eventlog.window_of(submitted, WINDOWS) == expected


def test_overlapping_windows_give_the_job_to_the_later_start():
    assert eventlog.window_of(1999, [(1000, 2001), (1998, 3000)]) == 1


def test_jobs_are_summarized_per_window_and_outside():
    per_window, outside = eventlog.by_window(eventlog.spark_jobs(EVENTS), [(1000, 1999), (2000, 2400)])
    assert per_window == [
        {"spark_jobs": 2, "snapshot_loads": 1, "filtering_jobs": 1},
        {"spark_jobs": 1, "snapshot_loads": 0, "filtering_jobs": 0},
    ]
    assert outside == {"spark_jobs": 1, "snapshot_loads": 1, "filtering_jobs": 0}


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        pytest.param({"local-1": EVENTS}, ["local-1"], id="single-file"),
        pytest.param({"local-1.inprogress": EVENTS}, ["local-1.inprogress"], id="single-file-in-progress"),
        pytest.param(
            {
                "eventlog_v2_local-1/events_2_local-1": EVENTS[6:],
                "eventlog_v2_local-1/events_10_local-1": [],
                "eventlog_v2_local-1/events_1_local-1": EVENTS[:6],
                "eventlog_v2_local-1/appstatus_local-1": [],
                "eventlog_v2_local-1/.events_1_local-1.crc": [],
            },
            [
                "eventlog_v2_local-1/events_1_local-1",
                "eventlog_v2_local-1/events_2_local-1",
                "eventlog_v2_local-1/events_10_local-1",
            ],
            id="rolling-folder-by-index",
        ),
        pytest.param({".local-1.crc": [], "local-1": EVENTS}, ["local-1"], id="hadoop-checksum-skipped"),
    ],
)
def test_event_files_of_a_run_folder(tmp_path, layout, expected):
    for name, events in layout.items():
        _write(tmp_path / name, events)
    assert eventlog.event_log_files(tmp_path) == [tmp_path / name for name in expected]


def test_a_rolling_folder_or_a_file_can_be_named_directly(tmp_path):
    first = _write(tmp_path / "eventlog_v2_local-1" / "events_1_local-1", EVENTS)
    assert eventlog.event_log_files(tmp_path / "eventlog_v2_local-1") == [first]
    assert eventlog.event_log_files(first) == [first]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("local-1.zstd", id="single-file-zstd"),
        pytest.param("local-1.lz4.inprogress", id="single-file-lz4-in-progress"),
        pytest.param("eventlog_v2_local-1/events_1_local-1.zstd", id="rolling-zstd"),
    ],
)
def test_compressed_logs_are_refused(tmp_path, name):
    _write(tmp_path / name, [])
    with pytest.raises(eventlog.EventLogError, match="compressed"):
        eventlog.event_log_files(tmp_path)


def test_a_missing_log_is_an_error(tmp_path):
    with pytest.raises(eventlog.EventLogError, match="no event log"):
        eventlog.event_log_files(tmp_path / "missing")


def test_profile_reads_a_rolling_log_and_skips_a_line_cut_short(tmp_path):
    folder = tmp_path / "eventlog_v2_local-1"
    _write(folder / "events_1_local-1", EVENTS[:6])
    _write(folder / "events_2_local-1", EVENTS[6:], tail='{"Event": "SparkListenerJobStart", "Job ')
    result = eventlog.profile(tmp_path, [(1000, 1999)])
    assert result == {
        "files": [str(folder / "events_1_local-1"), str(folder / "events_2_local-1")],
        "spark_jobs": 4,
        "snapshot_loads": 2,
        "filtering_jobs": 1,
        "windows": [{"spark_jobs": 2, "snapshot_loads": 1, "filtering_jobs": 1}],
        "outside_windows": {"spark_jobs": 2, "snapshot_loads": 1, "filtering_jobs": 0},
    }
