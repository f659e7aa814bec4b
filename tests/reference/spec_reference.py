"""Plain-Python reference implementation of docs/contract.md, used as a test oracle.

It is written straight from the contract, independently of the Spark code, and favours being
obviously correct over being fast: every metric is computed by looping over users and weeks.
Standard library only. Nothing here reads a clock except `event_time_not_in_future` when no
`ingested_at` is given.

Decisions taken where the contract (docs/contract.md) is silent:
- Files are read as UTF-8 with an optional BOM, with Python's `csv` module (default dialect:
  `"` quotes, doubled `""` inside quotes). Field values are never trimmed and are case-sensitive.
- `source_line` is the physical line on which a record starts (header = line 1). A blank line is
  a record with 0 fields and is quarantined by `field_count`, so nothing is dropped silently.
- Digits in the regexes are ASCII only (`[0-9]`), and the whole field must match.
- `miles_amount` may have leading zeros (`007.5`); "fits decimal(10,2)" means value < 10**8 and at
  most 2 fraction digits once trailing zeros are removed. Accepted amounts are quantized to 0.01.
- Rules that depend on `event_type` (category/miles required, miles not allowed, category
  matches type) are only evaluated when `event_type` is an allowed value; the match rule for
  miles_earned/miles_redeemed/reward_search also needs an allowed category, while any non-empty
  category on share/like breaks it.
- `event_time_not_in_future`: strictly later than `ingested_at + slack` fails; equal passes.
- Totals of miles for a user with no event of that type are 0.00, not null.
- `latest_event` is the user's event with the largest `(event_time, event_id)`.
- Rates and quick ratios are rounded half-up to 6 decimals, like Spark's `round` on a double.
- Miles tables (the contract's gold.agg_miles_weekly and gold.agg_miles_category_weekly sections):
  - `redemption_rate` is the exact Decimal quotient `miles_redeemed / miles_earned` rounded half-up to
    6 decimals, then made a float (no intermediate double); null when `miles_earned` is 0.00, also when
    miles were redeemed in that week.
  - Every segment has weekly rows, also one whose users never earned or redeemed (all zeros).
  - "Acquired by e" means `first_event_date <= e`; a user not yet acquired has no events up to `e`,
    so this only decides who is counted, never a sum.
  - `net_miles` and `outstanding_miles` may be negative; sums are Decimals with 2 fraction digits.
  - In the category table, events are silver events (one per `event_id`), `users` is distinct users,
    and `miles` of `reward_search` rows is 0.00; share/like never appear.
- Anomalies (the contract's gold.agg_metric_anomalies section):
  - A segment's first period is its first user's `first_event_date` (daily) or that day's week (weekly: the
    first week of its growth rows); the weekly series exist for complete weeks only, so training points are
    complete weeks too.
  - The arithmetic is done in Python floats in the contract's order (pair slopes `(x_j - x_i) / (t_j - t_i)`,
    `x_i - slope * t_i`, `|x_i - (level + slope * t_i)|`, medians as `(a + b) / 2`); `t` and counts are whole
    numbers, so the Spark code's doubles give the same values.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

HEADER = [
    "event_time",
    "user_id",
    "event_type",
    "transaction_category",
    "miles_amount",
    "platform",
    "utm_source",
    "country",
]
CATEGORIES_BY_EVENT_TYPE = {
    "miles_earned": {"dining", "ecommerce", "shopping"},
    "miles_redeemed": {"flight", "hotel"},
    "reward_search": {"apple", "lululemon", "shopee"},
    "share": set(),
    "like": set(),
}
EVENT_TYPES = set(CATEGORIES_BY_EVENT_TYPE)
CATEGORIES = set().union(*CATEGORIES_BY_EVENT_TYPE.values())
PLATFORMS = {"ios", "android", "web"}
UTM_SOURCES = {"google", "facebook", "tiktok", "organic", "referral"}
COUNTRIES = {"SG", "MY", "PH", "ID", "TH"}

MILES_EVENT_TYPES = {"miles_earned", "miles_redeemed"}
CATEGORY_EVENT_TYPES = {"miles_earned", "miles_redeemed", "reward_search"}
NO_MILES_EVENT_TYPES = {"share", "like", "reward_search"}
NO_CATEGORY_EVENT_TYPES = {"share", "like"}

EVENT_TIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{6})")
USER_ID_RE = re.compile(r"u_[0-9]+")
MILES_RE = re.compile(r"[0-9]+(\.[0-9]+)?")
EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
MAX_MILES = Decimal(10) ** 8  # decimal(10,2): 8 integer digits
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


@dataclass
class Reference:
    accepted: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    max_event_date: date | None = None
    active_user: set[tuple] = field(default_factory=set)
    lifecycle: set[tuple] = field(default_factory=set)
    user_status: set[tuple] = field(default_factory=set)
    retention: set[tuple] = field(default_factory=set)
    growth: set[tuple] = field(default_factory=set)
    engagement: set[tuple] = field(default_factory=set)
    dim_users_latest: dict[str, dict] = field(default_factory=dict)
    negative_balance_users: list[str] = field(default_factory=list)
    miles_weekly: set[tuple] = field(default_factory=set)
    miles_category: set[tuple] = field(default_factory=set)
    anomalies: set[tuple] = field(default_factory=set)


# ---------------------------------------------------------------------------------------------
# Calendar helpers


#: The first day of a week: "sunday" (the contract's default) or "monday" (gold.week_start_day); set by compute().
WEEK_STARTS_ON = "sunday"


def week_start(d: date) -> date:
    """The first day of `d`'s week: the Sunday of its Sunday..Saturday week, or its Monday when WEEK_STARTS_ON is
    "monday" (Python: Monday=0 .. Sunday=6)."""
    return d - timedelta(days=(d.weekday() + (1 if WEEK_STARTS_ON == "sunday" else 0)) % 7)


def month_start(d: date) -> date:
    return d.replace(day=1)


def month_end(d: date) -> date:
    next_month = (d.replace(day=28) + timedelta(days=4)).replace(day=1)
    return next_month - timedelta(days=1)


def round6(numerator: int, denominator: int) -> float:
    return float(Decimal(repr(numerator / denominator)).quantize(Decimal("0.000001"), ROUND_HALF_UP))


def round6_decimal(numerator: Decimal, denominator: Decimal) -> float:
    """`numerator / denominator` of two Decimals, rounded half-up to 6 decimals (no double in between)."""
    return float((numerator / denominator).quantize(Decimal("0.000001"), ROUND_HALF_UP))


# ---------------------------------------------------------------------------------------------
# Bronze: validation


def parse_event_time(text: str) -> datetime | None:
    match = EVENT_TIME_RE.fullmatch(text)
    if not match:
        return None
    try:
        return datetime(*(int(part) for part in match.groups()))
    except ValueError:  # not a real calendar time, e.g. 2025-02-30 or 24:00:00
        return None


def parse_miles(text: str) -> Decimal | None:
    if not MILES_RE.fullmatch(text):
        return None
    value = Decimal(text)
    fraction_digits = max(0, -value.normalize().as_tuple().exponent)
    if value <= 0 or value >= MAX_MILES or fraction_digits > 2:
        return None
    return value.quantize(CENT)


def failed_checks(fields: list[str], ingested_at: datetime, future_slack_minutes: int) -> list[str]:
    """Names of the rules a raw record breaks, sorted; empty when the record is accepted."""
    if len(fields) != len(HEADER):
        return ["field_count"]
    record = dict(zip(HEADER, fields, strict=True))
    event_time, user_id, event_type = record["event_time"], record["user_id"], record["event_type"]
    category, miles = record["transaction_category"], record["miles_amount"]
    failed = set()

    for name in ("event_time", "user_id", "event_type", "platform", "utm_source", "country"):
        if record[name] == "":
            failed.add(f"{name}_required")

    for name, allowed in (
        ("event_type", EVENT_TYPES),
        ("transaction_category", CATEGORIES),
        ("platform", PLATFORMS),
        ("utm_source", UTM_SOURCES),
        ("country", COUNTRIES),
    ):
        if record[name] != "" and record[name] not in allowed:
            failed.add(f"{name}_allowed")

    parsed_time = parse_event_time(event_time) if event_time else None
    if event_time and parsed_time is None:
        failed.add("event_time_format")
    if parsed_time is not None and parsed_time > ingested_at + timedelta(minutes=future_slack_minutes):
        failed.add("event_time_not_in_future")

    if user_id and not USER_ID_RE.fullmatch(user_id):
        failed.add("user_id_format")

    if miles and parse_miles(miles) is None:
        failed.add("miles_amount_valid")

    if event_type in CATEGORY_EVENT_TYPES and category == "":
        failed.add("transaction_category_required")
    if event_type in MILES_EVENT_TYPES and miles == "":
        failed.add("miles_amount_required")
    if event_type in NO_MILES_EVENT_TYPES and miles != "":
        failed.add("miles_amount_not_allowed")
    if event_type in NO_CATEGORY_EVENT_TYPES and category != "":
        failed.add("transaction_category_matches_event_type")
    if (
        event_type in CATEGORY_EVENT_TYPES
        and category in CATEGORIES
        and category not in CATEGORIES_BY_EVENT_TYPE[event_type]
    ):
        failed.add("transaction_category_matches_event_type")
    return sorted(failed)


def read_source(path: str, ingested_at: datetime, future_slack_minutes: int) -> tuple[list, list]:
    """Accepted (typed) and quarantined records of one file; ValueError when its header is wrong."""
    source_file = os.path.basename(path)
    accepted, quarantined = [], []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != HEADER:
            raise ValueError(f"{path}: header {header!r} is not the expected {','.join(HEADER)!r}")
        previous_line = reader.line_num
        for fields in reader:
            source_line = previous_line + 1  # a quoted field may span lines: count the first one
            previous_line = reader.line_num
            failed = failed_checks(fields, ingested_at, future_slack_minutes)
            if failed:
                quarantined.append({"source_file": source_file, "source_line": source_line, "failed_checks": failed})
                continue
            record = {name: value or None for name, value in zip(HEADER, fields, strict=True)}
            record["event_time"] = parse_event_time(record["event_time"])
            record["miles_amount"] = parse_miles(record["miles_amount"]) if record["miles_amount"] else None
            record["source_file"] = source_file
            record["source_line"] = source_line
            accepted.append(record)
    return accepted, quarantined


# ---------------------------------------------------------------------------------------------
# Silver


def event_id(event_time: datetime, user_id: str, event_type: str) -> str:
    key = "-".join([event_time.strftime(EVENT_TIME_FORMAT), user_id, event_type])
    return hashlib.md5(key.encode("utf-8")).hexdigest()


def json_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, Decimal):
        return str(value)  # a JSON number such as 516.00
    return json.dumps(value)


def json_object(pairs: list[tuple[str, object]]) -> str:
    return "{" + ",".join(f"{json.dumps(key)}:{json_value(value)}" for key, value in pairs) + "}"


def to_events(accepted: list[dict]) -> list[dict]:
    """Silver events: the first record (file order, then line) of every event_id."""
    events, seen = [], set()
    for record in accepted:  # already in (file order, source_line) order
        eid = event_id(record["event_time"], record["user_id"], record["event_type"])
        if eid in seen:
            continue
        seen.add(eid)
        event = {"event_id": eid, **record, "event_date": record["event_time"].date()}
        event["event_data"] = json_object(
            [
                ("transaction_category", record["transaction_category"]),
                ("miles_amount", record["miles_amount"]),
                ("platform", record["platform"]),
            ]
        )
        events.append(event)
    return events


def dim_users_as_of(events: list[dict], ds: date) -> dict[str, dict]:
    """silver.dim_users for one `ds`: every user with an event on or before `ds`."""
    by_user = defaultdict(list)
    for event in events:
        if event["event_date"] <= ds:
            by_user[event["user_id"]].append(event)
    users = {}
    for user_id, user_events in by_user.items():
        first = min(user_events, key=lambda e: (e["event_time"], e["event_id"]))
        latest = max(user_events, key=lambda e: (e["event_time"], e["event_id"]))
        earned = sum((e["miles_amount"] for e in user_events if e["event_type"] == "miles_earned"), ZERO)
        redeemed = sum((e["miles_amount"] for e in user_events if e["event_type"] == "miles_redeemed"), ZERO)
        dates = {e["event_date"] for e in user_events}
        balance, first_negative = ZERO, None  # the first day whose end-of-day balance was negative
        for d in sorted(dates):
            day = [e for e in user_events if e["event_date"] == d]
            balance += sum((e["miles_amount"] for e in day if e["event_type"] == "miles_earned"), ZERO)
            balance -= sum((e["miles_amount"] for e in day if e["event_type"] == "miles_redeemed"), ZERO)
            if balance < 0:
                first_negative = d
                break
        users[user_id] = {
            "user_id": user_id,
            "ds": ds,
            "acq_source": first["utm_source"],
            "country": first["country"],
            "first_event_time": first["event_time"],
            "first_event_date": first["event_date"],
            "last_event_time": latest["event_time"],
            "total_events": len(user_events),
            "total_miles_earned": earned,
            "total_miles_redeemed": redeemed,
            "miles_balance": earned - redeemed,
            "first_negative_date": first_negative,
            "is_active_7d": any(ds - timedelta(days=6) <= d <= ds for d in dates),
            "is_active_30d": any(ds - timedelta(days=29) <= d <= ds for d in dates),
            "is_active_90d": any(ds - timedelta(days=89) <= d <= ds for d in dates),
            "latest_event": json_object(
                [
                    ("event_id", latest["event_id"]),
                    ("event_time", latest["event_time"].strftime(EVENT_TIME_FORMAT)),
                    ("event_type", latest["event_type"]),
                    ("transaction_category", latest["transaction_category"]),
                    ("miles_amount", latest["miles_amount"]),
                    ("platform", latest["platform"]),
                ]
            ),
        }
    return users


# ---------------------------------------------------------------------------------------------
# Gold


def active_user_rows(events: list[dict], segment: dict[str, tuple], max_event_date: date) -> set[tuple]:
    users = defaultdict(set)  # (period_type, start, last day, segment) -> user ids
    for event in events:
        d, user_id = event["event_date"], event["user_id"]
        for period_type, start, last_day in (
            ("daily", d, d),
            ("weekly", week_start(d), week_start(d) + timedelta(days=6)),
            ("monthly", month_start(d), month_end(d)),
        ):
            users[(period_type, start, last_day, segment[user_id])].add(user_id)
    return {
        (period_type, start, acq_source, country, len(ids), last_day > max_event_date)
        for (period_type, start, last_day, (acq_source, country)), ids in users.items()
    }


def week_spine(first_week: date, max_event_date: date) -> list[date]:
    weeks, week = [], first_week
    while week <= week_start(max_event_date):
        weeks.append(week)
        week += timedelta(days=7)
    return weeks


def lifecycle_status(weeks: set[date], first: date, week: date, lookback_weeks: int) -> str:
    recently_active = any(week - timedelta(days=7 * k) in weeks for k in range(1, lookback_weeks + 1))
    if week in weeks:
        if week == first:
            return "new"
        return "retained" if recently_active else "resurrected"
    return "dormant" if recently_active else "churned"


def lifecycle_rows(active_weeks, first_week, segment, spine, lookback_weeks, max_event_date) -> set[tuple]:
    rows = set()
    for week in spine:
        counts = Counter(
            (segment[user_id], lifecycle_status(active_weeks[user_id], first, week, lookback_weeks))
            for user_id, first in first_week.items()
            if first <= week
        )
        partial = week + timedelta(days=6) > max_event_date
        for ((acq_source, country), status), count in counts.items():
            rows.add((week, acq_source, country, status, count, partial))
    return rows


def user_status_rows(events, active_weeks, first_week, segment, spine, lookback_weeks, max_event_date) -> set[tuple]:
    """gold.user_status_weekly, straight from the contract: one row per user and week from the user's first
    week; the week's events and miles summed from the events themselves, the last active date and balance as of
    min(W + 6, max_event_date). Tuples: (user_id, cutoff_week, acq_source, country, user_status,
    previous_status, events_in_week, miles_earned_in_week, miles_redeemed_in_week, last_active_date,
    weeks_since_active, miles_balance, is_partial_period)."""
    by_user = defaultdict(list)
    for event in events:
        by_user[event["user_id"]].append(event)
    rows = set()
    for user_id, first in first_week.items():
        previous = None
        for week in (w for w in spine if w >= first):
            status = lifecycle_status(active_weeks[user_id], first, week, lookback_weeks)
            in_week = [e for e in by_user[user_id] if week <= e["event_date"] <= week + timedelta(days=6)]
            end = min(week + timedelta(days=6), max_event_date)
            upto = [e for e in by_user[user_id] if e["event_date"] <= end]
            earned = sum((e["miles_amount"] for e in in_week if e["event_type"] == "miles_earned"), ZERO)
            redeemed = sum((e["miles_amount"] for e in in_week if e["event_type"] == "miles_redeemed"), ZERO)
            balance = sum((e["miles_amount"] if e["event_type"] == "miles_earned" else -e["miles_amount"]
                           for e in upto if e["event_type"] in ("miles_earned", "miles_redeemed")), ZERO)  # fmt: skip
            last_active = max(e["event_date"] for e in upto)
            rows.add((user_id, week, *segment[user_id], status, previous, len(in_week), earned, redeemed, last_active,
                      (week - week_start(last_active)).days // 7, balance,
                      week + timedelta(days=6) > max_event_date))  # fmt: skip
            previous = status
    return rows


def retention_rows(active_weeks, first_week, segment, max_week_offset, max_event_date) -> set[tuple]:
    cohorts = defaultdict(list)
    for user_id, first in first_week.items():
        cohorts[(first, segment[user_id])].append(user_id)
    rows = set()
    for (cohort_week, (acq_source, country)), members in cohorts.items():
        for offset in range(max_week_offset + 1):
            week = cohort_week + timedelta(days=7 * offset)
            if week > max_event_date:
                break
            retained = sum(week in active_weeks[u] for u in members)
            unbounded = sum(max(active_weeks[u]) >= week for u in members)
            rows.add(
                (
                    cohort_week,
                    offset,
                    acq_source,
                    country,
                    len(members),
                    retained,
                    round6(retained, len(members)),
                    unbounded,
                    week + timedelta(days=6) > max_event_date,
                )
            )
    return rows


def growth_rows(active_weeks, first_week, segment, spine) -> set[tuple]:
    rows = set()
    for week in spine:
        previous = week - timedelta(days=7)
        by_segment = defaultdict(list)
        for user_id, first in first_week.items():
            if first <= week:
                by_segment[segment[user_id]].append(user_id)
        for (acq_source, country), members in by_segment.items():
            now = {u for u in members if week in active_weeks[u]}
            before = {u for u in members if previous in active_weeks[u]}
            new = sum(first_week[u] == week for u in now)
            retained = len(now & before)
            resurrected = sum(first_week[u] < week for u in now - before)
            churned = len(before - now)
            quick_ratio = round6(new + resurrected, churned) if churned else None
            rows.add(
                (
                    week,
                    acq_source,
                    country,
                    len(now),
                    len(before),
                    new,
                    retained,
                    resurrected,
                    churned,
                    quick_ratio,
                )
            )
    return rows


def engagement_rows(events: list[dict], segment: dict[str, tuple], max_event_date: date) -> set[tuple]:
    """(activity_date, acq_source, country, dau, wau_7d, mau_30d, dau_mau_rate, dau_wau_rate, partial).

    Straight from the contract: for every day from the segment's first user's first event date to
    max_event_date, count the segment's users with an active day in [d-N+1, d] for N = 1, 7, 30.
    """
    active_days = defaultdict(set)
    for event in events:
        active_days[event["user_id"]].add(event["event_date"])
    users_of = defaultdict(list)
    for user in active_days:
        users_of[segment[user]].append(user)
    rows = set()
    for seg, users in users_of.items():
        day = min(min(active_days[u]) for u in users)
        while day <= max_event_date:
            counts = [
                sum(1 for u in users if any(day - timedelta(days=k) in active_days[u] for k in range(n)))
                for n in (1, 7, 30)
            ]
            dau, wau, mau = counts
            rows.add((day, *seg, dau, wau, mau, round6(dau, mau) if mau else None,
                      round6(dau, wau) if wau else None, False))  # fmt: skip
            day += timedelta(days=1)
    return rows


def miles_weekly_rows(
    events: list[dict], segment: dict[str, tuple], first_week: dict[str, date], max_event_date: date
) -> set[tuple]:
    """(week_start, acq_source, country, miles_earned, miles_redeemed, net_miles, earn_events, redeem_events,
    earning_users, redeeming_users, outstanding_miles, liability_miles, negative_balance_users, redemption_rate,
    is_partial_period).

    Straight from the contract: for every week from the week of the segment's first acquired user to the week of
    max_event_date, sum the segment's miles events of the week, and recompute every acquired user's balance from
    scratch as of the week's end date e = min(week_start + 6, max_event_date).
    """
    events_of = defaultdict(list)
    for event in events:
        events_of[event["user_id"]].append(event)
    first_date = {u: min(e["event_date"] for e in user_events) for u, user_events in events_of.items()}
    users_of = defaultdict(list)
    for user in events_of:
        users_of[segment[user]].append(user)

    def balance(user: str, end: date) -> Decimal:
        up_to_end = [e for e in events_of[user] if e["event_date"] <= end]
        earned = sum((e["miles_amount"] for e in up_to_end if e["event_type"] == "miles_earned"), ZERO)
        redeemed = sum((e["miles_amount"] for e in up_to_end if e["event_type"] == "miles_redeemed"), ZERO)
        return earned - redeemed

    rows = set()
    for (acq_source, country), users in users_of.items():
        for week in week_spine(min(first_week[u] for u in users), max_event_date):
            last_day = week + timedelta(days=6)
            in_week = [e for u in users for e in events_of[u] if week <= e["event_date"] <= last_day]
            earns = [e for e in in_week if e["event_type"] == "miles_earned"]
            redeems = [e for e in in_week if e["event_type"] == "miles_redeemed"]
            earned = sum((e["miles_amount"] for e in earns), ZERO)
            redeemed = sum((e["miles_amount"] for e in redeems), ZERO)

            end = min(last_day, max_event_date)
            balances = [balance(user, end) for user in users if first_date[user] <= end]  # acquired by `end`
            rows.add(
                (
                    week,
                    acq_source,
                    country,
                    earned,
                    redeemed,
                    earned - redeemed,
                    len(earns),
                    len(redeems),
                    len({e["user_id"] for e in earns}),
                    len({e["user_id"] for e in redeems}),
                    sum(balances, ZERO),
                    sum((b for b in balances if b > 0), ZERO),
                    sum(1 for b in balances if b < 0),
                    round6_decimal(redeemed, earned) if earned else None,
                    last_day > max_event_date,
                )
            )
    return rows


def miles_category_rows(events: list[dict], segment: dict[str, tuple], max_event_date: date) -> set[tuple]:
    """(week_start, event_type, transaction_category, acq_source, country, events, users, miles, is_partial_period).

    One row per group with at least one event; only miles_earned, miles_redeemed and reward_search events.
    """
    groups = defaultdict(list)
    for event in events:
        if event["event_type"] in CATEGORY_EVENT_TYPES:
            key = (week_start(event["event_date"]), event["event_type"], event["transaction_category"])
            groups[(*key, segment[event["user_id"]])].append(event)
    return {
        (
            week,
            event_type,
            category,
            acq_source,
            country,
            len(group),
            len({e["user_id"] for e in group}),
            sum((e["miles_amount"] or ZERO for e in group), ZERO),
            week + timedelta(days=6) > max_event_date,
        )
        for (week, event_type, category, (acq_source, country)), group in groups.items()
    }


DAILY_ANOMALY_METRICS = ("events", "active_users", "new_users", "earn_events", "redeem_events")
WEEKLY_ANOMALY_METRICS = ("active_users", "new_users", "churned_users", "resurrected_users")


def median(values: list[float]) -> float:
    """The middle value; the mean of the two middle values of an even count."""
    ordered = sorted(values)
    n = len(ordered)
    if n % 2:
        return ordered[n // 2]
    return (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def segments_of(acq_source: str, country: str) -> list[tuple[str, str]]:
    """The anomaly segments a user sits in: all users, their country, their acquisition source."""
    return [("all", "all"), ("country", country), ("acq_source", acq_source)]


def anomaly_series(
    events: list[dict], dim_users: dict[str, dict], growth: set[tuple], max_event_date: date
) -> dict[tuple, dict[date, int]]:
    """(metric, grain, segment_type, segment_value) -> {period_start: value}, straight from the contract.

    Daily: every day from the segment's first user's first_event_date to max_event_date (0 when nothing
    happened). Weekly: the growth rows summed over the segment, complete weeks only.
    """
    series: dict[tuple, dict[date, int]] = {}
    users_of = defaultdict(list)
    for user_id, row in dim_users.items():
        for seg in segments_of(row["acq_source"], row["country"]):
            users_of[seg].append(user_id)
    events_on = defaultdict(list)  # (segment, day) -> events of the segment's users on that day
    for event in events:
        user = dim_users[event["user_id"]]
        for seg in segments_of(user["acq_source"], user["country"]):
            events_on[(seg, event["event_date"])].append(event)
    for seg, users in users_of.items():
        first = min(dim_users[u]["first_event_date"] for u in users)
        days = [first + timedelta(days=n) for n in range((max_event_date - first).days + 1)]
        firsts = Counter(dim_users[u]["first_event_date"] for u in users)
        for metric in DAILY_ANOMALY_METRICS:
            values = {}
            for day in days:
                on_day = events_on.get((seg, day), [])
                if metric == "events":
                    values[day] = len(on_day)
                elif metric == "active_users":
                    values[day] = len({e["user_id"] for e in on_day})
                elif metric == "new_users":
                    values[day] = firsts[day]
                elif metric == "earn_events":
                    values[day] = sum(1 for e in on_day if e["event_type"] == "miles_earned")
                else:
                    values[day] = sum(1 for e in on_day if e["event_type"] == "miles_redeemed")
            series[(metric, "day", *seg)] = values
    column = {"active_users": 3, "new_users": 5, "churned_users": 8, "resurrected_users": 7}
    for row in growth:
        week, acq_source, country = row[0], row[1], row[2]
        if week + timedelta(days=6) > max_event_date:
            continue  # complete weeks only
        for seg in segments_of(acq_source, country):
            for metric in WEEKLY_ANOMALY_METRICS:
                values = series.setdefault((metric, "week", *seg), {})
                values[week] = values.get(week, 0) + row[column[metric]]
    return series


def anomaly_rows(
    series: dict[tuple, dict[date, int]],
    training_periods: int = 8,
    min_training_periods: int = 4,
    sensitivity: float = 4.5,
    min_expected: float = 5.0,
) -> set[tuple]:
    """(metric, grain, segment_type, segment_value, period_start, value, expected, lower_bound, upper_bound, score,
    training_periods, is_anomaly, direction) of every evaluated point with expected >= min_expected."""
    rows = set()
    for key, values in series.items():
        for period, value in values.items():
            training = [
                (-k, float(values[period - timedelta(days=7 * k)]))
                for k in range(1, training_periods + 1)
                if period - timedelta(days=7 * k) in values  # periods before the segment's first are absent
            ]
            if len(training) < min_training_periods:
                continue
            slope = median([(xj - xi) / (tj - ti) for i, (ti, xi) in enumerate(training)
                            for tj, xj in training[i + 1:]])  # fmt: skip
            level = median([x - slope * t for t, x in training])
            mad = median([abs(x - (level + slope * t)) for t, x in training])
            expected = max(level, 0.0)
            if expected < min_expected:
                continue
            spread = max(1.4826 * mad, math.sqrt(expected))
            score = (float(value) - expected) / spread
            is_anomaly = abs(score) > sensitivity
            direction = ("spike" if score > 0 else "drop") if is_anomaly else None
            rows.add((*key, period, float(value), expected, expected - sensitivity * spread,
                      expected + sensitivity * spread, score, len(training), is_anomaly, direction))  # fmt: skip
    return rows


def compute_anomalies(csv_paths: list[str], *, ingested_at: datetime, future_slack_minutes: int = 60,
                      **parameters) -> set[tuple]:  # fmt: skip
    """Only gold.agg_metric_anomalies (and what it needs): for sets too big for every table's loops."""
    accepted = [r for path in csv_paths for r in read_source(path, ingested_at, future_slack_minutes)[0]]
    events = to_events(accepted)
    max_event_date = max(e["event_date"] for e in events)
    dim_users = dim_users_as_of(events, max_event_date)
    segment = {u: (row["acq_source"], row["country"]) for u, row in dim_users.items()}
    active_weeks = defaultdict(set)
    for event in events:
        active_weeks[event["user_id"]].add(week_start(event["event_date"]))
    first_week = {u: min(weeks) for u, weeks in active_weeks.items()}
    growth = growth_rows(active_weeks, first_week, segment, week_spine(min(first_week.values()), max_event_date))
    return anomaly_rows(anomaly_series(events, dim_users, growth, max_event_date), **parameters)


