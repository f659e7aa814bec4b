"""DuckDB rebuild of the whole warehouse from the CSV files: the benchmark's "peer".

What it is: every table of docs/contract.md (bronze, silver with *every* daily ``dim_users``
snapshot, gold) computed from scratch, in one in-process DuckDB database, with set-based SQL only
(no Python loop over rows), and written as Parquet files ``<out_dir>/<layer>.<table>.parquet``.

Why it exists: the project it replaces (Airflow + dbt + PostgreSQL) rebuilt every table from the
raw file every night. The benchmark times this module against our incremental Spark run on the same
files, so the comparison is with an honest, complete and reasonably fast full rebuild on a single
machine, not with a straw man: the write of every table is part of the timed rebuild (a rebuild that
keeps nothing would not be a peer), and the results are tested row for row against the plain-Python
oracle ``tests/reference/spec_reference.py``.

Decisions shared with the reference (see its docstring), where the contract is silent:
- a file's header must be exactly the contract's (after an optional UTF-8 BOM, parsed as CSV); a bad
  header anywhere refuses the whole rebuild (``ValueError``), an empty file included;
- fields are split on commas with ``"`` quoting (``""`` inside quotes), never trimmed; an empty field
  is missing; a blank line is a record of 0 fields (``field_count``); ``_source_line`` is 1-based
  with the header on line 1; ``_source_file`` is the file's base name;
- the rule names, and which rules apply when: ``field_count`` alone when the field count is wrong;
  rules that depend on ``event_type`` only for an allowed event type; ``miles_amount_valid`` is the
  regex ``[0-9]+(\\.[0-9]+)?`` with value > 0, < 10**8 and at most 2 fraction digits once trailing
  zeros are dropped (leading zeros allowed); ``event_time`` must be a real calendar time (year 0000
  is not); ``event_time_not_in_future`` fails strictly after ``ingested_at + slack``;
- silver keeps the first copy of an ``event_id`` in (file order as given, line) order;
- ``latest_event`` is the event with the largest ``(event_time, event_id)``; first event ties: smallest
  ``event_id``; totals of miles with no such event are 0;
- rates are rounded half-up to 6 decimals (computed exactly, in integers: the same doubles as the
  reference's Decimal rounding); ``redemption_rate`` is the exact quotient of the miles sums;
- anomalies: the Theil-Sen arithmetic in the contract's order in doubles, medians as ``(a + b) / 2``
  of the two middle values; weekly series are complete weeks only.

Where it differs from the reference, on purpose: lines are physical lines (``\\n``, ``\\r\\n`` or
``\\r``), as in the Spark bronze job, so a quoted field holding a line break is not joined with the
next line (no valid record can hold one; the reference's ``csv`` module would join them). Weeks start
on ``week_start`` (``sunday`` or ``monday``); the reference only knows Sunday.

Where it differs from the Spark jobs (extra columns of docs/tables.md that the contract does not ask
for): ``_source_file`` is the base name, not the path; ``_batch_id`` is one per file but a 64-bit
hash of name and bytes, not the SHA-256 one; there is no ``_warnings`` column (every rule is an
error here) and no ops tables. Its figure is a one-off rebuild on one machine, DuckDB's tables in
memory, each written once as one Parquet file (no table format, no transaction log, no incremental
bookkeeping).

A benchmark-only dependency: ``duckdb`` is imported inside :func:`rebuild`, never by the jobs, so the
lakehouse runs without it. Command line: ``python -m lakehouse.duckdb_peer --input DIR_OR_FILE
[--out DIR] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

HEADER = (
    "event_time",
    "user_id",
    "event_type",
    "transaction_category",
    "miles_amount",
    "platform",
    "utm_source",
    "country",
)
CATEGORIES_BY_EVENT_TYPE = {
    "miles_earned": ("dining", "ecommerce", "shopping"),
    "miles_redeemed": ("flight", "hotel"),
    "reward_search": ("apple", "lululemon", "shopee"),
}
EVENT_TYPES = ("miles_earned", "miles_redeemed", "reward_search", "share", "like")
CATEGORIES = tuple(c for cats in CATEGORIES_BY_EVENT_TYPE.values() for c in cats)
PLATFORMS = ("ios", "android", "web")
UTM_SOURCES = ("google", "facebook", "tiktok", "organic", "referral")
COUNTRIES = ("SG", "MY", "PH", "ID", "TH")
WEEK_START_DAYS = {"sunday": 0, "monday": 1}  # DuckDB's dayofweek: Sunday = 0

#: Every table the rebuild writes, in build order (layer.table).
TABLES = (
    "bronze.fct_event_stream",
    "bronze.fct_event_stream_quarantine",
    "silver.fct_events",
    "silver.user_activity_daily",
    "silver.dim_users",
    "gold.agg_active_user",
    "gold.agg_user_lifecycle_weekly",
    "gold.agg_user_retention",
    "gold.agg_growth_accounting_weekly",
    "gold.agg_engagement_daily",
    "gold.agg_miles_weekly",
    "gold.agg_miles_category_weekly",
    "gold.agg_metric_anomalies",
    "gold.rpt_negative_balance_users",
)

DAILY_ANOMALY_METRICS = ("events", "active_users", "new_users", "earn_events", "redeem_events")
WEEKLY_ANOMALY_METRICS = ("active_users", "new_users", "churned_users", "resurrected_users")


@dataclass(frozen=True)
class PeerResult:
    """Seconds of the rebuild (reading the files to the last Parquet write), rows per table, and the
    in-memory database that holds the tables (``fetch`` reads one; ``close`` frees it)."""

    seconds: float
    rows: dict[str, int]
    connection: duckdb.DuckDBPyConnection = field(repr=False)
    temp_dir: str = field(repr=False, default="")

    def fetch(self, table: str, columns: Sequence[str] | None = None) -> list[tuple]:
        """Rows of ``layer.table`` (all columns, or those named), in no particular order."""
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}")
        select = ", ".join(columns) if columns else "*"
        return self.connection.execute(f"SELECT {select} FROM {table}").fetchall()

    def columns(self, table: str) -> list[str]:
        return [row[0] for row in self.connection.execute(f"DESCRIBE {table}").fetchall()]

    def close(self) -> None:
        self.connection.close()
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------- SQL helpers


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(_lit(v) for v in values) + ")"


def _median(sorted_list: str) -> str:
    """Median of a sorted DOUBLE list expression: the mean of the two middle values of an even count, as
    ``(a + b) / 2`` (DuckDB's ``median`` interpolates as ``a + (b - a) / 2``, which can differ in the last
    bit)."""
    n = f"len({sorted_list})"
    return (
        f"CASE WHEN {n} % 2 = 1 THEN {sorted_list}[{n} // 2 + 1] "
        f"ELSE ({sorted_list}[{n} // 2] + {sorted_list}[{n} // 2 + 1]) / 2 END"
    )


# A field is a quoted part (closing quote optional at the end of the line) followed by anything up
# to the next comma, or an unquoted run; the line is prefixed with a comma so every field follows one.
_FIELD_RE = r',("(?:[^"]|"")*"[^,]*|"(?:[^"]|"")*$|[^,]*)'
_QUOTED_BODY_RE = r'^"((?:[^"]|"")*)'
_EVENT_TIME_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}"  # ASCII digits only
_AFTER_QUOTE_RE = r'^"(?:[^"]|"")*"(.*)$'

# Rule name -> SQL condition on the raw fields (NULL when empty) of a record with 8 fields. A NULL
# condition counts as not broken. Names and applicability are the reference's.
_CATEGORY_OWNER = (
    "CASE "
    + " ".join(
        f"WHEN transaction_category IN {_in(cats)} THEN {_lit(t)}" for t, cats in CATEGORIES_BY_EVENT_TYPE.items()
    )
    + " END"
)
_RULES = {
    "event_time_required": "event_time IS NULL",
    "user_id_required": "user_id IS NULL",
    "event_type_required": "event_type IS NULL",
    "platform_required": "platform IS NULL",
    "utm_source_required": "utm_source IS NULL",
    "country_required": "country IS NULL",
    "event_type_allowed": f"event_type NOT IN {_in(EVENT_TYPES)}",
    "transaction_category_allowed": f"transaction_category NOT IN {_in(CATEGORIES)}",
    "platform_allowed": f"platform NOT IN {_in(PLATFORMS)}",
    "utm_source_allowed": f"utm_source NOT IN {_in(UTM_SOURCES)}",
    "country_allowed": f"country NOT IN {_in(COUNTRIES)}",
    "event_time_format": "event_time IS NOT NULL AND _ts IS NULL",
    "event_time_not_in_future": "_ts > $future_limit",
    "user_id_format": "NOT regexp_full_match(user_id, 'u_[0-9]+')",
    "miles_amount_valid": "miles_amount IS NOT NULL AND _miles IS NULL",
    "transaction_category_required": (
        f"event_type IN {_in(tuple(CATEGORIES_BY_EVENT_TYPE))} AND transaction_category IS NULL"
    ),
    "miles_amount_required": "event_type IN ('miles_earned', 'miles_redeemed') AND miles_amount IS NULL",
    "miles_amount_not_allowed": "event_type IN ('share', 'like', 'reward_search') AND miles_amount IS NOT NULL",
    "transaction_category_matches_event_type": (
        "(event_type IN ('share', 'like') AND transaction_category IS NOT NULL) OR "
        f"(event_type IN {_in(tuple(CATEGORIES_BY_EVENT_TYPE))} AND {_CATEGORY_OWNER} <> event_type)"
    ),
}
RULE_NAMES = (*sorted(_RULES), "field_count")


def _failed_checks_sql() -> str:
    # Building the list only for records that break something keeps the common case to one OR chain.
    conditions = [f"coalesce({_RULES[name]}, false)" for name in sorted(_RULES)]
    names = ", ".join(
        f"CASE WHEN {c} THEN {_lit(name)} END" for name, c in zip(sorted(_RULES), conditions, strict=True)
    )
    return (
        "CASE WHEN _field_count <> 8 THEN ['field_count'] "
        f"WHEN {' OR '.join(conditions)} THEN list_filter([{names}], lambda x: x IS NOT NULL) "
        "ELSE []::VARCHAR[] END"
    )


def _split_line_sql(line: str) -> str:
    """Fields of one physical line as the reference's ``csv.reader`` reads them (no quote: a plain split)."""
    unquote = (
        f"CASE WHEN starts_with(f, '\"') THEN replace(regexp_extract(f, {_lit(_QUOTED_BODY_RE)}, 1), '\"\"', '\"') "
        f"|| regexp_extract(f, {_lit(_AFTER_QUOTE_RE)}, 1) ELSE f END"
    )
    return (
        f"CASE WHEN {line} = '' THEN []::VARCHAR[] "
        f"WHEN NOT contains({line}, '\"') THEN string_split({line}, ',') "
        f"ELSE list_transform(regexp_extract_all(',' || {line}, {_lit(_FIELD_RE)}, 1), lambda f: {unquote}) END"
    )


