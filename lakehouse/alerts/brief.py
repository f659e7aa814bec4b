"""The morning brief: each run's findings, delivered to the team through conf's ``alerts.channels``.

After a run (``lakehouse run``; in Airflow its own last task, ``lakehouse alerts send``), one message per channel
with what is owed to it:

- **findings**, each with a stable key and alerted once per channel: the anomalies of the data's last
  ``anomaly.alert_days`` days (``anomaly:<metric>:<grain>:<segment>:<period>``), error-level check failures
  (``check:<run>:<table>.<check>``), refused or rejected files and quarantined rows (``file:<batch>:<status>``,
  ``quarantine:<batch>``) and stale data (``stale:<newest event time>``), of the last ``alerts.lookback_days``;
- **the audiences' sizes** for the latest complete week and their change (lakehouse/audiences.py), when the run
  published data.

A finding is owed to a channel until a delivered ``ops.alert_deliveries`` row of that channel carries its key: a
channel that is down (a failed delivery is recorded, after bounded retries) never fails the run; the next run
delivers what is owed, and nothing twice. A run that published nothing and owes nothing sends nothing. Findings
are read without a JVM on a local warehouse (delta-rs); only the audiences' sizes need a Spark session (the
engine's when it runs). Secrets stay in the channels (lakehouse/channels.py): never logged or stored.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from lakehouse import delta_rs
from lakehouse.channels import Channel, Delivery, Message, channel_from_dict
from lakehouse.config import ConfigError, LakehouseConfig
from lakehouse.ops import AlertDeliveryRecord, append_records, utc_now
from lakehouse.registry import (
    OPS_ALERT_DELIVERIES,
    OPS_DQ_RESULTS,
    OPS_INGESTED_FILES,
    OPS_JOB_RUNS,
    SILVER_EVENTS,
    TableSpec,
)

log = logging.getLogger("lakehouse")

ANOMALIES = "gold.agg_metric_anomalies"
ANOMALY_COLUMNS = ["metric", "grain", "segment_type", "segment_value", "period_start", "value", "expected",
                   "lower_bound", "upper_bound", "score", "is_anomaly", "direction"]  # fmt: skip
BAD_FILE_STATUSES = ("refused", "rejected")


@dataclass(frozen=True)
class Finding:
    """One thing the team should know, once: its key is the same on every run that finds it again."""

    key: str
    kind: str
    text: str


Rows = Callable[[TableSpec, Sequence[str]], list[dict[str, Any]]]


def table_rows(config: LakehouseConfig, spark: Any = None) -> Rows:
    """How the brief reads a table: delta-rs on a local warehouse (no JVM), else through ``spark``."""
    if delta_rs.usable(config):
        return lambda spec, columns: delta_rs.read_rows(spec, config, columns)
    if spark is None:
        raise RuntimeError(f"the findings of {config.paths.warehouse} are read through Spark (not a local path)")
    from lakehouse import delta_io

    def through_spark(spec: TableSpec, columns: Sequence[str]) -> list[dict[str, Any]]:
        if not delta_io.exists(spec, config):
            return []
        return [r.asDict() for r in delta_io.read(spark, spec, config).select(*columns).collect()]

    return through_spark


def findings(config: LakehouseConfig, rows: Rows, now: datetime | None = None) -> list[Finding]:
    """Every finding of the last ``alerts.lookback_days`` (ordered: anomalies, checks, files, stale data)."""
    from lakehouse.gold.tables.agg_metric_anomalies import SPEC as ANOMALY_SPEC
    from lakehouse.gold.tables.agg_metric_anomalies import describe, segment_label

    now = now or utc_now()
    since = now - timedelta(days=config.alerts.lookback_days)
    found: list[Finding] = []
    max_date = _max_event_date(config, rows)
    if max_date is not None:
        first = max_date - timedelta(days=config.anomaly.alert_days - 1)
        for r in sorted(rows(ANOMALY_SPEC, ANOMALY_COLUMNS), key=lambda r: (r["period_start"], r["metric"]),
                        reverse=True):  # fmt: skip
            end = r["period_start"] + timedelta(days=6 if r["grain"] == "week" else 0)
            if r["is_anomaly"] and first <= end <= max_date:
                key = (f"anomaly:{r['metric']}:{r['grain']}:{segment_label(r['segment_type'], r['segment_value'])}:"
                       f"{r['period_start']}")  # fmt: skip
                found.append(Finding(key, "anomaly", describe(r)))
    for r in rows(OPS_DQ_RESULTS, ["run_id", "table_name", "check_name", "severity", "status", "failed_rows",
                                   "rows_checked", "details", "checked_at"]):  # fmt: skip
        if r["status"] == "fail" and r["severity"] == "error" and r["checked_at"] and r["checked_at"] >= since:
            found.append(Finding(f"check:{r['run_id']}:{r['table_name']}.{r['check_name']}", "check",
                                 f"{r['table_name']}.{r['check_name']} failed: {r['failed_rows']:,} of "
                                 f"{r['rows_checked']:,} rows ({r['details']})"))  # fmt: skip
    for r in rows(OPS_INGESTED_FILES, ["batch_id", "file_name", "status", "status_reason", "rows_quarantined",
                                       "ingested_at"]):  # fmt: skip
        if not r["ingested_at"] or r["ingested_at"] < since:
            continue
        if r["status"] in BAD_FILE_STATUSES:
            found.append(Finding(f"file:{r['batch_id']}:{r['status']}", "file",
                                 f"{r['file_name']} {r['status']}: {r['status_reason'] or ''}".strip()))  # fmt: skip
        elif r["status"] == "committed" and (r["rows_quarantined"] or 0) > 0:
            found.append(Finding(f"quarantine:{r['batch_id']}", "file",
                                 f"{r['file_name']}: {r['rows_quarantined']:,} rows quarantined "
                                 "(bronze.fct_event_stream_quarantine says why)"))  # fmt: skip
    stale = _stale(config, rows, now)
    if stale:
        found.append(stale)
    return found


def _max_event_date(config: LakehouseConfig, rows: Rows) -> date | None:
    """The data's last date: the day of the newest event_time (silver.fct_events is partitioned by event_date, whose
    values the log's file statistics do not carry; event_time's they do)."""
    newest = _newest_event_time(config, rows)
    return newest.date() if newest is not None else None


def _newest_event_time(config: LakehouseConfig, rows: Rows) -> datetime | None:
    """The newest event_time, wall-clock in conf's time zone (as the tables hold it)."""
    from zoneinfo import ZoneInfo

    if delta_rs.usable(config):
        newest = delta_rs.column_max(SILVER_EVENTS, config, "event_time")  # naive UTC from the statistics
        if newest is None:
            return None
        return newest.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(config.timezone)).replace(tzinfo=None)
    times = [r["event_time"] for r in rows(SILVER_EVENTS, ["event_time"]) if r["event_time"]]
    return max(times) if times else None


