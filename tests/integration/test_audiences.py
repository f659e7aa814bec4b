"""Audiences on the sample's warehouse (lakehouse/audiences.py): sizes and members against the reference
implementation of gold.user_status_weekly, exports byte-identical twice and recorded, and the errors that write
nothing (an unknown audience, a week without data, an unwritable path). About 40 s after the sample's pipeline."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lakehouse import delta_rs
from lakehouse.audiences import main as audience
from lakehouse.registry import OPS_AUDIENCE_EXPORTS
from tests.conftest import make_config

pytestmark = pytest.mark.e2e

#: The example audiences of conf, as Python conditions on the reference's rows.
EXAMPLES = {
    "just_churned": lambda r: r["user_status"] == "churned" and r["previous_status"] == "dormant",
    "win_back_valuable": lambda r: r["user_status"] == "churned" and r["miles_balance"] >= 1000,
    "resurrected": lambda r: r["user_status"] == "resurrected",
    "negative_balance": lambda r: r["miles_balance"] < 0,
}
FIELDS = ("user_id", "cutoff_week", "acq_source", "country", "user_status", "previous_status", "events_in_week",
          "miles_earned_in_week", "miles_redeemed_in_week", "last_active_date", "weeks_since_active", "miles_balance",
          "is_partial_period")  # fmt: skip


@pytest.fixture(scope="module")
def warehouse(sample_pipeline, tmp_path_factory):
    """A copy of the sample's warehouse (exports add ops rows), and the reference's rows by week."""
    root = tmp_path_factory.mktemp("audiences")
    shutil.copytree(sample_pipeline.paths.warehouse, root / "wh")
    return make_config(root / "wh", sample_pipeline.paths.input)


@pytest.fixture(scope="module")
def reference(sample_reference):
    rows = [dict(zip(FIELDS, r, strict=True)) for r in sample_reference.user_status]
    latest = max(r["cutoff_week"] for r in rows if not r["is_partial_period"])
    return rows, latest


def _args(config, *args: str) -> list[str]:
    return [*args, "--env", "local", "--warehouse", config.paths.warehouse]


def _exports(config) -> list[dict]:
    return delta_rs.read_rows(OPS_AUDIENCE_EXPORTS, config) if delta_rs.exists(OPS_AUDIENCE_EXPORTS, config) else []


def test_list_gives_the_reference_sizes_of_the_latest_complete_week_and_the_week_before(warehouse, reference, capsys):
    rows, latest = reference
    before = max(r["cutoff_week"] for r in rows if r["cutoff_week"] < latest)
    assert audience(_args(warehouse, "list")) == 0
    out = capsys.readouterr().out
    assert f"{latest}" in out and f"{before}" in out
    for name, condition in EXAMPLES.items():
        now = sum(1 for r in rows if r["cutoff_week"] == latest and condition(r))
        then = sum(1 for r in rows if r["cutoff_week"] == before and condition(r))
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert line.split()[1:4] == [f"{now:,}", f"{then:,}", f"{now - then:+d}"], line
        print(f"[audiences] {name}: {now} in the week of {latest} ({now - then:+d})")


def test_an_export_twice_gives_the_same_bytes_and_is_recorded_twice(warehouse, reference, tmp_path, capsys):
    rows, latest = reference
    expected = sorted(r["user_id"] for r in rows if r["cutoff_week"] == latest and EXAMPLES["win_back_valuable"](r))
    assert expected, "the example should have members on the sample"
    files = []
    for i in (1, 2):
        out = tmp_path / f"win_back_{i}.csv"
        assert audience(_args(warehouse, "export", "win_back_valuable", "--columns", "miles_balance,country",
                              "--out", str(out))) == 0  # fmt: skip
        files.append(out.read_bytes())
    assert files[0] == files[1]
    lines = files[0].decode().splitlines()
    assert lines[0] == "user_id,miles_balance,country"
    assert [line.split(",")[0] for line in lines[1:]] == expected
    by_user = {r["user_id"]: r for r in rows if r["cutoff_week"] == latest}
    assert all(line.split(",")[1:] == [format(by_user[line.split(",")[0]]["miles_balance"], "f"),
                                       by_user[line.split(",")[0]]["country"]] for line in lines[1:])  # fmt: skip
    recorded = _exports(warehouse)
    assert len(recorded) == 2
    assert {(r["audience"], r["cutoff_week"], r["rows"], r["file_sha256"], r["table_version"], r["file_format"])
            for r in recorded} == {("win_back_valuable", latest, len(expected), hashlib.sha256(files[0]).hexdigest(),
                                    recorded[0]["table_version"], "csv")}  # fmt: skip
    assert recorded[0]["condition"] == "user_status = 'churned' AND miles_balance >= 1000"

    parquet = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    for out in parquet:
        assert audience(_args(warehouse, "export", "resurrected", "--week", str(latest), "--out", str(out))) == 0
    assert parquet[0].read_bytes() == parquet[1].read_bytes()
    table = pq.read_table(parquet[0])
    assert table.column_names == ["user_id"]
    assert table.column("user_id").to_pylist() == sorted(r["user_id"] for r in rows if r["cutoff_week"] == latest
                                                         and EXAMPLES["resurrected"](r))  # fmt: skip
    assert len(_exports(warehouse)) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("export", "no_such_audience", "--out", "{tmp}/x.csv"), "unknown audience 'no_such_audience'"),
        (
            ("export", "resurrected", "--week", "2020-01-05", "--out", "{tmp}/x.csv"),
            "has no rows for the week 2020-01-05",
        ),
        (("export", "resurrected", "--out", "{tmp}/missing/x.csv"), "the folder .* does not exist"),
        (("export", "resurrected", "--out", "/proc/x.csv"), "cannot write /proc/x.csv"),
        (("export", "resurrected", "--columns", "balance", "--out", "{tmp}/x.csv"), r"unknown columns \['balance'\]"),
    ],
    ids=["unknown-audience", "week-without-data", "no-folder", "unwritable", "unknown-column"],
)
def test_a_bad_export_says_why_and_writes_nothing(warehouse, tmp_path, capsys, args, message):
    before = len(_exports(warehouse))
    code = audience(_args(warehouse, *[a.format(tmp=tmp_path) for a in args]))
    assert code != 0
    assert re.search(message, capsys.readouterr().err)
    assert len(_exports(warehouse)) == before
    assert not list(Path(tmp_path).glob("*.csv")) and not list(Path(tmp_path).glob(".*.tmp"))
