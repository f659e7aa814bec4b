"""The driver JVM's start-up: Delta on the class path, one class-data-sharing archive, JIT flags for short jobs.

Why: a day's work is well under a second of CPU, yet every Spark application paid about 9 s for its
first Delta read (class loading and JIT of Spark SQL + Delta). Two JVM features cut that, measured on
this project's 2-core machine (docs/performance.md):

* **Class-data sharing (CDS).** A dynamic archive (``-XX:ArchiveClassesAtExit``) of the classes a
  whole DAG run loads (Spark, Hadoop, Delta: about 30,000), written once at set-up by a training
  run (the DAG on a small delivery) and mapped by every later driver JVM (``-XX:SharedArchiveFile``)
  instead of parsing and verifying the classes from their jars again.
* **C1-only JIT** (``-XX:TieredStopAtLevel=1``): on 2 cores the C2 compiler threads compete with a
  short job's own work; the quick C1 compiler alone is faster for the jobs of a daily run. That flag
  alone also puts the JVM in "client emulation" and shrinks its code cache from 240 MB to 48 MB: a
  driver running the whole DAG (a cluster driver, seen in CI) filled it and failed with "Out of space
  in CodeCache for method handle intrinsic". ``-XX:ReservedCodeCacheSize=240m`` keeps the usual size
  (address space reserved, not memory used).

How it reaches every driver JVM: ``spark-submit`` sources ``$SPARK_CONF_DIR/spark-env.sh``, by default
``pyspark/conf/spark-env.sh`` of this virtualenv. :func:`write_spark_env` writes that file (from
``scripts/_bootstrap.sh``); it applies to ``spark-submit jobs/<job>.py``, to the sessions that
``lakehouse run`` / ``lakehouse job`` and the tests start (PySpark launches its JVM through
``spark-submit``), to ``lakehouse cluster submit``'s driver and to the Thrift server (a long-running
server, which asks for :data:`FULL_JIT` instead of the C1-only flag). It sets:

* ``SPARK_CONF_DIR`` to an empty folder: Spark's launcher puts the conf folder on the class path, and
  the JVM maps a CDS archive only when every folder on the class path is empty (a non-empty one
  makes it start without the archive, silently);
* ``SPARK_DIST_CLASSPATH``: Delta's two jars on the driver's class path (classes of ``spark.jars``
  are loaded by a class loader CDS does not archive);
* ``SPARK_SUBMIT_OPTS``: what ``spark-defaults.conf`` said before (``spark.jars``, Delta's SQL
  extension and catalog, as ``-D`` system properties, which ``SparkConf`` reads), the archive, the
  JIT flag. ``--conf`` and ``--driver-java-options`` given to ``spark-submit`` still win.

The archive is named by a fingerprint of what it depends on (the java binary, Spark's and Delta's jars,
the conf folder's path, :data:`TRAINING_VERSION`): when one changes, set-up builds a new one. A missing
or unusable archive only costs time (``-Xshare:auto``: the JVM starts without it).
``python -m lakehouse.jvm`` does all of it (idempotent: about 3 minutes the first time, instant after).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lakehouse.jars import DELTA_CATALOG, DELTA_EXTENSION, ensure_delta_jars, jdk_tool, spark_home

log = logging.getLogger("lakehouse")

#: Bump when the training run changes (a new archive is then built).
TRAINING_VERSION = "2"
#: JIT flags of every driver JVM started through ``spark-submit`` from this virtualenv.
JIT_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=240m")
JVM_DIR = "jvm"
ENV_FILE_MARKER = "# Written by lakehouse.jvm"


def jvm_dir(jar_cache: str | os.PathLike[str]) -> Path:
    return Path(jar_cache).resolve() / JVM_DIR


def empty_conf_dir(jar_cache: str | os.PathLike[str]) -> Path:
    """The conf folder every driver JVM gets: kept empty (see the module docstring)."""
    folder = jvm_dir(jar_cache) / "spark-conf"
    folder.mkdir(parents=True, exist_ok=True)
    for stray in folder.iterdir():  # anything here would switch CDS off for every run
        shutil.rmtree(stray) if stray.is_dir() else stray.unlink()
    return folder


def _java_identity() -> str:
    java = jdk_tool("java")
    if not java:
        return "no-java"
    real = Path(java).resolve()
    stat = real.stat()
    return f"{real}:{stat.st_size}:{int(stat.st_mtime)}"


def fingerprint(jar_cache: str | os.PathLike[str], delta_jars: list[str], java_identity: str = "") -> str:
    """What the archive depends on: java (the environment's, or ``java_identity``), Spark's jars, Delta's
    jars, the class path's folders."""
    h = hashlib.sha256(TRAINING_VERSION.encode())
    h.update((java_identity or _java_identity()).encode())
    for jar in sorted((spark_home() / "jars").glob("*.jar")):
        h.update(f"{jar.name}:{jar.stat().st_size}\n".encode())
    for jar in delta_jars:
        h.update(f"{Path(jar).resolve()}:{Path(jar).stat().st_size}\n".encode())
    h.update(str(jvm_dir(jar_cache) / "spark-conf").encode())
    return h.hexdigest()[:16]


def archive_path(jar_cache: str | os.PathLike[str], delta_jars: list[str]) -> Path:
    return jvm_dir(jar_cache) / f"driver-{fingerprint(jar_cache, delta_jars)}.jsa"


def launch_env(jar_cache: str | os.PathLike[str], delta_jars: list[str], cds_option: str | None) -> dict[str, str]:
    """The variables ``spark-env.sh`` sets (also used, with a dump option, by the training run)."""
    system_properties = [
        f"-Dspark.jars={','.join(delta_jars)}",
        f"-Dspark.sql.extensions={DELTA_EXTENSION}",
        f"-Dspark.sql.catalog.spark_catalog={DELTA_CATALOG}",
    ]
    options = [*system_properties, *([cds_option, "-Xshare:auto"] if cds_option else []), *JIT_OPTIONS]
    return {
        "SPARK_CONF_DIR": str(empty_conf_dir(jar_cache)),
        "SPARK_DIST_CLASSPATH": os.pathsep.join(delta_jars),
        "SPARK_SUBMIT_OPTS": " ".join(options),
    }


def spark_env_text(env: dict[str, str]) -> str:
    lines = [
        f"{ENV_FILE_MARKER} (scripts/_bootstrap.sh): spark-submit from this virtualenv gets Delta and a",
        "# fast-starting driver JVM (class-data-sharing archive, C1 JIT). See lakehouse/jvm.py.",
        f"SPARK_CONF_DIR={shlex.quote(env['SPARK_CONF_DIR'])}",
        f"SPARK_DIST_CLASSPATH={shlex.quote(env['SPARK_DIST_CLASSPATH'])}",
        # Options the caller set (SPARK_SUBMIT_OPTS in the environment) come after ours and win.
        f'SPARK_SUBMIT_OPTS={shlex.quote(env["SPARK_SUBMIT_OPTS"])}" ${{SPARK_SUBMIT_OPTS:-}}"',
    ]
    return "\n".join(lines) + "\n"


def write_spark_env(env: dict[str, str]) -> Path:
    """Write ``pyspark/conf/spark-env.sh`` (and drop the ``spark-defaults.conf`` it replaces)."""
    conf = spark_home() / "conf"
    conf.mkdir(exist_ok=True)
    target = conf / "spark-env.sh"
    text = spark_env_text(env)
    if not target.exists() or target.read_text() != text:
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(target)
    defaults = conf / "spark-defaults.conf"
    if defaults.exists() and "Written by lakehouse.jars" in defaults.read_text():
        defaults.unlink()  # no longer read: spark-env.sh points SPARK_CONF_DIR elsewhere
    return target


# --------------------------------------------------------------------------- the training run


def _training_input(folder: Path) -> Path:
    """A small delivery: the first 1,500 lines of each of the shipped sample's files but the last."""
    from lakehouse.config import PROJECT_ROOT

    sample = sorted((PROJECT_ROOT / "data" / "sample").glob("*.csv"))
    folder.mkdir(parents=True)
    for path in sample[:-1]:
        with open(path, encoding="utf-8") as f:
            lines = [next(f) for _ in range(1500)]
        folder.joinpath(path.name).write_text("".join(lines), encoding="utf-8")
    return folder


def train(workdir: str) -> int:
    """The workload whose classes are archived: the DAG on a small delivery, the summary, then a clean JVM
    exit (the archive is written when the JVM exits). A second, incremental run on a later file (the
    training until 2026-12-07) made the training 41 s longer and the archive no better: five cold jobs took
    the same time with either archive (docs/performance.md)."""
    from lakehouse.config import load_config
    from lakehouse.job_catalog import job
    from lakehouse.pipeline import run_jobs
    from lakehouse.session import get_spark
    from lakehouse.summary import build_summary

    root = Path(workdir)
    delivery = _training_input(root / "input")
    config = load_config(overrides={"paths.warehouse": str(root / "warehouse"), "paths.input": str(delivery)})
    spark = get_spark(config, app_name=f"{config.app_name}:jvm-training")
    jobs = [job(name) for name in config.dag]
    code = run_jobs(spark, config, jobs, {"full_refresh": False, "input": None}, runs=(runs := []))
    build_summary(spark, config, runs)
    from pyspark import SparkContext

    proc = SparkContext._gateway.proc if SparkContext._gateway is not None else None
    spark.stop()
    if proc is not None:  # the JVM exits when its stdin closes, and writes the archive on the way out
        proc.stdin.close()
        proc.wait(timeout=300)
    return 0 if not code else 1


def build_archive(jar_cache: str | os.PathLike[str], delta_jars: list[str], target: Path) -> bool:
    """Run the training workload in a child process that dumps the archive to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    env = {**os.environ, **launch_env(jar_cache, delta_jars, f"-XX:ArchiveClassesAtExit={partial}")}
    env["SPARK_ENV_LOADED"] = "1"  # this run's settings, not the virtualenv's spark-env.sh
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    env.pop("PYSPARK_GATEWAY_PORT", None)
    print(
        "building the driver JVM's class-data-sharing archive (once, about 3 minutes; later set-ups reuse it)",
        file=sys.stderr,
        flush=True,
    )
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lakehouse-jvm-training-") as workdir:
        log_path = target.with_suffix(".log")
        with open(log_path, "w") as out:
            done = subprocess.run([sys.executable, "-m", "lakehouse.jvm", "--train", workdir], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, check=False)  # fmt: skip
    if done.returncode or not partial.exists() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        print(f"warning: the JVM class-data-sharing archive was not built (exit {done.returncode}; log {log_path}); "
              "Spark starts without it", file=sys.stderr)  # fmt: skip
        return False
    partial.replace(target)
    for old in target.parent.glob("driver-*.jsa"):
        if old != target:
            old.unlink()
    print(f"JVM class-data-sharing archive built in {time.perf_counter() - began:.0f} s: {target} "
          f"({target.stat().st_size / 2**20:.0f} MB)", file=sys.stderr)  # fmt: skip
    return True


def ensure(jar_cache: str | os.PathLike[str], *, archive: bool = True, rebuild: bool = False) -> Path:
    """Delta's jars, the archive (unless ``archive`` is False) and ``spark-env.sh``; returns the env file."""
    delta_jars = ensure_delta_jars(jar_cache)
    target = archive_path(jar_cache, delta_jars)
    if archive and (rebuild or not target.exists()):
        build_archive(jar_cache, delta_jars, target)
    cds = f"-XX:SharedArchiveFile={target}" if target.exists() else None
    return write_spark_env(launch_env(jar_cache, delta_jars, cds))


# --------------------------------------------------------------------------- the first real run writes it


def first_run_dump(jar_cache: str | os.PathLike[str]) -> Path | None:
    """Where the next run's JVM should write the archive (``-XX:ArchiveClassesAtExit``), or None if there is
    one. A newcomer's first ``scripts/run_pipeline.sh`` starts without an archive and its own JVM writes one
    at exit, instead of a training run before it (docs/performance.md: measured both ways)."""
    target = archive_path(jar_cache, ensure_delta_jars(jar_cache))
    if target.exists():
        return None
    return target.with_name(f"{target.name}.{os.getpid()}.partial")


def _writers_of(dump: Path) -> list[int]:
    """Processes whose command line names ``dump`` (the JVM still writing it)."""
    pids = []
    needle = f"-XX:ArchiveClassesAtExit={dump}".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def keep_dump(dump: Path, target: Path, timeout: float = 180.0) -> bool:
    """After a run started with ``-XX:ArchiveClassesAtExit=dump``: wait for its JVM to finish writing (it
    writes on its way out, after the Python process ended), then keep it as ``target``. False when no
    JVM ran (nothing to do), it wrote nothing, or another run's archive came first."""
    deadline = time.monotonic() + timeout
    while _writers_of(dump) and time.monotonic() < deadline:
        time.sleep(0.2)
    kept = False
    if not _writers_of(dump) and dump.exists() and dump.stat().st_size > 0 and not target.exists():
        dump.replace(target)
        kept = True
    for stale in target.parent.glob("driver-*.partial"):  # this run's if not kept, and those of killed runs
        if not _writers_of(stale):
            stale.unlink(missing_ok=True)
    if kept:
        for old in target.parent.glob("driver-*.jsa"):
            if old != target:
                old.unlink()
    return kept


def adopt_dump(jar_cache: str | os.PathLike[str], dump: Path) -> Path | None:
    """:func:`keep_dump`, then spark-env.sh names the archive (if there is one now)."""
    delta_jars = ensure_delta_jars(jar_cache)
    target = archive_path(jar_cache, delta_jars)
    keep_dump(dump, target)
    if not target.exists():
        return None
    write_spark_env(launch_env(jar_cache, delta_jars, f"-XX:SharedArchiveFile={target}"))
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lakehouse.jvm",
        description="Set up the driver JVM: Delta's jars, the class-data-sharing archive, spark-env.sh.",
    )
    p.add_argument("--rebuild", action="store_true", help="build the archive again even if it exists")
    p.add_argument("--no-archive", action="store_true", help="write spark-env.sh without building an archive")
    p.add_argument(
        "--first-run-dump",
        action="store_true",
        help="no training run: print where this run's JVM should write the archive (empty if it exists)",
    )
    p.add_argument("--adopt", metavar="DUMP", help="keep the archive a run wrote to DUMP (waits for its JVM)")
    p.add_argument("--train", metavar="WORKDIR", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.train:
        return train(args.train)
    from lakehouse.config import load_config
    from lakehouse.jars import JarResolutionError

    config = load_config()
    try:
        if args.adopt:
            print(adopt_dump(config.paths.jar_cache, Path(args.adopt)) or "")
            return 0
        if args.first_run_dump:
            ensure(config.paths.jar_cache, archive=False)
            dump = first_run_dump(config.paths.jar_cache)
            print(dump or "")
            return 0
        print(ensure(config.paths.jar_cache, archive=not args.no_archive, rebuild=args.rebuild))
    except JarResolutionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
