"""Pure bronze transforms: raw CSV lines -> fields -> validated, typed rows or quarantine rows.

Input of :func:`split_fields` is one row per physical line with ``value`` (the line text),
``_source_file``, ``_source_line``, ``_ingested_at`` and ``_batch_id``, header line excluded.
Fields are split on commas outside double quotes (RFC 4180 quoting, ``""`` inside a quoted field);
an empty field is null ("missing"). Values are not trimmed or case-folded: ``" SG"`` is not ``SG``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.bronze.rules import EXPECTED_FIELD_COUNT, RULE_NAMES, broken_rules, parse_event_time
from lakehouse.registry import BRONZE_EVENTS, BRONZE_QUARANTINE, SOURCE_COLUMNS

_LINEAGE = ["_source_file", "_source_line", "_ingested_at", "_batch_id"]
# A comma followed by an even number of quotes up to the end of the line is outside quotes.
_SPLIT_OUTSIDE_QUOTES = r',(?=(?:[^"]*"[^"]*")*[^"]*$)'


def _unquote(field: Column) -> Column:
    unquoted = F.regexp_replace(F.regexp_extract(field, r'^"(.*)"$', 1), '""', '"')
    value = F.when(field.rlike(r'^".*"$'), unquoted).otherwise(field)
    return F.when(value != "", value)


def split_fields(lines_df: DataFrame) -> DataFrame:
    """One row per data line with the 8 raw fields (null when empty or absent) and ``_field_count``."""
    line = F.regexp_replace(F.col("value"), r"\r$", "")
    parts = F.when(line.contains('"'), F.split(line, _SPLIT_OUTSIDE_QUOTES, -1)).otherwise(F.split(line, ",", -1))
    with_parts = lines_df.withColumn("_raw_line", line).withColumn("_parts", parts)
    fields = [_unquote(F.get(F.col("_parts"), i)).alias(name) for i, name in enumerate(SOURCE_COLUMNS)]
    return with_parts.select(*fields, F.size("_parts").alias("_field_count"), "_raw_line", *_LINEAGE)


def with_checks(fields_df: DataFrame, severities: Mapping[str, str], slack_minutes: int) -> DataFrame:
    """Add ``failed_checks`` (error-level rules broken) and ``_warnings`` (warning-level ones)."""
    errors = tuple(n for n in RULE_NAMES if severities[n] == "error")
    warnings = tuple(n for n in RULE_NAMES if severities[n] == "warn")
    return fields_df.withColumn("failed_checks", broken_rules(errors, slack_minutes)).withColumn(
        "_warnings", broken_rules(warnings, slack_minutes)
    )


def accepted_rows(checked_df: DataFrame) -> DataFrame:
    """Typed bronze rows: records that broke no error-level rule."""
    event_time = parse_event_time(F.col("event_time"))
    return checked_df.where(F.size("failed_checks") == 0).select(
        event_time.alias("event_time"),
        "user_id",
        "event_type",
        "transaction_category",
        F.col("miles_amount").cast("decimal(10,2)").alias("miles_amount"),
        "platform",
        "utm_source",
        "country",
        F.to_date(event_time).alias("event_date"),
        *_LINEAGE,
        "_warnings",
    )


def quarantined_rows(checked_df: DataFrame) -> DataFrame:
    """Raw field strings of the records that broke at least one error-level rule."""
    return checked_df.where(F.size("failed_checks") > 0).select(
        *SOURCE_COLUMNS, "_raw_line", *_LINEAGE, "failed_checks"
    )


def batch_profile(checked_df: DataFrame) -> DataFrame:
    """One row per batch, in one aggregation pass: what validation found before anything is written.

    Columns: ``_batch_id``, ``lines`` (data lines read), ``quarantined`` (lines breaking an
    error-level rule), ``min_event_date`` / ``max_event_date`` of the accepted rows, and one
    column per rule in RULE_NAMES with the rows breaking it (errors and warnings alike).
    """
    broken = F.array_union("failed_checks", "_warnings")
    accepted_date = F.when(F.size("failed_checks") == 0, F.to_date(parse_event_time(F.col("event_time"))))
    return checked_df.groupBy("_batch_id").agg(
        F.count(F.lit(1)).alias("lines"),
        F.count(F.when(F.size("failed_checks") > 0, 1)).alias("quarantined"),
        F.min(accepted_date).alias("min_event_date"),
        F.max(accepted_date).alias("max_event_date"),
        *[F.count(F.when(F.array_contains(broken, name), 1)).alias(name) for name in RULE_NAMES],
    )


assert len(SOURCE_COLUMNS) == EXPECTED_FIELD_COUNT
assert [f.name for f in BRONZE_EVENTS.schema.fields][:8] == list(SOURCE_COLUMNS)
assert [f.name for f in BRONZE_QUARANTINE.schema.fields][:8] == list(SOURCE_COLUMNS)
