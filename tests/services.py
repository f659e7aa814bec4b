"""Helpers of the scenarios that start real services (serving, cluster, Airflow): free ports, commands run
with their output in a log and their time printed, and the Thrift server started through its CLI and
always stopped, also when the test fails."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_env(**extra: str) -> dict[str, str]:
    """This environment with the project's virtualenv first on PATH and Spark on loopback."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
    )
    env.update(extra)
    return env


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def timed(label: str) -> Iterator[dict[str, float]]:
    """Prints ``[label] N s`` at the end; the dict's ``seconds`` holds it."""
    took: dict[str, float] = {}
    began = time.monotonic()
    try:
        yield took
    finally:
        took["seconds"] = time.monotonic() - began
        print(f"[{label}] {took['seconds']:.1f} s", flush=True)


def run_logged(cmd: Sequence[object], log: Path, timeout: float, env: dict[str, str] | None = None) -> float:
    """Run a command with its output in ``log``; fail the test with the log's tail if it fails. Its seconds."""
    return wait_logged(start_logged(cmd, log, env or project_env()), log, timeout, time.monotonic())


def start_logged(cmd: Sequence[object], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start a command in the background with its output in ``log`` (see :func:`wait_logged`)."""
    with log.open("w") as out:
        return subprocess.Popen([str(c) for c in cmd], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip


def wait_logged(proc: subprocess.Popen, log: Path, timeout: float, began: float) -> float:
    try:
        proc.wait(timeout=max(1.0, timeout - (time.monotonic() - began)))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{' '.join(proc.args[:4])} ran over {timeout:.0f} s; log {log}:\n{tail(log)}")
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(proc.args[:4])} exited {proc.returncode}; log {log}:\n{tail(log)}")
    return time.monotonic() - began


def thrift_cli(state_dir: Path) -> list[str]:
    return [sys.executable, "-m", "lakehouse.serving.thrift", "--state-dir", str(state_dir)]


@contextlib.contextmanager
def thrift_server(state_dir: Path, port: int, *args: str, env: dict[str, str] | None = None) -> Iterator[float]:
    """The Thrift server started with ``lakehouse thrift start --port PORT ARGS`` (its start seconds are
    yielded), stopped at the end whatever happened; a failed stop fails the test."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir.parent / f"{state_dir.name}_start.log"
    try:
        yield run_logged([*thrift_cli(state_dir), "start", "--port", port, *args], log, 300, env)
    finally:
        stop = subprocess.run([*thrift_cli(state_dir), "stop"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=120, env=env)  # fmt: skip
        assert stop.returncode == 0, f"thrift stop: {stop.stderr[-2000:]}"
