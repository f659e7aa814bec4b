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
    config: LakehouseConfig, app_name: str | None = None, *, full_jit: bool = False, light: bool | None = None
) -> SparkSession:
    """Return the active session or build one configured for Delta and this config.

    ``full_jit``: when this process launches the JVM, give it the full tiered JIT (C1 then C2)
    instead of the C1-only JIT of ``spark-env.sh`` (:mod:`lakehouse.jvm`): C1 code starts fast but
    runs the heavy transforms of a backfill much slower (measured in docs/performance.md).
    ``light``: settings for a run of little data (True: :data:`LIGHT_RUN`) or for a heavy one (False:
    Spark's defaults); None leaves the session as it is. A key ``spark.extra_conf`` sets is never changed.
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
    if light is not None:
        for key, value in LIGHT_RUN.items():
            if key not in config.spark.extra_conf:
                spark.conf.set(key, value if light else HEAVY_RUN[key])
    return spark
