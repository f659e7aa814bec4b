"""The same jobs on a Spark standalone cluster over an S3 server (issue 11), with real parts.

``scripts/cluster_up.sh``'s code starts a master, a worker and SeaweedFS on 127.0.0.1 (state in a
temporary folder); generated files (late, duplicated and invalid rows, three weeks) are uploaded to the
input bucket; the whole DAG runs with ``spark-submit --master spark://127.0.0.1:7077`` and config
``--env cluster-local`` (input and warehouse on ``s3a://``, the package as a wheel); every table is
compared with ``lakehouse run``'s over the same files in local mode. (Until 2026-12-06 the input was
the shipped sample: 182 days, so every date-partitioned table wrote and the diffs read 182 partitions
over S3; three weeks keep every table non-empty with the anomaly settings of test_incremental.)
Then the warm engine is started as the cluster's driver (``engine.master`` of ``cluster-local``) and the rest
of the module's runs and diffs are its clients: the diff finds every table equal, a second run commits nothing,
the Thrift server answers over the S3 warehouse, the warehouse lock is atomic on S3 and a second run exits 2
while an engine client holds it, a new file adds only its rows.
Everything started is stopped at the end, also when a test fails. Marker ``cluster``:
``scripts/test.sh -m cluster`` runs it alone.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lakehouse import cluster, engine, generator
from lakehouse.config import load_config
from lakehouse.tables import TABLES
from tests.conftest import REPO_ROOT, make_config, pipeline_args
from tests.services import free_port, thrift_server, timed

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

WAREHOUSE = "s3a://heymax-lakehouse/warehouse"
#: Three valid rows of two new users on the input's last day.
EXTRA_EVENTS = (
    "event_time,user_id,event_type,transaction_category,miles_amount,platform,utm_source,country\n"
    "2025-03-22 10:00:00.000001,u_990001,miles_earned,dining,100.0,ios,google,SG\n"
    "2025-03-22 11:00:00.000001,u_990001,share,,,ios,google,SG\n"
    "2025-03-22 12:00:00.000001,u_990002,like,,,web,tiktok,TH\n"
)


#: Anomaly points judged on three weeks of data (the same weekday of the two weeks before, as in test_incremental):
#: every run of this module, local and on the cluster, sets them.
SETS = ["--set", "anomaly.training_periods=2", "--set", "anomaly.min_training_periods=2",
        "--set", "anomaly.min_expected=1"]  # fmt: skip


@pytest.fixture(scope="module")
def local_run(spark, tmp_path_factory):
    """Generated files (40 users, 2025-03-02 to 03-22 in 4 files: late, duplicated and invalid rows) and
    ``lakehouse run`` over them in local mode (the module's anomaly settings): the warehouse every cluster
    table is compared with."""
    from lakehouse import launcher

    root = tmp_path_factory.mktemp("cluster_input")
    generator.generate(
        root / "input", users=40, days=21, start_date="2025-03-02", seed=5, events_per_day=1.5, files=4,
        invalid_rate=0.01, duplicate_rate=0.03, late_rate=0.05,
    )  # fmt: skip
    assert launcher.run_main([*pipeline_args(root / "input", root / "wh"), *SETS]) == 0
    return make_config(root / "wh", root / "input")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    paths = cluster.Paths(tmp_path_factory.mktemp("cluster"))
    started = time.monotonic()
    try:
        cluster.up(paths)
        print(f"\n[cluster] up in {time.monotonic() - started:.1f} s", flush=True)
        yield paths
    finally:
        cluster.down(paths)
        assert cluster.status(paths) == 1  # nothing left running


@pytest.fixture(scope="module")
def cluster_engine(stack, tmp_path_factory):
    """The warm engine as the cluster's driver (``engine.master`` of ``cluster-local``), over S3: started by
    :func:`_engine_up` once the whole DAG's ``spark-submit`` has ended (an application holds the worker's cores
    while it runs), stopped here, also after a failure. Later runs and diffs of the module are its clients."""
    state_dir = tmp_path_factory.mktemp("cluster_engine")
    config = load_config(env="cluster-local").with_overrides(
        engine__state_dir=str(state_dir),
        engine__port=free_port(),
        engine__driver_memory="1g",
        engine__aot_cache=False,
    )
    try:
        yield config
    finally:
        engine.stop(config)


def _engine_up(stack, config) -> None:
    if engine.running(config) is None:
        saved = dict(os.environ)
        os.environ.update(cluster.s3_env(stack))  # the engine's driver reads S3 with the stack's keys
        try:
            with timed("cluster engine start"):
                state = engine.start(config, warm_up=False)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        assert state.master == cluster.MASTER_URL


def _client_env(stack, config) -> dict[str, str]:
    """A client process of the module's engine: the stack's S3 keys (the client's own S3 reads: the lock, the
    landing listing) and the engine's state folder."""
    return {**_s3_env(stack), "LAKEHOUSE_ENGINE_DIR": config.engine.state_dir}


