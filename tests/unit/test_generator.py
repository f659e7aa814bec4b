"""Tests of the synthetic event generator (pure Python, no Spark).

The format checks below are written from docs/contract.md's "Source: event_stream.csv" section with their
own regexes and sets, independently of ``lakehouse.generator``, so a generator bug cannot hide
behind a shared constant.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:  # make `lakehouse` importable when pytest runs from anywhere
    sys.path.insert(0, str(_REPO_ROOT))

from lakehouse import generator  # noqa: E402

HEADER = "event_time,user_id,event_type,transaction_category,miles_amount,platform,utm_source,country"
TIME_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}$")
USER_RE = re.compile(r"^u_[0-9]+$")
USER_PADDED_RE = re.compile(r"^u_[0-9]{4,}$")
NUMBER_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
GENERATED_MILES_RE = re.compile(r"^[1-9][0-9]*\.0$")  # integer miles + ".0", like "516.0"
CATEGORIES_BY_TYPE = {
    "miles_earned": {"dining", "ecommerce", "shopping"},
    "miles_redeemed": {"flight", "hotel"},
    "reward_search": {"apple", "lululemon", "shopee"},
    "share": set(),
    "like": set(),
}
ALL_CATEGORIES = set().union(*CATEGORIES_BY_TYPE.values())
ALLOWED = {
    "event_type": set(CATEGORIES_BY_TYPE),
    "platform": {"ios", "android", "web"},
    "utm_source": {"google", "facebook", "tiktok", "organic", "referral"},
    "country": {"SG", "MY", "PH", "ID", "TH"},
}
TARGET_MIX = {"miles_earned": 56, "reward_search": 15, "miles_redeemed": 14, "share": 10, "like": 5}
INGESTED_AT = datetime(2030, 1, 1)  # fixed "ingestion time": no test depends on the clock
LOOKBACK_WEEKS = 4

# Small, fast dataset shared by most tests: a sample-like period and user count.
#: What a fixture hands over: the generator's summary and the data lines of each file.
Generated = tuple[generator.GenerationResult, dict[Path, list[str]]]
BASE = {"users": 300, "days": 182, "start_date": "2025-01-05", "seed": 7, "target_rows": 20000}


# --------------------------------------------------------------------------- independent checks


def broken_rules(line: str) -> list[str]:
    """Contract rules a raw line breaks (empty list = valid).

    Type-dependent rules are only evaluated when event_type is allowed, and a wrong field count
    stops the other checks, so each defect should break exactly one rule.
    """
    fields = line.split(",")
    if len(fields) != 8:
        return ["field_count"]
    event_time, user_id, event_type, category, miles, platform, utm_source, country = fields
    errors: list[str] = []
    if not event_time:
        errors.append("event_time_required")
    elif not TIME_RE.match(event_time):
        errors.append("event_time_format")
    else:
        try:
            ts = datetime.strptime(event_time, "%Y-%m-%d %H:%M:%S.%f")
        except ValueError:
            errors.append("event_time_calendar")
        else:
            if ts > INGESTED_AT:
                errors.append("event_time_future")
    if not user_id:
        errors.append("user_id_required")
    elif not USER_RE.match(user_id):
        errors.append("user_id_format")
    for name, value in (
        ("event_type", event_type),
        ("platform", platform),
        ("utm_source", utm_source),
        ("country", country),
    ):
        if not value:
            errors.append(f"{name}_required")
        elif value not in ALLOWED[name]:
            errors.append(f"{name}_allowed")
    if event_type in CATEGORIES_BY_TYPE:
        wanted = CATEGORIES_BY_TYPE[event_type]
        if wanted and not category:
            errors.append("category_required")
        elif wanted and category not in ALL_CATEGORIES:
            errors.append("category_allowed")
        elif category and category not in wanted:
            errors.append("category_matches_type")
        if event_type in ("miles_earned", "miles_redeemed"):
            if not miles:
                errors.append("miles_required")
            elif not NUMBER_RE.match(miles) or float(miles) <= 0 or float(miles) >= 1e8:
                errors.append("miles_positive_number")
        elif miles:
            errors.append("miles_not_allowed")
    return errors


def read_lines(paths: list[Path]) -> dict[Path, list[str]]:
    """Data lines per file; also asserts the exact header and ``\\n`` endings."""
    out = {}
    for path in paths:
        raw = path.read_bytes()
        assert b"\r" not in raw
        assert raw.endswith(b"\n")
        lines = raw.decode("utf-8").split("\n")[:-1]
        assert lines[0] == HEADER
        out[path] = lines[1:]
    return out


def week_start(d: date) -> date:
    """Sunday starting the week of ``d`` (Python: Monday=0 .. Sunday=6)."""
    return d - timedelta(days=(d.weekday() + 1) % 7)


def lifecycle_counts(lines: list[str]) -> Counter[str]:
    """Weekly lifecycle statuses (contract table, lookback 4 weeks) summed over all weeks."""
    weeks_of: dict[str, set[date]] = defaultdict(set)
    for line in lines:
        f = line.split(",")
        weeks_of[f[1]].add(week_start(date.fromisoformat(f[0][:10])))
    first_week = {u: min(w) for u, w in weeks_of.items()}
    week, last = min(first_week.values()), max(max(w) for w in weeks_of.values())
    counts: Counter[str] = Counter()
    while week <= last:
        for user, weeks in weeks_of.items():
            if first_week[user] > week:
                continue
            recent = any(week - timedelta(weeks=i) in weeks for i in range(1, LOOKBACK_WEEKS + 1))
            if week in weeks:
                status = "new" if week == first_week[user] else "retained" if recent else "resurrected"
            else:
                status = "dormant" if recent else "churned"
            counts[status] += 1
        week += timedelta(weeks=1)
    return counts


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """~20k valid rows in 3 files, no defects."""
    out = tmp_path_factory.mktemp("clean")
    result = generator.generate(out, files=3, **BASE)
    return result, read_lines(result.files)


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """~20k rows with 3% invalid, 1% duplicate and 2% late rows in 3 files."""
    out = tmp_path_factory.mktemp("messy")
    result = generator.generate(out, files=3, invalid_rate=0.03, duplicate_rate=0.01, late_rate=0.02, **BASE)
    return result, read_lines(result.files)


def all_lines(files: dict[Path, list[str]]) -> list[str]:
    return [line for lines in files.values() for line in lines]


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_and_workers_do_not_matter(tmp_path: Path) -> None:
    kwargs = dict(BASE, target_rows=8000, files=3, invalid_rate=0.01, duplicate_rate=0.01, late_rate=0.01)
    kwargs["users"] = 1200  # several shards, so the multi-process path really splits work
    a = generator.generate(tmp_path / "a", **kwargs)
    b = generator.generate(tmp_path / "b", **kwargs)
    c = generator.generate(tmp_path / "c", workers=2, **kwargs)
    for pa, pb, pc in zip(a.files, b.files, c.files, strict=True):
        assert pa.name == pb.name == pc.name
        assert pa.read_bytes() == pb.read_bytes() == pc.read_bytes()
    assert a.rows == c.rows


def test_different_seed_different_bytes(tmp_path: Path) -> None:
    kwargs = dict(BASE, target_rows=3000)
    a = generator.generate(tmp_path / "a.csv", **kwargs)
    b = generator.generate(tmp_path / "b.csv", **dict(kwargs, seed=8))
    assert a.files[0].read_bytes() != b.files[0].read_bytes()


# --------------------------------------------------------------------------- format and content


def test_header_and_file_names(clean: Generated) -> None:
    result, files = clean
    assert [p.name for p in result.files] == [
        "event_stream_2025-01-05_2025-03-05.csv",
        "event_stream_2025-03-06_2025-05-05.csv",
        "event_stream_2025-05-06_2025-07-05.csv",
    ]
    assert [len(lines) for lines in files.values()] == result.rows_per_file


def test_every_row_valid_without_defects(clean: Generated) -> None:
    _, files = clean
    lines = all_lines(files)
    assert 15000 < len(lines) < 25000
    for line in lines:
        assert broken_rules(line) == [], line
        f = line.split(",")
        assert USER_PADDED_RE.match(f[1]), line
        assert f[0][:4] == "2025"
        if f[2] in ("miles_earned", "miles_redeemed"):
            assert GENERATED_MILES_RE.match(f[4]), line


def test_event_type_mix_close_to_target(clean: Generated) -> None:
    _, files = clean
    types = Counter(line.split(",")[2] for line in all_lines(files))
    total = sum(types.values())
    for event_type, pct in TARGET_MIX.items():
        assert abs(100 * types[event_type] / total - pct) < 3, (event_type, types)


def test_miles_ranges(clean: Generated) -> None:
    _, files = clean
    earned, redeemed = [], []
    for line in all_lines(files):
        f = line.split(",")
        if f[2] == "miles_earned":
            earned.append(float(f[4]))
        elif f[2] == "miles_redeemed":
            redeemed.append(float(f[4]))
    assert min(earned) >= 80 and max(earned) <= 1199
    assert min(redeemed) >= 800 and max(redeemed) <= 2399
    assert min(earned) < 100 and max(earned) > 1150  # the whole range is used
    assert min(redeemed) < 850 and max(redeemed) > 2350


def test_user_attributes(clean: Generated) -> None:
    """utm_source/country constant per user; 1-2 platforms per user, some users with 2."""
    _, files = clean
    attrs: dict[str, set[tuple[str, str]]] = defaultdict(set)
    platforms: dict[str, set[str]] = defaultdict(set)
    for line in all_lines(files):
        f = line.split(",")
        attrs[f[1]].add((f[6], f[7]))
        platforms[f[1]].add(f[5])
    assert all(len(v) == 1 for v in attrs.values())
    assert all(1 <= len(v) <= 2 for v in platforms.values())
    assert sum(len(v) == 2 for v in platforms.values()) > 30
    assert len({a for v in attrs.values() for a in v}) > 15  # many segments in use


def test_user_id_width(tmp_path: Path) -> None:
    small = generator.generate(tmp_path / "s.csv", users=5, days=14, events_per_day=1.0)
    big = generator.generate(tmp_path / "b.csv", users=12000, days=3, events_per_day=0.5)
    small_ids = {line.split(",")[1] for line in read_lines(small.files)[small.files[0]]}
    big_ids = {line.split(",")[1] for line in read_lines(big.files)[big.files[0]]}
    assert small_ids and all(re.fullmatch(r"u_000[1-5]", u) for u in small_ids)
    assert big_ids and all(re.fullmatch(r"u_[0-9]{5}", u) for u in big_ids)


def test_all_lifecycle_states_occur(clean: Generated) -> None:
    _, files = clean
    counts = lifecycle_counts(all_lines(files))
    assert counts["new"] == len({line.split(",")[1] for line in all_lines(files)})
    for status in ("retained", "resurrected", "dormant", "churned"):
        assert counts[status] >= 50, counts


def test_acquisition_spread_over_period(clean: Generated) -> None:
    _, files = clean
    first: dict[str, str] = {}
    for line in all_lines(files):
        user, day = line.split(",")[1], line[:10]
        if user not in first or day < first[user]:
            first[user] = day
    by_file = Counter("1" if d <= "2025-03-05" else "2" if d <= "2025-05-05" else "3" for d in first.values())
    assert min(by_file.values()) >= 40, by_file


def test_some_negative_balances(clean: Generated) -> None:
    _, files = clean
    balance: Counter[str] = Counter()
    for line in all_lines(files):
        f = line.split(",")
        if f[2] == "miles_earned":
            balance[f[1]] += float(f[4])
        elif f[2] == "miles_redeemed":
            balance[f[1]] -= float(f[4])
    negative = sum(1 for v in balance.values() if v < 0)
    assert 0.05 * len(balance) < negative < 0.5 * len(balance), negative


def test_target_rows_is_roughly_met(clean: Generated) -> None:
    result, _ = clean
    assert abs(result.rows - BASE["target_rows"]) < 0.1 * BASE["target_rows"]


# --------------------------------------------------------------------------- defects, duplicates, late rows


def test_invalid_rows_share_and_one_rule_each(messy: Generated) -> None:
    result, files = messy
    lines = all_lines(files)
    failing = [(line, broken_rules(line)) for line in lines]
    failing = [(line, errs) for line, errs in failing if errs]
    assert len(failing) == result.invalid
    assert abs(len(failing) / len(lines) - 0.03) < 0.008
    for line, errs in failing:
        assert len(errs) == 1, (line, errs)
    rules = Counter(errs[0] for _, errs in failing)
    expected = {
        "event_type_allowed", "platform_allowed", "utm_source_allowed", "country_allowed",
        "user_id_required", "user_id_format", "event_time_calendar", "event_time_format",
        "event_time_future", "miles_positive_number", "miles_not_allowed", "category_matches_type",
        "category_required", "field_count",
    }  # fmt: skip
    assert set(rules) == expected, rules
    assert all(result.invalid_by_kind[k] > 0 for k in generator.DEFECT_KINDS)
    fields = Counter(len(line.split(",")) for line, _ in failing)
    assert fields[7] > 0 and fields[9] > 0  # a missing and an extra field


def test_duplicates_are_exact_copies_of_valid_lines(messy: Generated) -> None:
    result, files = messy
    counts = Counter(all_lines(files))
    extra = sum(n - 1 for n in counts.values())
    assert extra == result.duplicates > 0
    assert all(broken_rules(line) == [] for line, n in counts.items() if n > 1)
    placement = defaultdict(list)
    for k, lines in enumerate(files.values()):
        for line in lines:
            if counts[line] > 1:
                placement[line].append(k)
    assert any(len(set(ks)) == 1 for ks in placement.values())  # same file
    assert any(len(set(ks)) > 1 for ks in placement.values())  # a later file


def test_files_split_by_date_and_late_rows(tmp_path: Path) -> None:
    """Without duplicates, rows dated before a file's range are exactly the late rows."""
    result = generator.generate(tmp_path, files=3, late_rate=0.03, **BASE)
    files = read_lines(result.files)
    late = 0
    for path, lines in files.items():
        first, last = path.stem.split("_")[2:]
        for line in lines:
            day = line[:10]
            assert day <= last, (path.name, line)  # nothing from the future of this file
            if day < first:
                late += 1
                assert path != result.files[0]
    assert late == result.late
    per_file = [sum(line[:10] < p.stem.split("_")[2] for line in files[p]) for p in result.files]
    assert per_file[0] == 0 and per_file[1] > 0 and per_file[2] > 0
    valid_rows = result.valid_events * 2 / 3  # late rows can only come from the first two chunks
    assert abs(late / valid_rows - 0.03) < 0.01


