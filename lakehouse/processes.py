"""Background services on this machine, started and stopped one way (the Spark Thrift Server, Superset,
the cluster and the S3 server, Airflow).

A service is a process started in its own session with its output appended to ``<dir>/<name>.log``
and its pid in ``<dir>/<name>.pid``. Start-up waits for a readiness probe and fails early, with the
log's tail, when the process exits first. ``stop`` signals only a live process whose command line
still holds the service's marker (a stale pid file, or a pid reused by another program, is only
removed), waits for it, escalates to SIGKILL, and reaps it when this process is its parent (an
exited child stays a zombie until waited for).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lakehouse.lock import pid_alive, process_cmdline


class ServiceError(RuntimeError):
    """A service did not start (exited, or not ready in time)."""


@dataclass(frozen=True)
class StateDir:
    """Where the services of one kind keep their pid files and logs."""

    root: Path

    def pid_file(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.root / f"{name}.log"


def gone(pid: int) -> bool:
    """The process has exited (reaped here if it is this process's child)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return not pid_alive(pid) or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def running_pid(state: StateDir, name: str, marker: str) -> int | None:
    """The pid in ``name``'s pid file if that process is alive and is the program we started."""
    try:
        pid = int(state.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) and not _zombie(pid) and marker in process_cmdline(pid) else None


def start(
    state: StateDir, name: str, cmd: list[str], env: dict[str, str], cwd: Path | None = None, drop: Sequence[str] = ()
) -> int:
    """Start ``cmd`` in the background (own session, output appended to its log); write its pid file.

    Its environment: this process's, updated with ``env``, without the variables named in ``drop``
    (secrets the service does not need)."""
    environment = {k: v for k, v in {**os.environ, **env}.items() if k not in drop}
    state.root.mkdir(parents=True, exist_ok=True)
    with state.log_file(name).open("a") as out:
        out.write(f"\n=== starting: {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=environment, cwd=cwd, start_new_session=True)  # fmt: skip
    state.pid_file(name).write_text(f"{proc.pid}\n")
    return proc.pid


def stop(state: StateDir, name: str, marker: str, timeout: float = 30.0, group: bool = False) -> int | None:
    """Stop the service if it runs (SIGTERM, then SIGKILL after ``timeout``); returns the pid it stopped.

    ``group``: signal the whole process group the service leads (it was started in its own session),
    for services that fork workers of their own.
    """
    pid = running_pid(state, name, marker)
    if pid is not None:
        _signal(pid, signal.SIGTERM, group)
        deadline = time.monotonic() + timeout
        while not gone(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not gone(pid):
            _signal(pid, signal.SIGKILL, group)
            deadline = time.monotonic() + 10
            while not gone(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        if group:  # workers that outlived their leader
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    state.pid_file(name).unlink(missing_ok=True)
    return pid


def _signal(pid: int, sig: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def wait_ready(what: str, ready: Callable[[], bool], timeout: float, state: StateDir, name: str, pid: int) -> None:
    """Until ``ready()``; fails early if the process ``pid`` exited (checked by pid alone: right after
    the fork its command line is still this program's)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not pid_alive(pid) or _zombie(pid):
            raise ServiceError(f"{what} exited during start-up; log {state.log_file(name)}:\n{tail(state, name)}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} not ready after {timeout:.0f} s; log {state.log_file(name)}")
        time.sleep(0.5)


def tail(state: StateDir, name: str, lines: int = 30) -> str:
    try:
        return "\n".join(state.log_file(name).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def http(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> tuple[int, bytes] | None:
    """(status, body) of a GET, or None when nothing answers."""
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return None


def rss_bytes(pid: int) -> int | None:
    """Resident memory of the process (VmRSS), or None if it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
