"""The one SparkSession factory: Delta, time zone, shuffle partitions, jars, quiet logs.

Nothing else in the project builds a session. A session is classic (a JVM in this process) or a Spark
Connect client of the warm engine (:mod:`lakehouse.engine`; the launcher decides which and passes its URL):
the job code is the same on both. A master is set only when the process was not started by ``spark-submit``
(which always wins with its own ``--master``), so the same job code runs in local mode for development and
on a cluster by changing config and submit flags only.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark import SparkContext
from pyspark.sql import SparkSession

from lakehouse.config import LakehouseConfig
from lakehouse.jars import DELTA_CATALOG, DELTA_EXTENSION, ensure_delta_jars, ensure_s3a_jars, uses_s3a

#: The JIT of a driver JVM with a lot of work ahead (a backfill, a long-running server): C1 then C2,
#: instead of the C1-only JIT that ``spark-env.sh`` gives short jobs (:mod:`lakehouse.jvm`).
FULL_JIT = "-XX:TieredStopAtLevel=4"
#: A light run (a day's data, seconds of work on a cold driver JVM; measured in docs/performance.md):
#: - no adaptive query execution: each shuffle of an adaptive query is a Spark job of its own, and
#:   Delta's snapshot loads shuffle too;
#: - no code generation: compiling each query stage's Java (Janino) costs more than the few thousand
#:   rows it runs over; expressions are evaluated by their interpreted implementations (Spark's own
#:   tests run every expression in this mode too, ``spark.sql.codegen.factoryMode``).
LIGHT_RUN = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
#: A heavy run (a backfill, a full refresh): Spark's defaults.
HEAVY_RUN = {
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.codegen.wholeStage": "true",
    "spark.sql.codegen.factoryMode": "FALLBACK",
}


def launched_by_spark_submit() -> bool:
    """True when a JVM already runs for us (spark-submit hands the gateway port in the env)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _submitted_master() -> str:
    """The master ``spark-submit`` was given (its JVM holds it as a system property), or ``MASTER``."""
    if launched_by_spark_submit():
        from pyspark import SparkConf

        SparkContext._ensure_initialized()  # connect to spark-submit's JVM: SparkConf() then reads its settings
        return SparkConf().get("spark.master", "") or ""
    return os.environ.get("MASTER", "")


#: Local mode's settings that only a JVM's start sets (a Connect client's session cannot change them).
LOCAL_STATIC = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def sql_conf(config: LakehouseConfig, master: str) -> dict[str, str]:
    """The settings of every session of a run, which a Spark Connect client sets on its own session too."""
    conf = {
        "spark.sql.session.timeZone": config.timezone,
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        # Week and calendar maths is written with explicit date functions; never locale-based.
        "spark.sql.legacy.timeParserPolicy": "EXCEPTION",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
    }
    if master.startswith("local"):
        # Delta rebuilds table state with 50 partitions by default: far too many locally.
        conf["spark.databricks.delta.snapshotPartitions"] = "2"
    return conf


def session_conf(config: LakehouseConfig, *, under_submit: bool, master: str | None = None) -> dict[str, str]:
    """Everything a JVM started for ``config`` gets (``master``: another than ``spark.master``, the engine's)."""
    conf = {"spark.sql.extensions": DELTA_EXTENSION, "spark.sql.catalog.spark_catalog": DELTA_CATALOG}
    if not under_submit:
        conf["spark.master"] = master or config.spark.master
        conf["spark.driver.memory"] = config.spark.driver_memory
        # Offline after the first fetch; on a cluster, --packages or the image provides Delta.
        jars = ensure_delta_jars(config.paths.jar_cache)
        if uses_s3a(config.paths.input, config.paths.warehouse):
            jars += ensure_s3a_jars(config.paths.jar_cache)  # hadoop-aws + AWS SDK v2, cached like Delta's
        conf["spark.jars"] = ",".join(jars)
    master = conf.get("spark.master") or _submitted_master()
    conf.update(sql_conf(config, master))
    if master.startswith("local"):
        conf.update(LOCAL_STATIC)
    conf.update(config.spark.extra_conf)
    return conf


def existing_session() -> SparkSession | None:
    """The session this process already has (classic or Connect), without creating one."""
    if classic_session_active():
        return SparkSession.getActiveSession()
    if "pyspark.sql.connect.session" in sys.modules:
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        return ConnectSession.getActiveSession() or ConnectSession._get_default_session()
    return None


def engine_failure(spark: SparkSession | None, exc: BaseException) -> str | None:
    """When ``exc`` is the engine's connection failing (not the job's own error), say so naming the engine."""
    if spark is None or not is_remote(spark):
        return None
    # A server-side error (AnalysisException...) subclasses SparkConnectGrpcException; a lost connection is the
    # base class itself (status UNAVAILABLE) or the client's retries running out.
    lost = type(exc).__name__ in ("SparkConnectGrpcException", "RetriesExceeded")
    if not lost and "StatusCode.UNAVAILABLE" not in str(exc):
        return None
    endpoint = getattr(getattr(spark.client, "_builder", None), "endpoint", "?")
    details = re.search(r'details = "([^"]*)"', str(exc))
    why = details.group(1) if details else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return (
        f"the Spark Connect engine at {endpoint} stopped answering ({why[:300]}); the next run restarts it "
        "(lakehouse engine status; its log says why it stopped)"
    )