def _stale(config: LakehouseConfig, rows: Rows, now: datetime) -> Finding | None:
    """The newest event older than ``anomaly.freshness_hours``: one finding per newest event (a new delivery of
    data that goes stale again is news again)."""
    from zoneinfo import ZoneInfo

    newest_local = _newest_event_time(config, rows)
    if newest_local is None:
        return None
    now_local = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(config.timezone)).replace(tzinfo=None)
    hours = (now_local - newest_local).total_seconds() / 3600
    if hours <= config.anomaly.freshness_hours:
        return None
    return Finding(f"stale:{newest_local:%Y-%m-%dT%H:%M:%S}", "stale",
                   f"the newest event ({newest_local:%Y-%m-%d %H:%M}) is {hours:,.0f} h old "
                   f"(anomaly.freshness_hours: {config.anomaly.freshness_hours})")  # fmt: skip


def delivered_keys(rows: Rows) -> dict[str, set[str]]:
    """Per channel, the keys a delivered message carried."""
    done: dict[str, set[str]] = {}
    for r in rows(OPS_ALERT_DELIVERIES, ["channel", "item_keys", "status"]):
        if r["status"] == "delivered":
            done.setdefault(r["channel"], set()).update(r["item_keys"] or [])
    return done


# --------------------------------------------------------------------------- the message


@dataclass(frozen=True)
class Sizes:
    """The audiences' sizes of the latest complete week and the week before."""

    week: date | None
    previous: date | None
    counts: dict[str, tuple[int, int | None]]