def test_late_rate_with_one_file_gives_normal_rows(tmp_path: Path) -> None:
    a = generator.generate(tmp_path / "a.csv", late_rate=0.05, **dict(BASE, target_rows=3000))
    assert a.late == 0
    assert all(broken_rules(line) == [] for line in read_lines(a.files)[a.files[0]])


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generator.generate(tmp_path / "x.csv", files=2)
    with pytest.raises(ValueError):
        generator.generate(tmp_path, invalid_rate=1.5)
    with pytest.raises(ValueError):
        generator.generate(tmp_path, days=3, files=4)


# --------------------------------------------------------------------------- shipped sample


def test_committed_sample_matches_recorded_command(tmp_path: Path) -> None:
    """Re-run the command recorded in data/sample/README.md and compare bytes with the sample."""
    sample_dir = _REPO_ROOT / "data" / "sample"
    readme = (sample_dir / "README.md").read_text(encoding="utf-8")
    commands = [line.strip() for line in readme.splitlines() if "python scripts/generate_events.py" in line]
    assert len(commands) == 1, commands
    argv = shlex.split(commands[0].strip("`"))
    assert argv[0].endswith("python") and argv[1] == "scripts/generate_events.py"
    out = argv.index("--out")
    assert argv[out + 1] == "data/sample"
    argv[out + 1] = str(tmp_path)
    subprocess.run([sys.executable, *argv[1:]], cwd=_REPO_ROOT, check=True, capture_output=True)
    committed = sorted(sample_dir.glob("*.csv"))
    regenerated = sorted(tmp_path.glob("*.csv"))
    assert [p.name for p in committed] == [p.name for p in regenerated]
    assert len(committed) == 3
    for c, r in zip(committed, regenerated, strict=True):
        assert c.read_bytes() == r.read_bytes(), c.name
    rows = sum(len(lines) for lines in read_lines(committed).values())
    assert 20000 <= rows <= 50000