def is_remote(spark: SparkSession) -> bool:
    """A Spark Connect session (the engine's client), not a classic one with a JVM in this process."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def classic_session_active() -> bool:
    """This process already runs a classic SparkContext (a process never mixes classic and Connect sessions:
    pyspark's functions pick their implementation process-wide)."""
    return SparkContext._active_spark_context is not None


@dataclass(frozen=True)
class RemoteEngine:
    """A Spark Connect engine to run as a client of (:func:`lakehouse.engine.target` makes one)."""

    #: ``sc://localhost:PORT/;token=...;user_id=...``
    url: str
    #: The engine's master: the sessions' local-mode settings follow it.
    master: str
    #: Whether the engine's process still runs (a local engine: its pid); None: unknown, retry as usual.
    alive: Callable[[], bool] | None = None


def _retry_policy(engine: RemoteEngine, timeout_seconds: int) -> Any:
    """Retries of a lost connection for about ``timeout_seconds`` (the client's default is ten minutes), none at
    all once the engine's process is known to be gone: the job then fails at once, naming the engine."""
    from pyspark.sql.connect.client.retries import DefaultPolicy

    backoff, waited, retries = 0.2, 0.0, 0
    while waited < timeout_seconds:
        waited, backoff, retries = waited + backoff, min(backoff * 2, 5.0), retries + 1

    class EnginePolicy(DefaultPolicy):
        def can_retry(self, exception: BaseException) -> bool:
            if engine.alive is not None and not engine.alive():
                return False
            return super().can_retry(exception)

    return EnginePolicy(max_retries=retries, initial_backoff=200, backoff_multiplier=2.0, max_backoff=5000,
                        jitter=100, min_jitter_threshold=1000)  # fmt: skip


def _remote_session(config: LakehouseConfig, engine: RemoteEngine) -> SparkSession:
    """A Spark Connect session on the engine, with this config's runtime settings and a bounded retry policy."""
    spark = SparkSession.builder.remote(engine.url).getOrCreate()
    spark.client.set_retry_policies([_retry_policy(engine, config.engine.client_timeout_seconds)])
    for key, value in {**sql_conf(config, engine.master), **config.spark.extra_conf}.items():
        if spark.conf.isModifiable(key):  # the engine's own static settings (UI, jars) are its start's
            spark.conf.set(key, value)
    return spark


def get_spark(
    config: LakehouseConfig,
    app_name: str | None = None,
    *,
    full_jit: bool = False,
    light: bool | None = None,
    remote: RemoteEngine | None = None,
) -> SparkSession:
    """Return the active session or build one configured for Delta and this config.

    ``remote``: a Spark Connect engine (:mod:`lakehouse.engine`) to run as its client, unless this process
    already has a classic session (a test's). ``full_jit``: when this process launches the
    JVM, give it the full tiered JIT (C1 then C2) instead of the C1-only JIT of ``spark-env.sh``
    (:mod:`lakehouse.jvm`): C1 code starts fast but runs the heavy transforms of a backfill much slower
    (measured in docs/performance.md). ``light``: settings for a run of little data (True: :data:`LIGHT_RUN`)
    or for a heavy one (False: Spark's defaults); None leaves the session as it is. A key
    ``spark.extra_conf`` sets is never changed.
    """
    if remote is not None and not classic_session_active():
        spark = _remote_session(config, remote)
        _apply_run_settings(spark, config, light)
        return spark
    if "pyspark.sql.connect.session" not in sys.modules:
        # Inherited from a parent process that was a Connect client: pyspark would take this process for one.
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    under_submit = launched_by_spark_submit()
    builder = SparkSession.builder.appName(app_name or config.app_name)
    for key, value in session_conf(config, under_submit=under_submit).items():
        builder = builder.config(key, value)
    caller_opts = os.environ.get("SPARK_SUBMIT_OPTS")
    if full_jit and not under_submit and SparkContext._gateway is None:
        # spark-env.sh puts the caller's SPARK_SUBMIT_OPTS after its own flags: this one wins (for
        # the JVM launched here only: the variable is restored below).
        os.environ["SPARK_SUBMIT_OPTS"] = f"{caller_opts or ''} {FULL_JIT}".strip()
    try:
        spark = builder.getOrCreate()
    finally:
        if caller_opts is None:
            os.environ.pop("SPARK_SUBMIT_OPTS", None)
        else:
            os.environ["SPARK_SUBMIT_OPTS"] = caller_opts
    if not is_remote(spark):
        spark.sparkContext.setLogLevel(config.spark.log_level)
    _apply_run_settings(spark, config, light)
    return spark


def _apply_run_settings(spark: SparkSession, config: LakehouseConfig, light: bool | None) -> None:
    # Static confs are ignored by getOrCreate on an existing session; the zone must still hold.
    spark.conf.set("spark.sql.session.timeZone", config.timezone)
    if light is not None:
        for key, value in LIGHT_RUN.items():
            if key not in config.spark.extra_conf:
                spark.conf.set(key, value if light else HEAVY_RUN[key])
