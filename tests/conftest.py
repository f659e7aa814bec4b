"""One session-scoped Spark fixture (local[2], 2 shuffle partitions, UI off, UTC) and config helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakehouse.config import LakehouseConfig, load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def make_config(warehouse: Path | str, input_path: Path | str | None = None, **overrides) -> LakehouseConfig:
    """The repo's config with the test's warehouse and input; ``overrides`` use dotted keys with '__'."""
    base = {"paths.warehouse": str(warehouse), "spark.shuffle_partitions": 2}
    if input_path is not None:
        base["paths.input"] = str(input_path)
    base.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load_config(env="local", overrides=base)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from lakehouse.session import get_spark

    config = make_config(tmp_path_factory.mktemp("warehouse"))
    session = get_spark(config, app_name="lakehouse-tests")
    yield session
    session.stop()


@pytest.fixture
def config(tmp_path) -> LakehouseConfig:
    return make_config(tmp_path / "warehouse", tmp_path / "input")


def job_context(spark, config: LakehouseConfig, job: str = "test"):
    """A job context as the job runner builds it (its own run bookkeeping, an empty shared store)."""
    from lakehouse.jobkit import JobContext
    from lakehouse.ops import JobRun

    return JobContext(spark, config, JobRun(spark, config, job, {}))
