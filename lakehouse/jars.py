"""Delta's JVM jars: resolved once from Maven Central into a local cache, then used offline.

``configure_spark_with_delta_pip`` only sets ``spark.jars.packages``, which makes every session
start resolve through Ivy (network, seconds) and pulls a transitive tree (Hadoop, Parquet, an old
Jackson) that Spark already ships. Instead the two artifacts Delta needs on top of Spark,
``delta-spark_<spark>_<scala>`` and ``delta-storage``, are fetched once with the Ivy client that
PySpark itself ships (``pyspark/jars/ivy-*.jar``, default Maven Central resolver) and then handed to
every session as ``spark.jars``.

``write_spark_defaults`` also writes them, with Delta's extension and catalog, into the
virtualenv's ``pyspark/conf/spark-defaults.conf``, so that a bare ``spark-submit jobs/<job>.py`` and
the Thrift server started from this virtualenv get Delta without extra flags.

Run ``python -m lakehouse.jars`` to fetch (idempotent) and print the jar paths.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lakehouse.versions import DELTA_MAVEN_COORDINATES

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


class JarResolutionError(RuntimeError):
    """The Delta jars are not in the cache and could not be fetched."""


def _jar_name(coordinate: str) -> str:
    org, artifact, version = coordinate.split(":")
    return f"{org}_{artifact}-{version}.jar"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _ivy_jar() -> Path:
    found = sorted(glob.glob(str(spark_home() / "jars" / "ivy-*.jar")))
    if not found:
        raise JarResolutionError(f"no Ivy jar found under {spark_home() / 'jars'}")
    return Path(found[-1])


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").exists():
        return str(Path(java_home, "bin", "java"))
    java = shutil.which("java")
    if not java:
        raise JarResolutionError("java was not found: install a JDK 17 or set JAVA_HOME")
    return java


def delta_jar_paths(jar_cache: str | os.PathLike[str]) -> list[str]:
    return [str(Path(jar_cache) / _jar_name(c)) for c in DELTA_MAVEN_COORDINATES]


def ensure_delta_jars(jar_cache: str | os.PathLike[str]) -> list[str]:
    """Return the Delta jar paths, fetching the missing ones (idempotent, offline when cached)."""
    cache = Path(jar_cache)
    paths = delta_jar_paths(cache)
    missing = [c for c, p in zip(DELTA_MAVEN_COORDINATES, paths, strict=True) if not Path(p).exists()]
    if not missing:
        return paths
    cache.mkdir(parents=True, exist_ok=True)
    for coordinate in missing:
        org, artifact, version = coordinate.split(":")
        cmd = [
            _java(), "-jar", str(_ivy_jar()),
            "-cache", str(cache / "ivy-cache"),
            "-dependency", org, artifact, version,
            "-notransitive", "-types", "jar",
            "-retrieve", str(cache / "[organisation]_[artifact]-[revision].[ext]"),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        target = cache / _jar_name(coordinate)
        if proc.returncode != 0 or not target.exists():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise JarResolutionError(f"could not fetch {coordinate} into {cache}:\n{tail}")
    return paths


def write_spark_defaults(jars: list[str]) -> Path:
    """Write Delta's jars, extension and catalog into this virtualenv's spark-defaults.conf."""
    conf_dir = spark_home() / "conf"
    conf_dir.mkdir(exist_ok=True)
    target = conf_dir / "spark-defaults.conf"
    content = (
        "# Written by lakehouse.jars: Delta for spark-submit / Thrift server from this virtualenv.\n"
        f"spark.jars {','.join(jars)}\n"
        f"spark.sql.extensions {DELTA_EXTENSION}\n"
        f"spark.sql.catalog.spark_catalog {DELTA_CATALOG}\n"
    )
    if not target.exists() or target.read_text() != content:
        target.write_text(content)
    return target


def main(argv: list[str] | None = None) -> int:
    from lakehouse.config import load_config

    args = argv if argv is not None else sys.argv[1:]
    config = load_config(overrides=[a for a in args if "=" in a])
    try:
        jars = ensure_delta_jars(config.paths.jar_cache)
    except JarResolutionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if "--write-spark-defaults" in args:
        write_spark_defaults(jars)
    print("\n".join(jars))
    return 0


if __name__ == "__main__":
    sys.exit(main())
