"""One writer per warehouse: a lock file kept with the warehouse, ``<warehouse>/_lakehouse/writer.lock``.

Every command that writes tables (``lakehouse run``, ``lakehouse job``, ``spark-submit jobs/<name>.py``,
``lakehouse maintain``, ``lakehouse restore``) holds it for its whole run; readers (the Thrift server,
``lakehouse sql``) never take it. Delta's own optimistic concurrency turns two writers into a
``ConcurrentAppendException`` half-way through a run; on object storage without a multi-writer log
store (S3) it cannot even do that. The lock turns both into one clear message before anything is
written.

- **Atomic acquisition.** The lock is a small JSON file created only if absent, by this process
  (:mod:`lakehouse.storage`, no JVM: a Spark Connect client takes it the same way): written to a
  private file and hard-linked into place on a local file system (``link`` fails if it exists); on
  S3, a conditional PUT (``If-None-Match: *``, answered 412 when the lock exists). Of two runs,
  exactly one creates it.
- **Who holds it.** The file names the holder: pid, host, command, start time, and a heartbeat
  that a daemon thread refreshes every ``lease / 4`` seconds.
- **Waiting.** The second run retries for ``operations.lock_wait_seconds`` (0 by default), then
  exits 2 with the holder's details (:class:`LockHeld`).
- **Stale locks.** A lock whose holder is a dead process on this host, or whose heartbeat is older
  than ``operations.lock_lease_seconds``, is taken over (logged): deleted after checking it is
  still the same holder's, then created atomically again (if another run re-created it in between,
  that run wins and this one waits).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.config import LakehouseConfig, local_path
from lakehouse.storage import storage_for

log = logging.getLogger("lakehouse")

LOCK_DIR = "_lakehouse"
LOCK_NAME = "writer.lock"


class LockHeld(RuntimeError):
    """Another run holds the warehouse lock (exit code 2: nothing ran)."""


def lock_path(config: LakehouseConfig) -> str:
    return f"{config.paths.warehouse.rstrip('/')}/{LOCK_DIR}/{LOCK_NAME}"


def _now() -> float:
    return time.time()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Holder:
    token: str
    pid: int
    host: str
    command: str
    started_at: float
    heartbeat_at: float
    #: A run that is a client of the warm engine: the engine's state folder and the run's session on it. The
    #: engine finishes a command its client sent even when the client is killed; whoever takes a dead
    #: holder's lock over first interrupts what that session still runs (:mod:`lakehouse.engine`).
    engine_dir: str = ""
    engine_session: str = ""
    #: The session's user on the engine (sessions are the engine's per user and id).
    engine_user: str = ""

    def describe(self) -> str:
        return (
            f"pid {self.pid} on host {self.host}, started at {_iso(self.started_at)} "
            f"(last heartbeat {_iso(self.heartbeat_at)}): {self.command}"
        )

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return Holder(str(data["token"]), int(data["pid"]), str(data["host"]), str(data["command"]),
                          float(data["started_at"]), float(data["heartbeat_at"]), str(data.get("engine_dir", "")),
                          str(data.get("engine_session", "")), str(data.get("engine_user", "")))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None


def is_local(config: LakehouseConfig) -> bool:
    """The warehouse is on a local file system: the lock needs no JVM (taken before Spark starts)."""
    return local_path(config.paths.warehouse) is not None


class _Store:
    """The lock file in its store (:mod:`lakehouse.storage`): a local file system, or S3 where the create is a
    conditional PUT (``If-None-Match: *``, answered 412 when the lock exists)."""

    def __init__(self, path: str, config: LakehouseConfig) -> None:
        self.path = path
        self.storage = storage_for(path, config)

    def create(self, text: str) -> bool:
        return self.storage.create_if_absent(self.path, text.encode())

    def read(self) -> str | None:
        return self.storage.read_text(self.path)

    def replace(self, text: str) -> None:
        self.storage.write(self.path, text.encode())

    def delete(self) -> None:
        self.storage.delete(self.path)


def pid_alive(pid: int) -> bool:
    """A process with this pid exists on this host (a zombie counts: see lakehouse.cluster)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_cmdline(pid: int) -> str:
    """The command line of a process on this host, arguments joined by spaces ('' if gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class WarehouseLock:
    def __init__(
        self, config: LakehouseConfig, command: str | None = None, on_takeover: Callable[[Holder], None] | None = None
    ) -> None:
        """``on_takeover``: called with a stale holder before its lock is taken over (the launcher stops what the
        dead run left running on the engine)."""
        path = lock_path(config)
        self.store = _Store(path, config)
        self.path = path
        self.warehouse = config.paths.warehouse
        self.wait_seconds = config.operations.lock_wait_seconds
        self.lease_seconds = config.operations.lock_lease_seconds
        now = _now()
        self.me = Holder(uuid.uuid4().hex, os.getpid(), socket.gethostname(),
                         command or " ".join(sys.argv)[:300], now, now)  # fmt: skip
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.on_takeover = on_takeover

    def _stale(self, holder: Holder | None) -> str | None:
        """Why the current holder's lock may be taken over (None: it is alive)."""
        if holder is None:
            return "the lock file is unreadable (a run killed while writing it)"
        if holder.host == self.me.host and not pid_alive(holder.pid):
            return f"its holder, pid {holder.pid} on this host, is no longer running"
        if _now() - holder.heartbeat_at > self.lease_seconds:
            return f"its heartbeat is older than operations.lock_lease_seconds={self.lease_seconds}"
        return None

    def acquire(self) -> None:
        deadline = _now() + self.wait_seconds
        announced = False
        while True:
            if self.store.create(self.me.to_json()):
                break
            text = self.store.read()
            if text is None:
                continue  # released between our create and read: try again at once
            holder = Holder.from_json(text)
            reason = self._stale(holder)
            if reason:
                if self.store.read() == text:  # still the same stale holder
                    log.warning("taking over the warehouse lock %s: %s (was: %s)", self.path, reason,
                                holder.describe() if holder else text[:200])  # fmt: skip
                    if holder is not None and self.on_takeover is not None:
                        self.on_takeover(holder)
                    self.store.delete()
                continue
            if _now() >= deadline:
                raise LockHeld(
                    f"another run is writing the warehouse {self.warehouse}: {holder.describe()}. "
                    f"Waited {self.wait_seconds} s (operations.lock_wait_seconds). Run again when it has "
                    f"finished; if that process is gone, its lock is taken over automatically once it is "
                    f"detected dead (same host) or its heartbeat is older than "
                    f"{self.lease_seconds} s (operations.lock_lease_seconds); lock file: {self.path}"
                )
            if not announced:
                log.info("waiting up to %s s for the warehouse lock held by %s", self.wait_seconds, holder.describe())
                announced = True
            time.sleep(min(1.0, max(0.1, deadline - _now())))
        log.info("warehouse lock taken: %s", self.path)
        self._beat = threading.Thread(target=self._heartbeat, name="warehouse-lock-heartbeat", daemon=True)
        self._beat.start()

    def annotate(self, **fields: str) -> None:
        """Add to the holder's record (the engine session of the run), written at once."""
        self.me = dataclasses.replace(self.me, **fields)
        self.store.replace(dataclasses.replace(self.me, heartbeat_at=_now()).to_json())

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(1.0, self.lease_seconds / 4)):
            try:
                current = Holder.from_json(self.store.read() or "")
                if current is None or current.token != self.me.token:
                    log.error("the warehouse lock %s was taken over by another run", self.path)
                    return
                self.store.replace(Holder(**{**self.me.__dict__, "heartbeat_at": _now()}).to_json())
            except Exception:  # never kill the run for a missed heartbeat; the next one retries
                log.warning("warehouse lock heartbeat failed", exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        try:
            current = Holder.from_json(self.store.read() or "")
            if current is not None and current.token == self.me.token:
                self.store.delete()
        except Exception:
            log.warning("could not release the warehouse lock %s", self.path, exc_info=True)


@contextmanager
def writer_lock(config: LakehouseConfig, command: str | None = None) -> Iterator[WarehouseLock]:
    """Hold the warehouse's writer lock for the block (raises :class:`LockHeld`)."""
    lock = WarehouseLock(config, command)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