def _round6(numerator: str, denominator: str) -> str:
    """``numerator / denominator`` (non-negative whole numbers) rounded half-up to 6 decimals, in integers: the
    double nearest to the exact result, which is what the reference's Decimal rounding gives."""
    num, den = f"CAST({numerator} AS HUGEINT)", f"CAST({denominator} AS HUGEINT)"
    return f"CASE WHEN {den} = 0 THEN NULL ELSE CAST((2000000 * {num} + {den}) // (2 * {den}) AS DOUBLE) / 1000000 END"


# --------------------------------------------------------------------------------------------- the rebuild


def _bronze(con: duckdb.DuckDBPyConnection, paths: list[str], future_limit: datetime, ingested_at: datetime) -> None:
    names = [os.path.basename(p) for p in paths]
    con.execute(
        "CREATE TEMP TABLE source_files AS SELECT unnest($paths) AS path, unnest($names) AS name, "
        "unnest(range(len($paths))) AS file_index",
        {"paths": paths, "names": names},
    )
    file_list = "[" + ", ".join(_lit(p) for p in paths) + "]"
    # Physical lines of each file; "\r\n" and a lone "\r" end a line too (universal newlines). One batch
    # per file, named by a 64-bit hash of its name and bytes: not the Spark job's SHA-256, whose strength
    # buys nothing in a rebuild and which costs a second of one core on a year of files.
    con.execute(f"""
        CREATE TEMP TABLE raw_lines AS
        WITH f AS (
            SELECT s.file_index, s.name AS source_file,
                   lower(lpad(to_hex(hash(s.name, t.content)), 16, '0')) AS batch_id,
                   string_split(CASE WHEN contains(t.content, chr(13))
                                     THEN replace(replace(t.content, chr(13) || chr(10), chr(10)), chr(13), chr(10))
                                     ELSE t.content END, chr(10)) AS lines
            FROM read_text({file_list}) AS t JOIN source_files AS s ON s.path = t.filename
        )
        SELECT file_index, source_file, batch_id, len(lines) AS n_lines,
               unnest(lines) AS line, unnest(range(1, len(lines) + 1)) AS line_no
        FROM f
    """)
    expected = "[" + ", ".join(_lit(h) for h in HEADER) + "]"
    header = "CASE WHEN starts_with(line, chr(65279)) THEN substr(line, 2) ELSE line END"
    bad = con.execute(f"""
        SELECT s.path, r.line FROM source_files s LEFT JOIN raw_lines r ON r.file_index = s.file_index AND r.line_no = 1
        WHERE r.line IS NULL OR {_split_line_sql(header)} IS DISTINCT FROM {expected}
        ORDER BY s.file_index
    """).fetchall()
    if bad:
        path, line = bad[0]
        raise ValueError(
            f"{path}: header {line!r} is not the expected {','.join(HEADER)!r} ({len(bad)} file(s) refused)"
        )

    fields = ", ".join(f"nullif(_f[{i + 1}], '') AS {name}" for i, name in enumerate(HEADER))
    # Every record is checked in one pass into the bronze table itself, which holds for a moment the raw
    # text of the two typed fields and what the quarantine and silver need: the quarantined rows are
    # copied out and deleted, silver is built, then those columns are dropped (no copy of the table).
    con.execute(
        f"""
        CREATE TABLE bronze.fct_event_stream AS
        WITH split AS (
            SELECT file_index, source_file, batch_id, line_no, line, {_split_line_sql("line")} AS _f
            FROM raw_lines WHERE line_no > 1 AND NOT (line_no = n_lines AND line = '')
        ), typed AS (
            SELECT *, len(_f) AS _field_count, {fields} FROM split
        ), parsed AS (
            SELECT *,
                CASE WHEN regexp_full_match(event_time, {_lit(_EVENT_TIME_RE)}) AND NOT starts_with(event_time, '0000')
                     THEN try_strptime(event_time, '%Y-%m-%d %H:%M:%S.%f') END AS _ts,
                -- at most 8 integer and 2 fraction digits once leading / trailing zeros are dropped: then the
                -- cast is exact (no third fraction digit rounded away) and only the sign is left to check
                CASE WHEN regexp_full_match(miles_amount, '0*[0-9]{{1,8}}(\\.[0-9]{{1,2}}0*)?')
                     THEN nullif(CAST(miles_amount AS DECIMAL(10, 2)), 0) END AS _miles
            FROM typed
        ), checks AS (
            SELECT *, {_failed_checks_sql()} AS failed_checks FROM parsed
        )
        SELECT _ts AS event_time, user_id, event_type, transaction_category, _miles AS miles_amount, platform,
               utm_source, country, CAST(_ts AS DATE) AS event_date, source_file AS _source_file,
               CAST(line_no AS BIGINT) AS _source_line, $ingested_at AS _ingested_at, batch_id AS _batch_id,
               event_time AS _raw_event_time, miles_amount AS _raw_miles_amount, failed_checks,
               CASE WHEN len(failed_checks) > 0 THEN line END AS _raw_line,  -- accepted lines are not copied
               -- silver's event_id, in this pass: the raw text of an accepted event_time is exactly its
               -- 'yyyy-MM-dd HH:mm:ss.SSSSSS' form (the format rule), so it needs no formatting back
               CASE WHEN len(failed_checks) = 0 THEN md5(event_time || '-' || user_id || '-' || event_type) END
                   AS _event_id,
               file_index AS _file_index
        FROM checks
        """,
        {"future_limit": future_limit, "ingested_at": ingested_at},
    )
    raw = [f"_raw_{name} AS {name}" if name in ("event_time", "miles_amount") else name for name in HEADER]
    con.execute(f"""
        CREATE TABLE bronze.fct_event_stream_quarantine AS
        SELECT {", ".join(raw)}, _raw_line, _source_file, _source_line, _ingested_at, _batch_id, failed_checks
        FROM bronze.fct_event_stream WHERE len(failed_checks) > 0
    """)
    con.execute("DELETE FROM bronze.fct_event_stream WHERE len(failed_checks) > 0")


