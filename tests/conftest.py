"""One session-scoped Spark fixture (local[2], 2 shuffle partitions, UI off, UTC), config helpers, and one
whole-pipeline run on the shipped sample shared by the integration and serving tests that read it."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from lakehouse.config import LakehouseConfig, load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
#: The suite's own engine (never a developer's): every process of the suite, subprocesses included, finds it here.
os.environ.setdefault("LAKEHOUSE_ENGINE_DIR", str(REPO_ROOT / ".cache" / "test-engine"))
#: ``engine`` (scripts/test.sh: the whole suite): the session fixture is a Spark Connect client of an engine the
#: suite starts, so every job body the tests run in-process runs as the engine's client; ``classic`` (default,
#: and the fast tier): one classic session in this process.
TEST_SESSION = os.environ.get("LAKEHOUSE_TEST_SESSION", "classic")
TEST_ENGINE_PORT = 15012
#: A test module's own engine (started and stopped inside one module; some killed on purpose) runs without the
#: AOT cache: recording one costs a slower start and about 25 s of writing at its stop, which such a short-lived
#: engine never pays back (on a fresh clone every engine would record). The suite's own engine records it.
MODULE_ENGINE_AOT = "engine.aot_cache=false"


def make_config(warehouse: Path | str, input_path: Path | str | None = None, **overrides) -> LakehouseConfig:
    """The repo's config with the test's warehouse and input; ``overrides`` use dotted keys with '__'."""
    base = {"paths.warehouse": str(warehouse), "spark.shuffle_partitions": 2, "engine.port": TEST_ENGINE_PORT}
    if input_path is not None:
        base["paths.input"] = str(input_path)
    base.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load_config(env="local", overrides=base)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from lakehouse.session import get_spark

    config = make_config(tmp_path_factory.mktemp("warehouse"))
    if TEST_SESSION == "engine":
        yield from _engine_session(config)
        return
    # One JVM for the whole session (half an hour of jobs): the full tiered JIT pays off here, where the
    # C1-only JIT of short runs made the integration tests 1.5-2x slower (docs/tests.md). Tiny data: the
    # settings of a light daily run (lakehouse/session.py LIGHT_RUN).
    session = get_spark(config, app_name="lakehouse-tests", full_jit=True, light=True)
    yield session
    session.stop()


def _engine_session(config: LakehouseConfig):
    """The suite's engine, started here and stopped when the session ends (also after failures), and a client
    session on it. Its resident memory after the whole suite is bounded (test_engine.py reads it)."""
    from lakehouse import engine
    from lakehouse.session import get_spark

    engine.stop(config)  # one a killed earlier run left behind
    try:
        state = engine.start(config, warm_up=False)
        session = get_spark(config, light=True, remote=engine.target(config).remote())
        try:
            yield session
        finally:
            session.stop()
        _memory_after_the_suite(config, state)
    finally:
        engine.stop(config)


#: The suite's engine after every in-process test (hundreds of job runs): its resident memory stays within its
#: heap's maximum (engine.driver_memory) plus this much (metaspace, code cache, threads, buffers): a bound, not a
#: figure: the benchmark's soak case measures the growth day by day (docs/engine.md).
ENGINE_RSS_OVER_HEAP_MB = 1536


def _memory_after_the_suite(config: LakehouseConfig, state) -> None:
    import json

    from lakehouse import engine

    running = engine.running(config)
    if running is None or running.pid != state.pid:  # a test restarted it: nothing to say about this one
        return
    figures = engine.memory(running.pid)
    heap_mb = int(config.engine.driver_memory.rstrip("gGmM")) * (1024 if config.engine.driver_memory[-1] in "gG" else 1)
    Path(config.engine.state_dir, "memory-after-suite.json").write_text(json.dumps(figures))
    print(f"\n[engine] the suite's engine after the session: {figures} (bound: RSS <= {heap_mb} + "
          f"{ENGINE_RSS_OVER_HEAP_MB} MB)")  # fmt: skip
    assert figures["rss_mb"] <= heap_mb + ENGINE_RSS_OVER_HEAP_MB, figures


@pytest.fixture
def config(tmp_path) -> LakehouseConfig:
    return make_config(tmp_path / "warehouse", tmp_path / "input")


def history(spark, path: str, limit: int | None = None):
    """``DESCRIBE HISTORY`` of the Delta table at ``path`` (newest first): SQL, as a Connect session runs it."""
    return spark.sql(f"DESCRIBE HISTORY delta.`{path}`" + (f" LIMIT {limit}" if limit else ""))


def job_context(spark, config: LakehouseConfig, job: str = "test"):
    """A job context as the job runner builds it (its own run bookkeeping, an empty shared store)."""
    from lakehouse.job_runtime import JobContext
    from lakehouse.ops import JobRun

    return JobContext(spark, config, JobRun(job, {}))


def run_step(spark, config: LakehouseConfig, body, *args, _job: str = "test", **kwargs):
    """Call a job function in a fresh context, then write its bookkeeping, as ``Job.execute`` does."""
    ctx = job_context(spark, config, _job)
    try:
        return body(ctx, *args, **kwargs)
    finally:
        ctx.run.sink.flush(spark, config)


SAMPLE_DIR = REPO_ROOT / "data" / "sample"
SAMPLE_FILES = sorted(SAMPLE_DIR.glob("*.csv"))
#: For the reference's future-time rule; every sample event is long before both this and "now".
REFERENCE_INGESTED_AT = datetime(2025, 7, 10)


def pipeline_args(input_dir, warehouse) -> list[str]:
    return ["--env", "local", "--input", str(input_dir), "--warehouse", str(warehouse), "--no-summary",
            "--set", "spark.shuffle_partitions=2"]  # fmt: skip


@pytest.fixture(scope="session")
def sample_pipeline(spark, tmp_path_factory):
    """Config of a warehouse built by the single-application pipeline over the whole sample."""
    root = tmp_path_factory.mktemp("sample_pipeline")
    shutil.copytree(SAMPLE_DIR, root / "input")
    from lakehouse import launcher

    assert launcher.run_main(pipeline_args(root / "input", root / "wh")) == 0
    return make_config(root / "wh", root / "input")


@pytest.fixture(scope="session")
def sample_reference():
    from tests.reference import spec_reference

    return spec_reference.compute([str(p) for p in SAMPLE_FILES], ingested_at=REFERENCE_INGESTED_AT)


#: Every test's set-up, call and tear-down seconds of the last run, slowest first (the suite's profile: pytest's
#: ``--durations`` lists only the slowest 15). Written when the session ends.
DURATIONS_FILE = REPO_ROOT / ".cache" / "test-durations.tsv"
_durations: list[tuple[float, str, str]] = []


def pytest_runtest_logreport(report) -> None:
    _durations.append((report.duration, report.when, report.nodeid))


def pytest_sessionfinish(session) -> None:
    if _durations and not hasattr(session.config, "workerinput"):
        DURATIONS_FILE.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{seconds:.2f}\t{when}\t{nodeid}" for seconds, when, nodeid in sorted(_durations, reverse=True)]
        DURATIONS_FILE.write_text("seconds\tphase\ttest\n" + "\n".join(lines) + "\n")