# --------------------------------------------------------------------------- injected anomalies

#: A set big enough for segment-level daily counts of 5 and more (2,000 users, 26 weeks), and the
#: anomalies data/sample/README.md lists for it.
INJECTED = {"users": 2000, "days": 182, "start_date": "2025-01-05", "seed": 42}
INJECTIONS = [
    "drop:country=PH:2025-05-20",
    "redemption_wave:acq_source=organic:2025-06-04",
    "acquisition_spike:acq_source=tiktok:2025-06-17",
]


def test_injections_are_named_parsed_and_checked() -> None:
    drop = generator.Injection.parse("drop:country=PH:2025-05-20")
    assert drop == generator.Injection("drop", "country", "PH", date(2025, 5, 20), 0.85)
    assert str(drop) == "drop:country=PH:2025-05-20:0.85"
    spike = generator.Injection.parse("acquisition_spike:acq_source=tiktok:2025-06-17:12")
    assert (spike.size, str(spike)) == (12.0, "acquisition_spike:acq_source=tiktok:2025-06-17:12")
    bad = {
        "drop:PH:2025-05-20": "must look like",
        "drop:country=PH:2025-13-01": "bad date or size",
        "surge:country=PH:2025-05-20": "kind must be one of",
        "drop:country=US:2025-05-20": "segment must be",
        "drop:platform=ios:2025-05-20": "segment must be",
        "drop:country=PH:2024-05-20": "outside the generated period",
        "drop:country=PH:2025-05-20:1.5": "a share in (0, 1]",
        "acquisition_spike:acq_source=tiktok:2025-06-17:2.5": "number of users",
    }
    for text, message in bad.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            generator.generate(Path("/nonexistent/x.csv"), users=5, days=182, inject=[text])