def _drop_bronze_work_columns(con: duckdb.DuckDBPyConnection) -> None:
    for column in ("_raw_event_time", "_raw_miles_amount", "failed_checks", "_raw_line", "_event_id", "_file_index"):
        con.execute(f"ALTER TABLE bronze.fct_event_stream DROP COLUMN {column}")


def _silver(con: duckdb.DuckDBPyConnection) -> None:
    # A later copy of an event_id is dropped: looked for among the ids whose 64-bit hash repeats only (a
    # hash collision merely adds a candidate), so the common case, no duplicate, costs one aggregation of
    # integers instead of a sort of every event.
    con.execute("""
        CREATE TABLE silver.fct_events AS
        WITH repeated AS (SELECT hash(_event_id) AS h FROM bronze.fct_event_stream GROUP BY h HAVING count(*) > 1),
        later_copies AS (
            SELECT _event_id, _file_index, _source_line FROM bronze.fct_event_stream
            WHERE hash(_event_id) IN (SELECT h FROM repeated)
            QUALIFY row_number() OVER (PARTITION BY _event_id ORDER BY _file_index, _source_line) > 1
        )
        SELECT _event_id AS event_id, event_time, event_date, user_id, event_type, transaction_category,
               miles_amount, platform, utm_source, country,
               '{"transaction_category":' || coalesce('"' || transaction_category || '"', 'null')
                   || ',"miles_amount":' || coalesce(CAST(miles_amount AS VARCHAR), 'null')
                   || ',"platform":' || coalesce('"' || platform || '"', 'null') || '}' AS event_data,
               _batch_id
        FROM bronze.fct_event_stream ANTI JOIN later_copies USING (_event_id, _file_index, _source_line)
    """)
    _drop_bronze_work_columns(con)
    # One row per user and active day: the day's counts and sums and its latest event. Everything
    # per day (dim_users, the gold tables) derives from it, so the events are read once.
    latest = (
        "{'t': event_time, 'id': event_id, 'type': event_type, 'cat': transaction_category, "
        "'miles': miles_amount, 'platform': platform}"
    )
    con.execute(f"""
        CREATE TEMP TABLE user_day AS
        SELECT user_id, event_date AS activity_date, count(*) AS n_events,
               count_if(event_type = 'miles_earned') AS n_earn, count_if(event_type = 'miles_redeemed') AS n_redeem,
               coalesce(sum(miles_amount) FILTER (WHERE event_type = 'miles_earned'), 0) AS earned,
               coalesce(sum(miles_amount) FILTER (WHERE event_type = 'miles_redeemed'), 0) AS redeemed,
               max({latest}) AS latest
        FROM silver.fct_events GROUP BY user_id, event_date
    """)
    con.execute("""
        CREATE TABLE silver.user_activity_daily AS
        SELECT user_id, activity_date, CAST(date_trunc('month', activity_date) AS DATE) AS activity_month
        FROM user_day
    """)
    con.execute("""
        CREATE TEMP TABLE users AS
        SELECT user_id, first.t AS first_event_time, CAST(first.t AS DATE) AS first_event_date,
               first.id AS first_event_id, first.utm AS acq_source, first.country AS country,
               wk(CAST(first.t AS DATE)) AS first_week, wk(last_date) AS last_week
        FROM (
            SELECT user_id, min({'t': event_time, 'id': event_id, 'utm': utm_source, 'country': country}) AS first,
                   max(event_date) AS last_date
            FROM silver.fct_events GROUP BY user_id
        )
    """)


