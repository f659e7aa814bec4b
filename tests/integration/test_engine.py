"""The warm engine (lakehouse/engine.py) trusted only when tested as a long-lived server.

An engine of this module's own (its state folder, port 15014: killing it never touches the suite's engine),
and clients of it in subprocesses (``lakehouse run`` as a scheduler starts it) and in this process:

- it listens on 127.0.0.1 only, and a client without the token, or with another one, is refused;
- commits by other writers are seen by its next query: a delta-rs append of the bookkeeping, a ``lakehouse run``,
  ``restore`` and ``maintain`` by another Spark (the suite's own session), a table deleted and created again at
  the same path;
- killed during a job: the run fails naming the engine, the next run restarts it, and the tables equal a clean
  run's; every client's session is released at its end (the engine's log has its close);
- two clients at once: the warehouse lock still serializes them (the second exits 2 naming the first);
- a client killed while the engine writes for it: the run taking its lock over interrupts that work first.

Needs the suite's engine mode (``LAKEHOUSE_TEST_SESSION=engine``, as ``scripts/test.sh`` runs): a classic
session and a Spark Connect one never share a process. About two and a half minutes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakehouse import delta_io, delta_rs, engine, generator, launcher
from lakehouse.gold.tables.agg_active_user import SPEC as GOLD_ACTIVE_USER
from lakehouse.job_catalog import job
from lakehouse.launcher import _stop_orphaned_work
from lakehouse.lock import LockHeld, WarehouseLock, lock_path
from lakehouse.ops import JobRun
from lakehouse.registry import OPS_JOB_RUNS, SILVER_EVENTS
from tests.conftest import MODULE_ENGINE_AOT, REPO_ROOT, TEST_SESSION, make_config
from tests.integration.test_incremental import assert_same_tables

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(TEST_SESSION != "engine", reason="needs the suite's engine mode (scripts/test.sh)"),
]

PORT = 15014


def _config(engine_dir: Path, warehouse: Path, landing: Path | None = None):
    config = make_config(warehouse, landing)
    return dataclasses.replace(config, engine=dataclasses.replace(config.engine, state_dir=str(engine_dir), port=PORT,
                                                                  aot_cache=False))  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("engine_generated")
    generator.generate(out, users=25, days=14, start_date="2025-03-02", seed=5, events_per_day=1.5, files=3,
                       invalid_rate=0.02, duplicate_rate=0.02, late_rate=0.05)  # fmt: skip
    return sorted(out.glob("*.csv"))


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory):
    """This module's engine, started here and stopped at its end (also after a failure)."""
    folder = tmp_path_factory.mktemp("engine_b")
    config = _config(folder, folder / "unused")
    try:
        engine.start(config, warm_up=False)
        yield folder
    finally:
        engine.stop(config)


