"""Delta's JVM jars: resolved once from Maven Central into a local cache, then used offline.

``configure_spark_with_delta_pip`` only sets ``spark.jars.packages``, which makes every session
start resolve through Ivy (network, seconds) and pulls a transitive tree (Hadoop, Parquet, an old
Jackson) that Spark already ships. Instead the two artifacts Delta needs on top of Spark,
``delta-spark_<spark>_<scala>`` and ``delta-storage``, are fetched once with the Ivy client that
PySpark itself ships (``pyspark/jars/ivy-*.jar``, default Maven Central resolver) and then handed to
every session as ``spark.jars``.

:mod:`lakehouse.jvm` puts them, with Delta's extension and catalog, into the virtualenv's
``pyspark/conf/spark-env.sh``, so that a bare ``spark-submit jobs/<job>.py`` and the Thrift server
started from this virtualenv get Delta without extra flags.

Run ``python -m lakehouse.jars`` to fetch (idempotent) and print the jar paths; ``--s3a`` adds the
jars that ``s3a://`` paths need (:func:`ensure_s3a_jars`), ``--comma`` prints them for ``--jars``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lakehouse.versions import AWS_SDK_COORDINATES, DELTA_MAVEN_COORDINATES, HADOOP_AWS_COORDINATE

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


def jdk_tool(name: str) -> str | None:
    """A JDK program (java, javac): ``$JAVA_HOME/bin/<name>`` if there, else from PATH; None if neither."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", name).exists():
        return str(Path(java_home, "bin", name))
    return shutil.which(name)


def _java() -> str:
    java = jdk_tool("java")
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


S3A_DIR = "s3a"
_S3A_STAMP = ".resolved"


def _s3a_ivy_xml() -> str:
    """hadoop-aws with its runtime dependencies (the S3 analytics accelerator its input streams
    load) but without the 686 MB SDK bundle it declares; instead the SDK's S3 client and transfer
    manager with their dependencies; minus what Spark's own jars already provide."""
    org, name, rev = HADOOP_AWS_COORDINATE.split(":")
    deps = [f'<dependency org="{org}" name="{name}" rev="{rev}" conf="default->default"/>']
    for coordinate in AWS_SDK_COORDINATES:
        o, n, r = coordinate.split(":")
        deps.append(f'<dependency org="{o}" name="{n}" rev="{r}" conf="default->default"/>')
    excludes = [
        '<exclude org="software.amazon.awssdk" module="bundle"/>',
        '<exclude org="io.netty"/>',  # Spark ships Netty
        '<exclude org="org.slf4j"/>',  # and SLF4J,
        '<exclude org="commons-codec"/>',  # Commons Codec (newer),
        '<exclude org="org.apache.httpcomponents"/>',  # Apache HttpClient / HttpCore
    ]
    return (
        '<ivy-module version="2.0"><info organisation="heymax" module="lakehouse-s3a"/>'
        '<configurations><conf name="default"/></configurations>'
        f"<dependencies>{''.join(deps)}{''.join(excludes)}</dependencies></ivy-module>"
    )


def s3a_jar_paths(jar_cache: str | os.PathLike[str]) -> list[str]:
    folder = Path(jar_cache) / S3A_DIR
    return sorted(str(p) for p in folder.glob("*.jar"))


def ensure_s3a_jars(jar_cache: str | os.PathLike[str]) -> list[str]:
    """hadoop-aws and the AWS SDK v2 jars for ``s3a://`` paths (fetched once, offline afterwards)."""
    folder = Path(jar_cache) / S3A_DIR
    wanted = "\n".join((HADOOP_AWS_COORDINATE, *AWS_SDK_COORDINATES))
    stamp = folder / _S3A_STAMP
    if stamp.exists() and stamp.read_text() == wanted:
        return s3a_jar_paths(jar_cache)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    ivy_xml = folder / "ivy.xml"
    ivy_xml.write_text(_s3a_ivy_xml())
    cmd = [
        _java(), "-jar", str(_ivy_jar()),
        "-cache", str(Path(jar_cache) / "ivy-cache"),
        "-ivy", str(ivy_xml), "-confs", "default", "-types", "jar",
        "-retrieve", str(folder / "[organisation]_[artifact]-[revision].[ext]"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    ivy_xml.unlink()
    jars = s3a_jar_paths(jar_cache)
    if proc.returncode != 0 or not any("hadoop-aws" in j for j in jars):
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise JarResolutionError(f"could not fetch the s3a jars into {folder}:\n{tail}")
    stamp.write_text(wanted)
    return jars


def uses_s3a(*paths: str) -> bool:
    return any(p.startswith("s3a://") for p in paths)


def main(argv: list[str] | None = None) -> int:
    from lakehouse.config import load_config

    args = argv if argv is not None else sys.argv[1:]
    config = load_config(overrides=[a for a in args if "=" in a])
    try:
        jars = ensure_delta_jars(config.paths.jar_cache)
        if "--s3a" in args:
            jars = jars + ensure_s3a_jars(config.paths.jar_cache)
    except JarResolutionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # --comma: one line for spark-submit --jars; else one path per line.
    print(",".join(jars) if "--comma" in args else "\n".join(jars))
    return 0


if __name__ == "__main__":
    sys.exit(main())
