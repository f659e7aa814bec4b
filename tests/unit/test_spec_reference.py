"""Tests of the plain-Python oracle of docs/contract.md (tests/reference/spec_reference.py) on hand-written CSV.

Every expected value below was worked out by hand from docs/contract.md, not by running the oracle.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:  # the oracle lives in tests/reference, importable from the repo root
    sys.path.insert(0, _REPO_ROOT)

from tests.reference.spec_reference import compute, week_start  # noqa: E402

HEADER = "event_time,user_id,event_type,transaction_category,miles_amount,platform,utm_source,country"
INGESTED_AT = datetime(2025, 7, 1, 0, 0, 0)
VALID = "2025-03-09 10:00:00.000000,u_1,miles_earned,dining,516.0,ios,google,SG"


def write_csv(tmp_path: Path, lines: list[str], name: str = "events.csv") -> str:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return str(path)


def run(tmp_path: Path, lines: list[str], **kwargs):
    kwargs.setdefault("ingested_at", INGESTED_AT)
    return compute([write_csv(tmp_path, lines)], **kwargs)


def line(
    event_time="2025-03-09 10:00:00.000000",
    user_id="u_1",
    event_type="miles_earned",
    category="dining",
    miles="516.0",
    platform="ios",
    utm="google",
    country="SG",
) -> str:
    return ",".join([event_time, user_id, event_type, category, miles, platform, utm, country])


# ---------------------------------------------------------------------------------------------
# Bronze validation: each rule on a valid and an invalid line

RULE_CASES = [
    # (case name, line, expected failed_checks; [] = accepted)
    ("valid_miles_earned", line(), []),
    ("valid_miles_redeemed", line(event_type="miles_redeemed", category="hotel", miles="800.0"), []),
    ("valid_reward_search", line(event_type="reward_search", category="lululemon", miles=""), []),
    ("valid_share", line(event_type="share", category="", miles=""), []),
    ("valid_like", line(event_type="like", category="", miles=""), []),
    ("field_count_7_fields", "2025-03-09 10:00:00.000000,u_1,like,,,ios,google", ["field_count"]),
    ("field_count_9_fields", line() + ",extra", ["field_count"]),
    ("field_count_only_rule_reported", "garbage,,", ["field_count"]),
    ("field_count_blank_line", "", ["field_count"]),
    ("event_type_allowed", line(event_type="miles_burned"), ["event_type_allowed"]),
    ("event_type_allowed_case", line(event_type="Miles_Earned"), ["event_type_allowed"]),
    ("transaction_category_allowed", line(category="groceries"), ["transaction_category_allowed"]),
    (
        "transaction_category_allowed_on_share",
        line(event_type="share", category="groceries", miles=""),
        ["transaction_category_allowed", "transaction_category_matches_event_type"],
    ),
    ("platform_allowed", line(platform="ipad"), ["platform_allowed"]),
    ("platform_allowed_case", line(platform="IOS"), ["platform_allowed"]),
    ("utm_source_allowed", line(utm="bing"), ["utm_source_allowed"]),
    ("country_allowed", line(country="US"), ["country_allowed"]),
    ("country_allowed_untrimmed", line(country=" SG"), ["country_allowed"]),
    ("event_time_required", line(event_time=""), ["event_time_required"]),
    ("user_id_required", line(user_id=""), ["user_id_required"]),
    ("event_type_required", line(event_type=""), ["event_type_required"]),
    ("platform_required", line(platform=""), ["platform_required"]),
    ("utm_source_required", line(utm=""), ["utm_source_required"]),
    ("country_required", line(country=""), ["country_required"]),
    ("transaction_category_required_earned", line(category=""), ["transaction_category_required"]),
    (
        "transaction_category_required_search",
        line(event_type="reward_search", category="", miles=""),
        ["transaction_category_required"],
    ),
    (
        "miles_amount_required_redeemed",
        line(event_type="miles_redeemed", category="flight", miles=""),
        ["miles_amount_required"],
    ),
    ("event_time_format_t_separator", line(event_time="2025-03-09T10:00:00.000000"), ["event_time_format"]),
    ("event_time_format_3_fraction_digits", line(event_time="2025-03-09 10:00:00.000"), ["event_time_format"]),
    ("event_time_format_no_fraction", line(event_time="2025-03-09 10:00:00"), ["event_time_format"]),
    ("event_time_format_feb_30", line(event_time="2025-02-30 10:00:00.000000"), ["event_time_format"]),
    ("event_time_format_hour_24", line(event_time="2025-03-09 24:00:00.000000"), ["event_time_format"]),
    ("event_time_valid_leap_day", line(event_time="2024-02-29 10:00:00.000000"), []),
    ("user_id_format_prefix", line(user_id="user_1"), ["user_id_format"]),
    ("user_id_format_no_digits", line(user_id="u_"), ["user_id_format"]),
    ("user_id_format_upper_case", line(user_id="U_1"), ["user_id_format"]),
    ("user_id_format_trailing_letter", line(user_id="u_12a"), ["user_id_format"]),
    ("user_id_valid_long", line(user_id="u_123456"), []),
    ("miles_amount_valid_zero", line(miles="0.0"), ["miles_amount_valid"]),
    ("miles_amount_valid_negative", line(miles="-5.0"), ["miles_amount_valid"]),
    ("miles_amount_valid_text", line(miles="abc"), ["miles_amount_valid"]),
    ("miles_amount_valid_exponent", line(miles="1e3"), ["miles_amount_valid"]),
    ("miles_amount_valid_3_decimals", line(miles="1.234"), ["miles_amount_valid"]),
    ("miles_amount_valid_9_integer_digits", line(miles="123456789.0"), ["miles_amount_valid"]),
    ("miles_amount_valid_max", line(miles="99999999.99"), []),
    ("miles_amount_valid_trailing_zero", line(miles="1.230"), []),
    ("miles_amount_valid_smallest", line(miles="0.01"), []),
    ("miles_amount_valid_integer", line(miles="516"), []),
    (
        "miles_amount_not_allowed_search",
        line(event_type="reward_search", category="apple", miles="10.0"),
        ["miles_amount_not_allowed"],
    ),
    ("miles_amount_not_allowed_like", line(event_type="like", category="", miles="10.0"), ["miles_amount_not_allowed"]),
    (
        "transaction_category_matches_earned_flight",
        line(category="flight"),
        ["transaction_category_matches_event_type"],
    ),
    (
        "transaction_category_matches_search_hotel",
        line(event_type="reward_search", category="hotel", miles=""),
        ["transaction_category_matches_event_type"],
    ),
    (
        "transaction_category_matches_share_dining",
        line(event_type="share", category="dining", miles=""),
        ["transaction_category_matches_event_type"],
    ),
    ("event_time_not_in_future_at_slack_edge", line(event_time="2025-07-01 01:00:00.000000"), []),
    (
        "event_time_not_in_future_past_slack",
        line(event_time="2025-07-01 01:00:00.000001"),
        ["event_time_not_in_future"],
    ),
    (
        "several_rules_sorted",
        line(
            event_time="2025-13-01 00:00:00.000000",
            user_id="x",
            event_type="like",
            category="",
            miles="1.0",
            platform="",
            country="XX",
        ),
        ["country_allowed", "event_time_format", "miles_amount_not_allowed", "platform_required", "user_id_format"],
    ),
]


@pytest.mark.parametrize(
    ("source_line", "expected"), [case[1:] for case in RULE_CASES], ids=[case[0] for case in RULE_CASES]
)
def test_validation_rule(tmp_path, source_line, expected):
    ref = run(tmp_path, [source_line])
    if expected:
        assert ref.accepted == []
        assert ref.quarantined == [{"source_file": "events.csv", "source_line": 2, "failed_checks": expected}]
    else:
        assert ref.quarantined == []
        assert [(r["source_file"], r["source_line"]) for r in ref.accepted] == [("events.csv", 2)]


def test_future_slack_is_configurable(tmp_path):
    future = line(event_time="2025-07-01 00:30:00.000000")
    assert run(tmp_path, [future], future_slack_minutes=60).quarantined == []
    assert run(tmp_path, [future], future_slack_minutes=0).quarantined[0]["failed_checks"] == [
        "event_time_not_in_future"
    ]


def test_accepted_record_is_typed(tmp_path):
    ref = run(tmp_path, [line(), line(event_type="share", category="", miles="", platform="web")])
    assert ref.accepted == [
        {
            "event_time": datetime(2025, 3, 9, 10),
            "user_id": "u_1",
            "event_type": "miles_earned",
            "transaction_category": "dining",
            "miles_amount": Decimal("516.00"),
            "platform": "ios",
            "utm_source": "google",
            "country": "SG",
            "source_file": "events.csv",
            "source_line": 2,
        },
        {
            "event_time": datetime(2025, 3, 9, 10),
            "user_id": "u_1",
            "event_type": "share",
            "transaction_category": None,
            "miles_amount": None,
            "platform": "web",
            "utm_source": "google",
            "country": "SG",
            "source_file": "events.csv",
            "source_line": 3,
        },
    ]


def test_wrong_header_refuses_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    wrong_header = HEADER.replace("transaction_category", "category")
    path.write_text(wrong_header + "\n" + VALID + "\n")
    with pytest.raises(ValueError, match="header"):
        compute([str(path)], ingested_at=INGESTED_AT)


def test_source_lines_count_physical_lines_and_quoted_fields(tmp_path):
    quoted_ok = '"2025-03-09 11:00:00.000000","u_2",like,,,ios,"google",SG'
    quoted_comma = 'x,u_3,like,"din,ing",,ios,google,SG'  # 8 fields: the comma is inside quotes
    multi_line = '2025-03-09 12:00:00.000000,u_4,like,"a\nb",,ios,google,SG'  # lines 4-5
    ref = run(tmp_path, [quoted_ok, quoted_comma, multi_line, VALID])
    assert [(r["user_id"], r["source_line"]) for r in ref.accepted] == [("u_2", 2), ("u_1", 6)]
    assert ref.quarantined == [
        {
            "source_file": "events.csv",
            "source_line": 3,
            "failed_checks": [
                "event_time_format",
                "transaction_category_allowed",
                "transaction_category_matches_event_type",
            ],
        },
        {
            "source_file": "events.csv",
            "source_line": 4,
            "failed_checks": ["transaction_category_allowed", "transaction_category_matches_event_type"],
        },
    ]


def test_every_data_line_is_accepted_or_quarantined(tmp_path):
    lines = [VALID, "", line(user_id="bad"), VALID, line(event_type="like")]
    ref = run(tmp_path, lines)
    assert len(ref.accepted) + len(ref.quarantined) == len(lines)
    assert sorted(q["source_line"] for q in ref.quarantined) == [3, 4, 6]


# ---------------------------------------------------------------------------------------------
# Silver


def test_event_id_and_event_data(tmp_path):
    ref = run(tmp_path, [line(event_type="like", category="", miles="")])
    (event,) = ref.events
    # md5('2025-03-09 10:00:00.000000-u_1-like'), computed once with a shell md5 tool
    assert event["event_id"] == "32182681204d56a2ca713d9d6f1d4864"
    assert event["event_date"] == date(2025, 3, 9)
    assert json.loads(event["event_data"]) == {"transaction_category": None, "miles_amount": None, "platform": "ios"}


def test_event_data_keeps_miles_as_number(tmp_path):
    (event,) = run(tmp_path, [VALID]).events
    assert json.loads(event["event_data"]) == {
        "transaction_category": "dining",
        "miles_amount": 516.0,
        "platform": "ios",
    }


def test_duplicate_line_is_one_event(tmp_path):
    ref = run(tmp_path, [VALID, VALID])
    assert len(ref.accepted) == 2
    assert len(ref.events) == 1
    assert ref.events[0]["source_line"] == 2
    assert ref.dim_users_latest["u_1"]["total_events"] == 1
    assert ref.dim_users_latest["u_1"]["total_miles_earned"] == Decimal("516.00")
    assert ref.active_user == {
        ("daily", date(2025, 3, 9), "google", "SG", 1, False),
        ("weekly", date(2025, 3, 9), "google", "SG", 1, True),
        ("monthly", date(2025, 3, 1), "google", "SG", 1, True),
    }


def test_duplicate_across_files_keeps_first_file(tmp_path):
    # Same event_id (time, user, type) with a different platform: the copy of the first file wins.
    first = write_csv(tmp_path, [line(platform="web")], name="b_first.csv")
    second = write_csv(tmp_path, [line(platform="android")], name="a_second.csv")
    ref = compute([first, second], ingested_at=INGESTED_AT)
    assert [(e["source_file"], e["platform"]) for e in ref.events] == [("b_first.csv", "web")]


def test_segment_is_first_event_not_first_line(tmp_path):
    ref = run(
        tmp_path,
        [
            line(event_time="2025-03-20 10:00:00.000000", utm="facebook", country="MY"),
            line(event_time="2025-03-10 10:00:00.000000", utm="tiktok", country="TH"),
        ],
    )
    user = ref.dim_users_latest["u_1"]
    assert (user["acq_source"], user["country"]) == ("tiktok", "TH")


def test_segment_tie_on_event_time_takes_smallest_event_id(tmp_path):
    # md5('2025-03-03 09:00:00.000000-u_5-like')  = 4b05551a...  (smaller)
    # md5('2025-03-03 09:00:00.000000-u_5-share') = b28d6bca...
    ref = run(
        tmp_path,
        [
            line(
                event_time="2025-03-03 09:00:00.000000",
                user_id="u_5",
                event_type="share",
                category="",
                miles="",
                utm="facebook",
                country="MY",
            ),
            line(
                event_time="2025-03-03 09:00:00.000000",
                user_id="u_5",
                event_type="like",
                category="",
                miles="",
                utm="organic",
                country="PH",
            ),
        ],
    )
    assert (ref.dim_users_latest["u_5"]["acq_source"], ref.dim_users_latest["u_5"]["country"]) == ("organic", "PH")


# ---------------------------------------------------------------------------------------------
# Weeks


def test_week_start_is_sunday():
    assert week_start(date(2025, 3, 8)) == date(2025, 3, 2)  # Saturday
    assert week_start(date(2025, 3, 9)) == date(2025, 3, 9)  # Sunday
    assert week_start(date(2025, 3, 10)) == date(2025, 3, 9)  # Monday


def test_saturday_last_microsecond_and_sunday_midnight_are_different_weeks(tmp_path):
    ref = run(
        tmp_path,
        [
            line(event_time="2025-03-08 23:59:59.999999", event_type="like", category="", miles=""),
            line(event_time="2025-03-09 00:00:00.000000", event_type="like", category="", miles=""),
        ],
    )
    weekly = {row for row in ref.active_user if row[0] == "weekly"}
    assert weekly == {
        ("weekly", date(2025, 3, 2), "google", "SG", 1, False),
        ("weekly", date(2025, 3, 9), "google", "SG", 1, True),
    }
    assert ref.lifecycle == {
        (date(2025, 3, 2), "google", "SG", "new", 1, False),
        (date(2025, 3, 9), "google", "SG", "retained", 1, True),
    }


def test_period_ending_on_max_event_date_is_not_partial(tmp_path):
    # 2025-05-31 is a Saturday and the last day of May.
    ref = run(tmp_path, [line(event_time="2025-05-31 12:00:00.000000")])
    assert ref.max_event_date == date(2025, 5, 31)
    assert ref.active_user == {
        ("daily", date(2025, 5, 31), "google", "SG", 1, False),
        ("weekly", date(2025, 5, 25), "google", "SG", 1, False),
        ("monthly", date(2025, 5, 1), "google", "SG", 1, False),
    }


# ---------------------------------------------------------------------------------------------
# The story: three users over weeks W0..W6 (Sundays 2025-03-02 .. 2025-04-13)
#   u_1 google/SG:   W0 (Mon 03-03 earned 100), W1 (Mon 03-10 redeemed 800), W6 (Tue 04-15 like)
#   u_2 google/SG:   W0 (Tue 03-04 reward_search)
#   u_3 facebook/MY: W2 (Sun 03-16 00:00 share), W3 (Sat 03-29 23:59:59.999999 earned 50)
# max_event_date = 2025-04-15 (Tuesday), so W6 and April are partial; W4, W5 have no activity.

W = [date(2025, 3, 2) + timedelta(days=7 * k) for k in range(7)]
STORY = [
    line(event_time="2025-04-15 08:00:00.000000", user_id="u_1", event_type="like", category="", miles=""),
    line(event_time="2025-03-03 09:00:00.000000", user_id="u_1", miles="100.0"),
    line(
        event_time="2025-03-10 09:00:00.000000",
        user_id="u_1",
        event_type="miles_redeemed",
        category="flight",
        miles="800.0",
    ),
    line(
        event_time="2025-03-04 09:00:00.000000", user_id="u_2", event_type="reward_search", category="apple", miles=""
    ),
    line(
        event_time="2025-03-16 00:00:00.000000",
        user_id="u_3",
        event_type="share",
        category="",
        miles="",
        platform="android",
        utm="facebook",
        country="MY",
    ),
    line(
        event_time="2025-03-29 23:59:59.999999",
        user_id="u_3",
        category="shopping",
        miles="50.0",
        platform="web",
        utm="facebook",
        country="MY",
    ),
]
G, F = ("google", "SG"), ("facebook", "MY")


@pytest.fixture
def story(tmp_path):
    return run(tmp_path, STORY)


def test_story_weeks_are_sundays():
    weeks = W
    assert weeks == [
        date(2025, 3, 2),
        date(2025, 3, 9),
        date(2025, 3, 16),
        date(2025, 3, 23),
        date(2025, 3, 30),
        date(2025, 4, 6),
        date(2025, 4, 13),
    ]
    assert all(d.weekday() == 6 for d in weeks)


def test_story_max_event_date(story):
    assert story.max_event_date == date(2025, 4, 15)
    assert len(story.events) == 6


def test_story_active_users(story):
    assert story.active_user == {
        ("daily", date(2025, 3, 3), *G, 1, False),
        ("daily", date(2025, 3, 4), *G, 1, False),
        ("daily", date(2025, 3, 10), *G, 1, False),
        ("daily", date(2025, 3, 16), *F, 1, False),
        ("daily", date(2025, 3, 29), *F, 1, False),
        ("daily", date(2025, 4, 15), *G, 1, False),
        ("weekly", W[0], *G, 2, False),
        ("weekly", W[1], *G, 1, False),
        ("weekly", W[2], *F, 1, False),
        ("weekly", W[3], *F, 1, False),
        ("weekly", W[6], *G, 1, True),
        ("monthly", date(2025, 3, 1), *G, 2, False),
        ("monthly", date(2025, 3, 1), *F, 1, False),
        ("monthly", date(2025, 4, 1), *G, 1, True),
    }


def test_story_lifecycle_lookback_4(story):
    assert story.lifecycle == {
        (W[0], *G, "new", 2, False),
        (W[1], *G, "retained", 1, False),
        (W[1], *G, "dormant", 1, False),
        (W[2], *G, "dormant", 2, False),
        (W[2], *F, "new", 1, False),
        (W[3], *G, "dormant", 2, False),
        (W[3], *F, "retained", 1, False),
        # W4 and W5: nobody active, still on the spine
        (W[4], *G, "dormant", 2, False),  # u_1 (W1) and u_2 (W0) are within W3..W0
        (W[4], *F, "dormant", 1, False),
        (W[5], *G, "dormant", 1, False),  # u_1: W1 is within W4..W1
        (W[5], *G, "churned", 1, False),  # u_2: W0 is outside W4..W1
        (W[5], *F, "dormant", 1, False),
        (W[6], *G, "resurrected", 1, True),  # u_1: nothing in W5..W2
        (W[6], *G, "churned", 1, True),
        (W[6], *F, "dormant", 1, True),  # u_3: W3 is within W5..W2
    }


def test_story_lifecycle_lookback_1(tmp_path):
    ref = run(tmp_path, STORY, lookback_weeks=1)
    week6 = {row for row in ref.lifecycle if row[0] == W[6]}
    assert week6 == {(W[6], *G, "resurrected", 1, True), (W[6], *G, "churned", 1, True), (W[6], *F, "churned", 1, True)}


def test_story_spine_week_without_activity(story):
    assert not any(row[0] == "weekly" and row[1] in (W[4], W[5]) for row in story.active_user)
    assert {row[0] for row in story.lifecycle} == set(W)
    assert {row[0] for row in story.growth} == set(W)


def test_story_lifecycle_adds_up(story):
    for week in W:
        for segment in (G, F):
            counts = {row[3]: row[4] for row in story.lifecycle if row[0] == week and row[1:3] == segment}
            weekly = sum(
                row[4] for row in story.active_user if row[0] == "weekly" and row[1] == week and row[2:4] == segment
            )
            assert counts.get("new", 0) + counts.get("retained", 0) + counts.get("resurrected", 0) == weekly


def test_story_retention(story):
    assert story.retention == {
        (W[0], 0, *G, 2, 2, 1.0, 2, False),
        (W[0], 1, *G, 2, 1, 0.5, 1, False),
        (W[0], 2, *G, 2, 0, 0.0, 1, False),  # zero cell: u_1 comes back in W6
        (W[0], 3, *G, 2, 0, 0.0, 1, False),
        (W[0], 4, *G, 2, 0, 0.0, 1, False),
        (W[0], 5, *G, 2, 0, 0.0, 1, False),
        (W[0], 6, *G, 2, 1, 0.5, 1, True),
        (W[2], 0, *F, 1, 1, 1.0, 1, False),
        (W[2], 1, *F, 1, 1, 1.0, 1, False),
        (W[2], 2, *F, 1, 0, 0.0, 0, False),
        (W[2], 3, *F, 1, 0, 0.0, 0, False),
        (W[2], 4, *F, 1, 0, 0.0, 0, True),
    }


def test_story_retention_max_week_offset(tmp_path):
    ref = run(tmp_path, STORY, max_week_offset=1)
    assert {(row[0], row[1]) for row in ref.retention} == {(W[0], 0), (W[0], 1), (W[2], 0), (W[2], 1)}


def test_story_growth(story):
    assert story.growth == {
        # week, segment, active, prev_active, new, retained, resurrected, churned, quick_ratio
        (W[0], *G, 2, 0, 2, 0, 0, 0, None),
        (W[1], *G, 1, 2, 0, 1, 0, 1, 0.0),
        (W[2], *G, 0, 1, 0, 0, 0, 1, 0.0),
        (W[3], *G, 0, 0, 0, 0, 0, 0, None),
        (W[4], *G, 0, 0, 0, 0, 0, 0, None),
        (W[5], *G, 0, 0, 0, 0, 0, 0, None),
        (W[6], *G, 1, 0, 0, 0, 1, 0, None),
        (W[2], *F, 1, 0, 1, 0, 0, 0, None),
        (W[3], *F, 1, 1, 0, 1, 0, 0, None),
        (W[4], *F, 0, 1, 0, 0, 0, 1, 0.0),
        (W[5], *F, 0, 0, 0, 0, 0, 0, None),
        (W[6], *F, 0, 0, 0, 0, 0, 0, None),
    }


def test_story_growth_identity(story):
    for _week, _src, _country, active, prev, new, retained, resurrected, churned, _qr in story.growth:
        assert active == prev + new + resurrected - churned
        assert active == new + retained + resurrected


def test_growth_quick_ratio_rounded(tmp_path):
    # W0: u_1, u_2, u_3 active; W1: u_4, u_5 new. churned 3, new 2 -> 2/3.
    ref = run(
        tmp_path,
        [line(event_time="2025-03-03 09:00:00.000000", user_id=f"u_{i}") for i in (1, 2, 3)]
        + [line(event_time="2025-03-10 09:00:00.000000", user_id=f"u_{i}") for i in (4, 5)],
    )
    assert {row for row in ref.growth if row[0] == W[1]} == {(W[1], *G, 2, 3, 2, 0, 0, 3, 0.666667)}


def test_story_dim_users_latest(story):
    u1, u2, u3 = (story.dim_users_latest[u] for u in ("u_1", "u_2", "u_3"))
    assert set(story.dim_users_latest) == {"u_1", "u_2", "u_3"}
    common = [
        "acq_source",
        "country",
        "first_event_time",
        "last_event_time",
        "total_events",
        "total_miles_earned",
        "total_miles_redeemed",
        "miles_balance",
        "is_active_7d",
        "is_active_30d",
        "is_active_90d",
    ]
    assert [u1[c] for c in common] == [
        "google",
        "SG",
        datetime(2025, 3, 3, 9),
        datetime(2025, 4, 15, 8),
        3,
        Decimal("100.00"),
        Decimal("800.00"),
        Decimal("-700.00"),
        True,
        True,
        True,
    ]
    # u_2 last active 03-04: outside [04-09, 04-15] and [03-17, 04-15], inside [01-16, 04-15]
    assert [u2[c] for c in common] == [
        "google",
        "SG",
        datetime(2025, 3, 4, 9),
        datetime(2025, 3, 4, 9),
        1,
        Decimal("0.00"),
        Decimal("0.00"),
        Decimal("0.00"),
        False,
        False,
        True,
    ]
    assert [u3[c] for c in common] == [
        "facebook",
        "MY",
        datetime(2025, 3, 16),
        datetime(2025, 3, 29, 23, 59, 59, 999999),
        2,
        Decimal("50.00"),
        Decimal("0.00"),
        Decimal("50.00"),
        False,
        True,
        True,
    ]
    assert u1["ds"] == date(2025, 4, 15)
    assert json.loads(u1["latest_event"])["event_type"] == "like"


def test_story_negative_balance_users(story):
    assert story.negative_balance_users == ["u_1"]


def test_quarantined_records_stay_out_of_metrics(tmp_path):
    ref = run(tmp_path, [*STORY, line(event_time="2025-05-01 00:00:00.000000", user_id="u_9", country="US")])
    assert len(ref.quarantined) == 1
    assert ref.max_event_date == date(2025, 4, 15)
    assert "u_9" not in ref.dim_users_latest


def test_retention_includes_week_starting_on_max_event_date(tmp_path):
    # max_event_date 2025-03-09 is a Sunday: offset 1 starts on it, so it is a (partial) row.
    ref = run(
        tmp_path,
        [line(event_time="2025-03-02 10:00:00.000000"), line(event_time="2025-03-09 10:00:00.000000", user_id="u_2")],
    )
    assert ref.retention == {
        (W[0], 0, *G, 1, 1, 1.0, 1, False),
        (W[0], 1, *G, 1, 0, 0.0, 0, True),
        (W[1], 0, *G, 1, 1, 1.0, 1, True),
    }


# ---------------------------------------------------------------------------------------------
# Miles: gold.agg_miles_weekly and gold.agg_miles_category_weekly
# Weekly row: (week, acq_source, country, earned, redeemed, net, earn_events, redeem_events, earning_users,
#              redeeming_users, outstanding, liability, negative_balance_users, redemption_rate, partial)
# Category row: (week, event_type, category, acq_source, country, events, users, miles, partial)

D = Decimal


def test_story_miles_weekly(story):
    # G: u_1 earns 100 in W0 and redeems 800 in W1 (balance -700 from then on); u_2 only searches (balance 0).
    # F: u_3 shares in W2 and earns 50 in W3 (Sat 23:59:59.999999, still W3).
    zeros = (D("0.00"), D("0.00"), D("0.00"), 0, 0, 0, 0)
    assert story.miles_weekly == {
        (W[0], *G, D("100.00"), D("0.00"), D("100.00"), 1, 0, 1, 0, D("100.00"), D("100.00"), 0, 0.0, False),
        (W[1], *G, D("0.00"), D("800.00"), D("-800.00"), 0, 1, 0, 1, D("-700.00"), D("0.00"), 1, None, False),
        (W[2], *G, *zeros, D("-700.00"), D("0.00"), 1, None, False),
        (W[3], *G, *zeros, D("-700.00"), D("0.00"), 1, None, False),
        (W[4], *G, *zeros, D("-700.00"), D("0.00"), 1, None, False),
        (W[5], *G, *zeros, D("-700.00"), D("0.00"), 1, None, False),
        (W[6], *G, *zeros, D("-700.00"), D("0.00"), 1, None, True),
        (W[2], *F, *zeros, D("0.00"), D("0.00"), 0, None, False),
        (W[3], *F, D("50.00"), D("0.00"), D("50.00"), 1, 0, 1, 0, D("50.00"), D("50.00"), 0, 0.0, False),
        (W[4], *F, *zeros, D("50.00"), D("50.00"), 0, None, False),
        (W[5], *F, *zeros, D("50.00"), D("50.00"), 0, None, False),
        (W[6], *F, *zeros, D("50.00"), D("50.00"), 0, None, True),
    }
    # decimal(18,2): every miles value has exactly 2 fraction digits, including sums over no rows
    for row in story.miles_weekly:
        assert all(value.as_tuple().exponent == -2 for value in (*row[3:6], *row[10:12]))


def test_story_miles_category(story):
    # u_2's reward_search has miles 0; u_1's like and u_3's share are not in the table.
    assert story.miles_category == {
        (W[0], "miles_earned", "dining", *G, 1, 1, D("100.00"), False),
        (W[0], "reward_search", "apple", *G, 1, 1, D("0.00"), False),
        (W[1], "miles_redeemed", "flight", *G, 1, 1, D("800.00"), False),
        (W[3], "miles_earned", "shopping", *F, 1, 1, D("50.00"), False),
    }
    assert all(row[7].as_tuple().exponent == -2 for row in story.miles_category)


def test_miles_redeeming_more_than_earned_is_a_negative_balance_not_a_credit(tmp_path):
    # W1 = 2025-03-09..15, max_event_date Wed 03-12 (partial week, balances as of 03-12).
    # u_1: +100 -250 = -150 (negative, not in liability); u_2: +500.
    # outstanding = -150 + 500 = 350; liability = 500; redemption_rate = 250 / 600 = 0.41666.. -> 0.416667.
    ref = run(
        tmp_path,
        [
            line(event_time="2025-03-10 09:00:00.000000", user_id="u_1", miles="100.00"),
            line(
                event_time="2025-03-11 09:00:00.000000",
                user_id="u_1",
                event_type="miles_redeemed",
                category="hotel",
                miles="250",
            ),
            line(event_time="2025-03-12 09:00:00.000000", user_id="u_2", category="ecommerce", miles="500.0"),
        ],
    )
    assert ref.miles_weekly == {
        (W[1], *G, D("600.00"), D("250.00"), D("350.00"), 2, 1, 2, 1, D("350.00"), D("500.00"), 1, 0.416667, True)
    }
    assert ref.negative_balance_users == ["u_1"]


def test_miles_redemption_rate_rounds_half_up(tmp_path):
    # 0.01 / 20000.00 = 0.0000005 exactly: half-up gives 0.000001 (half-even would give 0.0).
    ref = run(
        tmp_path,
        [
            line(event_time="2025-03-10 09:00:00.000000", miles="20000.00"),
            line(
                event_time="2025-03-10 10:00:00.000000",
                event_type="miles_redeemed",
                category="flight",
                miles="0.01",
            ),
        ],
    )
    ((*_, rate, _partial),) = ref.miles_weekly
    assert rate == 0.000001


def test_miles_week_without_miles_events_is_a_zero_row_with_outstanding_carried(tmp_path):
    # u_1: W0 Mon 03-03 earns 100; W1 only a like (active, no miles); W2 nothing at all; W3 Sun 03-23 earns 20.
    # max_event_date = 03-23, so W3 is partial and its balances are as of 03-23.
    ref = run(
        tmp_path,
        [
            line(event_time="2025-03-03 09:00:00.000000", miles="100"),
            line(event_time="2025-03-12 09:00:00.000000", event_type="like", category="", miles=""),
            line(event_time="2025-03-23 09:00:00.000000", category="shopping", miles="20"),
        ],
    )
    zeros = (D("0.00"), D("0.00"), D("0.00"), 0, 0, 0, 0)
    assert ref.miles_weekly == {
        (W[0], *G, D("100.00"), D("0.00"), D("100.00"), 1, 0, 1, 0, D("100.00"), D("100.00"), 0, 0.0, False),
        (W[1], *G, *zeros, D("100.00"), D("100.00"), 0, None, False),
        (W[2], *G, *zeros, D("100.00"), D("100.00"), 0, None, False),
        (W[3], *G, D("20.00"), D("0.00"), D("20.00"), 1, 0, 1, 0, D("120.00"), D("120.00"), 0, 0.0, True),
    }


def test_miles_segment_first_user_mid_history_starts_at_that_week(story):
    # facebook/MY's first user (u_3) arrives in W2 with a share; its first miles are in W3. Its rows run from W2
    # (the week of the segment's first acquired user, not of its first miles event) to W6; google/SG from W0.
    weeks = defaultdict(set)
    for row in story.miles_weekly:
        weeks[row[1:3]].add(row[0])
    assert weeks == {G: set(W), F: set(W[2:])}
    (first_f_row,) = (row for row in story.miles_weekly if row[:3] == (W[2], *F))
    assert first_f_row == (W[2], *F, D("0.00"), D("0.00"), D("0.00"), 0, 0, 0, 0, D("0.00"), D("0.00"), 0, None, False)


def test_miles_reward_searches_have_zero_miles_and_share_like_are_absent(tmp_path):
    # W0 (03-02..08), max_event_date Thu 03-06 so every row is partial.
    search = {"event_type": "reward_search", "category": "lululemon", "miles": ""}
    ref = run(
        tmp_path,
        [
            line(event_time="2025-03-03 09:00:00.000000", user_id="u_1", **search),
            line(event_time="2025-03-04 09:00:00.000000", user_id="u_1", **search),
            line(event_time="2025-03-05 09:00:00.000000", user_id="u_2", **search),
            line(
                event_time="2025-03-05 10:00:00.000000",
                user_id="u_2",
                event_type="reward_search",
                category="shopee",
                miles="",
            ),
            line(event_time="2025-03-05 11:00:00.000000", user_id="u_1", event_type="share", category="", miles=""),
            line(event_time="2025-03-06 11:00:00.000000", user_id="u_2", event_type="like", category="", miles=""),
            line(event_time="2025-03-03 10:00:00.000000", user_id="u_1", miles="10"),
            line(event_time="2025-03-04 10:00:00.000000", user_id="u_2", miles="5.5"),
        ],
    )
    assert ref.miles_category == {
        (W[0], "reward_search", "lululemon", *G, 3, 2, D("0.00"), True),
        (W[0], "reward_search", "shopee", *G, 1, 1, D("0.00"), True),
        (W[0], "miles_earned", "dining", *G, 2, 2, D("15.50"), True),
    }
    # Searches, shares and likes move no miles and count as no earn/redeem events.
    assert ref.miles_weekly == {
        (W[0], *G, D("15.50"), D("0.00"), D("15.50"), 2, 0, 2, 0, D("15.50"), D("15.50"), 0, 0.0, True)
    }


def test_story_miles_identities(story):
    by_segment = defaultdict(dict)
    for row in story.miles_weekly:
        by_segment[row[1:3]][row[0]] = row
    for segment, rows in by_segment.items():
        outstanding_before = D("0.00")  # 0 before the segment's first week
        for week in sorted(rows):
            earned, redeemed, net = rows[week][3:6]
            outstanding, liability = rows[week][10:12]
            assert net == earned - redeemed
            assert outstanding == outstanding_before + net
            assert liability >= outstanding
            assert liability >= 0
            outstanding_before = outstanding
        # the last week agrees with the dim_users snapshot of max_event_date
        users = [u for u in story.dim_users_latest.values() if (u["acq_source"], u["country"]) == segment]
        last = rows[max(rows)]
        assert last[10] == sum((u["miles_balance"] for u in users), D("0.00"))
        assert last[11] == sum((max(u["miles_balance"], D("0.00")) for u in users), D("0.00"))
        assert last[12] == sum(1 for u in users if u["miles_balance"] < 0)


def test_story_miles_categories_sum_to_weekly(story):
    for week, src, country, earned, redeemed, _net, earn_events, redeem_events, *_ in story.miles_weekly:
        for event_type, miles, events in (
            ("miles_earned", earned, earn_events),
            ("miles_redeemed", redeemed, redeem_events),
        ):
            rows = [r for r in story.miles_category if (r[0], r[1], r[3], r[4]) == (week, event_type, src, country)]
            assert sum((r[7] for r in rows), D("0.00")) == miles
            assert sum(r[5] for r in rows) == events
    # and no category row outside the weekly table's grain
    weekly_keys = {row[:3] for row in story.miles_weekly}
    assert all((r[0], r[3], r[4]) in weekly_keys for r in story.miles_category)