def _lakehouse(engine_dir: Path, *args: str, wait: bool = True, **env: str):
    """``python -m lakehouse.cli ARGS`` as a client of this module's engine (a scheduler's process)."""
    cmd = [sys.executable, "-m", "lakehouse.cli", *args]
    environment = {**os.environ, "LAKEHOUSE_ENGINE_DIR": str(engine_dir), **env}
    if not wait:
        return subprocess.Popen(cmd, env=environment, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)  # fmt: skip
    return subprocess.run(cmd, env=environment, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def _run_args(config, *extra: str) -> list[str]:
    return ["run", "--env", "local", "--input", config.paths.input, "--warehouse", config.paths.warehouse,
            "--no-summary", "--set", "spark.shuffle_partitions=2", "--set", "bronze.max_quarantine_rate=0.25",
            "--set", MODULE_ENGINE_AOT, *extra]  # fmt: skip


def _session_of(output: str) -> str:
    found = re.search(r"running as a client of the engine at \S+ \(pid \d+, log [^)]*\), session (\S+)", output)
    assert found, output[-3000:]
    return found.group(1)


def _released(engine_dir: Path, session: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    closing = re.compile(rf"Closing session with userId: \S* and sessionId: {session}")
    while time.monotonic() < deadline:
        if closing.search((engine_dir / "engine.log").read_text()):
            return True
        time.sleep(0.5)
    return False


def _client(engine_dir: Path):
    """A Spark Connect session on this module's engine, in this process (beside the suite's own session)."""
    from pyspark.sql import SparkSession

    target = engine.target(_config(engine_dir, engine_dir / "unused"))
    return SparkSession.builder.remote(target.url).create()


def _copy(files, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / f.name)


RAW_CLIENT = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
try:
    print("answered", spark.range(3).count())
finally:
    spark.stop()
"""


def test_it_listens_on_loopback_only_and_refuses_a_client_without_the_token(engine_dir):
    state = engine.running(_config(engine_dir, engine_dir / "unused"))
    assert state is not None and state.port == PORT
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, remote_state = line.split()[1], line.split()[3]
            address, port = local.rsplit(":", 1)
            if int(port, 16) == PORT and remote_state == "0A":  # LISTEN
                # The kernel writes each 4-byte group of the address little-endian.
                raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
                listening.add(str(ipaddress.ip_address(raw)))
    # The JVM's socket: 127.0.0.1 itself or as IPv6 maps it; never a wildcard (0.0.0.0, ::) or another address.
    assert listening and listening <= {"127.0.0.1", "::ffff:7f00:1"}, listening
    token_file = engine_dir / "token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()

    def client(url: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", RAW_CLIENT, url], capture_output=True, text=True, timeout=120)

    good = client(f"sc://localhost:{PORT}/;token={token}")
    assert good.returncode == 0 and "answered 3" in good.stdout, good.stderr[-2000:]
    for url in (f"sc://localhost:{PORT}", f"sc://localhost:{PORT}/;token=not-{token}"):
        refused = client(url)
        assert refused.returncode != 0 and "answered" not in refused.stdout, url
        assert "UNAUTHENTICATED" in refused.stderr or "token" in refused.stderr.lower(), refused.stderr[-2000:]


@pytest.fixture(scope="module")
def built(engine_dir, files, tmp_path_factory):
    """The first two files through this module's engine by a ``lakehouse run`` client process."""
    root = tmp_path_factory.mktemp("engine_built")
    _copy(files[:2], root / "in")
    config = _config(engine_dir, root / "wh", root / "in")
    done = _lakehouse(engine_dir, *_run_args(config))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _released(engine_dir, _session_of(done.stderr)), "the run's session was not released"
    return config


def test_commits_of_other_writers_are_seen_by_the_next_query(spark, engine_dir, built, files, tmp_path):
    b = _client(engine_dir)
    try:
        config = built
        runs = lambda: b.read.format("delta").load(OPS_JOB_RUNS.path(config)).count()  # noqa: E731
        before = runs()
        # A delta-rs append of the bookkeeping (what an idle run writes without any JVM).
        run = JobRun("another_writer", {})
        run.finish("succeeded", "a delta-rs commit")
        run.sink.flush(None, config)  # no session: a delta-rs append
        assert runs() == before + 1

        # A lakehouse run by another Spark (the suite's session, not this engine) with a new file. (The cold path,
        # a run with a JVM of its own, is the fast tier's session and Airflow's spark-submit day.)
        shutil.copy(files[2], Path(config.paths.input) / files[2].name)
        events = lambda: b.read.format("delta").load(SILVER_EVENTS.path(config)).count()  # noqa: E731
        events_before = events()
        assert launcher.run_main(_run_args(config)[1:]) == 0
        assert events() > events_before
        assert b.read.format("delta").load(SILVER_EVENTS.path(config)).count() == \
            spark.read.format("delta").load(SILVER_EVENTS.path(config)).count()  # fmt: skip

        # maintain and restore by another session (the suite's engine): seen through this engine at once.
        gold = GOLD_ACTIVE_USER.path(config)
        version = delta_io.latest_version(gold, config)
        assert launcher.job_main(job("maintain_tables"), ["--env", "local", "--warehouse", config.paths.warehouse,
                                 "--tables", "gold.agg_active_user"]) == 0  # fmt: skip
        latest = lambda: b.sql(f"DESCRIBE HISTORY delta.`{gold}` LIMIT 1").first()  # noqa: E731
        assert latest()["operation"] == "VACUUM END" and latest()["version"] == delta_io.latest_version(gold, config)
        assert launcher.job_main(job("restore_table"), ["--env", "local", "--warehouse",
                                 config.paths.warehouse, "--table", "gold.agg_active_user", "--version",
                                 str(version)]) == 0  # fmt: skip
        assert latest()["operation"] == "RESTORE"

        # A table deleted and created again at the same path, with other rows, by another writer.
        scratch = str(tmp_path / "recreated")
        spark.range(5).write.format("delta").save(scratch)
        assert b.read.format("delta").load(scratch).count() == 5
        shutil.rmtree(scratch)
        spark.range(100, 107).write.format("delta").save(scratch)
        assert sorted(r["id"] for r in b.read.format("delta").load(scratch).collect()) == list(range(100, 107))
    finally:
        b.stop()


def test_an_engine_killed_during_a_job_fails_the_run_naming_it_and_the_next_run_equals_a_clean_one(
    spark, engine_dir, files, tmp_path
):
    killed = _config(engine_dir, tmp_path / "killed", tmp_path / "in")
    clean = _config(engine_dir, tmp_path / "clean", tmp_path / "in")
    _copy(files[:1], tmp_path / "in")  # a warehouse with a history (its bookkeeping tables exist)
    assert launcher.run_main(_run_args(clean)[1:]) == 0  # on the suite's engine
    shutil.copytree(clean.paths.warehouse, killed.paths.warehouse)
    _copy(files[1:], tmp_path / "in")
    assert launcher.run_main(_run_args(clean)[1:]) == 0  # the clean run of the next day
    pid = engine.running(killed).pid
    run = _lakehouse(engine_dir, *_run_args(killed), wait=False)
    output = []
    for line in run.stdout:  # kill the engine while the gold jobs run side by side
        output.append(line)
        if "=== side by side" in line:
            time.sleep(1)
            os.kill(pid, 9)
            break
    output.append(run.communicate(timeout=300)[0])
    text = "".join(output)
    assert run.returncode == 1, text[-3000:]
    assert f"the Spark Connect engine at localhost:{PORT} stopped answering" in text, text[-3000:]
    failed = [r for r in delta_rs.read_rows(OPS_JOB_RUNS, killed, ["job", "status", "message"])
              if r["status"] == "failed"]  # fmt: skip
    assert failed and all(r["job"].startswith("gold_") and "stopped answering" in r["message"] for r in failed)

    again = _lakehouse(engine_dir, *_run_args(killed))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "engine: starting it (it was started and is no longer running)" in again.stderr
    assert engine.running(killed).pid != pid
    assert_same_tables(spark, killed, clean, ("gold.agg_metric_anomalies",))  # two weeks: too few to judge
    assert _released(engine_dir, _session_of(again.stderr))


def test_two_clients_at_once_the_lock_still_serializes_writers(engine_dir, files, tmp_path):
    config = _config(engine_dir, tmp_path / "wh", tmp_path / "in")
    _copy(files, tmp_path / "in")
    first = _lakehouse(engine_dir, *_run_args(config), wait=False)
    try:
        lock = Path(lock_path(config))
        deadline = time.monotonic() + 120
        while not lock.exists():
            assert first.poll() is None and time.monotonic() < deadline, "the first run never held the lock"
            time.sleep(0.2)
        second = _lakehouse(engine_dir, *_run_args(config))
        output, _ = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stderr[-2000:]
    assert re.search(rf"another run is writing the warehouse {re.escape(config.paths.warehouse)}: pid {first.pid} ",
                     second.stderr), second.stderr[-2000:]  # fmt: skip
    assert first.returncode == 0, output[-3000:]


#: A client that takes the warehouse lock, records its engine session in it, starts a long write and prints.
HOLDER = """
import sys
from lakehouse import engine
from lakehouse.config import load_config
from lakehouse.lock import WarehouseLock
from pyspark.sql import SparkSession, functions as F
config = load_config(env="local", overrides={"paths.warehouse": sys.argv[1]})
spark = SparkSession.builder.remote(engine.target(config).url).getOrCreate()
lock = WarehouseLock(config, "holder (test)")
lock.acquire()
lock.annotate(engine_dir=config.engine.state_dir, engine_session=spark.session_id,
              engine_user=spark.client._user_id)
print("writing", flush=True)
rows = spark.range(0, 4_000_000_000, numPartitions=8).groupBy((F.col("id") % 1000).alias("k")).count()
rows.write.format("delta").save(sys.argv[2])
print("written", flush=True)
"""


def test_the_run_taking_a_dead_clients_lock_over_first_stops_what_the_engine_still_runs_for_it(
    engine_dir, tmp_path, caplog
):
    warehouse, zombie = tmp_path / "wh", tmp_path / "zombie"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(warehouse), str(zombie)], cwd=REPO_ROOT,
                              env={**os.environ, "LAKEHOUSE_ENGINE_DIR": str(engine_dir)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        for line in holder.stdout:
            if line.startswith("writing"):
                break
        time.sleep(3)  # the write has started on the engine
    finally:
        holder.kill()  # the client dies; the engine would finish its write (minutes) and commit it
        holder.wait()
    config = _config(engine_dir, warehouse)
    lock = WarehouseLock(config, "the next run (test)", on_takeover=_stop_orphaned_work)
    with caplog.at_level("WARNING", logger="lakehouse"):
        lock.acquire()
    try:
        assert "interrupted 1 operation(s) it still ran" in caplog.text, caplog.text
        time.sleep(3)
        assert not any((zombie / "_delta_log").glob("*.json")), "the dead client's write was committed"
        with pytest.raises(LockHeld):  # and it holds the lock as ever
            WarehouseLock(config, "another").acquire()
    finally:
        lock.release()