@pytest.fixture(scope="module")
def injected_pair(tmp_path_factory) -> tuple[Path, Path, generator.GenerationResult]:
    out = tmp_path_factory.mktemp("injected")
    generator.generate(out / "plain.csv", **INJECTED)
    result = generator.generate(out / "injected.csv", **INJECTED, inject=INJECTIONS)
    return out / "plain.csv", out / "injected.csv", result


def test_injected_set_is_the_plain_set_less_the_dropped_lines_plus_the_added_ones(injected_pair) -> None:
    plain, injected, result = injected_pair
    assert result.injected == ("drop:country=PH:2025-05-20:0.85", "redemption_wave:acq_source=organic:2025-06-04:0.5",
                               "acquisition_spike:acq_source=tiktok:2025-06-17:40")  # fmt: skip
    before = Counter(plain.read_text().splitlines()[1:])
    after = Counter(injected.read_text().splitlines()[1:])
    fields = lambda line: dict(zip(HEADER.split(","), line.split(","), strict=True))  # noqa: E731
    removed, added = list((before - after).elements()), list((after - before).elements())
    # The drop: only PH lines of the day, about 85% of them.
    in_drop = lambda line: line.startswith("2025-05-20 ") and fields(line)["country"] == "PH"  # noqa: E731
    assert removed and all(in_drop(line) for line in removed)
    ph_that_day = [line for line in before.elements() if in_drop(line)]
    assert 0.7 <= len(removed) / len(ph_that_day) <= 0.95
    # The wave: redemptions of organic members that day. The spike: 40 new tiktok users from that day on.
    known = {fields(line)["user_id"] for line in before}
    wave = [fields(line) for line in added if fields(line)["user_id"] in known]
    assert len(wave) > 50 and {(f["event_time"][:10], f["event_type"], f["utm_source"]) for f in wave} == {
        ("2025-06-04", "miles_redeemed", "organic")
    }
    new = defaultdict(list)
    for line in added:
        if fields(line)["user_id"] not in known:
            new[fields(line)["user_id"]].append(fields(line))
    assert sorted(new) == [f"u_{i:04d}" for i in range(2001, 2041)]
    assert all(min(f["event_time"] for f in rows)[:10] == "2025-06-17" for rows in new.values())
    assert {f["utm_source"] for rows in new.values() for f in rows} == {"tiktok"}
    assert all(broken_rules(line) == [] for line in added)


def test_every_injected_anomaly_is_flagged_by_the_contract(injected_pair) -> None:
    """The reference implementation (tests/reference/) computes the table: each injection's point is flagged."""
    from tests.reference import spec_reference as ref

    plain, injected, _ = injected_pair
    flagged = {}
    for name, path in (("plain", plain), ("injected", injected)):
        points = ref.compute_anomalies([str(path)], ingested_at=INGESTED_AT)
        flagged[name] = {r[:5]: r[12] for r in points if r[11]}
    expected = {
        ("events", "day", "country", "PH", date(2025, 5, 20)): "drop",
        ("redeem_events", "day", "acq_source", "organic", date(2025, 6, 4)): "spike",
        ("new_users", "week", "acq_source", "tiktok", date(2025, 6, 15)): "spike",  # the week of 06-17
    }
    assert {k: flagged["injected"].get(k) for k in expected} == expected
    assert not set(expected) & set(flagged["plain"])  # none of them is flagged without the injections
    # How many points a set without injections flags (reported in data/sample/README.md): 135 of 7,765.
    assert len(flagged["plain"]) == 135
