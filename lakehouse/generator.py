"""Synthetic ``event_stream.csv`` generator for the HeyMax lakehouse (pure Python stdlib).

Why this exists: the original source file has 10,000 rows and 100 users over three months, too
small and too clean to exercise the pipeline (incremental loads, late data, quarantine, lifecycle
states). This module writes CSV in exactly the source format of ``docs/contract.md`` with
realistic user behaviour plus controlled defects, duplicates and late rows.

Design choices, and why:

* **Streaming per user.** Every user is simulated on its own and its lines are written before the
  next user starts, so memory is O(one user) whatever the row count. File order is therefore
  grouped by user (the original file is not chronological either).
* **Determinism.** Every random draw comes from a ``random.Random`` seeded from
  ``(seed, stream, user index)`` through BLAKE2, never from ``hash()``, dict order or the clock.
  Only ``Random.random()`` is used (its algorithm is stable across Python versions, unlike
  ``choice``/``randrange`` details). A user's lines depend on nothing but the parameters and the
  user's index, so users can be generated in shards by several processes and concatenated in user
  order, byte-identical to a single-process run.
* **Lifecycle realism.** Users are acquired over the whole period, are active in "spells" (days
  active with a user-specific probability), then either leave for good or pause: short pauses
  (8-27 days) give ``dormant`` then ``retained`` weeks, long pauses (35+ days) give ``churned`` then
  ``resurrected`` weeks under the 4-week lookback.
* **Negative balances.** About a quarter of users follow a "redeemer" event mix (more redemptions
  than earnings by miles); the rest earn more. The two mixes average to the target mix
  (56/15/14/10/5).
* **Defects.** An invalid row replaces the event it was generated from and breaks one contract rule
  (see ``DEFECT_KINDS``); duplicates are exact copies of a valid line written again; late rows are
  valid events written to a later file than the chunk their date belongs to.
* **Injected anomalies** (``inject``, off by default: without them the bytes are those of earlier
  versions). Each is named ``KIND:SEGMENT_TYPE=VALUE:DATE[:SIZE]`` (see :class:`Injection`): a
  ``drop`` removes that share of the segment's lines of the day (a broken export), a
  ``redemption_wave`` makes that share of the segment's recently active members redeem on the day, an
  ``acquisition_spike`` adds that many users of the segment acquired on the day. They draw from
  random streams of their own, so the lines of an injected set are the lines of the same set without
  injections, less the dropped ones, plus the added ones.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import math
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.pool import Pool

HEADER = "event_time,user_id,event_type,transaction_category,miles_amount,platform,utm_source,country"

EVENT_TYPES: tuple[str, ...] = ("miles_earned", "miles_redeemed", "reward_search", "share", "like")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "miles_earned": ("dining", "ecommerce", "shopping"),
    "miles_redeemed": ("flight", "hotel"),
    "reward_search": ("apple", "lululemon", "shopee"),
    "share": (),
    "like": (),
}
PLATFORMS: tuple[str, ...] = ("ios", "android", "web")
UTM_SOURCES: tuple[str, ...] = ("google", "facebook", "tiktok", "organic", "referral")
COUNTRIES: tuple[str, ...] = ("SG", "MY", "PH", "ID", "TH")
EARNED_RANGE = (80, 1199)
REDEEMED_RANGE = (800, 2399)

#: Target share of each event type over all rows (contract: original data).
TARGET_MIX: dict[str, float] = {
    "miles_earned": 0.56,
    "reward_search": 0.15,
    "miles_redeemed": 0.14,
    "share": 0.10,
    "like": 0.05,
}

# Two per-user profiles, in percent, in EVENT_TYPES order. 75% normal + 25% redeemer gives exactly
# the target mix: earned .75*61+.25*41 = 56, redeemed .75*9+.25*29 = 14. A redeemer expects
# 41*640 earned vs 29*1600 redeemed miles per 100 events, so its balance tends to go negative.
_NORMAL_PROFILE = (61, 9, 15, 10, 5)
_REDEEMER_PROFILE = (41, 29, 15, 10, 5)
_REDEEMER_SHARE = 0.25

# Category weights inside an event type (not in the contract; chosen to look plausible).
_CATEGORY_WEIGHTS: dict[str, tuple[float, ...]] = {
    "miles_earned": (0.40, 0.35, 0.25),
    "miles_redeemed": (0.55, 0.45),
    "reward_search": (0.30, 0.30, 0.40),
    "share": (1.0,),
    "like": (1.0,),
}
_UTM_WEIGHTS = (0.25, 0.20, 0.15, 0.30, 0.10)  # google, facebook, tiktok, organic, referral
_COUNTRY_WEIGHTS = (0.35, 0.20, 0.20, 0.15, 0.10)  # SG, MY, PH, ID, TH
_PLATFORM_WEIGHTS = (0.45, 0.40, 0.15)  # ios, android, web (primary platform)
_SECOND_PLATFORM_P = 0.4
_PRIMARY_PLATFORM_P = 0.75
# Relative activity by hour of day (local wall clock): quiet nights, evening peak.
_HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 4, 6, 7, 7, 7, 8, 9, 8, 7, 7, 7, 8, 9, 10, 10, 9, 6, 4)

#: Kinds of invalid row, each meant to break exactly one contract rule (named in the comment).
DEFECT_KINDS: tuple[str, ...] = (
    "unknown_event_type",  # allowed values of event_type
    "unknown_platform",  # allowed values of platform
    "unknown_utm_source",  # allowed values of utm_source
    "unknown_country",  # allowed values of country
    "missing_user_id",  # required user_id
    "bad_user_id",  # format of user_id ("user42")
    "impossible_date",  # event_time is a real calendar time ("2025-02-30 ...")
    "short_fraction",  # format of event_time (5 fraction digits)
    "future_event_time",  # event_time not later than ingestion time (year 2099)
    "zero_miles",  # miles_amount positive
    "negative_miles",  # miles_amount positive
    "non_numeric_miles",  # miles_amount parses as a number ("abc")
    "miles_on_share_like",  # miles_amount empty for share/like
    "category_of_other_type",  # transaction_category matches its event_type ("flight" on earned)
    "missing_category",  # required transaction_category (miles_earned without one)
    "missing_field",  # wrong number of fields (7)
    "extra_field",  # wrong number of fields (9)
)

_USERS_PER_SHARD = 500
_US_PER_HOUR = 3_600_000_000
_WRITE_BUFFER = 1 << 20


INJECTION_KINDS: dict[str, float] = {"drop": 0.85, "redemption_wave": 0.5, "acquisition_spike": 40}
INJECTION_SEGMENTS: dict[str, tuple[str, ...]] = {"country": COUNTRIES, "acq_source": UTM_SOURCES}
#: A redemption wave reaches the segment's members with an active day in the 28 days up to the wave's day.
_WAVE_RECENT_DAYS = 28


@dataclass(frozen=True)
class Injection:
    """A named anomaly written into the generated data: ``KIND:SEGMENT_TYPE=VALUE:DATE[:SIZE]``.

    - ``drop:country=PH:2025-04-15:0.85``: that share of the segment's lines of the day are not written;
    - ``redemption_wave:acq_source=referral:2025-05-20:0.5``: that share of the segment's members active in
      the 28 days up to the day redeem miles that day (1-3 ``miles_redeemed`` events each);
    - ``acquisition_spike:acq_source=tiktok:2025-06-10:40``: that many extra users of the segment, acquired on
      the day (their other attribute and their later behaviour drawn like any user's).

    SIZE defaults to 0.85, 0.5 and 40 respectively.
    """

    kind: str
    segment_type: str
    segment_value: str
    day: dt.date
    size: float

    @classmethod
    def parse(cls, text: str) -> Injection:
        parts = text.split(":")
        if len(parts) not in (3, 4) or "=" not in parts[1]:
            raise ValueError(f"injection {text!r} must look like KIND:SEGMENT_TYPE=VALUE:YYYY-MM-DD[:SIZE]")
        kind, segment, day = parts[:3]
        segment_type, segment_value = segment.split("=", 1)
        try:
            when = dt.date.fromisoformat(day)
            size = float(parts[3]) if len(parts) == 4 else INJECTION_KINDS.get(kind, 0.0)
        except ValueError:
            raise ValueError(f"injection {text!r}: bad date or size") from None
        return cls(kind, segment_type, segment_value, when, size)

    def __str__(self) -> str:
        size = f"{int(self.size)}" if self.kind == "acquisition_spike" else f"{self.size:g}"
        return f"{self.kind}:{self.segment_type}={self.segment_value}:{self.day.isoformat()}:{size}"

    def check(self, start_date: dt.date, days: int) -> None:
        if self.kind not in INJECTION_KINDS:
            raise ValueError(f"injection {self}: kind must be one of {', '.join(INJECTION_KINDS)}")
        if self.segment_value not in INJECTION_SEGMENTS.get(self.segment_type, ()):
            raise ValueError(f"injection {self}: segment must be country=<{'|'.join(COUNTRIES)}> or "
                             f"acq_source=<{'|'.join(UTM_SOURCES)}>")  # fmt: skip
        if not start_date <= self.day < start_date + dt.timedelta(days=days):
            raise ValueError(f"injection {self}: the day is outside the generated period")
        if self.kind == "acquisition_spike":
            if self.size < 1 or self.size != int(self.size):
                raise ValueError(f"injection {self}: an acquisition spike's size is a number of users (>= 1)")
        elif not 0 < self.size <= 1:
            raise ValueError(f"injection {self}: the size of a {self.kind} is a share in (0, 1]")

    def matches(self, utm: str, country: str) -> bool:
        return (country if self.segment_type == "country" else utm) == self.segment_value


@dataclass(frozen=True)
class GeneratorConfig:
    """All parameters of one generation; the output is a pure function of these.

    ``events_per_day`` is the mean number of events on a scheduled activity day of an average
    user; ``target_rows`` (when set) overrides it with the value that yields roughly that many
    lines, found by a cheap dry run of the activity schedules.
    """

    users: int = 300
    days: int = 182
    start_date: dt.date = dt.date(2025, 1, 5)
    seed: int = 42
    invalid_rate: float = 0.0
    duplicate_rate: float = 0.0
    late_rate: float = 0.0
    files: int = 1
    events_per_day: float = 3.0
    target_rows: int | None = None
    workers: int = 1
    inject: tuple[Injection, ...] = ()

    @property
    def extra_users(self) -> int:
        """Users added by acquisition spikes, numbered after the ``users`` base users."""
        return sum(int(i.size) for i in self.inject if i.kind == "acquisition_spike")

    def __post_init__(self) -> None:
        """Reject parameters that would silently produce nonsense."""
        if self.users < 1:
            raise ValueError("users must be >= 1")
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if not 1 <= self.files <= self.days:
            raise ValueError("files must be between 1 and days")
        for name in ("invalid_rate", "duplicate_rate", "late_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")
        if self.invalid_rate + self.duplicate_rate + self.late_rate >= 1.0:
            raise ValueError("invalid_rate + duplicate_rate + late_rate must be < 1")
        if self.events_per_day <= 0:
            raise ValueError("events_per_day must be > 0")
        if self.target_rows is not None and self.target_rows < 1:
            raise ValueError("target_rows must be >= 1")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        for injection in self.inject:
            injection.check(self.start_date, self.days)


@dataclass
class GenerationResult:
    """What was written, so callers and tests can check counts without re-reading files.

    With an injected ``drop``, ``valid_events`` and the other counts are those before the drop;
    ``rows_per_file`` counts the lines written.
    """

    files: list[Path]
    rows_per_file: list[int]
    valid_events: int = 0
    duplicates: int = 0
    late: int = 0
    invalid: int = 0
    invalid_by_kind: dict[str, int] = field(default_factory=dict)
    events_per_day: float = 0.0
    #: The injected anomalies, as written on the command line.
    injected: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        """Data lines written over all files (header excluded)."""
        return sum(self.rows_per_file)


@dataclass(frozen=True)
class _Plan:
    """Derived, picklable run constants shared by every user (computed once per run)."""

    config: GeneratorConfig
    events_per_day: float
    user_width: int
    date_prefixes: tuple[str, ...]  # "YYYY-MM-DD " per day offset
    chunk_of_day: tuple[int, ...]
    chunk_days: tuple[tuple[int, int], ...]  # inclusive day offsets per chunk
    #: Extra users of acquisition spikes: index -> (acquisition day offset, the injection).
    spike_users: dict[int, tuple[int, Injection]] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _derive_seed(seed: int, stream: str, index: int) -> int:
    """Seed for one (stream, user) pair; BLAKE2 keeps streams independent and platform-stable."""
    digest = hashlib.blake2b(f"{seed}/{stream}/{index}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big")


def _weighted_table(values: list[object], weights: list[float], size: int = 1000) -> tuple[object, ...]:
    """Lookup table for O(1) weighted draws via ``table[int(random() * size)]``.

    Largest-remainder rounding so the table holds exactly ``size`` entries in a fixed order.
    """
    total = float(sum(weights))
    raw = [w / total * size for w in weights]
    counts = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: size - sum(counts)]:
        counts[i] += 1
    table: list[object] = []
    for value, count in zip(values, counts, strict=True):
        table.extend([value] * count)
    return tuple(table)


def _pick(r: float, values: tuple[str, ...], weights: tuple[float, ...]) -> str:
    """Weighted pick for rare, per-user draws (linear scan; not on the per-row path)."""
    total = sum(weights)
    acc = 0.0
    for value, weight in zip(values, weights, strict=True):
        acc += weight / total
        if r < acc:
            return value
    return values[-1]


@lru_cache(maxsize=1)
def _miles_strings() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Pre-formatted miles values ("516.0") so rows never format floats."""
    earned = tuple(f"{n}.0" for n in range(EARNED_RANGE[0], EARNED_RANGE[1] + 1))
    redeemed = tuple(f"{n}.0" for n in range(REDEEMED_RANGE[0], REDEEMED_RANGE[1] + 1))
    return earned, redeemed


@lru_cache(maxsize=1)
def _hms_strings() -> tuple[str, ...]:
    """The string "HH:MM:SS." for every second of a day: formatting time once, not per row."""
    return tuple(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}." for s in range(86400))


@lru_cache(maxsize=1)
def _hour_table() -> tuple[int, ...]:
    """Start of an hour in microseconds, weighted by ``_HOUR_WEIGHTS``."""
    return tuple(  # type: ignore[return-value]
        _weighted_table([h * _US_PER_HOUR for h in range(24)], [float(w) for w in _HOUR_WEIGHTS])
    )


@lru_cache(maxsize=2)
def _type_table(profile: tuple[int, ...]) -> tuple[tuple[str, str, str, tuple[str, ...] | None], ...]:
    """Weighted (line fragment, event_type, category, miles strings) entries for one profile.

    The fragment is ``"event_type,category,"`` so a row is built with one f-string.
    """
    earned, redeemed = _miles_strings()
    miles_of = {"miles_earned": earned, "miles_redeemed": redeemed}
    values: list[object] = []
    weights: list[float] = []
    for event_type, pct in zip(EVENT_TYPES, profile, strict=True):
        cats = CATEGORIES[event_type] or ("",)
        for cat, cw in zip(cats, _CATEGORY_WEIGHTS[event_type], strict=True):
            values.append((f"{event_type},{cat},", event_type, cat, miles_of.get(event_type)))
            weights.append(pct * cw)
    return _weighted_table(values, weights)  # type: ignore[return-value]


def chunk_bounds(days: int, files: int) -> list[tuple[int, int]]:
    """Split day offsets ``0..days-1`` into ``files`` consecutive, near-equal inclusive ranges."""
    return [(k * days // files, (k + 1) * days // files - 1) for k in range(files)]


def output_paths(out: str | Path, start_date: dt.date, days: int, files: int) -> list[Path]:
    """Where each chunk goes: ``out`` itself for one ``.csv`` file, else named files in ``out``.

    Names are ``event_stream_<first-date>_<last-date>.csv`` so a reader sees each file's range.
    """
    out = Path(out)
    if files == 1 and out.suffix == ".csv":
        return [out]
    if out.suffix == ".csv":
        raise ValueError("--out FILE.csv is only allowed with --files 1; give a directory")
    paths = []
    for lo, hi in chunk_bounds(days, files):
        first = start_date + dt.timedelta(days=lo)
        last = start_date + dt.timedelta(days=hi)
        paths.append(out / f"event_stream_{first.isoformat()}_{last.isoformat()}.csv")
    return paths


# --------------------------------------------------------------------------- per-user simulation


def _schedule(config: GeneratorConfig, index: int, acquired: int | None = None) -> tuple[list[int], float]:
    """Activity days (sorted offsets) and event intensity of one user (acquired on day ``acquired`` if given).

    Kept on its own RNG stream so the ``target_rows`` dry run can replay it cheaply without
    generating events.
    """
    r = random.Random(_derive_seed(config.seed, "schedule", index)).random
    days = config.days
    # A fifth of users form the initial base (first two weeks); the rest join uniformly.
    acq = int(r() * min(14, days)) if r() < 0.2 else int(r() * days)
    if acquired is not None:
        acq = acquired
    p_day = 0.10 + 0.55 * r()  # chance a day inside an active spell has events
    mean_spell = 10.0 + 60.0 * r()  # days
    p_leave = 0.10 + 0.25 * r()  # chance of leaving for good after each spell
    # Log-normal intensity with mean 1 (sigma 0.6): a few heavy users, many light ones.
    z = math.sqrt(-2.0 * math.log(1.0 - r())) * math.cos(2.0 * math.pi * r())
    intensity = math.exp(0.6 * z - 0.18)

    active: list[int] = []
    day = acq
    first = True
    while day < days:
        # A first spell may be a short try-out; otherwise exponential around the user's mean.
        try_out = first and r() < 0.15
        spell = 1 + int(r() * 7) if try_out else 1 + int(-mean_spell * math.log(1.0 - r()))
        end = min(days, day + spell)
        active.append(day)  # a spell starts with activity
        for d in range(day + 1, end):
            if r() < p_day:
                active.append(d)
        first = False
        if r() < p_leave:
            break
        # Short pause: dormant 1-3 weeks, back as retained. Long pause (> 4 weeks): churned, then
        # resurrected if the period lasts long enough.
        short = r() < 0.45
        gap = 8 + int(r() * 20) if short else 35 + int(-25.0 * math.log(1.0 - r()))
        day = end + gap
    return active, intensity


def _corrupt(rnd: Callable[[], float], f: list[str], index: int, kind: int) -> str:
    """Turn the 8 valid fields ``f`` into a line that breaks the rule of ``DEFECT_KINDS[kind]``.

    Where a kind needs a particular event type (e.g. miles defects need an earned/redeemed row),
    the event is first turned into a valid one of that type, so only the intended rule breaks.
    """
    earned, _ = _miles_strings()
    name = DEFECT_KINDS[kind]

    def earned_row() -> None:
        f[2] = "miles_earned"
        f[3] = CATEGORIES["miles_earned"][int(rnd() * 3)]
        f[4] = earned[int(rnd() * len(earned))]

    if name == "unknown_event_type":
        earned_row()
        f[2] = ("miles_transfer", "Miles_Earned", "purchase")[int(rnd() * 3)]
    elif name == "unknown_platform":
        f[5] = ("windows", "iOS", "smart_tv")[int(rnd() * 3)]
    elif name == "unknown_utm_source":
        f[6] = ("twitter", "newsletter", "Google")[int(rnd() * 3)]
    elif name == "unknown_country":
        f[7] = ("US", "VN", "sg")[int(rnd() * 3)]
    elif name == "missing_user_id":
        f[1] = ""
    elif name == "bad_user_id":
        f[1] = f"user{index}"
    elif name == "impossible_date":
        f[0] = f"{f[0][:4]}-02-{30 + int(rnd() * 2)}{f[0][10:]}"
    elif name == "short_fraction":
        f[0] = f[0][:-1]
    elif name == "future_event_time":
        mmdd = "02-28" if f[0][5:10] == "02-29" else f[0][5:10]  # 2099 is not a leap year
        f[0] = f"2099-{mmdd}{f[0][10:]}"
    elif name in ("zero_miles", "negative_miles", "non_numeric_miles"):
        if f[2] not in ("miles_earned", "miles_redeemed"):
            earned_row()
        if name == "zero_miles":
            f[4] = ("0", "0.0")[int(rnd() * 2)]
        elif name == "negative_miles":
            f[4] = "-" + f[4]
        else:
            f[4] = "abc"
    elif name == "miles_on_share_like":
        f[2] = ("share", "like")[int(rnd() * 2)]
        f[3] = ""
        f[4] = earned[int(rnd() * len(earned))]
    elif name == "category_of_other_type":
        if f[2] not in ("miles_earned", "miles_redeemed", "reward_search"):
            earned_row()
        others = [c for t in EVENT_TYPES if t != f[2] for c in CATEGORIES[t]]
        f[3] = others[int(rnd() * len(others))]
    elif name == "missing_category":
        if f[2] != "miles_earned":
            earned_row()
        f[3] = ""
    elif name == "missing_field":
        del f[int(rnd() * 8)]
    elif name == "extra_field":
        f.append(("", "extra", f[-1])[int(rnd() * 3)])
    return ",".join(f) + "\n"


def _emit_user(plan: _Plan, index: int, bufs: list[list[str]], counts: list[int]) -> None:
    """Append user ``index``'s lines to the per-file buffers ``bufs``; update ``counts``.

    ``counts`` = [valid events, duplicates, late, invalid, invalid per kind...]. This is the hot
    loop: everything per row is a table lookup, a few ``random()`` calls and one f-string.
    """
    config = plan.config
    spike = plan.spike_users.get(index)
    active, intensity = _schedule(config, index, spike[0] if spike else None)
    if not active:
        return
    r = random.Random(_derive_seed(config.seed, "events", index)).random

    # User attributes, fixed at acquisition (utm_source, country) or habitual (platforms).
    uid = f"u_{index:0{plan.user_width}d}"
    utm = _pick(r(), UTM_SOURCES, _UTM_WEIGHTS)
    country = _pick(r(), COUNTRIES, _COUNTRY_WEIGHTS)
    if spike is not None:  # an acquisition spike's user: the spike's segment
        if spike[1].segment_type == "country":
            country = spike[1].segment_value
        else:
            utm = spike[1].segment_value
    primary = _pick(r(), PLATFORMS, _PLATFORM_WEIGHTS)
    suffix1 = f",{primary},{utm},{country}\n"
    suffix2 = suffix1
    if r() < _SECOND_PLATFORM_P:
        rest = tuple(p for p in PLATFORMS if p != primary)
        second = rest[int(r() * len(rest))]
        suffix2 = f",{second},{utm},{country}\n"
    types = _type_table(_REDEEMER_PROFILE if r() < _REDEEMER_SHARE else _NORMAL_PROFILE)

    n_files = config.files
    last_file = n_files - 1
    p_invalid = config.invalid_rate
    p_dup = p_invalid + config.duplicate_rate
    p_any = p_dup + config.late_rate
    n_kinds = len(DEFECT_KINDS)
    mean = plan.events_per_day * intensity
    hms = _hms_strings()
    hours = _hour_table()
    n_hours = len(hours)
    date_prefixes = plan.date_prefixes
    chunk_of_day = plan.chunk_of_day
    valid = dup = late = invalid = 0

    for nth, day in enumerate(active):
        # Events on this day: mean exactly `mean` (1 + stochastically rounded uniform extra).
        if mean >= 1.0:
            extra = (mean - 1.0) * 2.0 * r()
            k = 1 + int(extra)
            if r() < extra - int(extra):
                k += 1
        else:
            k = 1 if (r() < mean or nth == 0) else 0  # the acquisition day always has an event
            if k == 0:
                continue
        if k == 1:
            times = [hours[int(r() * n_hours)] + int(r() * _US_PER_HOUR)]
        else:
            times = sorted([hours[int(r() * n_hours)] + int(r() * _US_PER_HOUR) for _ in range(k)])
            for i in range(1, k):  # distinct times keep event_id (time, user, type) unique
                if times[i] <= times[i - 1]:
                    times[i] = times[i - 1] + 1
        prefix = date_prefixes[day]
        chunk = chunk_of_day[day]
        buf = bufs[chunk]
        for t in times:
            sec, us = divmod(t, 1_000_000)
            if sec >= 86400:  # a bumped time ran past midnight: keep it inside the day
                sec, us = 86399, 999_999
            fragment, event_type, cat, miles_strs = types[int(r() * 1000)]
            miles = miles_strs[int(r() * len(miles_strs))] if miles_strs else ""
            suffix = suffix1 if suffix2 is suffix1 or r() < _PRIMARY_PLATFORM_P else suffix2
            line = f"{prefix}{hms[sec]}{us:06d},{uid},{fragment}{miles}{suffix}"
            x = r()
            if x >= p_any:
                buf.append(line)
                valid += 1
            elif x < p_invalid:
                kind = int(r() * n_kinds)
                platform_utm_country = suffix[1:-1].split(",")
                fields = [f"{prefix}{hms[sec]}{us:06d}", uid, event_type, cat, miles, *platform_utm_country]
                buf.append(_corrupt(r, fields, index, kind))
                invalid += 1
                counts[4 + kind] += 1
            elif x < p_dup:
                buf.append(line)
                valid += 1
                # Exact copy, in the same file or (half the time) a later one.
                dest = chunk
                if chunk < last_file and r() < 0.5:
                    dest = chunk + 1 + int(r() * (last_file - chunk))
                bufs[dest].append(line)
                dup += 1
            else:
                valid += 1
                if chunk < last_file:
                    bufs[chunk + 1 + int(r() * (last_file - chunk))].append(line)
                    late += 1
                else:
                    buf.append(line)  # nothing later to arrive in: a normal row
    counts[0] += valid
    counts[1] += dup
    counts[2] += late
    counts[3] += invalid
    for n, injection in enumerate(config.inject):
        if injection.kind != "acquisition_spike" and injection.matches(utm, country):
            rng = random.Random(_derive_seed(config.seed, f"inject/{n}", index)).random
            if injection.kind == "drop":
                _drop(plan, injection, bufs, rng)
            else:
                counts[0] += _redemption_wave(plan, injection, active, uid, suffix1, bufs, rng)


def _drop(plan: _Plan, injection: Injection, bufs: list[list[str]], rng: Callable[[], float]) -> None:
    """A broken export: each of the user's lines of the day is lost with probability ``injection.size``."""
    prefix = plan.date_prefixes[(injection.day - plan.config.start_date).days]
    for k, buf in enumerate(bufs):
        bufs[k] = [line for line in buf if not (line.startswith(prefix) and rng() < injection.size)]


def _redemption_wave(
    plan: _Plan,
    injection: Injection,
    active: list[int],
    uid: str,
    suffix: str,
    bufs: list[list[str]],
    rng: Callable[[], float],
) -> int:
    """A recently active member redeems 1-3 times on the day with probability ``injection.size``; rows added."""
    day = (injection.day - plan.config.start_date).days
    if not any(day - _WAVE_RECENT_DAYS < d <= day for d in active) or rng() >= injection.size:
        return 0
    _, redeemed = _miles_strings()
    hms = _hms_strings()
    n = 1 + int(rng() * 3)
    for _ in range(n):
        sec, us = int(rng() * 86400), int(rng() * 1_000_000)
        category = CATEGORIES["miles_redeemed"][int(rng() * 2)]
        miles = redeemed[int(rng() * len(redeemed))]
        line = f"{plan.date_prefixes[day]}{hms[sec]}{us:06d},{uid},miles_redeemed,{category},{miles}{suffix}"
        bufs[plan.chunk_of_day[day]].append(line)
    return n


# --------------------------------------------------------------------------- planning and driving


def _shards(users: int) -> list[tuple[int, int]]:
    """Fixed user ranges (1-based, inclusive); fixed size so results never depend on workers."""
    return [(lo, min(users, lo + _USERS_PER_SHARD - 1)) for lo in range(1, users + 1, _USERS_PER_SHARD)]


def _schedule_weight(args: tuple[GeneratorConfig, int, int]) -> float:
    """Sum of (scheduled days x intensity) over a shard: rows per unit of events_per_day."""
    config, lo, hi = args
    parts = []
    for index in range(lo, hi + 1):
        active, intensity = _schedule(config, index)
        parts.append(len(active) * intensity)
    return math.fsum(parts)


def _make_plan(config: GeneratorConfig, pool: Pool | None) -> _Plan:
    """Resolve ``target_rows`` into ``events_per_day`` and precompute per-day strings."""
    epd = config.events_per_day
    if config.target_rows is not None:
        jobs = [(config, lo, hi) for lo, hi in _shards(config.users)]
        weights = pool.map(_schedule_weight, jobs) if pool else [_schedule_weight(j) for j in jobs]
        weight = math.fsum(weights) * (1.0 + config.duplicate_rate)
        epd = config.target_rows / weight if weight > 0 else config.events_per_day
    bounds = chunk_bounds(config.days, config.files)
    chunk_of_day = tuple(k for k, (lo, hi) in enumerate(bounds) for _ in range(lo, hi + 1))
    prefixes = tuple((config.start_date + dt.timedelta(days=d)).isoformat() + " " for d in range(config.days))
    spike_users: dict[int, tuple[int, Injection]] = {}
    for injection in (i for i in config.inject if i.kind == "acquisition_spike"):
        for _ in range(int(injection.size)):
            spike_users[config.users + len(spike_users) + 1] = ((injection.day - config.start_date).days, injection)
    return _Plan(
        config=config,
        events_per_day=epd,
        user_width=max(4, len(str(config.users))),
        date_prefixes=prefixes,
        chunk_of_day=chunk_of_day,
        chunk_days=tuple(bounds),
        spike_users=spike_users,
    )


def _write_users(plan: _Plan, lo: int, hi: int, handles: list[IO[str]]) -> list[int]:
    """Generate users ``lo..hi`` and write each user's lines before starting the next."""
    counts = [0] * (4 + len(DEFECT_KINDS))
    n_files = plan.config.files
    rows = [0] * n_files
    for index in range(lo, hi + 1):
        bufs: list[list[str]] = [[] for _ in range(n_files)]
        _emit_user(plan, index, bufs, counts)
        for k, buf in enumerate(bufs):
            if buf:
                handles[k].write("".join(buf))
                rows[k] += len(buf)
    return counts + rows


def _shard_job(args: tuple[_Plan, int, int, str]) -> list[int]:
    """Worker: write one shard to part files ``<tmpdir>/<lo>_<k>.csv`` (concatenated later)."""
    plan, lo, hi, tmpdir = args
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(_open_text(Path(tmpdir) / f"{lo}_{k}.csv")) for k in range(plan.config.files)]
        return _write_users(plan, lo, hi, handles)


def _open_text(path: Path) -> IO[str]:
    """Open for writing with ``\\n`` line endings on every OS and a large buffer (few syscalls)."""
    return open(path, "w", encoding="utf-8", newline="", buffering=_WRITE_BUFFER)


def generate(
    out: str | Path,
    *,
    users: int = 300,
    days: int = 182,
    start_date: str | dt.date = "2025-01-05",
    seed: int = 42,
    invalid_rate: float = 0.0,
    duplicate_rate: float = 0.0,
    late_rate: float = 0.0,
    files: int = 1,
    events_per_day: float = 3.0,
    target_rows: int | None = None,
    workers: int = 1,
    inject: tuple[Injection | str, ...] | list[Injection | str] = (),
) -> GenerationResult:
    """Write the synthetic event stream to ``out`` and return what was written.

    ``out`` is a ``.csv`` path when ``files == 1``, otherwise a directory (created if needed) that
    receives one ``event_stream_<first>_<last>.csv`` per consecutive date chunk. The bytes depend
    only on the arguments (``workers`` included: it changes speed, never output). ``inject``: named
    anomalies (:class:`Injection` values or their text); none by default.
    """
    if isinstance(start_date, str):
        start_date = dt.date.fromisoformat(start_date)
    config = GeneratorConfig(
        users=users,
        days=days,
        start_date=start_date,
        seed=seed,
        invalid_rate=invalid_rate,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
        files=files,
        events_per_day=events_per_day,
        target_rows=target_rows,
        workers=workers,
        inject=tuple(i if isinstance(i, Injection) else Injection.parse(i) for i in inject),
    )
    paths = output_paths(out, config.start_date, config.days, config.files)
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    shards = _shards(config.users + config.extra_users)
    totals = [0] * (4 + len(DEFECT_KINDS) + config.files)

    if config.workers == 1:
        plan = _make_plan(config, None)
        with contextlib.ExitStack() as stack:
            handles = [stack.enter_context(_open_text(p)) for p in paths]
            for h in handles:
                h.write(HEADER + "\n")
            for lo, hi in shards:
                totals = [a + b for a, b in zip(totals, _write_users(plan, lo, hi, handles), strict=True)]
    else:
        # fork avoids re-importing in workers; any start method gives the same bytes.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        ctx = multiprocessing.get_context(method)
        with (
            ctx.Pool(config.workers) as pool,
            tempfile.TemporaryDirectory(prefix=".gen_parts_", dir=paths[0].parent) as tmpdir,
        ):
            plan = _make_plan(config, pool)
            jobs = [(plan, lo, hi, tmpdir) for lo, hi in shards]
            for part in pool.imap(_shard_job, jobs):
                totals = [a + b for a, b in zip(totals, part, strict=True)]
            for k, p in enumerate(paths):
                with open(p, "wb") as dst:
                    dst.write((HEADER + "\n").encode())
                    for lo, _ in shards:
                        part_path = Path(tmpdir) / f"{lo}_{k}.csv"
                        with open(part_path, "rb") as src:
                            shutil.copyfileobj(src, dst, _WRITE_BUFFER)
                        part_path.unlink()

    n_kinds = len(DEFECT_KINDS)
    return GenerationResult(
        files=paths,
        rows_per_file=totals[4 + n_kinds :],
        valid_events=totals[0],
        duplicates=totals[1],
        late=totals[2],
        invalid=totals[3],
        invalid_by_kind={k: totals[4 + i] for i, k in enumerate(DEFECT_KINDS)},
        events_per_day=plan.events_per_day,
        injected=tuple(str(i) for i in config.inject),
    )


# --- command line (lakehouse generate, scripts/generate_events.py) ------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Flags mirror ``generator.generate`` keyword arguments one to one."""
    p = argparse.ArgumentParser(
        description="Write a synthetic HeyMax event_stream.csv (the source format of docs/contract.md)."
    )
    p.add_argument("--out", required=True, help="directory, or FILE.csv when --files 1")
    p.add_argument("--users", type=int, default=300, help="number of users (default 300)")
    p.add_argument("--days", type=int, default=182, help="days in the period (default 182)")
    p.add_argument("--start-date", default="2025-01-05", help="first date, YYYY-MM-DD (default 2025-01-05)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--invalid-rate", type=float, default=0.0, help="share of events written as invalid rows")
    p.add_argument("--duplicate-rate", type=float, default=0.0, help="share of events written twice")
    p.add_argument("--late-rate", type=float, default=0.0, help="share of events written to a later file")
    p.add_argument("--files", type=int, default=1, help="split the date range into N files (default 1)")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--events-per-day",
        type=float,
        default=3.0,
        help="mean events on an active day of an average user (default 3.0)",
    )
    size.add_argument("--target-rows", type=int, default=None, help="aim for roughly this many data rows")
    p.add_argument("--workers", type=int, default=1, help="processes; output is identical for any value")
    p.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="KIND:SEGMENT_TYPE=VALUE:DATE[:SIZE]",
        help="a named anomaly (repeatable): drop (share of the segment's lines of the day lost, default 0.85), "
        "redemption_wave (share of its recently active members redeeming that day, default 0.5), "
        "acquisition_spike (users of the segment acquired that day, default 40); segment country=XX or "
        "acq_source=NAME; e.g. drop:country=PH:2025-04-15",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the generator and print a one-screen summary (to stderr, so stdout stays clean)."""
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        result = generate(
            args.out,
            users=args.users,
            days=args.days,
            start_date=args.start_date,
            seed=args.seed,
            invalid_rate=args.invalid_rate,
            duplicate_rate=args.duplicate_rate,
            late_rate=args.late_rate,
            files=args.files,
            events_per_day=args.events_per_day,
            target_rows=args.target_rows,
            workers=args.workers,
            inject=args.inject,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    for path, rows in zip(result.files, result.rows_per_file, strict=True):
        print(f"{path}\t{rows} rows", file=sys.stderr)
    kinds = ", ".join(f"{k}={v}" for k, v in result.invalid_by_kind.items() if v)
    print(
        f"rows={result.rows} valid_events={result.valid_events} duplicates={result.duplicates} "
        f"late={result.late} invalid={result.invalid} ({kinds or 'none'}) "
        f"events_per_day={result.events_per_day:.4f} seconds={seconds:.2f}",
        file=sys.stderr,
    )
    for injected in result.injected:
        print(f"injected {injected}", file=sys.stderr)
    return 0
