"""The table specs: layer, name, location, partitioning, schema, grain, and what "restricted" means.

:class:`TableSpec` and the column helpers every table module declares its table with, and the specs of the
tables the platform's own jobs write (bronze, silver, the bookkeeping, the data-quality report). A gold table
is declared by its own module (``lakehouse/gold/tables/<table>.py``: spec, build, scope, checks);
:mod:`lakehouse.tables` finds every table. Jobs write through the specs, tests build their DataFrames with
their schemas, and the Thrift server and ``scripts/sql.sh`` register every table. Each Delta table carries
``grain`` as its comment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import types as T

from lakehouse.config import LakehouseConfig


@dataclass(frozen=True)
class RatioMetric:
    """A rate column of a gold table, re-aggregated over any set of its rows (segments, periods).

    A stored per-row rate cannot be averaged across segments; the same rate over several rows is
    the sum of its numerator columns over the sum of its denominator columns. Declared here, next
    to the columns, so that every consumer (the dashboards, ad-hoc SQL) uses the one definition;
    for a single row it equals the stored column of the same name (a test checks it).
    """

    name: str
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    description: str

    def sql(self, column: Callable[[str], str] = lambda c: c) -> str:
        """``SUM(a) [+ SUM(b)] / NULLIF(SUM(c), 0)``; ``column`` may wrap each column (e.g. a filter)."""

        def sums(columns: tuple[str, ...]) -> str:
            return " + ".join(f"SUM({column(c)})" for c in columns)

        numerator = sums(self.numerator)
        numerator = f"({numerator})" if len(self.numerator) > 1 else numerator
        return f"{numerator} / NULLIF({sums(self.denominator)}, 0)"


@dataclass(frozen=True)
class TableSpec:
    layer: str
    name: str
    schema: T.StructType
    grain: str
    partition_by: tuple[str, ...] = ()
    #: The columns that identify a row (the grain); unique and never null (the gold checks test it).
    keys: tuple[str, ...] = ()
    #: Rates of this table re-aggregated over several rows (see :class:`RatioMetric`).
    metrics: tuple[RatioMetric, ...] = ()
    #: The table holds user ids (who the members behind a number are): over the SQL endpoint, readable only by a
    #: user granted it by name (a layer's ``*`` grant does not include it; docs/serving.md).
    restricted: bool = False

    def metric(self, name: str) -> RatioMetric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"{self.full_name} declares no metric {name!r}")

    @property
    def full_name(self) -> str:
        return f"{self.layer}.{self.name}"

    def path(self, config: LakehouseConfig) -> str:
        return config.table_path(self.layer, self.name)


#: What a column means wherever it appears without a table-specific comment (every column is documented;
#: tests/unit/test_registry.py checks it).
COLUMN_DOCS = {
    "event_time": "when the event happened: wall-clock time in the configured time zone",
    "user_id": "member id, 'u_' + digits",
    "event_type": "miles_earned | miles_redeemed | reward_search | share | like",
    "transaction_category": "merchant category (earned), flight/hotel (redeemed), brand (search); null for share/like",
    "miles_amount": "miles earned or redeemed; null for reward_search, share and like",
    "platform": "ios | android | web",
    "utm_source": "acquisition channel of the event: google | facebook | tiktok | organic | referral",
    "country": "SG | MY | PH | ID | TH; in dim_users and gold, the country of the user's first event",
    "acq_source": "utm_source of the user's first event (ties on event_time: smallest event_id)",
    "event_date": "date of event_time",
    "first_event_time": "time of the user's first event",
    "first_event_date": "date of the user's first event",
    "last_event_time": "time of the user's latest event at or before ds",
    "last_event_date": "date of the user's latest event at or before ds",
    "total_events": "events of the user with event_date <= ds",
    "total_miles_earned": "sum of miles_amount of miles_earned events with event_date <= ds",
    "total_miles_redeemed": "sum of miles_amount of miles_redeemed events with event_date <= ds",
    "is_active_7d": "any event with event_date in [ds-6, ds]",
    "is_active_30d": "any event with event_date in [ds-29, ds]",
    "is_active_90d": "any event with event_date in [ds-89, ds]",
    "period_start_date": "first day of the period",
    "period_end_date": "last day of the period",
    "active_users": "distinct users with at least one event in the period, in the segment",
    "is_partial_period": "the period ends after the data's last event date: numbers are to-date",
    "cutoff_week_label": "cutoff_week as yyyy-MM-dd",
    "user_count": "users of the segment with this status in the week",
    "cohort_week": "first day of the week of the users' first event",
    "cohort_label": "cohort_week as yyyy-MM-dd",
    "week_offset": "weeks since cohort_week",
    "cohort_size": "users of the cohort and segment",
    "retention_rate": "retained_users / cohort_size, 0..1",
    "unbounded_retained_users": "cohort users active in that week or any later week",
    "week_start": "first day of the week",
    "week_label": "week_start as yyyy-MM-dd",
    "prev_active_users": "users of the segment active in the previous week",
    "new_users": "users whose first week is this week",
    "resurrected_users": "active this week, not in the previous week, active before",
    "churned_users": "active in the previous week, not this week",
    "miles_balance": "total_miles_earned - total_miles_redeemed (may be negative)",
    "batch_id": "bronze batch: one ingested file (name + content hash)",
    "run_id": "job run that wrote the row (see ops.job_runs)",
    "source_file": "path of the ingested file",
    "file_name": "file name without folder",
    "content_sha256": "SHA-256 of the file's bytes",
    "file_size": "bytes",
    "rows_accepted": "rows written to bronze.fct_event_stream",
    "rows_quarantined": "rows written to bronze.fct_event_stream_quarantine",
    "ingested_at": "when the bronze job read the file",
    "job": "job name (see conf dag)",
    "started_at": "run start (UTC)",
    "ended_at": "run end (UTC)",
    "rows_in": "rows the job read",
    "rows_out": "rows the job wrote or published",
    "message": "why the run failed, when it did",
    "table_name": "table the check is about",
    "check_name": "rule or check name",
    "rows_checked": "rows the check looked at",
    "failed_rows": "rows breaking the check (0 = pass)",
    "details": "what was compared, or examples",
    "checked_at": "when the result was recorded (UTC)",
    "rows_inserted": "new rows the consumer inserted from the batch",
    "processed_at": "when the consumer recorded the batch (UTC)",
    "miles_earned": "sum of miles_amount of the segment's miles_earned events in the week",
    "miles_redeemed": "sum of miles_amount of the segment's miles_redeemed events in the week",
    "net_miles": "miles_earned - miles_redeemed",
    "earn_events": "miles_earned events of the week",
    "redeem_events": "miles_redeemed events of the week",
    "earning_users": "distinct users with a miles_earned event in the week",
    "redeeming_users": "distinct users with a miles_redeemed event in the week",
    "outstanding_miles": "sum of the segment's users' balances at the week's end (may be negative)",
    "liability_miles": "sum of the positive balances at the week's end: what the program owes",
    "negative_balance_users": "users of the segment whose balance at the week's end is negative",
    "redemption_rate": "miles_redeemed / miles_earned; null when nothing was earned",
}


def column(name: str, dtype: T.DataType, nullable: bool = True, comment: str = "") -> T.StructField:
    comment = comment or COLUMN_DOCS.get(name, "")
    return T.StructField(name, dtype, nullable, {"comment": comment} if comment else {})


STRING, LONG, INT, DATE, TS, BOOL, DOUBLE = (
    T.StringType(), T.LongType(), T.IntegerType(), T.DateType(), T.TimestampType(), T.BooleanType(),
    T.DoubleType(),
)  # fmt: skip
MILES = T.DecimalType(10, 2)
#: Sums of miles in the gold tables (docs/contract.md: decimal(18,2), 0 when nothing was summed).
MILES_SUM = T.DecimalType(18, 2)

#: How ``event_time`` is written in the source, and in the event_id formula (Spark datetime pattern).
EVENT_TIME_PATTERN = "yyyy-MM-dd HH:mm:ss.SSSSSS"

#: The 8 source columns, in file order.
SOURCE_COLUMNS = (
    "event_time", "user_id", "event_type", "transaction_category", "miles_amount", "platform",
    "utm_source", "country",
)  # fmt: skip
#: The source file's header line.
SOURCE_HEADER = ",".join(SOURCE_COLUMNS)

_LINEAGE = [
    column("_source_file", STRING, False, "path of the CSV file the record came from"),
    column("_source_line", LONG, False, "1-based physical line number in that file (header is line 1)"),
    column("_ingested_at", TS, False, "when the bronze job read the file"),
    column("_batch_id", STRING, False, "one batch per ingested file (see ops.ingested_files)"),
]

BRONZE_EVENTS = TableSpec(
    "bronze", "fct_event_stream",
    T.StructType([
        column("event_time", TS, False), column("user_id", STRING, False), column("event_type", STRING, False),
        column("transaction_category", STRING), column("miles_amount", MILES), column("platform", STRING, False),
        column("utm_source", STRING, False), column("country", STRING, False),
        column("event_date", DATE, False, "date of event_time in the configured time zone"),
        *_LINEAGE,
        column("_warnings", T.ArrayType(STRING), False, "warning-level rules the record broke"),
    ]),
    "One row per accepted source record (validated raw events).",
    ("event_date",),
)  # fmt: skip

BRONZE_QUARANTINE = TableSpec(
    "bronze", "fct_event_stream_quarantine",
    T.StructType([
        *[column(c, STRING, True, f"raw {c} field as read (null when empty)") for c in SOURCE_COLUMNS],
        column("_raw_line", STRING, False, "the whole line as read"),
        *_LINEAGE,
        column("failed_checks", T.ArrayType(STRING), False, "names of the error-level rules broken"),
    ]),
    "One row per source record that broke an error-level rule, with its raw field strings.",
)  # fmt: skip

OPS_INGESTED_FILES = TableSpec(
    "ops", "ingested_files",
    T.StructType([
        column("batch_id", STRING, False), column("run_id", STRING, False), column("source_file", STRING, False),
        column("file_name", STRING, False), column("content_sha256", STRING, False), column("file_size", LONG, False),
        column("lines_read", LONG, False, "data lines (header excluded)"), column("rows_accepted", LONG, False),
        column("rows_quarantined", LONG, False),
        column("status", STRING, False, "committed | rejected (quarantine rate above threshold: quarantine rows "
           "written, accepted rows held back) | refused (wrong header or unreadable: nothing written) | "
           "ignored (not a CSV export: not read) | undone (started by run_id, which stopped before recording "
           "it: its rows were removed by a later run)"),
        column("ingested_at", TS, False),
        column("file_modified_at", TS, True, "modification time of the file when read: with name and size, the "
           "fast path that skips an ingested file without hashing it again"),
        column("min_event_date", DATE, True, "earliest event_date among the batch's accepted rows"),
        column("max_event_date", DATE, True, "latest event_date among the batch's accepted rows"),
        column("status_reason", STRING, True, "why a file was rejected, refused or ignored (null when committed)"),
    ]),
    "One row per file of the landing folder the bronze job decided on: each ingested batch, and each "
    "rejected, refused or ignored file, recorded once (an unchanged file is not looked at again).",
)  # fmt: skip

OPS_BATCH_INTENTS = TableSpec(
    "ops", "batch_intents",
    T.StructType([
        column("batch_id", STRING, False), column("run_id", STRING, False, "the run about to write the batch's rows"),
        column("file_name", STRING, False), column("content_sha256", STRING, False),
        column("min_event_date", DATE, True, "earliest event_date among the rows about to be written"),
        column("max_event_date", DATE, True, "latest event_date among the rows about to be written"),
        column("started_at", TS, False),
    ]),
    "One row per batch a run is about to write, committed before its rows: a batch with an intent and no "
    "ops.ingested_files row of the same run was started by a run that stopped before its bookkeeping; the "
    "next run removes its rows from every table that carries a batch id (ops.ingested_files status 'undone').",
)  # fmt: skip

OPS_JOB_RUNS = TableSpec(
    "ops", "job_runs",
    T.StructType([
        column("run_id", STRING, False), column("job", STRING, False), column("parameters", STRING, False, "JSON"),
        column("started_at", TS, False), column("ended_at", TS, False),
        column("status", STRING, False, "succeeded | partial (bronze: a refused or rejected file; the DAG went on) | "
           "failed"),
        column("rows_in", LONG), column("rows_out", LONG),
        column("message", STRING),
        column("airflow_dag_id", STRING, True, "the Airflow DAG whose task ran the job (null outside Airflow)"),
        column("airflow_run_id", STRING, True, "the Airflow DAG run (its run_id)"),
        column("airflow_try_number", INT, True, "the task's try (1 = first; retries count up)"),
    ]),
    "One row per job run.",
)  # fmt: skip

OPS_DQ_RESULTS = TableSpec(
    "ops", "dq_results",
    T.StructType([
        column("run_id", STRING, False), column("job", STRING, False), column("table_name", STRING, False),
        column("batch_id", STRING), column("check_name", STRING, False),
        column("severity", STRING, False, "error | warn"), column("rows_checked", LONG, False),
        column("failed_rows", LONG, False),
        column("status", STRING, False, "pass | fail | warn | quarantined (bronze rule: rows set aside)"),
        column("details", STRING), column("checked_at", TS, False),
    ]),
    "One row per data-quality check per run (and per batch for bronze rules).",
)  # fmt: skip

OPS_PROCESSED_BATCHES = TableSpec(
    "ops", "processed_batches",
    T.StructType([
        column("consumer", STRING, False, "table that consumed the batch"), column("batch_id", STRING, False),
        column("run_id", STRING, False), column("rows_in", LONG, False), column("rows_inserted", LONG, False),
        column("min_event_date_inserted", DATE, True, "earliest event_date among newly inserted rows"),
        column("processed_at", TS, False),
        column("max_event_date_inserted", DATE, True, "latest event_date among newly inserted rows"),
    ]),
    "One row per (consumer, bronze batch) once the consumer has loaded it: the incremental watermark.",
)  # fmt: skip

OPS_AUDIENCE_EXPORTS = TableSpec(
    "ops", "audience_exports",
    T.StructType([
        column("export_id", STRING, False, "the export's id (a UUID)"),
        column("audience", STRING, False, "the audience's name in conf"),
        column("condition", STRING, False, "its condition on gold.user_status_weekly at the export"),
        column("cutoff_week", DATE, False, "the week exported"),
        column("columns", STRING, False, "the columns written, comma-separated (user_id first)"),
        column("rows", LONG, False, "members written"), column("file", STRING, False, "the file written"),
        column("file_format", STRING, False, "csv | parquet"),
        column("file_sha256", STRING, False, "SHA-256 of the file's bytes: the same audience and week give the same"),
        column("table_version", LONG, False, "the version of gold.user_status_weekly read"),
        column("os_user", STRING, False, "who exported it"),
        column("exported_at", TS, False, "when the file was written (UTC)"),
    ]),
    "One row per audience export (lakehouse audience export): what was written where, from which table version.",
)  # fmt: skip

OPS_ALERT_DELIVERIES = TableSpec(
    "ops", "alert_deliveries",
    T.StructType([
        column("delivery_id", STRING, False, "the delivery's id (a UUID)"),
        column("run_id", STRING, False, "the run whose brief it was"),
        column("channel", STRING, False, "the channel's name in conf's alerts.channels"),
        column("message_key", STRING, False, "the message's key (the same message delivered again has the same key)"),
        column("item_keys", T.ArrayType(STRING, False), False,
               "the findings it carried: each alerted once per channel (an anomaly by series, segment and period)"),
        column("attempts", INT, False, "tries of this delivery (bounded retries)"),
        column("status", STRING, False, "delivered | failed (owed: the next run delivers it)"),
        column("error", STRING, True, "why it failed, secrets removed"),
        column("sent_at", TS, False, "when the last attempt ended (UTC)"),
    ]),
    "One row per delivery of a run's brief to a channel; a finding is owed to a channel until a delivered row "
    "carries its key.",
)  # fmt: skip

SILVER_EVENTS = TableSpec(
    "silver", "fct_events",
    T.StructType([
        column("event_id", STRING, False, "md5 of event_time, user_id and event_type"),
        column("event_time", TS, False), column("event_date", DATE, False), column("user_id", STRING, False),
        column("event_type", STRING, False), column("transaction_category", STRING), column("miles_amount", MILES),
        column("platform", STRING, False), column("utm_source", STRING, False), column("country", STRING, False),
        column("event_data", STRING, False, "JSON: transaction_category, miles_amount, platform"),
        column("_batch_id", STRING, False, "bronze batch of the copy kept: the file whose name sorts first"),
    ]),
    "One row per distinct event_id.",
    ("event_date",),
    keys=("event_id",),
)  # fmt: skip

SILVER_DIM_USERS = TableSpec(
    "silver", "dim_users",
    T.StructType([
        column("user_id", STRING, False), column("ds", DATE, False, "snapshot day"),
        column("acq_source", STRING, False, "utm_source of the first event"),
        column("country", STRING, False, "country of the first event"),
        column("first_event_time", TS, False), column("first_event_date", DATE, False),
        column("last_event_time", TS, False), column("last_event_date", DATE, False),
        column("total_events", LONG, False), column("total_miles_earned", T.DecimalType(20, 2), False),
        column("total_miles_redeemed", T.DecimalType(20, 2), False),
        column("miles_balance", T.DecimalType(20, 2), False, "earned - redeemed; may be negative"),
        column("is_active_7d", BOOL, False), column("is_active_30d", BOOL, False), column("is_active_90d", BOOL, False),
        column("latest_event", STRING, False, "JSON of the latest event at or before ds"),
        column("first_event_id", STRING, False, "event_id of the first event (tie-break of acquisition)"),
        column("first_negative_date", DATE, True,
           "first day up to ds whose snapshot had a negative miles_balance; null if none"),
    ]),
    "One row per user_id per ds for every user whose first event date is <= ds.",
    ("ds",),
    keys=("user_id", "ds"),
)  # fmt: skip

GOLD_NEGATIVE_BALANCE = TableSpec(
    "gold", "rpt_negative_balance_users",
    T.StructType([
        column("user_id", STRING, False), column("as_of_ds", DATE, False, "latest snapshot day"),
        column("miles_balance", T.DecimalType(20, 2), False), column("total_miles_earned", T.DecimalType(20, 2), False),
        column("total_miles_redeemed", T.DecimalType(20, 2), False),
        column("first_negative_date", DATE, False, "first ds on which the balance was negative"),
        column("acq_source", STRING, False), column("country", STRING, False),
    ]),
    "One row per user whose miles_balance is negative in the latest dim_users snapshot.",
    keys=("user_id",),
    restricted=True,
)  # fmt: skip

SILVER_USER_ACTIVITY = TableSpec(
    "silver", "user_activity_daily",
    T.StructType([
        column("user_id", STRING, False),
        column("activity_date", DATE, False, "a day with at least one event of the user"),
        column("activity_month", DATE, False, "first day of activity_date's month (the partition)"),
    ]),
    "One row per user_id per activity_date with at least one event: the compact input of the gold tables, "
    "maintained incrementally (insert-only MERGE from the new silver events).",
    ("activity_month",),
    keys=("user_id", "activity_date"),
)  # fmt: skip


#: The tables the platform's own jobs declare here: bronze, silver, the bookkeeping and the data-quality report.
#: The gold tables are declared by their modules (lakehouse/gold/tables/); every table: :mod:`lakehouse.tables`.
CORE_TABLES: tuple[TableSpec, ...] = (
    BRONZE_EVENTS, BRONZE_QUARANTINE, SILVER_EVENTS, SILVER_DIM_USERS, SILVER_USER_ACTIVITY, GOLD_NEGATIVE_BALANCE,
    OPS_INGESTED_FILES, OPS_BATCH_INTENTS, OPS_JOB_RUNS, OPS_DQ_RESULTS, OPS_PROCESSED_BATCHES, OPS_AUDIENCE_EXPORTS,
    OPS_ALERT_DELIVERIES,
)  # fmt: skip