def _dim_users(con: duckdb.DuckDBPyConnection) -> None:
    latest_json = (
        """'{"event_id":"' || latest.id || '","event_time":"' || strftime(latest.t, '%Y-%m-%d %H:%M:%S.%f')"""
        """ || '","event_type":"' || latest.type || '","transaction_category":' """
        """|| coalesce('"' || latest.cat || '"', 'null') || ',"miles_amount":' """
        """|| coalesce(CAST(latest.miles AS VARCHAR), 'null') || ',"platform":"' || latest.platform || '"}'"""
    )
    # The state after each active day holds until the day before the next one (or max_event_date):
    # a snapshot row is that state on day ds, and ds - last active day says which windows it is in.
    con.execute(f"""
        CREATE TEMP TABLE user_span AS
        WITH cumulative AS (
            SELECT user_id, activity_date, latest,
                   sum(n_events) OVER w AS total_events,
                   sum(earned) OVER w AS total_miles_earned,
                   sum(redeemed) OVER w AS total_miles_redeemed,
                   lead(activity_date) OVER (PARTITION BY user_id ORDER BY activity_date) AS next_date
            FROM user_day
            WINDOW w AS (PARTITION BY user_id ORDER BY activity_date ROWS UNBOUNDED PRECEDING)
        )
        SELECT c.user_id, c.activity_date, c.next_date, c.latest.t AS last_event_time, {latest_json} AS latest_event,
               c.total_events, c.total_miles_earned, c.total_miles_redeemed,
               c.total_miles_earned - c.total_miles_redeemed AS miles_balance,
               min(CASE WHEN c.total_miles_earned < c.total_miles_redeemed THEN c.activity_date END) OVER (
                   PARTITION BY c.user_id ORDER BY c.activity_date ROWS UNBOUNDED PRECEDING) AS first_negative_date,
               u.acq_source, u.country, u.first_event_time, u.first_event_date, u.first_event_id
        FROM cumulative c JOIN users u USING (user_id)
    """)
    con.execute("""
        CREATE TABLE silver.dim_users AS
        WITH expanded AS (
            SELECT *, CAST(unnest(range(coalesce(next_date, max_event_date() + 1) - activity_date)) AS INTEGER)
                      AS days_since
            FROM user_span
        )
        SELECT user_id, activity_date + days_since AS ds, acq_source, country, first_event_time, first_event_date,
               last_event_time, activity_date AS last_event_date, CAST(total_events AS BIGINT) AS total_events,
               CAST(total_miles_earned AS DECIMAL(20, 2)) AS total_miles_earned,
               CAST(total_miles_redeemed AS DECIMAL(20, 2)) AS total_miles_redeemed,
               CAST(miles_balance AS DECIMAL(20, 2)) AS miles_balance,
               days_since <= 6 AS is_active_7d, days_since <= 29 AS is_active_30d, days_since <= 89 AS is_active_90d,
               latest_event, first_event_id, first_negative_date
        FROM expanded
    """)


