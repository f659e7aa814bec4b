"""The warehouse writer lock on a local file system (no Spark): atomic, named holder, wait, stale takeover."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from lakehouse.lock import LockHeld, WarehouseLock, lock_path, writer_lock
from tests.conftest import make_config


def _config(tmp_path, **overrides):
    return make_config(tmp_path / "wh", **overrides)


def test_second_writer_is_refused_with_the_holders_pid_host_and_start(tmp_path):
    config = _config(tmp_path)
    with writer_lock(config, command="lakehouse run"):
        with pytest.raises(LockHeld) as info:
            WarehouseLock(config, command="other").acquire()
        message = str(info.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
        assert "started at 20" in message and "lakehouse run" in message and "lock_wait_seconds" in message
    assert not os.path.exists(lock_path(config)), "released at the end of the block"
    with writer_lock(config):  # free again
        pass


def test_only_one_of_many_simultaneous_acquirers_wins(tmp_path):
    config = _config(tmp_path)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def contender() -> None:
        lock = WarehouseLock(config)
        barrier.wait()
        try:
            lock.acquire()
            outcomes.append("won")
        except LockHeld:
            outcomes.append("held")

    threads = [threading.Thread(target=contender) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["held"] * 7 + ["won"]


def test_waiting_writer_gets_the_lock_when_the_holder_releases(tmp_path):
    config = _config(tmp_path, operations__lock_wait_seconds=20)
    first = WarehouseLock(config)
    first.acquire()
    threading.Timer(1.0, first.release).start()
    started = time.monotonic()
    with writer_lock(config):
        assert 0.5 < time.monotonic() - started < 15


def _leave_lock(config, **fields) -> None:
    holder = {"token": "old", "pid": os.getpid(), "host": socket.gethostname(), "command": "lakehouse run",
              "started_at": time.time(), "heartbeat_at": time.time(), **fields}  # fmt: skip
    os.makedirs(os.path.dirname(lock_path(config)), exist_ok=True)
    with open(lock_path(config), "w") as f:
        json.dump(holder, f)


def test_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path, caplog):
    config = _config(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _leave_lock(config, pid=dead.pid)
    with caplog.at_level("WARNING", logger="lakehouse"), writer_lock(config):
        pass
    assert f"pid {dead.pid} on this host, is no longer running" in caplog.text


def test_lock_with_an_expired_heartbeat_is_taken_over_and_a_live_one_is_not(tmp_path):
    config = _config(tmp_path, operations__lock_lease_seconds=60)
    _leave_lock(config, host="another-host", pid=1, heartbeat_at=time.time() - 30)
    with pytest.raises(LockHeld, match="pid 1 on host another-host"):
        WarehouseLock(config).acquire()
    _leave_lock(config, host="another-host", pid=1, heartbeat_at=time.time() - 61)
    with writer_lock(config):
        pass


def _heartbeat(config) -> float:
    with open(lock_path(config)) as f:
        return json.load(f)["heartbeat_at"]


def test_heartbeat_keeps_a_long_run_alive(tmp_path):
    config = _config(tmp_path, operations__lock_lease_seconds=10)
    with writer_lock(config):
        first = _heartbeat(config)
        time.sleep(3.2)  # the heartbeat runs every lease / 4 = 2.5 s
        assert _heartbeat(config) > first
