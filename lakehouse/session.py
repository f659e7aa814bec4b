"""The one SparkSession factory: Delta, time zone, shuffle partitions, jars, quiet logs.

Nothing else in the project builds a session. A master is set only when the process was not
started by ``spark-submit`` (which always wins with its own ``--master``), so the same job code
runs in local mode for development and on a cluster by changing config and submit flags only.
"""

from __future__ import annotations

import os

from pyspark import SparkContext
from pyspark.sql import SparkSession

from lakehouse.config import LakehouseConfig
from lakehouse.jars import DELTA_CATALOG, DELTA_EXTENSION, ensure_delta_jars, ensure_s3a_jars, uses_s3a

#: The JIT of a driver JVM with a lot of work ahead (a backfill, a long-running server): C1 then C2,
#: instead of the C1-only JIT that ``spark-env.sh`` gives short jobs (:mod:`lakehouse.jvm`).
FULL_JIT = "-XX:TieredStopAtLevel=4"
ADAPTIVE = "spark.sql.adaptive.enabled"


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


def session_conf(config: LakehouseConfig, *, under_submit: bool) -> dict[str, str]:
    conf = {
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.session.timeZone": config.timezone,
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        # Week and calendar maths is written with explicit date functions; never locale-based.
        "spark.sql.legacy.timeParserPolicy": "EXCEPTION",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
    }
    if not under_submit:
        conf["spark.master"] = config.spark.master
        conf["spark.driver.memory"] = config.spark.driver_memory
        # Offline after the first fetch; on a cluster, --packages or the image provides Delta.
        jars = ensure_delta_jars(config.paths.jar_cache)
        if uses_s3a(config.paths.input, config.paths.warehouse):
            jars += ensure_s3a_jars(config.paths.jar_cache)  # hadoop-aws + AWS SDK v2, cached like Delta's
        conf["spark.jars"] = ",".join(jars)
    master = conf.get("spark.master") or _submitted_master()
    if master.startswith("local"):
        conf.update(
            {
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
                # Delta rebuilds table state with 50 partitions by default: far too many locally.
                "spark.databricks.delta.snapshotPartitions": "2",
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
            }
        )
    conf.update(config.spark.extra_conf)
    return conf


def get_spark(
    config: LakehouseConfig, app_name: str | None = None, *, full_jit: bool = False, adaptive: bool | None = None
) -> SparkSession:
    """Return the active session or build one configured for Delta and this config.

    ``full_jit``: when this process launches the JVM, give it the full tiered JIT (C1 then C2)
    instead of the C1-only JIT of ``spark-env.sh`` (:mod:`lakehouse.jvm`): C1 code starts fast but
    runs the heavy transforms of a backfill much slower (measured in docs/performance.md).
    ``adaptive``: switch adaptive query execution on or off for this session (None: Spark's default),
    unless ``spark.extra_conf`` sets it. A small run pays for AQE in Spark jobs: each shuffle of an
    adaptive query is a job of its own, and Delta's snapshot loads shuffle too.
    """
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
    spark.sparkContext.setLogLevel(config.spark.log_level)
    # Static confs are ignored by getOrCreate on an existing session; the zone must still hold.
    spark.conf.set("spark.sql.session.timeZone", config.timezone)
    if adaptive is not None and ADAPTIVE not in config.spark.extra_conf:
        spark.conf.set(ADAPTIVE, str(adaptive).lower())
    return spark