def audience_sizes(config: LakehouseConfig, spark: Any) -> Sizes:
    from lakehouse.audiences import AudienceError, _table, audiences, complete_weeks, sizes

    try:
        users = _table(spark, config)
    except AudienceError:
        return Sizes(None, None, {})
    weeks = complete_weeks(users, 2)
    auds = audiences(config)
    counts = sizes(users, auds, weeks)
    week, previous = [*weeks, None, None][:2]
    return Sizes(week, previous, {a.name: (counts[a.name].get(week, 0) if week else 0,
                                           counts[a.name].get(previous) if previous else None)
                                  for a in auds})  # fmt: skip


KIND_TITLES = {"anomaly": "New anomalies", "check": "Failed checks (error level)", "file": "Input files",
               "stale": "Stale data"}  # fmt: skip


def render(items: Sequence[Finding], sizes: Sizes | None, run_id: str) -> Message:
    """The brief as text (Slack mrkdwn-compatible), its subject, and a key naming the run and what it carries."""
    counts = {kind: sum(1 for f in items if f.kind == kind) for kind in KIND_TITLES}
    parts = [f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in counts.items() if n and kind != "stale"]
    if counts["stale"]:
        parts.append("stale data")
    subject = "HeyMax lakehouse brief: " + (", ".join(parts) if parts else "nothing new to flag")
    lines = []
    for kind, title in KIND_TITLES.items():
        mine = [f for f in items if f.kind == kind]
        if mine:
            lines.append(f"*{title}* ({len(mine)}):")
            lines += [f"• {f.text}" for f in mine]
    if sizes is not None and sizes.counts:
        where = f"week of {sizes.week}" + (f", change from the week of {sizes.previous}" if sizes.previous else "")
        lines.append(f"*Audiences* ({where}):")
        for name, (now, before) in sizes.counts.items():
            change = f" ({now - before:+,})" if before is not None else ""
            lines.append(f"• {name}: {now:,}{change}")
    if not lines:
        lines.append("No findings.")
    lines.append(f"_run {run_id} on {socket.gethostname()}; lakehouse alerts preview shows what is owed_")
    digest = hashlib.sha256("\n".join(f.key for f in items).encode()).hexdigest()[:12]
    return Message(subject=subject, text="\n".join(lines), key=f"brief:{run_id}:{digest}")


# --------------------------------------------------------------------------- delivery


def channels(config: LakehouseConfig) -> dict[str, Channel]:
    return {name: channel_from_dict(name, data) for name, data in config.alerts.channels.items()}


@dataclass(frozen=True)
class Outcome:
    """What one run's brief did on one channel (the summary prints it)."""

    channel: str
    delivery: Delivery | None
    items: int

    def describe(self) -> str:
        if self.delivery is None:
            return f"{self.channel}: nothing to send (nothing new, nothing owed)"
        if self.delivery.delivered:
            return f"{self.channel}: brief delivered ({self.items} finding(s), {self.delivery.attempts} attempt(s))"
        return (f"{self.channel}: brief NOT delivered after {self.delivery.attempts} attempt(s): "
                f"{self.delivery.error}; its {self.items} finding(s) are owed to the next run")  # fmt: skip


def deliver(
    config: LakehouseConfig,
    run_id: str,
    *,
    published: bool,
    session: Callable[[], Any],
    only: Iterable[str] | None = None,
) -> list[Outcome]:
    """Send each channel what it is owed (module docstring); record each delivery. ``session`` opens Spark
    (for the audiences' sizes) only when a message is sent; never raises for a channel's failure."""
    configured = channels(config)
    if only is not None:
        configured = {n: c for n, c in configured.items() if n in set(only)}
    if not configured:
        return []
    spark_holder: list[Any] = []

    def spark() -> Any:
        if not spark_holder:
            spark_holder.append(session())
        return spark_holder[0]

    rows = table_rows(config, None if delta_rs.usable(config) else spark())
    found = findings(config, rows)
    done = delivered_keys(rows)
    outcomes, records, sizes = [], [], None
    for name, channel in configured.items():
        owed = [f for f in found if f.key not in done.get(name, set())]
        if not owed and not published:
            outcomes.append(Outcome(name, None, 0))
            continue
        if published and sizes is None:
            try:
                sizes = audience_sizes(config, spark())
            except Exception as exc:  # the brief never fails the run: it goes without the sizes
                log.warning("brief: the audiences' sizes were not computed: %s", exc)
                sizes = Sizes(None, None, {})
        message = render(owed, sizes if published else None, run_id)
        delivery = channel.send(message)
        log.log(logging.INFO if delivery.delivered else logging.WARNING, "brief: %s",
                Outcome(name, delivery, len(owed)).describe())  # fmt: skip
        records.append(AlertDeliveryRecord(uuid.uuid4().hex, run_id, name, message.key, [f.key for f in owed],
                                           delivery.attempts, delivery.status, delivery.error, utc_now()))  # fmt: skip
        outcomes.append(Outcome(name, delivery, len(owed)))
    if records:
        try:
            append_records(records, spark_holder[0] if spark_holder else None, config)
        except Exception as exc:
            log.error("brief: the deliveries were sent but not recorded (%s): the next run may send them again", exc)
    return outcomes


