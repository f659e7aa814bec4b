"""The DuckDB peer of the benchmark (lakehouse/duckdb_peer.py) against the plain-Python oracle
(tests/reference/spec_reference.py), as whole sets of rows: every table on the shipped sample, and the
bronze rules, silver and lifecycle on a small hand-written adversarial file. No Spark."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:  # the oracle lives in tests/reference, importable from the repo root
    sys.path.insert(0, str(_REPO_ROOT))

from lakehouse.duckdb_peer import RULE_NAMES, TABLES, PeerResult, rebuild  # noqa: E402
from tests.reference import spec_reference as spec  # noqa: E402

SAMPLE_FILES = [str(p) for p in sorted((_REPO_ROOT / "data" / "sample").glob("*.csv"))]
SAMPLE_INGESTED_AT = datetime(2025, 7, 10)  # as tests/conftest.py: after every sample event
HEADER = ",".join(spec.HEADER)


def peer_rows(result: PeerResult, table: str, columns: str) -> Counter:
    return Counter(result.fetch(table, [c.strip() for c in columns.split(",")]))


def round_floats(rows, digits: int = 6) -> Counter:
    return Counter(tuple(round(v, digits) if isinstance(v, float) else v for v in row) for row in rows)


def accepted_rows(ref: spec.Reference) -> Counter:
    columns = [*spec.HEADER, "source_file", "source_line"]
    return Counter(tuple(r[c] for c in columns) for r in ref.accepted)


def quarantined_rows(ref: spec.Reference) -> Counter:
    return Counter((r["source_file"], r["source_line"], tuple(r["failed_checks"])) for r in ref.quarantined)


EVENT_COLUMNS = (
    "event_id, event_time, event_date, user_id, event_type, transaction_category, miles_amount, platform, "
    "utm_source, country, event_data"
)
DIM_USER_COLUMNS = (
    "user_id, ds, acq_source, country, first_event_time, first_event_date, last_event_time, total_events, "
    "total_miles_earned, total_miles_redeemed, miles_balance, first_negative_date, is_active_7d, is_active_30d, "
    "is_active_90d, latest_event"
)


def event_rows(events: list[dict]) -> Counter:
    return Counter(tuple(e[c.strip()] for c in EVENT_COLUMNS.split(",")) for e in events)


def dim_user_rows(users: dict[str, dict]) -> Counter:
    return Counter(tuple(u[c.strip()] for c in DIM_USER_COLUMNS.split(",")) for u in users.values())


def snapshot(result: PeerResult, ds: date) -> Counter:
    sql = f"SELECT {DIM_USER_COLUMNS} FROM silver.dim_users WHERE ds = ?"
    return Counter(result.connection.execute(sql, [ds]).fetchall())


# --------------------------------------------------------------------------------------------- the sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("peer_sample")
    result = rebuild(SAMPLE_FILES, out, ingested_at=SAMPLE_INGESTED_AT)
    ref = spec.compute(SAMPLE_FILES, ingested_at=SAMPLE_INGESTED_AT)
    yield result, ref, out
    result.close()


def test_sample_bronze(sample):
    result, ref, _ = sample
    assert result.rows["bronze.fct_event_stream"] == len(ref.accepted) == 35_000
    assert result.rows["bronze.fct_event_stream_quarantine"] == len(ref.quarantined) == 16
    columns = f"{', '.join(spec.HEADER)}, _source_file, _source_line"
    assert peer_rows(result, "bronze.fct_event_stream", columns) == accepted_rows(ref)
    quarantine = result.fetch("bronze.fct_event_stream_quarantine", ["_source_file", "_source_line", "failed_checks"])
    assert Counter((f, n, tuple(checks)) for f, n, checks in quarantine) == quarantined_rows(ref)


def test_sample_silver(sample):
    result, ref, _ = sample
    assert peer_rows(result, "silver.fct_events", EVENT_COLUMNS) == event_rows(ref.events)
    assert snapshot(result, ref.max_event_date) == dim_user_rows(ref.dim_users_latest)
    # every daily snapshot: one row per user per day from their first event date to max_event_date, the
    # reference's snapshot of that day (checked on every 5th day and the last week: 0.03 s a day)
    firsts = [u["first_event_date"] for u in ref.dim_users_latest.values()]
    assert result.rows["silver.dim_users"] == sum((ref.max_event_date - f).days + 1 for f in firsts)
    days = (ref.max_event_date - min(firsts)).days
    for ds in sorted({min(firsts) + timedelta(days=n) for n in [*range(0, days, 5), *range(days - 6, days + 1)]}):
        assert snapshot(result, ds) == dim_user_rows(spec.dim_users_as_of(ref.events, ds)), ds
    activity = Counter((e["user_id"], e["event_date"]) for e in ref.events)
    assert Counter(result.fetch("silver.user_activity_daily", ["user_id", "activity_date"])) == Counter(set(activity))


def test_sample_gold(sample):
    result, ref, _ = sample
    expected = {
        "gold.agg_active_user": (
            "period_type, period_start_date, acq_source, country, active_users, is_partial_period",
            ref.active_user,
        ),
        "gold.agg_user_lifecycle_weekly": (
            "cutoff_week, acq_source, country, user_status, user_count, is_partial_period",
            ref.lifecycle,
        ),
        "gold.agg_user_retention": (
            "cohort_week, week_offset, acq_source, country, cohort_size, retained_users, retention_rate, "
            "unbounded_retained_users, is_partial_period",
            ref.retention,
        ),
        "gold.agg_growth_accounting_weekly": (
            "week_start, acq_source, country, active_users, prev_active_users, new_users, retained_users, "
            "resurrected_users, churned_users, quick_ratio",
            ref.growth,
        ),
        "gold.agg_engagement_daily": (
            "activity_date, acq_source, country, dau, wau_7d, mau_30d, dau_mau_rate, dau_wau_rate, is_partial_period",
            ref.engagement,
        ),
        "gold.agg_miles_weekly": (
            "week_start, acq_source, country, miles_earned, miles_redeemed, net_miles, earn_events, redeem_events, "
            "earning_users, redeeming_users, outstanding_miles, liability_miles, negative_balance_users, "
            "redemption_rate, is_partial_period",
            ref.miles_weekly,
        ),
        "gold.agg_miles_category_weekly": (
            "week_start, event_type, transaction_category, acq_source, country, events, users, miles, "
            "is_partial_period",
            ref.miles_category,
        ),
    }
    for table, (columns, reference_rows) in expected.items():
        assert result.rows[table] == len(reference_rows), table
        assert round_floats(peer_rows(result, table, columns)) == round_floats(reference_rows), table
    negative = sorted(u for (u,) in result.fetch("gold.rpt_negative_balance_users", ["user_id"]))
    assert negative == ref.negative_balance_users and len(negative) == 66


def test_sample_anomalies(sample):
    result, ref, _ = sample
    columns = (
        "metric, grain, segment_type, segment_value, period_start, value, expected, lower_bound, upper_bound, score, "
        "training_periods, is_anomaly, direction"
    )
    rows = peer_rows(result, "gold.agg_metric_anomalies", columns)
    assert len(ref.anomalies) > 1000 and result.rows["gold.agg_metric_anomalies"] == len(ref.anomalies)
    assert round_floats(rows) == round_floats(ref.anomalies)
    assert {(r[0], r[1]) for r in rows} >= {("events", "day"), ("churned_users", "week")}


def test_sample_parquet_files(sample):
    result, _, out = sample
    con = duckdb.connect()
    try:
        for table in TABLES:
            path = out / f"{table}.parquet"
            (count,) = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()
            assert count == result.rows[table], table
    finally:
        con.close()
    assert result.seconds > 0 and set(result.rows) == set(TABLES)


# --------------------------------------------------------------------------------------------- adversarial file


def line(
    event_time="2025-03-08 10:00:00.000000",
    user_id="u_1",
    event_type="miles_earned",
    category="dining",
    miles="516.0",
    platform="ios",
    utm="google",
    country="SG",
) -> str:
    return ",".join([event_time, user_id, event_type, category, miles, platform, utm, country])


# 2025-03-08 is a Saturday and 2025-03-09 the Sunday after it: the week boundary.
FIRST_FILE = [
    line(),  # u_1 acquired on the Saturday, week of 2025-03-02
    line(event_time="2025-03-09 00:00:00.000000", event_type="miles_redeemed", category="flight", miles="900"),
    line(),  # exact duplicate of line 2: one silver event
    line(platform="web", miles="7.50"),  # same event_id, other attributes: the first copy is kept
    line(event_time="2025-03-08 10:00:00.000000", user_id="u_2", utm="tiktok", country="PH"),
    line(
        event_time="2025-03-08 10:00:00.000000",
        user_id="u_3",
        utm="facebook",
        country="MY",
        event_type="share",
        category="",
        miles="",
    ),
    # earlier the same day: u_3's segment is organic / TH
    line(
        event_time="2025-03-08 09:00:00.000000",
        user_id="u_3",
        utm="organic",
        country="TH",
        event_type="like",
        category="",
        miles="",
    ),
    '"2025-03-15 08:00:00.000000","u_2",reward_search,"apple",,"android",tiktok,PH',  # quoted fields
    line(event_time="2025-04-20 12:00:00.000000", user_id="u_1", miles="0012.500"),  # resurrected after 5 weeks
    line(event_time="2025-03-22 12:00:00.000000", user_id="u_2", event_type="like", category="", miles=""),
    # invalid rows, several rules each
    line(event_type="miles_burned"),
    line(category="flight"),
    line(event_type="share", category="groceries", miles="3"),
    line(event_time="2025-02-30 10:00:00.000000"),
    line(event_time="0000-01-01 10:00:00.000000"),
    line(event_time="2025-03-08T10:00:00.000000", user_id="U_1"),
    line(event_time="2025-07-01 01:00:00.000001"),  # just past ingested_at + 60 minutes
    line(event_time="2025-07-01 01:00:00.000000"),  # at the slack's edge: accepted
    line(miles="1.234"),
    line(miles="123456789.0"),
    line(miles="00000000099999999.990"),  # leading zeros, trailing zero: accepted
    line(miles="0.00"),
    line(event_time="2025-03-08 10:00:01.000000", miles="0" * 40 + "12.5000000000000000000"),  # accepted: 12.50
    line(event_time="2025-03-08 10:00:02.000000", miles="00.00"),
    line(event_time="2025-03-08 10:00:03.000000", miles=".5"),
    line(event_time="2025-03-08 10:00:04.000000", miles="5."),
    line(event_time="2025-03-08 10:00:05.000000", miles="1.005"),
    line(event_time="2025-03-08 10:00:06.000000", miles="+5"),
    line(event_time="2025-03-08 10:00:07.000000", miles="５"),  # a full-width digit is not [0-9]
    line(event_time="２０２５-03-08 10:00:08.000000"),
    '2025-03-08 12:00:00.000000,"u_"5,like,,,ios,google,SG',  # csv reads "u_"5 as u_5: accepted
    line(event_type="reward_search", category="", miles="5"),
    line(user_id="", platform="", utm="", country=""),
    line(country=" SG"),
    "2025-03-08 10:00:00.000000,u_1,like,,,ios,google",  # 7 fields
    line() + ",extra",  # 9 fields
    "",  # blank line
    '"2025-03-08 10:00:00.000000,u_1",like,,,ios,google,SG,x',  # a quoted comma: 8 fields, bad values
    '2025-03-08 11:00:00.000000,u_1,like,,,"i""os",google,SG',  # a doubled quote inside quotes
]
# A late file: events dated before the first file's latest ones, one duplicate of the first file.
SECOND_FILE = [
    line(event_time="2025-03-01 23:59:59.999999", user_id="u_4", utm="referral", country="ID"),  # a Saturday
    line(event_time="2025-03-09 00:00:00.000000", event_type="miles_redeemed", category="flight", miles="900.00"),
    # u_4 goes negative (its later events' utm_source / country do not change its segment)
    line(
        event_time="2025-03-16 10:00:00.000000",
        user_id="u_4",
        event_type="miles_redeemed",
        category="hotel",
        miles="2000.0",
        utm="google",
        country="SG",
    ),
    line(
        event_time="2025-04-05 10:00:00.000000",
        user_id="u_4",
        event_type="like",
        category="",
        miles="",
        utm="referral",
        country="ID",
    ),
]
ADVERSARIAL_INGESTED_AT = datetime(2025, 7, 1)


@pytest.fixture(scope="module")
def adversarial(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adversarial")
    first = folder / "a_first.csv"
    # a BOM, CRLF line ends and no final line break: all read as the reference's csv module reads them
    first.write_bytes(("\ufeff" + "\r\n".join([HEADER, *FIRST_FILE])).encode("utf-8"))
    second = folder / "b_late.csv"
    second.write_text("\n".join([HEADER, *SECOND_FILE]) + "\n", encoding="utf-8")
    paths = [str(first), str(second)]
    result = rebuild(paths, ingested_at=ADVERSARIAL_INGESTED_AT)
    ref = spec.compute(paths, ingested_at=ADVERSARIAL_INGESTED_AT)
    yield result, ref
    result.close()


def test_adversarial_bronze(adversarial):
    result, ref = adversarial
    quarantine = result.fetch("bronze.fct_event_stream_quarantine", ["_source_file", "_source_line", "failed_checks"])
    peer_quarantine = Counter((f, n, tuple(checks)) for f, n, checks in quarantine)
    assert peer_quarantine == quarantined_rows(ref)
    columns = f"{', '.join(spec.HEADER)}, _source_file, _source_line"
    assert peer_rows(result, "bronze.fct_event_stream", columns) == accepted_rows(ref)
    # every data line is accounted for, and the file covers many rules
    assert result.rows["bronze.fct_event_stream"] + len(quarantine) == len(FIRST_FILE) + len(SECOND_FILE)
    broken = {name for _, _, checks in peer_quarantine for name in checks}
    assert len(broken) >= 14 and broken <= set(RULE_NAMES)
    # the rule list is the reference's, sorted, and field_count is reported alone
    assert all(list(checks) == sorted(checks) for _, _, checks in peer_quarantine)
    blank = FIRST_FILE.index("") + 2  # header on line 1
    assert result.fetch("bronze.fct_event_stream_quarantine", ["_raw_line"]).count(("",)) == 1
    assert ("a_first.csv", blank, ("field_count",)) in peer_quarantine


def test_adversarial_silver_and_gold(adversarial):
    result, ref = adversarial
    assert peer_rows(result, "silver.fct_events", EVENT_COLUMNS) == event_rows(ref.events)
    assert snapshot(result, ref.max_event_date) == dim_user_rows(ref.dim_users_latest)
    for ds in (date(2025, 3, 1), date(2025, 3, 8), date(2025, 3, 16), date(2025, 4, 5)):
        assert snapshot(result, ds) == dim_user_rows(spec.dim_users_as_of(ref.events, ds)), ds
    lifecycle = peer_rows(
        result,
        "gold.agg_user_lifecycle_weekly",
        "cutoff_week, acq_source, country, user_status, user_count, is_partial_period",
    )
    assert lifecycle == Counter(ref.lifecycle)
    statuses = {row[3] for row in lifecycle}
    assert statuses == {"new", "retained", "resurrected", "dormant", "churned"}
    growth = peer_rows(
        result,
        "gold.agg_growth_accounting_weekly",
        "week_start, acq_source, country, active_users, prev_active_users, new_users, retained_users, "
        "resurrected_users, churned_users, quick_ratio",
    )
    assert growth == Counter(ref.growth)
    retention = peer_rows(
        result,
        "gold.agg_user_retention",
        "cohort_week, week_offset, acq_source, country, cohort_size, retained_users, retention_rate, "
        "unbounded_retained_users, is_partial_period",
    )
    assert retention == Counter(ref.retention)
    miles = peer_rows(
        result,
        "gold.agg_miles_weekly",
        "week_start, acq_source, country, miles_earned, miles_redeemed, net_miles, earn_events, redeem_events, "
        "earning_users, redeeming_users, outstanding_miles, liability_miles, negative_balance_users, "
        "redemption_rate, is_partial_period",
    )
    assert miles == Counter(ref.miles_weekly)
    assert sorted(u for (u,) in result.fetch("gold.rpt_negative_balance_users", ["user_id"])) == (
        ref.negative_balance_users
    )


def test_bad_header_refuses_the_rebuild(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "\n" + line() + "\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER.replace("country", "nation") + "\n" + line() + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv: header"):
        rebuild([str(good), str(bad)], tmp_path / "out", ingested_at=ADVERSARIAL_INGESTED_AT)
    assert not (tmp_path / "out").exists()


def test_monday_weeks_and_no_accepted_row(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(HEADER + "\n" + line() + "\n" + line(event_time="2025-03-10 10:00:00.000000") + "\n")
    result = rebuild([str(path)], ingested_at=ADVERSARIAL_INGESTED_AT, week_start="monday")
    try:
        weeks = {w for (w,) in result.fetch("gold.agg_growth_accounting_weekly", ["week_start"])}
        assert weeks == {date(2025, 3, 3), date(2025, 3, 10)}  # Mondays
    finally:
        result.close()
    path.write_text(HEADER + "\n" + line(country="US") + "\n")
    result = rebuild([str(path)], ingested_at=ADVERSARIAL_INGESTED_AT)
    try:
        assert result.rows["bronze.fct_event_stream_quarantine"] == 1
        assert all(result.rows[t] == 0 for t in TABLES if t != "bronze.fct_event_stream_quarantine")
    finally:
        result.close()
