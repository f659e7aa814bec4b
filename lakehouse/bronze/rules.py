"""The named validation rules of the source contract (docs/contract.md, "bronze.fct_event_stream").

Each rule is a Column that is true when a record *breaks* it. Inputs are the raw field strings
(null = empty field) plus ``_field_count`` and ``_ingested_at``. Rules never raise and never return
null: a rule that does not apply to a record (e.g. a format rule on a missing field, which its
``*_required`` rule already reports) is false, so every failure is reported exactly once.

When ``field_count`` fails, the fields cannot be trusted to be in their columns, so it is the only
rule reported for that record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

from lakehouse.registry import EVENT_TIME_PATTERN

EXPECTED_FIELD_COUNT = 8
EVENT_TIME_REGEX = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$"
USER_ID_REGEX = r"^u_\d+$"
MILES_REGEX = r"^[0-9]+(\.[0-9]+)?$"

EVENT_TYPES = ("miles_earned", "miles_redeemed", "reward_search", "share", "like")
PLATFORMS = ("ios", "android", "web")
UTM_SOURCES = ("google", "facebook", "tiktok", "organic", "referral")
COUNTRIES = ("SG", "MY", "PH", "ID", "TH")
#: Which event type each transaction_category belongs to.
CATEGORY_EVENT_TYPE = {
    "dining": "miles_earned", "ecommerce": "miles_earned", "shopping": "miles_earned",
    "flight": "miles_redeemed", "hotel": "miles_redeemed",
    "apple": "reward_search", "lululemon": "reward_search", "shopee": "reward_search",
}  # fmt: skip
CATEGORY_REQUIRED_FOR = ("miles_earned", "miles_redeemed", "reward_search")
MILES_REQUIRED_FOR = ("miles_earned", "miles_redeemed")
MILES_FORBIDDEN_FOR = ("reward_search", "share", "like")


def parse_event_time(raw: Column) -> Column:
    """Strict parse in the session time zone; null for impossible calendar times (2025-02-30)."""
    return F.when(raw.rlike(EVENT_TIME_REGEX), F.try_to_timestamp(raw, F.lit(EVENT_TIME_PATTERN)))


def _present(name: str) -> Column:
    return F.col(name).isNotNull()


def _missing(name: str) -> Column:
    return F.col(name).isNull()


def _not_in(name: str, allowed: tuple[str, ...]) -> Column:
    return _present(name) & ~F.col(name).isin(*allowed)


def _miles_valid() -> Column:
    raw = F.col("miles_amount")
    wide = F.expr("try_cast(miles_amount AS DECIMAL(38, 10))")
    return (
        raw.rlike(MILES_REGEX)
        & wide.isNotNull()
        & (wide > 0)
        & (wide < F.lit(100_000_000))  # decimal(10,2) holds 8 integer digits
        & (wide == F.round(wide, 2))  # no silent rounding of a third fraction digit
    )


def _category_owner() -> Column:
    mapping = F.create_map(*[F.lit(x) for kv in CATEGORY_EVENT_TYPE.items() for x in kv])
    return mapping[F.col("transaction_category")]


def _future(slack_minutes: int) -> Column:
    parsed = parse_event_time(F.col("event_time"))
    limit = F.col("_ingested_at") + F.make_dt_interval(mins=F.lit(slack_minutes))
    return parsed.isNotNull() & (parsed > limit)


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    broken: Callable[[int], Column]


RULES: tuple[Rule, ...] = (
    Rule("field_count", f"the line has exactly {EXPECTED_FIELD_COUNT} comma-separated fields",
         lambda _: F.col("_field_count") != EXPECTED_FIELD_COUNT),
    Rule("event_type_allowed", f"event_type is one of {', '.join(EVENT_TYPES)}",
         lambda _: _not_in("event_type", EVENT_TYPES)),
    Rule("transaction_category_allowed", "a non-empty transaction_category is a known category",
         lambda _: _not_in("transaction_category", tuple(CATEGORY_EVENT_TYPE))),
    Rule("platform_allowed", f"platform is one of {', '.join(PLATFORMS)}",
         lambda _: _not_in("platform", PLATFORMS)),
    Rule("utm_source_allowed", f"utm_source is one of {', '.join(UTM_SOURCES)}",
         lambda _: _not_in("utm_source", UTM_SOURCES)),
    Rule("country_allowed", f"country is one of {', '.join(COUNTRIES)}",
         lambda _: _not_in("country", COUNTRIES)),
    Rule("event_time_required", "event_time is present", lambda _: _missing("event_time")),
    Rule("user_id_required", "user_id is present", lambda _: _missing("user_id")),
    Rule("event_type_required", "event_type is present", lambda _: _missing("event_type")),
    Rule("platform_required", "platform is present", lambda _: _missing("platform")),
    Rule("utm_source_required", "utm_source is present", lambda _: _missing("utm_source")),
    Rule("country_required", "country is present", lambda _: _missing("country")),
    Rule("transaction_category_required", "transaction_category is present for miles_earned, "
         "miles_redeemed and reward_search",
         lambda _: F.col("event_type").isin(*CATEGORY_REQUIRED_FOR) & _missing("transaction_category")),
    Rule("miles_amount_required", "miles_amount is present for miles_earned and miles_redeemed",
         lambda _: F.col("event_type").isin(*MILES_REQUIRED_FOR) & _missing("miles_amount")),
    Rule("event_time_format", "event_time is 'YYYY-MM-DD HH:MM:SS.ffffff' and a real calendar time",
         lambda _: _present("event_time") & parse_event_time(F.col("event_time")).isNull()),
    Rule("user_id_format", "user_id is 'u_' followed by digits",
         lambda _: _present("user_id") & ~F.col("user_id").rlike(USER_ID_REGEX)),
    Rule("miles_amount_valid", "miles_amount is a positive number that fits decimal(10,2)",
         lambda _: _present("miles_amount") & ~_miles_valid()),
    Rule("miles_amount_not_allowed", "miles_amount is empty for reward_search, share and like",
         lambda _: F.col("event_type").isin(*MILES_FORBIDDEN_FOR) & _present("miles_amount")),
    Rule("transaction_category_matches_event_type", "the category belongs to the event type "
         "(and share/like have none)",
         lambda _: F.col("event_type").isin(*EVENT_TYPES) & _present("transaction_category")
         & (F.col("event_type").isin("share", "like")
            | (F.col("transaction_category").isin(*CATEGORY_EVENT_TYPE)
               & (_category_owner() != F.col("event_type"))))),
    Rule("event_time_not_in_future", "event_time is not later than ingestion time plus the slack",
         _future),
)  # fmt: skip

RULE_NAMES = tuple(r.name for r in RULES)


def rule_severities(overrides: Mapping[str, str]) -> dict[str, str]:
    """Every rule is an error unless conf lowers it; an override naming no rule is a config error."""
    unknown = sorted(set(overrides) - set(RULE_NAMES))
    if unknown:
        raise ValueError(f"bronze.rule_severity names unknown rules {unknown}; known: {', '.join(RULE_NAMES)}")
    if overrides.get("field_count", "error") != "error":
        raise ValueError("bronze.rule_severity: field_count cannot be lowered (the fields are unusable)")
    return {name: overrides.get(name, "error") for name in RULE_NAMES}


def broken_rules(names: tuple[str, ...], slack_minutes: int) -> Column:
    """array<string> of the given rules the record breaks (only field_count when that one breaks)."""
    by_name = {r.name: r for r in RULES}
    checks = [F.when(F.coalesce(by_name[n].broken(slack_minutes), F.lit(False)), F.lit(n)) for n in names]
    all_broken = F.filter(F.array(*checks), lambda x: x.isNotNull()) if checks else F.array().cast("array<string>")
    field_count_broken = F.col("_field_count") != EXPECTED_FIELD_COUNT
    only_count = F.array(F.lit("field_count")) if "field_count" in names else F.array().cast("array<string>")
    return F.when(field_count_broken, only_count).otherwise(all_broken)
