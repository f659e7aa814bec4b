"""Typed configuration: ``conf/lakehouse.yaml``, an optional environment overlay, then overrides.

The YAML is parsed once (``yaml.safe_load``) into frozen dataclasses. Every key must be known and
every value must have the declared type, otherwise :class:`ConfigError` names the key, so a typo
in a cluster overlay stops the job instead of silently falling back to a default.

Layering, later wins:
1. the base file (``conf/lakehouse.yaml`` or ``--conf FILE``);
2. the environment overlay ``conf/env/<env>.yaml`` (``--env NAME`` or ``LAKEHOUSE_ENV``);
3. ``--set dotted.key=value`` overrides (value parsed as YAML, so ``--set gold.lookback_weeks=6``).

Relative paths are resolved against the project root (the folder holding ``conf/``); URIs with a
scheme (``s3a://``, ``abfss://``, ``file:``) are kept as written.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "conf" / "lakehouse.yaml"
WEEK_STARTS = ("sunday", "monday")


class ConfigError(ValueError):
    """A configuration key is unknown, missing or has a bad value."""


@dataclass(frozen=True)
class PathsConfig:
    #: CSV file or folder of CSV files ingested by the bronze job.
    input: str
    #: Root of every table: ``<warehouse>/<layer>/<table>``.
    warehouse: str
    #: Folder holding the Delta jars resolved from Maven (see ``lakehouse.jars``).
    jar_cache: str


@dataclass(frozen=True)
class SparkConfig:
    #: Used only when the job was not started by ``spark-submit --master ...``.
    master: str = "local[2]"
    shuffle_partitions: int = 4
    #: Heap of the driver JVM; applied only when this process launches the JVM (local runs, tests).
    driver_memory: str = "2g"
    log_level: str = "WARN"
    #: Anything else handed to the session builder verbatim (e.g. S3A credentials providers).
    extra_conf: dict[str, str] = field(default_factory=dict)
    #: A run with at least this much new input (MB of new landing files, or of pending rows at about
    #: 100 bytes a row), or a full refresh, is heavy: the full tiered JIT (when it launches its JVM) and
    #: Spark's default execution. Lighter runs: the C1-only JIT, no AQE, no codegen (lakehouse/session.py).
    heavy_run_from_new_input_mb: int = 64


@dataclass(frozen=True)
class BronzeConfig:
    #: A batch whose quarantined share is above this fails the job (rows are still quarantined).
    max_quarantine_rate: float = 0.05
    #: ``event_time`` may be at most this many minutes after the ingestion time.
    future_slack_minutes: int = 60
    #: Rule name -> ``error`` | ``warn``. Every rule not listed is ``error``.
    rule_severity: dict[str, str] = field(default_factory=dict)
    #: A refused or rejected file: ``continue`` (record it once, build silver and gold from the good
    #: files, exit 1) or ``stop`` (the DAG stops at bronze on every run until the file is fixed).
    on_bad_file: str = "continue"


@dataclass(frozen=True)
class GoldConfig:
    lookback_weeks: int = 4
    max_week_offset: int = 16
    #: Relative week-over-week change in weekly active users above which a warning is recorded.
    wau_jump_threshold: float = 0.5


@dataclass(frozen=True)
class AnomalyConfig:
    """``gold.agg_metric_anomalies`` (docs/contract.md): the band each count series is judged against."""

    #: K: the same weekday (daily) or week (weekly) of this many periods back form a point's training set.
    training_periods: int = 8
    #: M: a point is evaluated only with at least this many training points.
    min_training_periods: int = 4
    #: S: the band is expected +- S * spread; a point outside it is an anomaly.
    sensitivity: float = 4.5
    #: Points whose expected value is below this are not rows (small counts are noise).
    min_expected: float = 5.0
    #: Anomalies of the data's last this many days (weekly: weeks ending in them) are warnings of the run.
    alert_days: int = 7
    #: The newest event older than this many hours when the run starts is a freshness warning.
    freshness_hours: int = 36


@dataclass(frozen=True)
class OperationsConfig:
    #: How long a writing run waits for another run's warehouse lock before exiting 2.
    lock_wait_seconds: int = 0
    #: A lock whose heartbeat is older than this is stale (its holder died on another host).
    lock_lease_seconds: int = 600
    #: ``lakehouse maintain``: VACUUM keeps files removed less than this many hours ago (time travel).
    vacuum_retention_hours: int = 168
    #: A run whose jobs have nothing to do is decided and recorded without starting Spark
    #: (delta-rs reads the bookkeeping; local warehouses only; see lakehouse/launcher.py).
    idle_without_spark: bool = True
    #: Exit code of a job that completed with problems (status ``partial``: bronze refused or rejected
    #: a file, its good files committed). 1 by default; the Airflow DAG sets 0 so that the tasks after
    #: bronze run, and its last task (``needs_attention``) fails naming the file instead.
    partial_exit_code: int = 1


@dataclass(frozen=True)
class ServingConfig:
    thrift_host: str = "127.0.0.1"
    thrift_port: int = 10000
    superset_host: str = "127.0.0.1"
    superset_port: int = 8088
    #: The Thrift server serves TLS only (HTTP transport, a local CA made at the first start) and the
    #: project's clients verify it; false: plain binary transport with SASL PLAIN, for a trusted network.
    tls: bool = True


@dataclass(frozen=True)
class AlertsConfig:
    """The morning brief (lakehouse/alerts/): where each run's findings are delivered."""

    #: name -> a channel: ``type: webhook`` (Slack-compatible JSON; the URL from ``url_env`` or a 600
    #: ``url_file``) or ``type: email`` (SMTP, STARTTLS when offered; lakehouse/channels.py has every key).
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Findings recorded in the last this many days are delivered (older ones are history, not news).
    lookback_days: int = 7


