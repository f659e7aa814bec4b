"""Every bronze rule with named valid and invalid cases, evaluated by Spark in one pass.

Each case is also run through the plain-Python reference (tests/reference), so the Spark rules and
an independent reading of SPEC.md must agree line by line.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakehouse.bronze import transform
from lakehouse.bronze.rules import RULE_NAMES, rule_severities
from lakehouse.registry import BRONZE_EVENTS, BRONZE_QUARANTINE
from tests.reference import spec_reference

INGESTED_AT = datetime(2025, 6, 10, 0, 0, 0)
SLACK_MINUTES = 60
BASE = ["2025-03-07 10:00:00.000000", "u_0001", "miles_earned", "dining", "516.0", "ios", "google", "SG"]
COLS = ["event_time", "user_id", "event_type", "transaction_category", "miles_amount", "platform",
        "utm_source", "country"]  # fmt: skip


#: The named rules of docs/contract.md ("bronze.fct_event_stream"), numbered as there.
CONTRACT_RULE_NAMES = [
    # 1-5: allowed values
    "event_type_allowed", "transaction_category_allowed", "platform_allowed", "utm_source_allowed", "country_allowed",
    # 6-13: required fields
    "event_time_required", "user_id_required", "event_type_required", "platform_required", "utm_source_required",
    "country_required", "transaction_category_required", "miles_amount_required",
    # 14-15: formats
    "event_time_format", "user_id_format",
    # 16+: miles_amount valid; miles_amount empty for share/like/reward_search; category matches event_type;
    # number of fields; event_time not in the future
    "miles_amount_valid", "miles_amount_not_allowed", "transaction_category_matches_event_type", "field_count",
    "event_time_not_in_future",
]  # fmt: skip


def line(**changes: str) -> str:
    fields = dict(zip(COLS, BASE, strict=True))
    fields.update(changes)
    return ",".join(fields[c] for c in COLS)


# name -> (raw line, expected failed_checks)
CASES: dict[str, tuple[str, list[str]]] = {
    "valid_miles_earned": (line(), []),
    "valid_miles_redeemed": (line(event_type="miles_redeemed", transaction_category="flight",
                                  miles_amount="2399.0"), []),
    "valid_reward_search": (line(event_type="reward_search", transaction_category="apple", miles_amount=""), []),
    "valid_share": (line(event_type="share", transaction_category="", miles_amount=""), []),
    "valid_like": (line(event_type="like", transaction_category="", miles_amount=""), []),
    "valid_quoted_fields": ('"2025-03-07 10:00:00.000000","u_0001","miles_earned","dining","516.0",'
                            '"ios","google","SG"', []),
    "valid_two_decimals": (line(miles_amount="12.25"), []),
    "valid_largest_decimal_10_2": (line(miles_amount="99999999.99"), []),
    "valid_leap_day": (line(event_time="2024-02-29 23:59:59.999999"), []),
    "valid_future_within_slack": (line(event_time="2025-06-10 00:59:59.000000"), []),
    "valid_windows_line_ending": (line() + "\r", []),
    "field_count_missing_field": (",".join(BASE[:7]), ["field_count"]),
    "field_count_extra_field": (line() + ",extra", ["field_count"]),
    "field_count_blank_line": ("", ["field_count"]),
    "event_type_allowed_unknown": (line(event_type="miles_burned"), ["event_type_allowed"]),
    "event_type_allowed_case": (line(event_type="Miles_Earned"), ["event_type_allowed"]),
    "category_allowed_unknown": (line(transaction_category="groceries"), ["transaction_category_allowed"]),
    "platform_allowed_upper": (line(platform="IOS"), ["platform_allowed"]),
    "utm_source_allowed_unknown": (line(utm_source="bing"), ["utm_source_allowed"]),
    "country_allowed_padded": (line(country=" SG"), ["country_allowed"]),
    "event_time_required": (line(event_time=""), ["event_time_required"]),
    "user_id_required": (line(user_id=""), ["user_id_required"]),
    "event_type_required": (line(event_type=""), ["event_type_required"]),
    "platform_required": (line(platform=""), ["platform_required"]),
    "utm_source_required": (line(utm_source=""), ["utm_source_required"]),
    "country_required": (line(country=""), ["country_required"]),
    "category_required_earned": (line(transaction_category=""), ["transaction_category_required"]),
    "category_required_search": (line(event_type="reward_search", transaction_category="", miles_amount=""),
                                 ["transaction_category_required"]),
    "miles_required_redeemed": (line(event_type="miles_redeemed", transaction_category="hotel", miles_amount=""),
                                ["miles_amount_required"]),
    "event_time_format_feb_30": (line(event_time="2025-02-30 10:00:00.000000"), ["event_time_format"]),
    "event_time_format_5_fraction_digits": (line(event_time="2025-03-07 10:00:00.00000"), ["event_time_format"]),
    "event_time_format_iso_t": (line(event_time="2025-03-07T10:00:00.000000"), ["event_time_format"]),
    "event_time_format_hour_24": (line(event_time="2025-03-07 24:00:00.000000"), ["event_time_format"]),
    "user_id_format_no_prefix": (line(user_id="user42"), ["user_id_format"]),
    "user_id_format_prefix_only": (line(user_id="u_"), ["user_id_format"]),
    "user_id_format_sql_injection": (line(user_id="u_1'; DROP TABLE users; --"), ["user_id_format"]),
    "user_id_format_arabic_digits": (line(user_id="u_\u0661\u0662"), ["user_id_format"]),
    "miles_valid_zero": (line(miles_amount="0"), ["miles_amount_valid"]),
    "miles_valid_zero_decimal": (line(miles_amount="0.0"), ["miles_amount_valid"]),
    "miles_valid_negative": (line(miles_amount="-516.0"), ["miles_amount_valid"]),
    "miles_valid_abc": (line(miles_amount="abc"), ["miles_amount_valid"]),
    "miles_valid_exponent": (line(miles_amount="1e3"), ["miles_amount_valid"]),
    "miles_valid_too_large": (line(miles_amount="100000000.0"), ["miles_amount_valid"]),
    "miles_valid_three_decimals": (line(miles_amount="1.005"), ["miles_amount_valid"]),
    "miles_not_allowed_share": (line(event_type="share", transaction_category="", miles_amount="10.0"),
                                ["miles_amount_not_allowed"]),
    "miles_not_allowed_search": (line(event_type="reward_search", transaction_category="apple",
                                      miles_amount="10.0"), ["miles_amount_not_allowed"]),
    "category_mismatch_earned_flight": (line(transaction_category="flight"),
                                        ["transaction_category_matches_event_type"]),
    "category_mismatch_share_dining": (line(event_type="share", transaction_category="dining", miles_amount=""),
                                       ["transaction_category_matches_event_type"]),
    "category_mismatch_like_unknown": (line(event_type="like", transaction_category="groceries", miles_amount=""),
                                       ["transaction_category_allowed", "transaction_category_matches_event_type"]),
    "event_time_in_future": (line(event_time="2025-06-10 01:00:00.000001"), ["event_time_not_in_future"]),
    "hostile_script_tag_country": (line(country="<script>alert(1)</script>"), ["country_allowed"]),
    "quoted_comma_in_platform": (line(platform='"web,ios"'), ["platform_allowed"]),
    "several_rules_at_once": (line(platform="ios9", country="XX", miles_amount="-1"),
                              ["country_allowed", "miles_amount_valid", "platform_allowed"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def results(spark):
    rows = [(text, f"case_{i}", i + 2) for i, (text, _) in enumerate(CASES.values())]
    lines_df = spark.createDataFrame(rows, "value string, _source_file string, _source_line long").select(
        "value", "_source_file", "_source_line",
        F.lit(INGESTED_AT).cast("timestamp").alias("_ingested_at"), F.lit("b1").alias("_batch_id"),
    )  # fmt: skip
    checked = transform.with_checks(transform.split_fields(lines_df), rule_severities({}), SLACK_MINUTES)
    by_line = {r["_source_line"]: sorted(r["failed_checks"]) for r in checked.collect()}
    return {name: by_line[i + 2] for i, name in enumerate(CASES)}


def _reference_checks(text: str) -> list[str]:
    fields = next(csv.reader(io.StringIO(text.rstrip("\r")))) if text else []
    return spec_reference.failed_checks(fields, INGESTED_AT, SLACK_MINUTES)


@pytest.mark.parametrize("name", list(CASES))
def test_rule_case(results, name):
    text, expected = CASES[name]
    assert results[name] == sorted(expected)
    assert _reference_checks(text) == sorted(expected)


def test_every_rule_has_a_failing_case():
    broken = {rule for _, expected in CASES.values() for rule in expected}
    assert broken == set(RULE_NAMES)
    # Exactly the contract's rules, each once (the order of RULE_NAMES is not part of the contract).
    assert sorted(RULE_NAMES) == sorted(CONTRACT_RULE_NAMES)


def test_warning_level_rule_accepts_the_record(spark):
    lines_df = spark.createDataFrame(
        [(line(event_time="2025-06-11 00:00:00.000000"), "f", 2)],
        "value string, _source_file string, _source_line long",
    ).select("*", F.lit(INGESTED_AT).cast("timestamp").alias("_ingested_at"), F.lit("b").alias("_batch_id"))
    severities = rule_severities({"event_time_not_in_future": "warn"})
    checked = transform.with_checks(transform.split_fields(lines_df), severities, SLACK_MINUTES)
    expected = spark.createDataFrame(
        [([], ["event_time_not_in_future"])], "failed_checks array<string>, _warnings array<string>"
    )
    assert_df_equality(checked.select("failed_checks", "_warnings"), expected, ignore_nullable=True)


def test_unknown_rule_in_severity_config_is_refused():
    with pytest.raises(ValueError, match="unknown rules"):
        rule_severities({"no_such_rule": "warn"})
    with pytest.raises(ValueError, match="field_count"):
        rule_severities({"field_count": "warn"})


def test_accepted_rows_are_typed(spark):
    rows = [(line(), "f.csv", 2), (line(event_type="share", transaction_category="", miles_amount=""), "f.csv", 3),
            (line(miles_amount="abc"), "f.csv", 4)]  # fmt: skip
    lines_df = spark.createDataFrame(rows, "value string, _source_file string, _source_line long").select(
        "*", F.lit(INGESTED_AT).cast("timestamp").alias("_ingested_at"), F.lit("b1").alias("_batch_id")
    )
    checked = transform.with_checks(transform.split_fields(lines_df), rule_severities({}), SLACK_MINUTES)
    actual = transform.accepted_rows(checked)
    t = datetime(2025, 3, 7, 10, 0, 0)
    expected = spark.createDataFrame(
        [
            (t, "u_0001", "miles_earned", "dining", Decimal("516.00"), "ios", "google", "SG", t.date(),
             "f.csv", 2, INGESTED_AT, "b1", []),
            (t, "u_0001", "share", None, None, "ios", "google", "SG", t.date(), "f.csv", 3, INGESTED_AT, "b1", []),
        ],
        BRONZE_EVENTS.schema,
    )  # fmt: skip
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)
    # The quarantine keeps the raw field strings, the whole line and the rules broken.
    raw = line(miles_amount="abc")
    expected_quarantine = spark.createDataFrame(
        [(*raw.split(","), raw, "f.csv", 4, INGESTED_AT, "b1", ["miles_amount_valid"])], BRONZE_QUARANTINE.schema
    )
    assert_df_equality(
        transform.quarantined_rows(checked), expected_quarantine, ignore_nullable=True, ignore_metadata=True
    )