def _gold(con: duckdb.DuckDBPyConnection, lookback_weeks: int, max_week_offset: int) -> None:
    label = "strftime({0}, '%Y-%m-%d')"
    con.execute(f"""
        CREATE TABLE gold.agg_active_user AS
        WITH a AS (
            SELECT d.user_id, d.activity_date, u.acq_source, u.country
            FROM silver.user_activity_daily d JOIN users u USING (user_id)
        ), periods AS (
            SELECT 'daily' AS period_type, activity_date AS period_start_date, activity_date AS period_end_date,
                   acq_source, country, count(*) AS active_users
            FROM a GROUP BY ALL
            UNION ALL
            SELECT 'weekly', wk(activity_date), wk(activity_date) + 6, acq_source, country, count(DISTINCT user_id)
            FROM a GROUP BY ALL
            UNION ALL
            SELECT 'monthly', CAST(date_trunc('month', activity_date) AS DATE), last_day(activity_date),
                   acq_source, country, count(DISTINCT user_id)
            FROM a GROUP BY ALL
        )
        SELECT period_type, period_start_date, period_end_date, {label.format("period_start_date")} AS period_label,
               acq_source, country, active_users, period_end_date > max_event_date() AS is_partial_period
        FROM periods
    """)

    # Every user in every week from their first week to the week of max_event_date: lifecycle,
    # growth and retention are counts over this grid.
    recent = (
        "coalesce(bool_or(active) OVER (PARTITION BY user_id ORDER BY week "
        f"ROWS BETWEEN {lookback_weeks} PRECEDING AND 1 PRECEDING), false)"
        if lookback_weeks > 0
        else "false"
    )
    con.execute(f"""
        CREATE TEMP TABLE user_weeks AS
        WITH active AS (SELECT DISTINCT user_id, wk(activity_date) AS week FROM silver.user_activity_daily),
        spine AS (
            SELECT first_week + CAST(7 * unnest(range((wk(max_event_date()) - first_week) // 7 + 1)) AS INTEGER) AS week
            FROM (SELECT min(first_week) AS first_week FROM users)
        ), grid AS (
            SELECT u.user_id, u.acq_source, u.country, u.first_week, u.last_week, s.week,
                   a.user_id IS NOT NULL AS active
            FROM users u JOIN spine s ON s.week >= u.first_week
            LEFT JOIN active a ON a.user_id = u.user_id AND a.week = s.week
        )
        SELECT *, coalesce(lag(active) OVER (PARTITION BY user_id ORDER BY week), false) AS prev_active,
               {recent} AS recent
        FROM grid
    """)
    con.execute(f"""
        CREATE TABLE gold.agg_user_lifecycle_weekly AS
        SELECT week AS cutoff_week, {label.format("week")} AS cutoff_week_label, acq_source, country,
               CASE WHEN active THEN CASE WHEN week = first_week THEN 'new' WHEN recent THEN 'retained'
                                          ELSE 'resurrected' END
                    ELSE CASE WHEN recent THEN 'dormant' ELSE 'churned' END END AS user_status,
               count(*) AS user_count, week + 6 > max_event_date() AS is_partial_period
        FROM user_weeks GROUP BY ALL
    """)
    con.execute(f"""
        CREATE TABLE gold.agg_user_retention AS
        WITH cells AS (
            SELECT first_week AS cohort_week, CAST((week - first_week) // 7 AS INTEGER) AS week_offset,
                   week AS period_start_date, acq_source, country, count(*) AS cohort_size,
                   count_if(active) AS retained_users, count_if(week <= last_week) AS unbounded_retained_users
            FROM user_weeks WHERE week - first_week <= 7 * {max_week_offset}
            GROUP BY ALL
        )
        SELECT cohort_week, {label.format("cohort_week")} AS cohort_label, week_offset, period_start_date,
               acq_source, country, cohort_size, retained_users,
               {_round6("retained_users", "cohort_size")} AS retention_rate, unbounded_retained_users,
               period_start_date + 6 > max_event_date() AS is_partial_period
        FROM cells
    """)
    con.execute(f"""
        CREATE TABLE gold.agg_growth_accounting_weekly AS
        WITH cells AS (
            SELECT week AS week_start, acq_source, country,
                   count_if(active) AS active_users, count_if(prev_active) AS prev_active_users,
                   count_if(active AND week = first_week) AS new_users,
                   count_if(active AND prev_active) AS retained_users,
                   count_if(active AND NOT prev_active AND first_week < week) AS resurrected_users,
                   count_if(prev_active AND NOT active) AS churned_users
            FROM user_weeks GROUP BY ALL
        )
        SELECT week_start, {label.format("week_start")} AS week_label, acq_source, country, active_users,
               prev_active_users, new_users, retained_users, resurrected_users, churned_users,
               {_round6("new_users + resurrected_users", "churned_users")} AS quick_ratio,
               week_start + 6 > max_event_date() AS is_partial_period
        FROM cells
    """)
    # The contract's equivalence: dau / wau_7d / mau_30d are counts of that day's snapshots.
    con.execute(f"""
        CREATE TABLE gold.agg_engagement_daily AS
        WITH cells AS (
            SELECT ds AS activity_date, acq_source, country, count_if(last_event_date = ds) AS dau,
                   count_if(is_active_7d) AS wau_7d, count_if(is_active_30d) AS mau_30d
            FROM silver.dim_users GROUP BY ALL
        )
        SELECT activity_date, acq_source, country, dau, wau_7d, mau_30d,
               {_round6("dau", "mau_30d")} AS dau_mau_rate, {_round6("dau", "wau_7d")} AS dau_wau_rate,
               false AS is_partial_period
        FROM cells
    """)
    cents = "CAST({0} * 100 AS HUGEINT)"
    # Both miles tables count users per week: one pass over the events to (week, user, type, category).
    con.execute("""
        CREATE TEMP TABLE user_week_category AS
        SELECT w.*, u.acq_source, u.country
        FROM (
            SELECT wk(event_date) AS week_start, user_id, event_type, transaction_category, count(*) AS events,
                   coalesce(sum(miles_amount), 0) AS miles
            FROM silver.fct_events WHERE event_type IN ('miles_earned', 'miles_redeemed', 'reward_search')
            GROUP BY ALL
        ) AS w JOIN users u USING (user_id)
    """)
    con.execute(f"""
        CREATE TABLE gold.agg_miles_weekly AS
        WITH spine AS (
            SELECT week_start, acq_source, country, least(week_start + 6, max_event_date()) AS end_date
            FROM gold.agg_growth_accounting_weekly
        ), moves AS (
            SELECT week_start, acq_source, country,
                   sum(miles) FILTER (WHERE event_type = 'miles_earned') AS miles_earned,
                   sum(miles) FILTER (WHERE event_type = 'miles_redeemed') AS miles_redeemed,
                   sum(events) FILTER (WHERE event_type = 'miles_earned') AS earn_events,
                   sum(events) FILTER (WHERE event_type = 'miles_redeemed') AS redeem_events,
                   count(DISTINCT user_id) FILTER (WHERE event_type = 'miles_earned') AS earning_users,
                   count(DISTINCT user_id) FILTER (WHERE event_type = 'miles_redeemed') AS redeeming_users
            FROM user_week_category WHERE event_type IN ('miles_earned', 'miles_redeemed')
            GROUP BY ALL
        ), balances AS (
            -- the snapshots of the weeks' end dates: every user acquired by then, balance as of then
            SELECT ds, acq_source, country, sum(miles_balance) AS outstanding_miles,
                   sum(greatest(miles_balance, 0)) AS liability_miles,
                   count_if(miles_balance < 0) AS negative_balance_users
            FROM silver.dim_users WHERE ds = wk(ds) + 6 OR ds = max_event_date()
            GROUP BY ALL
        ), joined AS (
            SELECT s.week_start, s.acq_source, s.country, s.end_date,
                   CAST(coalesce(m.miles_earned, 0) AS DECIMAL(18, 2)) AS miles_earned,
                   CAST(coalesce(m.miles_redeemed, 0) AS DECIMAL(18, 2)) AS miles_redeemed,
                   coalesce(m.earn_events, 0) AS earn_events, coalesce(m.redeem_events, 0) AS redeem_events,
                   coalesce(m.earning_users, 0) AS earning_users, coalesce(m.redeeming_users, 0) AS redeeming_users,
                   CAST(coalesce(b.outstanding_miles, 0) AS DECIMAL(18, 2)) AS outstanding_miles,
                   CAST(coalesce(b.liability_miles, 0) AS DECIMAL(18, 2)) AS liability_miles,
                   coalesce(b.negative_balance_users, 0) AS negative_balance_users
            FROM spine s
            LEFT JOIN moves m USING (week_start, acq_source, country)
            LEFT JOIN balances b ON b.ds = s.end_date AND b.acq_source = s.acq_source AND b.country = s.country
        )
        SELECT week_start, {label.format("week_start")} AS week_label, acq_source, country, miles_earned,
               miles_redeemed, CAST(miles_earned - miles_redeemed AS DECIMAL(18, 2)) AS net_miles, earn_events,
               redeem_events, earning_users, redeeming_users, outstanding_miles, liability_miles,
               negative_balance_users,
               {_round6(cents.format("miles_redeemed"), cents.format("miles_earned"))} AS redemption_rate,
               week_start + 6 > max_event_date() AS is_partial_period
        FROM joined
    """)
    con.execute(f"""
        CREATE TABLE gold.agg_miles_category_weekly AS
        SELECT week_start, {label.format("week_start")} AS week_label, event_type, transaction_category, acq_source,
               country, sum(events) AS events, count(*) AS users, CAST(sum(miles) AS DECIMAL(18, 2)) AS miles,
               week_start + 6 > max_event_date() AS is_partial_period
        FROM user_week_category GROUP BY ALL
    """)
    con.execute("""
        CREATE TABLE gold.rpt_negative_balance_users AS
        SELECT user_id, ds AS as_of_ds, miles_balance, total_miles_earned, total_miles_redeemed, first_negative_date,
               acq_source, country
        FROM silver.dim_users WHERE ds = max_event_date() AND miles_balance < 0
    """)