def _submit(stack, script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    with timed(f"cluster submit {script} {' '.join(args)}".strip()):
        return cluster.submit(stack, script, list(args), capture_output=True, text=True, timeout=timeout)


def _diff(stack, left: str, tmp_path: Path, *tables: str, env: dict[str, str] | None = None) -> dict:
    """``lakehouse diff`` of a local warehouse and the S3 one (a local Spark application over s3a)."""
    out = tmp_path / f"diff_{time.monotonic_ns()}.json"
    cmd = [sys.executable, "-m", "lakehouse.cli", "diff", "--env", "cluster-local", "--left", left,
           "--right", WAREHOUSE, "--json", str(out), *(["--tables", ",".join(tables)] if tables else [])]  # fmt: skip
    with timed("cluster diff"):
        proc = subprocess.run(cmd, env=env or _s3_env(stack), cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    if env is not None:  # a client of the module's engine
        assert "running as a client of the engine" in proc.stderr, proc.stderr[-3000:]
    return json.loads(out.read_text())


def _log_versions() -> dict[str, int]:
    """Commits per table, from the S3 server's own listing of each ``_delta_log`` (no Spark)."""
    versions = {}
    for spec in TABLES:
        url = f"http://127.0.0.1:{cluster.S3_FILER_PORT}/buckets/heymax-lakehouse/warehouse/{spec.layer}/{spec.name}/_delta_log/?limit=100000"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                entries = json.loads(resp.read()).get("Entries") or []
        except urllib.error.HTTPError as exc:  # a table this run never writes (an audience export's log, ...)
            if exc.code != 404:
                raise
            entries = []
        versions[spec.full_name] = sum(e["FullPath"].endswith(".json") for e in entries)
    return versions


def _s3_env(stack) -> dict[str, str]:
    return {**os.environ, **cluster.s3_env(stack)}


def _run(stack, config, *args: str, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    """``lakehouse run --env cluster-local`` as a client of the module's engine (``engine.use: auto``)."""
    cmd = [sys.executable, "-m", "lakehouse.cli", "run", "--env", "cluster-local", "--no-summary", *SETS, *args]
    if popen:
        return subprocess.Popen(cmd, env=_client_env(stack, config), cwd=REPO_ROOT, **popen)
    with timed(f"lakehouse run --env cluster-local {' '.join(args)} (engine client)".strip()):
        return subprocess.run(cmd, env=_client_env(stack, config), cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=600)  # fmt: skip


def test_whole_dag_on_the_cluster_over_s3_equals_the_local_run(stack, local_run, cluster_engine, tmp_path):
    cluster.upload(stack, sorted(Path(local_run.paths.input).glob("*.csv")), "heymax-raw", "landing")
    run = _submit(stack, "jobs/run_pipeline.py", *SETS)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    assert "gold_agg_user_retention" in run.stdout and "s3a://heymax-lakehouse/warehouse" in run.stdout

    # From here on the module's work runs on the warm engine, the cluster's driver: the diff is its client.
    _engine_up(stack, cluster_engine)
    result = _diff(stack, local_run.paths.warehouse, tmp_path, env=_client_env(stack, cluster_engine))
    assert len(result) == len([s for s in TABLES if s.layer != "ops"])
    for name, r in result.items():
        assert (r["only_left"], r["only_right"]) == (0, 0), f"{name}: {r}"
        assert r["rows_right"] > 0, f"{name} is empty"

    # A second run, a client of the engine on the cluster, commits nothing to a data table (the ops tables get
    # its bookkeeping).
    before = _log_versions()
    again = _run(stack, cluster_engine)
    assert again.returncode == 0, again.stderr[-3000:]
    after = _log_versions()
    data = [s.full_name for s in TABLES if s.layer != "ops"]
    assert {n: after[n] for n in data} == {n: before[n] for n in data}
    assert after["ops.job_runs"] == before["ops.job_runs"] + 1


def test_thrift_server_serves_the_s3_warehouse(stack, local_run, spark, tmp_path):
    from lakehouse.serving.thrift import connect

    port = free_port()
    state = tmp_path / "thrift"
    with thrift_server(state, port, "--env", "cluster-local", env=_s3_env(stack)):
        from lakehouse.serving.thrift.auth import service_credentials
        from lakehouse.serving.thrift.tls import tls_files

        # TLS by default: the client verifies the server against the CA its start made.
        conn = connect("127.0.0.1", port, service_credentials(state), ca_file=tls_files(state).ca)
        try:
            cursor = conn.cursor()
            query = ("SELECT period_type, SUM(active_users) FROM gold.agg_active_user "
                     "GROUP BY period_type ORDER BY period_type")  # fmt: skip
            cursor.execute(query)
            served = [tuple(r) for r in cursor.fetchall()]
        finally:
            conn.close()
    local = (
        spark.read.format("delta").load(f"{local_run.paths.warehouse}/gold/agg_active_user")
        .groupBy("period_type").sum("active_users").orderBy("period_type").collect()
    )  # fmt: skip
    assert served == [tuple(r) for r in local] and len(served) == 3


def test_lock_is_atomic_on_s3_and_a_second_run_exits_2(stack, local_run, cluster_engine, tmp_path):
    out = tmp_path / "probe.json"
    probe = subprocess.run(
        [sys.executable, "tests/cluster/lock_probe.py", "--env", "cluster-local", "--out", str(out)],
        env=_s3_env(stack), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stdout[-2000:] + probe.stderr[-4000:]
    found = json.loads(out.read_text())
    assert found["first_create"] is True
    assert found["second_create"] is False  # the S3 server answered 412 to the put-if-absent
    assert sorted(found["racers"]) == ["held"] * 5 + ["won"]

    # A real run holds the lock (a new file to ingest): a client of the engine on the cluster, whose lock is the
    # client's own conditional PUT; a second run started meanwhile exits 2.
    (tmp_path / "extra").mkdir()
    extra = tmp_path / "extra" / "event_stream_extra.csv"
    extra.write_text(EXTRA_EVENTS)
    cluster.upload(stack, [extra], "heymax-raw", "landing")
    _engine_up(stack, cluster_engine)
    holder = _run(stack, cluster_engine, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lock_url = f"http://127.0.0.1:{cluster.S3_FILER_PORT}/buckets/heymax-lakehouse/warehouse/_lakehouse/writer.lock"
        deadline = time.monotonic() + 180
        while cluster._http(lock_url) is None or cluster._http(lock_url)[0] != 200:
            assert holder.poll() is None, "the first run ended before it was seen holding the lock"
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.5)
        second = subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", "run", "--env", "cluster-local", "--no-summary", *SETS],
            env=_s3_env(stack), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        output, _ = holder.communicate(timeout=600)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert second.returncode == 2, second.stderr[-3000:]
    # The holder is the engine's client process, on this host.
    host = socket.gethostname()
    held = rf"another run is writing the warehouse {WAREHOUSE}: pid {holder.pid} on host {host}, started at .*: "
    held += "lakehouse run"
    assert re.search(held, second.stderr), second.stderr[-2000:]
    assert holder.returncode == 0, output[-4000:]
    assert "running as a client of the engine" in output, output[-4000:]

    # Nothing lost: the new file added exactly its rows, every other table row is the local run's.
    tables = ("bronze.fct_event_stream", "silver.fct_events", "silver.user_activity_daily")
    result = _diff(stack, local_run.paths.warehouse, tmp_path, *tables, env=_client_env(stack, cluster_engine))
    assert result["bronze.fct_event_stream"]["only_right"] == 3
    assert result["silver.fct_events"]["only_right"] == 3
    assert result["bronze.fct_event_stream"]["only_left"] == result["silver.fct_events"]["only_left"] == 0
    assert result["silver.user_activity_daily"]["only_right"] == 2  # two new users, one day