def published_by(runs: Iterable[Any]) -> bool:
    """A run published data: one of its jobs succeeded (or completed with problems) and wrote rows."""
    return any(getattr(r, "status", None) in ("succeeded", "partial") and (getattr(r, "rows_out", 0) or 0) > 0
               for r in runs)  # fmt: skip


def airflow_run_published(config: LakehouseConfig, rows: Rows, airflow_run_id: str) -> bool:
    mine = [r for r in rows(OPS_JOB_RUNS, ["airflow_run_id", "status", "rows_out"]) if r["airflow_run_id"] ==
            airflow_run_id]  # fmt: skip
    return any(r["status"] in ("succeeded", "partial") and (r["rows_out"] or 0) > 0 for r in mine)


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    from lakehouse.engine import spark_session
    from lakehouse.job_runtime import add_config_args, config_from_args, setup_logging

    setup_logging()
    p = argparse.ArgumentParser(prog="lakehouse alerts", description="The morning brief (conf's alerts.channels).")
    sub = p.add_subparsers(dest="action", required=True)
    preview = sub.add_parser("preview", help="print the brief a run would send now (what is owed), send nothing")
    test = sub.add_parser("test", help="send a test message to one channel (recorded)")
    test.add_argument("channel")
    send = sub.add_parser("send", help="deliver this Airflow run's brief (the DAG's last task)")
    send.add_argument("--airflow-run", help="the Airflow run (default AIRFLOW_CTX_DAG_RUN_ID)")
    for parser in (preview, test, send):
        add_config_args(parser)
    args = p.parse_args(argv)
    try:
        config = config_from_args(args)
        configured = channels(config)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = f"{config.app_name}:alerts"
    if args.action == "test":
        if args.channel not in configured:
            print(f"error: unknown channel {args.channel!r}; conf's alerts.channels: {', '.join(configured) or 'none'}",
                  file=sys.stderr)  # fmt: skip
            return 2
        message = Message(subject="HeyMax lakehouse: a test message",
                          text=f"A test of the alert channel {args.channel!r} from {socket.gethostname()}.",
                          key=f"test:{uuid.uuid4().hex}")  # fmt: skip
        delivery = configured[args.channel].send(message)
        record = AlertDeliveryRecord(uuid.uuid4().hex, "lakehouse alerts test", args.channel, message.key, [],
                                     delivery.attempts, delivery.status, delivery.error, utc_now())  # fmt: skip
        with spark_session(config, app) if not delta_rs.usable(config) else contextlib.nullcontext() as spark:
            append_records([record], spark, config)
        print(Outcome(args.channel, delivery, 0).describe())
        return 0 if delivery.delivered else 1
    if args.action == "preview":
        with spark_session(config, app) as spark:
            rows = table_rows(config, spark)
            found, done = findings(config, rows), delivered_keys(rows)
            owed = [f for f in found if any(f.key not in done.get(n, set()) for n in configured)] if configured \
                else found  # fmt: skip
            message = render(owed, audience_sizes(config, spark), "preview")
        print(f"Subject: {message.subject}\n\n{message.text}")
        return 0
    run_id = args.airflow_run or os.environ.get("AIRFLOW_CTX_DAG_RUN_ID") or f"brief-{utc_now():%Y%m%dT%H%M%S}"
    with spark_session(config, app) as spark:
        rows = table_rows(config, spark)
        published = airflow_run_published(config, rows, run_id)
        outcomes = deliver(config, run_id, published=published, session=lambda: spark)
    for outcome in outcomes:
        print(outcome.describe())
    return 0