def _anomalies(
    con: duckdb.DuckDBPyConnection,
    training_periods: int,
    min_training_periods: int,
    sensitivity: float,
    min_expected: float,
) -> None:
    # Users sit in one (acq_source, country) cell, so a distinct count of a country or a source is the
    # sum over its cells: the series roll the per-cell counts up with grouping sets.
    segment = (
        "CASE WHEN grouping(country) = 0 THEN 'country' WHEN grouping(acq_source) = 0 THEN 'acq_source' "
        "ELSE 'all' END AS segment_type, coalesce(country, acq_source, 'all') AS segment_value"
    )
    rollup = "GROUPING SETS ((period_start), (period_start, country), (period_start, acq_source))"
    daily = ", ".join(DAILY_ANOMALY_METRICS)
    weekly = ", ".join(WEEKLY_ANOMALY_METRICS)
    con.execute(f"""
        CREATE TEMP TABLE series AS
        WITH cells AS (
            SELECT d.activity_date AS period_start, u.acq_source, u.country, sum(d.n_events) AS events,
                   count(*) AS active_users, 0 AS new_users, sum(d.n_earn) AS earn_events,
                   sum(d.n_redeem) AS redeem_events
            FROM user_day d JOIN users u USING (user_id) GROUP BY ALL
            UNION ALL
            SELECT first_event_date, acq_source, country, 0, 0, count(*), 0, 0 FROM users GROUP BY ALL
        ), by_segment AS (
            SELECT {segment}, period_start, sum(events) AS events, sum(active_users) AS active_users,
                   sum(new_users) AS new_users, sum(earn_events) AS earn_events, sum(redeem_events) AS redeem_events
            FROM cells GROUP BY {rollup}
        ), segment_first AS (
            SELECT segment_type, segment_value, min(period_start) AS first_day FROM by_segment GROUP BY ALL
        ), days AS (
            SELECT segment_type, segment_value,
                   first_day + CAST(unnest(range(max_event_date() - first_day + 1)) AS INTEGER) AS period_start
            FROM segment_first
        ), daily AS (
            SELECT d.segment_type, d.segment_value, d.period_start,
                   {", ".join(f"coalesce(b.{m}, 0) AS {m}" for m in DAILY_ANOMALY_METRICS)}
            FROM days d LEFT JOIN by_segment b USING (segment_type, segment_value, period_start)
        ), weekly AS (
            SELECT {segment}, period_start,
                   {", ".join(f"sum({m}) AS {m}" for m in WEEKLY_ANOMALY_METRICS)}
            FROM (SELECT week_start AS period_start, * FROM gold.agg_growth_accounting_weekly
                  WHERE week_start + 6 <= max_event_date())
            GROUP BY {rollup}
        )
        SELECT unnest([{", ".join(_lit(m) for m in DAILY_ANOMALY_METRICS)}]) AS metric, 'day' AS grain,
               segment_type, segment_value, period_start, CAST(unnest([{daily}]) AS DOUBLE) AS value
        FROM daily
        UNION ALL
        SELECT unnest([{", ".join(_lit(m) for m in WEEKLY_ANOMALY_METRICS)}]), 'week', segment_type,
               segment_value, period_start, CAST(unnest([{weekly}]) AS DOUBLE)
        FROM weekly
    """)
    # Training points of each period p: the same series at p - 7k days (the same weekday; k weeks back
    # for week starts), t = -k, listed by k so the pairs are the reference's.
    pairs = (
        "flatten(list_transform(range(1, n + 1), lambda i: list_transform(range(i + 1, n + 1), "
        "lambda j: (xs[j] - xs[i]) / (ts[j] - ts[i]))))"
    )
    con.execute(f"""
        CREATE TABLE gold.agg_metric_anomalies AS
        WITH training AS (
            SELECT p.metric, p.grain, p.segment_type, p.segment_value, p.period_start, p.value,
                   list(s.value ORDER BY k.k) AS xs, list(-k.k ORDER BY k.k) AS ts, count(*) AS n
            FROM series p CROSS JOIN range(1, {training_periods} + 1) AS k(k)
            JOIN series s ON s.metric = p.metric AND s.grain = p.grain AND s.segment_type = p.segment_type
                 AND s.segment_value = p.segment_value AND s.period_start = p.period_start - CAST(7 * k.k AS INTEGER)
            GROUP BY ALL
            HAVING count(*) >= {min_training_periods}
        ), slopes AS (
            SELECT *, list_sort({pairs}) AS _slopes FROM training
        ), slope AS (
            SELECT *, {_median("_slopes")} AS slope FROM slopes
        ), levels AS (
            SELECT *, list_sort(list_transform(range(1, n + 1), lambda i: xs[i] - slope * ts[i])) AS _levels
            FROM slope
        ), level AS (
            SELECT *, {_median("_levels")} AS level FROM levels
        ), deviations AS (
            SELECT *, list_sort(list_transform(range(1, n + 1), lambda i: abs(xs[i] - (level + slope * ts[i]))))
                   AS _deviations
            FROM level
        ), fitted AS (
            SELECT *, {_median("_deviations")} AS mad, greatest(level, CAST(0 AS DOUBLE)) AS expected
            FROM deviations
        ), scored AS (
            SELECT *, greatest(1.4826 * mad, sqrt(expected)) AS spread FROM fitted
            WHERE expected >= {float(min_expected)!r}
        )
        SELECT metric, grain, segment_type, segment_value, period_start, value, expected,
               expected - {float(sensitivity)!r} * spread AS lower_bound,
               expected + {float(sensitivity)!r} * spread AS upper_bound,
               (value - expected) / spread AS score, CAST(n AS INTEGER) AS training_periods,
               abs((value - expected) / spread) > {float(sensitivity)!r} AS is_anomaly,
               CASE WHEN abs((value - expected) / spread) > {float(sensitivity)!r}
                    THEN CASE WHEN value > expected THEN 'spike' ELSE 'drop' END END AS direction
        FROM scored
    """)


