"""Audiences in conf (docs/contract.md, "Audiences"): a condition is refused when the config is loaded, naming the
audience, when it does not parse, names an unknown column, reads another table or depends on the clock."""

from __future__ import annotations

import pytest

from lakehouse.config import AUDIENCE_COLUMNS, ConfigError, load_config
from lakehouse.gold.tables.user_status_weekly import SPEC


def test_the_columns_the_config_checks_are_the_tables():
    assert tuple(SPEC.schema.fieldNames()) == AUDIENCE_COLUMNS


def test_the_four_example_audiences_load():
    assert load_config().audiences == {
        "just_churned": "user_status = 'churned' AND previous_status = 'dormant'",
        "win_back_valuable": "user_status = 'churned' AND miles_balance >= 1000",
        "resurrected": "user_status = 'resurrected'",
        "negative_balance": "miles_balance < 0",
    }


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("user_status = ", "does not parse"),
        ("nonexistent_column > 1", r"names unknown columns \['nonexistent_column'\]"),
        ("user_id IN (SELECT user_id FROM gold.agg_active_user)", "reads another table"),
        ("EXISTS (SELECT 1 FROM silver.dim_users)", "reads another table"),
        ("d.miles_balance < 0", "names columns of another table: d.miles_balance"),
        ("user_status = 'churned'; DROP TABLE gold.user_status_weekly", "not several statements"),
        ("cutoff_week >= current_date() - INTERVAL 28 DAYS", r"calls current_date\(\)"),
        ("rand() < 0.1", r"calls rand\(\)"),
        ("reflect('java.lang.System', 'exit', 0) IS NULL", r"calls reflect\(\)"),
        ("   ", "must be a condition"),
    ],
    ids=["parse", "unknown-column", "subquery", "exists", "qualified", "statements", "clock", "random", "jvm", "empty"],
)
def test_a_bad_condition_is_refused_at_load_naming_the_audience(condition, message):
    with pytest.raises(ConfigError, match=rf"config key 'audiences\.bad_one' .*{message}"):
        load_config(overrides={"audiences": {"bad_one": condition}})


def test_a_bad_audience_name_is_refused():
    with pytest.raises(ConfigError, match="is not a valid audience name"):
        load_config(overrides={"audiences": {"Bad Name": "miles_balance < 0"}})


def test_functions_on_the_tables_columns_are_fine():
    condition = "lower(country) = 'sg' AND weeks_since_active BETWEEN 2 AND 4 AND coalesce(previous_status, '') <> 'x'"
    config = load_config(overrides={"audiences": {"sg_quiet": condition}})
    assert list(config.audiences) == ["sg_quiet"]