# ---------------------------------------------------------------------------------------------


def compute(
    csv_paths: list[str],
    *,
    lookback_weeks: int = 4,
    max_week_offset: int = 16,
    ingested_at: datetime | None = None,
    future_slack_minutes: int = 60,
    training_periods: int = 8,
    min_training_periods: int = 4,
    sensitivity: float = 4.5,
    min_expected: float = 5.0,
    week_starts_on: str = "sunday",
) -> Reference:
    """Every table of the contract from the CSV files; weeks start on ``week_starts_on`` ("sunday" | "monday")."""
    global WEEK_STARTS_ON
    assert week_starts_on in ("sunday", "monday"), week_starts_on
    previous, WEEK_STARTS_ON = WEEK_STARTS_ON, week_starts_on
    try:
        return _compute(csv_paths, lookback_weeks=lookback_weeks, max_week_offset=max_week_offset,
                        ingested_at=ingested_at, future_slack_minutes=future_slack_minutes,
                        training_periods=training_periods, min_training_periods=min_training_periods,
                        sensitivity=sensitivity, min_expected=min_expected)  # fmt: skip
    finally:
        WEEK_STARTS_ON = previous


def _compute(
    csv_paths: list[str],
    *,
    lookback_weeks: int,
    max_week_offset: int,
    ingested_at: datetime | None,
    future_slack_minutes: int,
    training_periods: int,
    min_training_periods: int,
    sensitivity: float,
    min_expected: float,
) -> Reference:
    if ingested_at is None:
        ingested_at = datetime.now(UTC).replace(tzinfo=None)
    elif ingested_at.tzinfo is not None:
        ingested_at = ingested_at.astimezone(UTC).replace(tzinfo=None)

    ref = Reference()
    for path in csv_paths:  # a bad header anywhere refuses the whole call
        accepted, quarantined = read_source(path, ingested_at, future_slack_minutes)
        ref.accepted.extend(accepted)
        ref.quarantined.extend(quarantined)

    ref.events = to_events(ref.accepted)
    if not ref.events:
        return ref
    ref.max_event_date = max(e["event_date"] for e in ref.events)

    dim_users = dim_users_as_of(ref.events, ref.max_event_date)
    segment = {u: (row["acq_source"], row["country"]) for u, row in dim_users.items()}
    active_weeks = defaultdict(set)
    for event in ref.events:
        active_weeks[event["user_id"]].add(week_start(event["event_date"]))
    first_week = {u: min(weeks) for u, weeks in active_weeks.items()}
    spine = week_spine(min(first_week.values()), ref.max_event_date)

    ref.active_user = active_user_rows(ref.events, segment, ref.max_event_date)
    ref.lifecycle = lifecycle_rows(active_weeks, first_week, segment, spine, lookback_weeks, ref.max_event_date)
    ref.user_status = user_status_rows(ref.events, active_weeks, first_week, segment, spine, lookback_weeks,
                                       ref.max_event_date)  # fmt: skip
    ref.retention = retention_rows(active_weeks, first_week, segment, max_week_offset, ref.max_event_date)
    ref.growth = growth_rows(active_weeks, first_week, segment, spine)
    ref.engagement = engagement_rows(ref.events, segment, ref.max_event_date)
    ref.dim_users_latest = dim_users
    ref.negative_balance_users = sorted(u for u, row in dim_users.items() if row["miles_balance"] < 0)
    ref.miles_weekly = miles_weekly_rows(ref.events, segment, first_week, ref.max_event_date)
    ref.miles_category = miles_category_rows(ref.events, segment, ref.max_event_date)
    series = anomaly_series(ref.events, dim_users, ref.growth, ref.max_event_date)
    ref.anomalies = anomaly_rows(series, training_periods, min_training_periods, sensitivity, min_expected)
    return ref