def rebuild(
    csv_paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    ingested_at: datetime,
    week_start: str = "sunday",
    lookback_weeks: int = 4,
    max_week_offset: int = 16,
    future_slack_minutes: int = 60,
    training_periods: int = 8,
    min_training_periods: int = 4,
    sensitivity: float = 4.5,
    min_expected: float = 5.0,
    threads: int | None = None,
) -> PeerResult:
    """Rebuild every table from ``csv_paths`` (in that order: it decides which copy of a duplicate is kept).

    With ``out_dir``, each table is also written to ``out_dir/<layer>.<table>.parquet``, inside the timed
    part. The tables stay in the returned result's in-memory database until ``close()``.
    """
    import duckdb  # benchmark-only: the jobs never import this module

    if week_start not in WEEK_START_DAYS:
        raise ValueError(f"week_start must be one of {tuple(WEEK_START_DAYS)}, got {week_start!r}")
    paths = [os.fspath(p) for p in csv_paths]
    if not paths:
        raise ValueError("no CSV file to rebuild from")
    if len(set(paths)) != len(paths):
        raise ValueError("the same file is listed twice")
    if ingested_at.tzinfo is not None:
        ingested_at = ingested_at.astimezone(UTC).replace(tzinfo=None)
    future_limit = ingested_at + timedelta(minutes=future_slack_minutes)

    temp_dir = tempfile.mkdtemp(prefix="duckdb_peer_")
    config: dict[str, Any] = {"preserve_insertion_order": False, "temp_directory": temp_dir}
    if threads:
        config["threads"] = threads
    started = time.perf_counter()
    con = duckdb.connect(":memory:", config=config)
    try:
        for layer in ("bronze", "silver", "gold"):
            con.execute(f"CREATE SCHEMA {layer}")
        # Monday = 1 .. Saturday = 6, Sunday = 0: the days since the week's first day.
        con.execute(
            f"CREATE TEMP MACRO wk(d) AS d - CAST((dayofweek(d) + 7 - {WEEK_START_DAYS[week_start]}) % 7 AS INTEGER)"
        )
        _bronze(con, paths, future_limit, ingested_at)
        _silver(con)
        max_date: date | None = con.execute("SELECT max(event_date) FROM silver.fct_events").fetchone()[0]
        # A constant from here on (a macro is inlined): NULL when nothing was accepted, which leaves every
        # later table empty.
        literal = "NULL" if max_date is None else f"DATE {_lit(max_date.isoformat())}"
        con.execute(f"CREATE TEMP MACRO max_event_date() AS CAST({literal} AS DATE)")
        _dim_users(con)
        _gold(con, lookback_weeks, max_week_offset)
        _anomalies(con, training_periods, min_training_periods, sensitivity, min_expected)
        rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)
            for table in TABLES:
                target = os.path.join(os.fspath(out_dir), f"{table}.parquet")
                con.execute(f"COPY {table} TO {_lit(target)} (FORMAT parquet)")
        seconds = time.perf_counter() - started
    except BaseException:
        con.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return PeerResult(seconds=seconds, rows=rows, connection=con, temp_dir=temp_dir)


