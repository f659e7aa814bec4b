"""One ``spark-submit`` of a job script, built once for every caller: ``lakehouse cluster submit``,
and the Airflow DAG's ``SparkSubmitOperator`` tasks (the same fields the operator takes).

On a standalone cluster (``spark://`` master) the driver runs here (standalone has no cluster
deploy mode for Python) and the executors need Delta's and s3a's jars (``--jars`` replaces the
virtualenv's default list, so both sets are named) and the package as a wheel (``--py-files``);
one executor with the worker's two cores (one executor JVM to start and warm up instead of two).
In local mode the virtualenv's ``spark-submit`` already has Delta on the class path
(``pyspark/conf/spark-env.sh``, see :mod:`lakehouse.jvm`); Delta's jars are named all the same, so
that a ``spark-submit`` without that set-up (another Spark install) runs the job too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.config import PROJECT_ROOT

HOST = "127.0.0.1"


@dataclass(frozen=True)
class JobSubmit:
    """The options of one ``spark-submit`` and the job script it runs."""

    application: str
    application_args: tuple[str, ...] = ()
    conf: dict[str, str] = field(default_factory=dict)
    jars: tuple[str, ...] = ()
    py_files: tuple[str, ...] = ()
    driver_memory: str | None = None
    executor_memory: str | None = None
    executor_cores: int | None = None
    total_executor_cores: int | None = None
    name: str | None = None

    def argv(self, spark_submit: str, master: str) -> list[str]:
        cmd = [spark_submit, "--master", master]
        for key, value in self.conf.items():
            cmd += ["--conf", f"{key}={value}"]
        if self.py_files:
            cmd += ["--py-files", ",".join(self.py_files)]
        if self.jars:
            cmd += ["--jars", ",".join(self.jars)]
        for flag, value in (("--driver-memory", self.driver_memory), ("--executor-memory", self.executor_memory),
                            ("--executor-cores", self.executor_cores),
                            ("--total-executor-cores", self.total_executor_cores), ("--name", self.name)):  # fmt: skip
            if value is not None:
                cmd += [flag, str(value)]
        return [*cmd, self.application, *self.application_args]

    def operator_kwargs(self) -> dict[str, object]:
        """The same, as ``SparkSubmitOperator`` keyword arguments (comma-joined lists, no master)."""
        kwargs: dict[str, object] = {"application": self.application, "application_args": list(self.application_args),
                                     "conf": dict(self.conf)}  # fmt: skip
        if self.jars:
            kwargs["jars"] = ",".join(self.jars)
        if self.py_files:
            kwargs["py_files"] = ",".join(self.py_files)
        for key in ("driver_memory", "executor_memory", "executor_cores", "total_executor_cores", "name"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        return kwargs


def is_cluster(master: str) -> bool:
    return master.startswith("spark://")


def job_submit(
    script: str,
    args: Sequence[str],
    *,
    master: str,
    jar_cache: str,
    conf_file: str | Path | None = None,
    env: str | None = None,
    wheel: Path | None = None,
    driver_memory: str | None = None,
    name: str | None = None,
) -> JobSubmit:
    """``spark-submit <script> --conf <conf_file> [--env ENV] <args>`` for ``master``."""
    from lakehouse.jars import ensure_delta_jars, ensure_s3a_jars

    application = _absolute(script)
    job_args = ["--conf", str(conf_file or PROJECT_ROOT / "conf" / "lakehouse.yaml")]
    if env:
        job_args += ["--env", env]
    job_args += list(args)
    if not is_cluster(master):
        return JobSubmit(application, tuple(job_args), jars=tuple(map(_absolute, ensure_delta_jars(jar_cache))),
                         driver_memory=driver_memory, name=name)  # fmt: skip
    if wheel is None:
        raise ValueError("a cluster submit needs the package wheel (lakehouse.cluster.build_wheel)")
    return JobSubmit(
        application, tuple(job_args),
        conf={"spark.driver.host": HOST, "spark.driver.bindAddress": HOST},
        jars=tuple(map(_absolute, ensure_delta_jars(jar_cache) + ensure_s3a_jars(jar_cache))), py_files=(str(wheel),),
        driver_memory=driver_memory or "1g", executor_memory="1g", executor_cores=2, total_executor_cores=2, name=name,
    )  # fmt: skip


def _absolute(path: str | Path) -> str:
    """A project-relative path (conf's jar cache, ``jobs/...``) made absolute: a scheduler runs elsewhere."""
    return str(Path(path) if Path(path).is_absolute() else PROJECT_ROOT / path)