AIRFLOW_TASKS = ("engine", "spark-submit")


@dataclass(frozen=True)
class AirflowConfig:
    """The Airflow DAG (lakehouse/orchestration/): one task per job of ``dag``."""

    dag_id: str = "heymax_lakehouse"
    #: A cron expression or preset; each run processes whatever landed since the last (incremental jobs).
    schedule: str = "@daily"
    #: First logical date the scheduler considers (with ``catchup``: runs from here on).
    start_date: str = "2025-01-01"
    catchup: bool = False
    retries: int = 1
    retry_delay_minutes: int = 5
    #: Each job's upstream jobs (the graph's edges); a job not listed depends on the job before it in ``dag``.
    upstream: dict[str, list[str]] = field(default_factory=dict)
    #: ``lakehouse airflow up``: the API server (UI and REST) on this address.
    host: str = "127.0.0.1"
    port: int = 8089
    #: engine: each task runs its job's Python as a client of the warm engine (``engine.use: always``);
    #: spark-submit: each task is a ``spark-submit`` of its job (a cold driver JVM per task).
    tasks: str = "engine"
    #: A task still running after this long fails (and is retried): a client that lost its engine never hangs.
    task_timeout_minutes: int = 60


ENGINE_USES = ("auto", "always", "never")


@dataclass(frozen=True)
class EngineConfig:
    """The warm engine (lakehouse/engine.py): a Spark Connect server the jobs run as clients of."""

    #: auto: the jobs connect when an engine serving this config runs (and restart one that was started and
    #: died); always: they also start it when it is not running; never: every job runs its own classic session.
    use: str = "auto"
    #: gRPC port on 127.0.0.1 (the clients connect as ``localhost``: the only host the Python client sends its
    #: token to without TLS).
    port: int = 15002
    #: The engine's driver heap: every job of the machine runs in it (docs/engine.md: what it costs).
    driver_memory: str = "3g"
    #: Where its executors run: "" = spark.master (local threads), or a standalone cluster's spark://host:port.
    master: str = ""
    #: JDK the engine runs on: "auto" = a Java 25 (>= 25.0.3) when installed, else the environment's; "" = the
    #: environment's java (JAVA_HOME or PATH); else a JDK's home folder (lakehouse/engine.py ``java_home``).
    java_home: str = "auto"
    #: On Java 25 or later: an AOT cache of the engine's classes and profiles, recorded by its first start and
    #: written when it stops, mapped by every later start (lakehouse/engine.py). Ignored on Java 17.
    aot_cache: bool = True
    #: Pid, log, state and the token file (mode 600); relative to the project root.
    state_dir: str = ".cache/engine"
    #: A client gives up on an engine that does not answer after about this many seconds (the job then fails
    #: naming the engine; the next run restarts it).
    client_timeout_seconds: int = 30