# --------------------------------------------------------------------------------------------- command line


def csv_files(input_path: str | os.PathLike[str]) -> list[str]:
    """A folder's ``*.csv`` files (any case) in name order, as the bronze job lists them; a file as itself."""
    path = Path(input_path)
    if path.is_dir():
        files = sorted(path.iterdir(), key=lambda p: p.name)
        return [str(p) for p in files if p.is_file() and p.suffix.lower() == ".csv"]
    if not path.is_file():
        raise FileNotFoundError(f"input path does not exist: {path}")
    return [str(path)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lakehouse.duckdb_peer",
        description="Rebuild every table of the contract from CSV files with DuckDB (the benchmark's peer) and "
        "print the seconds and the rows of each table.",
    )
    parser.add_argument("--input", required=True, help="a CSV file or a folder of CSV files")
    parser.add_argument("--out", help="write each table to OUT/<layer>.<table>.parquet (timed)")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: one per core)")
    parser.add_argument("--week-start", choices=tuple(WEEK_START_DAYS), default="sunday")
    parser.add_argument(
        "--ingested-at",
        type=datetime.fromisoformat,
        help="ingestion time of the future-time rule, UTC (default: now)",
    )
    args = parser.parse_args(argv)
    files = csv_files(args.input)
    if not files:
        print(f"no CSV file in {args.input}", file=sys.stderr)
        return 2
    ingested_at = args.ingested_at or datetime.now(UTC).replace(tzinfo=None)
    result = rebuild(files, args.out, ingested_at=ingested_at, week_start=args.week_start, threads=args.threads)
    try:
        print(f"duckdb peer: {len(files)} file(s) rebuilt in {result.seconds:.2f} s"
              + (f", Parquet in {args.out}" if args.out else " (in memory, nothing written)"))  # fmt: skip
        width = max(len(t) for t in TABLES)
        for table in TABLES:
            print(f"  {table:<{width}}  {result.rows[table]:>12,}")
    finally:
        result.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
