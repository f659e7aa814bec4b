"""Pure transforms for ``silver.fct_events``: bronze rows -> one row per distinct event_id.

``event_id = md5(concat_ws('-', date_format(event_time, 'yyyy-MM-dd HH:mm:ss.SSSSSS'), user_id,
event_type))`` (SPEC.md). When the same event_id is delivered more than once, the first delivery
wins: earliest ``_ingested_at``, then source file name, then line. The same rule holds across runs
because the load only inserts event_ids the table does not have yet.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

EVENT_TIME_FORMAT = "yyyy-MM-dd HH:mm:ss.SSSSSS"
EVENT_COLUMNS = (
    "event_id", "event_time", "event_date", "user_id", "event_type", "transaction_category", "miles_amount",
    "platform", "utm_source", "country", "event_data", "_batch_id",
)  # fmt: skip


def event_id(event_time: Column, user_id: Column, event_type: Column) -> Column:
    return F.md5(F.concat_ws("-", F.date_format(event_time, EVENT_TIME_FORMAT), user_id, event_type))


def event_data(transaction_category: Column, miles_amount: Column, platform: Column) -> Column:
    """JSON of the type-specific attributes; null values are kept as JSON null."""
    attributes = F.struct(
        transaction_category.alias("transaction_category"),
        miles_amount.alias("miles_amount"),
        platform.alias("platform"),
    )
    return F.to_json(attributes, {"ignoreNullFields": "false"})


def with_event_columns(bronze_df: DataFrame) -> DataFrame:
    return bronze_df.withColumn("event_id", event_id(F.col("event_time"), F.col("user_id"), F.col("event_type")))


def first_delivery(events_df: DataFrame) -> DataFrame:
    """One row per event_id: the earliest delivery (ingestion time, file, line)."""
    order = Window.partitionBy("event_id").orderBy("_ingested_at", "_source_file", "_source_line")
    return events_df.withColumn("_delivery", F.row_number().over(order)).where(F.col("_delivery") == 1)


def build_events(bronze_df: DataFrame) -> DataFrame:
    """Bronze rows (any number of batches) -> deduplicated silver events."""
    deduped = first_delivery(with_event_columns(bronze_df))
    return deduped.select(
        "event_id",
        "event_time",
        "event_date",
        "user_id",
        "event_type",
        "transaction_category",
        "miles_amount",
        "platform",
        "utm_source",
        "country",
        event_data(F.col("transaction_category"), F.col("miles_amount"), F.col("platform")).alias("event_data"),
        "_batch_id",
    )
