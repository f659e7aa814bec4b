"""The benchmark's pure parts (no Spark): arguments, run plan, commit counting, day-file split, rendering."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from lakehouse import benchmark
from lakehouse.cli import VERBS


def _commit(table_dir: Path, version: int, operation: str | None = "WRITE") -> None:
    log = table_dir / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"commitInfo": {"operation": operation}})] if operation else []
    lines.append(json.dumps({"add": {"path": f"part-{version}.parquet"}}))
    (log / f"{version:020d}.json").write_text("\n".join(lines) + "\n")
    (log / f"{version:020d}.crc").write_text("{}")  # not a commit


def test_defaults_are_the_issue_scenario():
    args = benchmark.parse_args([])
    assert (args.users, args.events_per_day, args.days, args.month_days, args.files_per_day) == (
        20_000,
        10_000,
        365,
        30,
        1,
    )
    assert args.start_date == date(2024, 1, 7)
    assert args.driver_memory == "2g"
    assert args.cases == list(benchmark.CASES)


def test_cases_are_parsed_in_canonical_order_and_checked(capsys):
    args = benchmark.parse_args(["--cases", "month, sample,month", "--days", "20", "--month-days", "5"])
    assert args.cases == ["sample", "month"]
    assert (args.days, args.month_days) == (20, 5)
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--cases", "sample,weekly"])
    assert "unknown case" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--days", "20", "--month-days", "30"])
    assert "--month-days 30 is more than --days 20" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--users", "0"])
    # A month longer than the year is fine when the month case is not asked for.
    assert benchmark.parse_args(["--days", "20", "--cases", "backfill"]).month_days == 30


def test_cli_has_the_benchmark_verb():
    assert "benchmark" in VERBS


def test_plan_builds_what_a_case_needs_as_setup():
    assert benchmark.plan_runs(benchmark.CASES) == [
        ("sample", "case"),
        ("backfill", "case"),
        ("year", "case"),
        ("nothing-new", "case"),
        ("month-setup", "setup"),
        ("month", "case"),
        ("nothing-new-month", "case"),
    ]
    assert benchmark.plan_runs(["nothing-new"]) == [("backfill", "setup"), ("nothing-new", "case")]
    assert benchmark.plan_runs(["month"]) == [("month-setup", "setup"), ("month", "case")]
    assert benchmark.plan_runs(["sample"]) == [("sample", "case")]


def test_commits_are_new_log_files_per_table_with_their_operation(tmp_path):
    _commit(tmp_path / "silver" / "fct_events", 0, "CREATE TABLE")
    _commit(tmp_path / "ops" / "job_runs", 0)
    (tmp_path / "silver" / "fct_events" / "_delta_log" / "00000000000000000000.checkpoint.parquet").write_text("")
    (tmp_path / "silver" / "fct_events" / "part-0.parquet").write_text("")  # data file, not a commit
    before = benchmark.delta_versions(tmp_path)
    assert before == {"ops.job_runs": {0}, "silver.fct_events": {0}}

    _commit(tmp_path / "silver" / "fct_events", 1, "MERGE")
    _commit(tmp_path / "ops" / "job_runs", 1)
    _commit(tmp_path / "ops" / "job_runs", 2, None)  # no commitInfo: operation unknown
    _commit(tmp_path / "gold" / "agg_active_user", 0, "CREATE OR REPLACE TABLE AS SELECT")
    after = benchmark.delta_versions(tmp_path)

    assert benchmark.new_commits(before, after, tmp_path) == [
        {"table": "gold.agg_active_user", "version": 0, "operation": "CREATE OR REPLACE TABLE AS SELECT"},
        {"table": "ops.job_runs", "version": 1, "operation": "WRITE"},
        {"table": "ops.job_runs", "version": 2, "operation": None},
        {"table": "silver.fct_events", "version": 1, "operation": "MERGE"},
    ]
    assert benchmark.new_commits(after, after) == []
    assert benchmark.delta_versions(tmp_path / "missing") == {}


def test_split_file_keeps_every_line_once_with_a_header_each(tmp_path):
    day = tmp_path / "event_stream_2024-01-07_2024-01-07.csv"
    lines = [f"line{i}\n" for i in range(7)]
    day.write_text("header\n" + "".join(lines))
    parts = benchmark.split_file(day, 3)
    assert [p.name for p in parts] == [f"event_stream_2024-01-07_2024-01-07_part0{k}of03.csv" for k in (1, 2, 3)]
    assert not day.exists()
    texts = [p.read_text().splitlines(keepends=True) for p in parts]
    assert all(t[0] == "header\n" for t in texts)
    assert [line for t in texts for line in t[1:]] == lines
    assert benchmark.count_rows(parts) == 7
    single = tmp_path / "one.csv"
    single.write_text("header\na\n")
    assert benchmark.split_file(single, 1) == [single]


def _run(label: str, role: str, start: float, seconds: list[float], summary: float | None = 1.0) -> dict:
    jobs = [
        {
            "job": f"job_{i}",
            "seconds": s,
            "exit_code": 0,
            "rows_in": 1000 * i,
            "rows_out": 900 * i,
            "spark_jobs": 3,
            "commits": [{"table": "ops.job_runs", "version": i}, {"table": "silver.t", "version": i}],
        }
        for i, s in enumerate(seconds)
    ]
    run = {"label": label, "role": role, "description": f"{label} run", "spark_start_seconds": start, "jobs": jobs}
    if summary is not None:
        run["summary"] = {"seconds": summary, "spark_jobs": 2, "commits": []}
    return run


def test_run_table_has_every_step_and_totals():
    run = _run("year", "case", 5.0, [10.0, 4.0])
    totals = benchmark.run_totals(run)
    assert totals == {
        "jobs_seconds": 14.0,
        "after_start_seconds": 15.0,
        "total_seconds": 20.0,
        "commits": 4,
        "ops_commits": 2,
        "spark_jobs": 8,
    }
    text = benchmark.render_run(run)
    lines = text.splitlines()
    assert lines[0] == "year (case): year run"
    assert "rows in" in lines[1] and "ops commits" in lines[1]
    assert lines[2].split() == ["spark", "start", "(imports,", "JVM,", "session)", "5.0"]
    assert lines[4].split() == ["job_1", "4.0", "1,000", "900", "2", "1", "3"]
    assert lines[5].split() == ["summary", "1.0", "0", "0", "2"]
    assert lines[-2].split() == ["after", "Spark", "started", "(jobs", "+", "summary)", "15.0", "4", "2", "8"]
    assert lines[-1].split()[-1] == "20.0"
    failed = _run("year", "case", 5.0, [10.0])
    failed["jobs"][0]["exit_code"] = 1
    assert "job_0  FAILED" in benchmark.render_run(failed)


def test_overview_reports_targets_and_the_month_to_year_ratio():
    runs = [
        _run("backfill", "setup", 5.0, [100.0]),
        _run("year", "case", 5.0, [14.0]),  # 20 s whole run: meets <= 25 s
        _run("month", "case", 5.0, [11.0]),  # 17 s
        _run("nothing-new", "case", 5.0, [9.0], summary=2.0),  # 11 s after start: misses <= 10 s
    ]
    ratio = benchmark.month_year_ratio(runs)
    assert ratio == pytest.approx({"total": 20.0 / 17.0, "after_start": 15.0 / 12.0})
    result = {
        "date": "2026-11-26 05:00 UTC",
        "machine": {"cores": 2, "memory_gib": 23.4},
        "spark": {"master": "local[2]"},
        "parameters": {
            "driver_memory": "2g",
            "users": 500,
            "events_per_day": 300.0,
            "files_per_day": 1,
            "start_date": "2024-01-07",
        },
        "runs": runs,
        "month_year_ratio": ratio,
    }
    lines = benchmark.render_overview(result).splitlines()
    assert "500 users, about 300 events a day" in lines[0]
    assert lines[2].split() == ["backfill", "(set-up)", "106.0", "101.0"]  # no target for a set-up run
    assert lines[3].strip() == "backfill run"
    assert lines[4].split() == ["year", "20.0", "15.0", "<=", "25", "s", "whole", "run", "yes"]
    assert lines[6].split() == ["month", "17.0", "12.0"]
    assert lines[8].split()[-1] == "no" and "<= 10 s after Spark started" in lines[8]
    assert lines[10].split() == ["month", "->", "year", "1.18x", "1.25x", "<=", "1.15", "(whole", "run)", "no"]
    assert benchmark.month_year_ratio(runs[:2]) is None