@dataclass(frozen=True)
class LakehouseConfig:
    paths: PathsConfig
    app_name: str = "heymax-lakehouse"
    #: Source timestamps have no zone; they are wall-clock time in this zone.
    timezone: str = "UTC"
    week_start: str = "sunday"
    spark: SparkConfig = field(default_factory=SparkConfig)
    bronze: BronzeConfig = field(default_factory=BronzeConfig)
    gold: GoldConfig = field(default_factory=GoldConfig)
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    operations: OperationsConfig = field(default_factory=OperationsConfig)
    airflow: AirflowConfig = field(default_factory=AirflowConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    #: Jobs in dependency order; the single-application runner executes them in this order.
    dag: tuple[str, ...] = ()
    #: Named audiences: a condition (Spark SQL) on gold.user_status_weekly's columns (lakehouse/audiences.py).
    audiences: dict[str, str] = field(default_factory=dict)

    def table_path(self, layer: str, name: str) -> str:
        return f"{self.paths.warehouse.rstrip('/')}/{layer}/{name}"

    def with_input(self, path: str) -> LakehouseConfig:
        """A copy reading source files from ``path`` (resolved like ``paths.input``)."""
        return dataclasses.replace(self, paths=dataclasses.replace(self.paths, input=_resolve_path(path, PROJECT_ROOT)))

    def with_overrides(self, **changes: Any) -> LakehouseConfig:
        """A copy with top-level or dotted overrides (tests build configs this way)."""
        data = to_dict(self)
        for dotted, value in changes.items():
            _set_dotted(data, dotted.replace("__", "."), value)
        return _build(LakehouseConfig, data, "")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _is_uri(value: str) -> bool:
    return "://" in value or value.startswith("file:")


def local_path(uri: str) -> Path | None:
    """The local path of a plain path or a ``file:`` URI; None on object storage (``s3a://``...)."""
    if "://" in uri and not uri.startswith("file:"):
        return None
    return Path(uri.removeprefix("file://").removeprefix("file:"))


def _resolve_path(value: str, root: Path) -> str:
    if _is_uri(value) or os.path.isabs(value):
        return value
    return str((root / value).resolve())


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return _build(tp, value, key)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        _, val_tp = typing.get_args(tp)
        return {str(k): _coerce(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is Any:  # a mapping checked by its owner (an alert channel's keys)
        return value
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"unsupported config type for '{key}'")  # pragma: no cover
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if tp in (int, float) and isinstance(value, bool):
        raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
    if not isinstance(value, tp):
        raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
    return value


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        where = f" under '{prefix}'" if prefix else ""
        raise ConfigError(
            f"unknown config key '{(prefix + '.') if prefix else ''}{unknown[0]}'{where}; "
            f"known keys: {', '.join(sorted(known))}"
        )
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data and data[name] is not None:
            kwargs[name] = _coerce(data[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"config key '{key}' is required")
    obj = cls(**kwargs)
    _validate(obj, prefix)
    return obj


def _validate(obj: Any, prefix: str) -> None:
    def bad(name: str, msg: str) -> ConfigError:
        return ConfigError(f"config key '{(prefix + '.') if prefix else ''}{name}' {msg}")

    if isinstance(obj, LakehouseConfig):
        if obj.week_start not in WEEK_STARTS:
            raise bad("week_start", f"must be one of {WEEK_STARTS}, got {obj.week_start!r}")
        if not obj.timezone:
            raise bad("timezone", "must not be empty")
        for name, condition in obj.audiences.items():
            problem = audience_problem(name, condition)
            if problem:
                raise bad(f"audiences.{name}", problem)
    elif isinstance(obj, SparkConfig):
        if obj.shuffle_partitions < 1:
            raise bad("shuffle_partitions", "must be >= 1")
    elif isinstance(obj, BronzeConfig):
        if not 0.0 <= obj.max_quarantine_rate <= 1.0:
            raise bad("max_quarantine_rate", "must be between 0 and 1")
        if obj.future_slack_minutes < 0:
            raise bad("future_slack_minutes", "must be >= 0")
        if obj.on_bad_file not in ("continue", "stop"):
            raise bad("on_bad_file", f"must be 'continue' or 'stop', got {obj.on_bad_file!r}")
        for rule, severity in obj.rule_severity.items():
            if severity not in ("error", "warn"):
                raise bad(f"rule_severity.{rule}", f"must be 'error' or 'warn', got {severity!r}")
    elif isinstance(obj, GoldConfig):
        if obj.lookback_weeks < 1:
            raise bad("lookback_weeks", "must be >= 1")
        if obj.max_week_offset < 0:
            raise bad("max_week_offset", "must be >= 0")
        if obj.wau_jump_threshold <= 0:
            raise bad("wau_jump_threshold", "must be > 0")
    elif isinstance(obj, AnomalyConfig):
        if obj.training_periods < 2:
            raise bad("training_periods", "must be >= 2 (a line needs two points)")
        if not 2 <= obj.min_training_periods <= obj.training_periods:
            raise bad("min_training_periods", f"must be between 2 and training_periods ({obj.training_periods})")
        if obj.sensitivity <= 0:
            raise bad("sensitivity", "must be > 0")
        if obj.min_expected <= 0:
            raise bad("min_expected", "must be > 0 (the spread is at least sqrt(expected), never 0)")
        if obj.alert_days < 1:
            raise bad("alert_days", "must be >= 1")
        if obj.freshness_hours < 1:
            raise bad("freshness_hours", "must be >= 1")
    elif isinstance(obj, OperationsConfig):
        if obj.lock_wait_seconds < 0:
            raise bad("lock_wait_seconds", "must be >= 0")
        if obj.partial_exit_code not in (0, 1):
            raise bad("partial_exit_code", f"must be 0 or 1, got {obj.partial_exit_code!r}")
        if obj.lock_lease_seconds < 10:
            raise bad("lock_lease_seconds", "must be >= 10")
        if obj.vacuum_retention_hours < 168:
            raise bad(
                "vacuum_retention_hours",
                "must be >= 168 (Delta's safety check: a shorter retention can "
                "delete files that a running reader or a concurrent writer still needs)",
            )
    elif isinstance(obj, AirflowConfig):
        if obj.tasks not in AIRFLOW_TASKS:
            raise bad("tasks", f"must be one of {AIRFLOW_TASKS}, got {obj.tasks!r}")
        if obj.task_timeout_minutes < 1:
            raise bad("task_timeout_minutes", "must be >= 1")
        if obj.retries < 0 or obj.retry_delay_minutes < 0:
            raise bad("retries", "and retry_delay_minutes must be >= 0")
        if not 0 < obj.port < 65536:
            raise bad("port", "must be a TCP port")
        try:
            date.fromisoformat(obj.start_date)
        except ValueError:
            raise bad("start_date", f"must be a date (YYYY-MM-DD), got {obj.start_date!r}") from None
    elif isinstance(obj, AlertsConfig):
        if obj.lookback_days < 1:
            raise bad("lookback_days", "must be >= 1")
        from lakehouse.channels import channel_from_dict  # the standard library only

        for name, data in obj.channels.items():
            try:
                channel_from_dict(name, data)
            except ValueError as exc:
                raise bad(f"channels.{name}", str(exc)) from None
    elif isinstance(obj, EngineConfig):
        if obj.use not in ENGINE_USES:
            raise bad("use", f"must be one of {ENGINE_USES}, got {obj.use!r}")
        if not 0 < obj.port < 65536:
            raise bad("port", "must be a TCP port")
        if obj.client_timeout_seconds < 1:
            raise bad("client_timeout_seconds", "must be >= 1")
    elif isinstance(obj, ServingConfig):
        for name in ("thrift_port", "superset_port"):
            if not 0 < getattr(obj, name) < 65536:
                raise bad(name, "must be a TCP port")


#: The columns of gold.user_status_weekly, the table an audience's condition reads (tests/unit/test_audiences.py
#: checks they are the table's): the config is checked when it is loaded, before any table module is imported.
AUDIENCE_COLUMNS = (
    "user_id", "cutoff_week", "cutoff_week_label", "acq_source", "country", "user_status", "previous_status",
    "events_in_week", "miles_earned_in_week", "miles_redeemed_in_week", "last_active_date", "weeks_since_active",
    "miles_balance", "is_partial_period",
)  # fmt: skip
#: Functions an audience may not call: the wall clock and chance (an audience's members for a week are the same on
#: every run over the same data), and the JVM's reflection (a condition runs on the engine).
AUDIENCE_FORBIDDEN_FUNCTIONS = frozenset({
    "current_date", "current_timestamp", "now", "curdate", "localtimestamp", "current_timezone", "unix_timestamp",
    "rand", "randn", "random", "uuid", "shuffle", "monotonically_increasing_id", "spark_partition_id",
    "input_file_name", "reflect", "java_method", "try_reflect",
})  # fmt: skip
AUDIENCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def audience_problem(name: str, condition: str) -> str | None:
    """Why an audience is refused (None: it is a condition on gold.user_status_weekly's columns only).

    Parsed as Spark SQL (sqlglot, no Spark needed): one expression, not a statement; no subquery, no other
    table, no qualified column; only the table's columns; no wall-clock, random or reflection function.
    """
    if not AUDIENCE_NAME.match(name):
        return "is not a valid audience name (lower-case letters, digits and _, starting with a letter)"
    if not isinstance(condition, str) or not condition.strip():
        return "must be a condition (Spark SQL on gold.user_status_weekly's columns)"
    import sqlglot
    from sqlglot import exp

    try:
        trees = [t for t in sqlglot.parse(condition, read="spark") if t is not None]
    except sqlglot.errors.SqlglotError as exc:
        return f"does not parse as a Spark SQL condition: {str(exc).splitlines()[0]}"
    if len(trees) != 1:
        return "must be one condition, not several statements"
    tree = trees[0]
    if isinstance(tree, (exp.Query, exp.Command, exp.Create, exp.Drop, exp.Insert, exp.Update, exp.Delete)) or any(
        tree.find_all(exp.Select, exp.Subquery, exp.Exists, exp.Table, exp.Command, exp.Lateral)
    ):
        return "reads another table (a subquery or a table name): an audience is a condition on gold.user_status_weekly"
    qualified = sorted({c.sql() for c in tree.find_all(exp.Column) if c.table})
    if qualified:
        return f"names columns of another table: {', '.join(qualified)}"
    unknown = sorted({c.name for c in tree.find_all(exp.Column)} - set(AUDIENCE_COLUMNS))
    if unknown:
        return f"names unknown columns {unknown}; gold.user_status_weekly has {', '.join(AUDIENCE_COLUMNS)}"
    for function in tree.find_all(exp.Func):
        called = (function.name if isinstance(function, exp.Anonymous) else function.sql_name()).lower()
        if called in AUDIENCE_FORBIDDEN_FUNCTIONS or type(function).__name__.lower() in AUDIENCE_FORBIDDEN_FUNCTIONS:
            return f"calls {called}(): an audience may not depend on the clock, chance or the JVM"
    return None


def _deep_merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key '{dotted}': '{part}' is not a mapping")
        node = child
    node[parts[-1]] = value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``"gold.lookback_weeks=6"`` -> ``("gold.lookback_weeks", 6)``."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like dotted.key=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: str | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> LakehouseConfig:
    """Read the base file, the environment overlay and the overrides into a typed config."""
    base_path = Path(path) if path else DEFAULT_CONFIG_FILE
    data = _read_yaml(base_path)
    root = base_path.resolve().parent.parent
    env = env if env is not None else os.environ.get("LAKEHOUSE_ENV") or None
    if env:
        overlay_path = base_path.resolve().parent / "env" / f"{env}.yaml"
        if not overlay_path.exists():
            raise ConfigError(f"environment overlay '{env}' not found: {overlay_path}")
        data = _deep_merge(data, _read_yaml(overlay_path))
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    for key, value in items:
        _set_dotted(data, key, value)
    config = _build(LakehouseConfig, data, "")
    paths = config.paths
    return dataclasses.replace(
        config,
        paths=PathsConfig(
            input=_resolve_path(paths.input, root),
            warehouse=_resolve_path(paths.warehouse, root),
            jar_cache=_resolve_path(paths.jar_cache, root),
        ),
        # LAKEHOUSE_ENGINE_DIR: another engine for this environment's processes (the test suite's own).
        engine=dataclasses.replace(
            config.engine,
            state_dir=_resolve_path(os.environ.get("LAKEHOUSE_ENGINE_DIR") or config.engine.state_dir, root),
        ),
    )
