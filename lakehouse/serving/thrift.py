"""The Spark Thrift Server (HiveServer2 protocol) over the lakehouse's Delta tables.

    python -m lakehouse.serving.thrift start [--warehouse DIR] [--port N] [--set key=value ...]
    python -m lakehouse.serving.thrift register      # (re-)register tables created since
    python -m lakehouse.serving.thrift status
    python -m lakehouse.serving.thrift stop

(``scripts/start_thrift_server.sh`` / ``scripts/stop_thrift_server.sh`` wrap start and stop.)
Clients: Superset (``hive://`` URI, PyHive), ``scripts/sql.sh``, or the pyspark wheel's beeline
with the virtualenv's ``bin`` on PATH: ``beeline -u jdbc:hive2://127.0.0.1:10000/default -n $USER``.

How it runs, and why:

- ``spark-submit --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 spark-internal``
  from this virtualenv's pyspark (the pip wheel has no ``sbin/start-thriftserver.sh``), with
  Delta's jars, extension and catalog, the session time zone and the local-mode settings of
  ``lakehouse.session.session_conf``: the server sees the tables exactly as the jobs do.
- ``spark.sql.catalogImplementation=in-memory``: the embedded Derby metastore admits one
  process, and the jobs (which write by path) must keep running while the server is up. The
  catalog therefore lives in the server only; once it answers, every registry table that exists
  is registered over the Thrift connection itself (PyHive), as ``<layer>.<name>`` in databases
  ``bronze``, ``silver``, ``gold`` and ``ops`` with ``CREATE TABLE IF NOT EXISTS ... USING
  DELTA LOCATION '<path>'``. ``register`` is idempotent; run it again after a job has created a
  new table (``scripts/sql.sh`` does it before each query). Data committed to a table that is
  already registered needs nothing: Delta reads the newest snapshot at every query.
- Bound to ``serving.thrift_host`` (127.0.0.1) and ``serving.thrift_port`` from config; no
  authentication, so it must not listen on a public interface.
- State under ``.cache/thrift/`` (``--state-dir`` or ``THRIFT_STATE_DIR`` to change):
  ``thrift.pid``, ``thrift.json`` (host, port, warehouse of the running server), ``thrift.log``,
  and the server's scratch (working directory, ``spark.sql.warehouse.dir``, log4j2 settings).
  ``stop`` ends exactly the process in the pid file, after checking that its command line is
  this server's, and waits until it is gone.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.config import PROJECT_ROOT, ConfigError, LakehouseConfig, load_config

THRIFT_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
DEFAULT_STATE_DIR = PROJECT_ROOT / ".cache" / "thrift"
#: Marks the server's command line, so ``stop`` never signals an unrelated process that reused
#: the pid; the value is the state directory.
STATE_MARKER_CONF = "spark.lakehouse.thrift.stateDir"
LAYERS = ("bronze", "silver", "gold", "ops")

LOG4J2_PROPERTIES = """\
# Written by lakehouse.serving.thrift: warnings and errors, plus the server's start/stop lines.
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.thrift.name = org.apache.spark.sql.hive.thriftserver.HiveThriftServer2
logger.thrift.level = info
logger.service.name = org.apache.hive.service.server.HiveServer2
logger.service.level = info
# Every client disconnect is logged as an error by the Thrift library; it is not one.
logger.tserver.name = org.apache.thrift.server.TThreadPoolServer
logger.tserver.level = fatal
"""


class ThriftError(RuntimeError):
    """The server could not be started, reached or stopped; the message says why."""


def _log(message: str) -> None:
    print(f"[thrift] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# State: pid file, the JSON next to it, and the process checks
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerState:
    pid: int
    host: str
    port: int
    warehouse: str
    timezone: str
    started_at: str
    log_file: str
    state_dir: str


def state_dir_from(value: str | os.PathLike[str] | None) -> Path:
    return Path(value or os.environ.get("THRIFT_STATE_DIR") or DEFAULT_STATE_DIR).resolve()


def _pid_file(state_dir: Path) -> Path:
    return state_dir / "thrift.pid"


def _state_file(state_dir: Path) -> Path:
    return state_dir / "thrift.json"


def log_file(state_dir: Path) -> Path:
    return state_dir / "thrift.log"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its (re)parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _is_our_server(pid: int, state_dir: Path) -> bool:
    cmd = _cmdline(pid)
    return _alive(pid) and THRIFT_CLASS in cmd and f"{STATE_MARKER_CONF}={state_dir}" in cmd


def running_server(state_dir: Path) -> ServerState | None:
    """The state of the server started from ``state_dir`` if it is still running, else None."""
    try:
        pid = int(_pid_file(state_dir).read_text().strip())
    except (OSError, ValueError):
        return None
    if not _is_our_server(pid, state_dir):
        return None
    try:
        data = json.loads(_state_file(state_dir).read_text())
        return ServerState(**{**data, "pid": pid})
    except (OSError, ValueError, TypeError):
        return None


def _clear_state(state_dir: Path) -> None:
    for path in (_pid_file(state_dir), _state_file(state_dir)):
        path.unlink(missing_ok=True)


def rss_bytes(pid: int) -> int | None:
    """Resident memory of the process (VmRSS), or None if it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------------------------------
# Connections and registration
# ------------------------------------------------------------------------------------------


def connect(host: str, port: int, database: str = "default", username: str | None = None, timeout: float | None = None):
    """A PyHive connection to the server (no authentication: SASL PLAIN with a user name).

    ``timeout`` (seconds) bounds every socket operation, so a probe of a server that accepts
    connections but does not answer fails instead of hanging; None waits as long as a query runs.
    """
    from pyhive import hive

    username = username or "lakehouse"
    if timeout is None:
        return hive.connect(host=host, port=port, username=username, database=database)
    import thrift_sasl
    from thrift.transport import TSocket

    sock = TSocket.TSocket(host, port)
    sock.setTimeout(int(timeout * 1000))
    # What PyHive builds for auth NONE, plus the timeout: SASL PLAIN, any non-empty password.
    transport = thrift_sasl.TSaslClientTransport(
        lambda: hive.get_installed_sasl(host=host, sasl_auth="PLAIN", username=username, password="x"),
        "PLAIN",
        sock,
    )
    return hive.connect(thrift_transport=transport, username=username, database=database)


def error_message(exc: BaseException) -> str:
    """The server's message of a failed statement (PyHive's errors carry the whole Java stack)."""
    status = getattr(exc.args[0], "status", None) if exc.args else None
    message = getattr(status, "errorMessage", None)
    if message:
        return message
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers(host: str, port: int) -> bool:
    """True when the server runs a query (``SELECT 1``), not just when the port is open."""
    if not _port_open(host, port):
        return False
    try:
        conn = connect(host, port, timeout=10)
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT 1")
            return cursor.fetchall() == [(1,)]
        finally:
            conn.close()
    except Exception:
        return False


def table_exists_locally(path: str) -> bool | None:
    """True/False for a local Delta table path; None for a URI this process cannot look into."""
    if "://" in path and not path.startswith("file:"):
        return None
    local = Path(path.removeprefix("file://").removeprefix("file:"))
    log_dir = local / "_delta_log"
    return log_dir.is_dir() and any(log_dir.glob("*.json"))


def register(host: str, port: int, config: LakehouseConfig, quiet: bool = False) -> dict[str, list[str]]:
    """Register every existing registry table in the server's catalog; idempotent.

    Returns ``{"new": [...], "present": [...], "missing": [...]}`` by full table name. A table
    already registered is left as it is (its location is the path it was registered with).
    """
    from lakehouse.registry import TABLES

    result: dict[str, list[str]] = {"new": [], "present": [], "missing": []}
    conn = connect(host, port)
    try:
        cursor = conn.cursor()
        known: set[str] = set()
        for layer in LAYERS:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS {layer}")
            cursor.execute(f"SHOW TABLES IN {layer}")
            # Rows are (namespace, tableName, isTemporary).
            known.update(f"{layer}.{row[1]}" for row in cursor.fetchall())
        for spec in TABLES:
            path = spec.path(config)
            if spec.full_name in known:
                result["present"].append(spec.full_name)
                continue
            exists = table_exists_locally(path)
            if exists is False:
                result["missing"].append(spec.full_name)
                continue
            try:
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {spec.full_name} USING DELTA LOCATION '{path}'")
            except Exception as exc:
                if exists is None:
                    result["missing"].append(spec.full_name)
                    if not quiet:
                        _log(f"{spec.full_name}: not registered ({error_message(exc)[:300]})")
                    continue
                raise ThriftError(f"could not register {spec.full_name}: {error_message(exc)}") from exc
            result["new"].append(spec.full_name)
    finally:
        conn.close()
    if not quiet:
        for key, label in (("new", "registered"), ("present", "already registered"), ("missing", "not created yet")):
            if result[key]:
                _log(f"{label}: {', '.join(result[key])}")
    return result


# ------------------------------------------------------------------------------------------
# start / stop / status
# ------------------------------------------------------------------------------------------


def _spark_submit() -> str:
    candidate = Path(sys.executable).parent / "spark-submit"
    if candidate.exists():
        return str(candidate)
    from lakehouse.jars import spark_home

    return str(spark_home() / "bin" / "spark-submit")


def server_command(
    config: LakehouseConfig, host: str, port: int, state_dir: Path, driver_memory: str | None = None
) -> list[str]:
    from lakehouse.session import session_conf

    conf = session_conf(config, under_submit=False)
    master = conf.pop("spark.master")
    if driver_memory:
        conf["spark.driver.memory"] = driver_memory
    conf.update(
        {
            # Derby admits one process; jobs write by path. See the module docstring.
            "spark.sql.catalogImplementation": "in-memory",
            "spark.sql.warehouse.dir": str(state_dir / "spark-warehouse"),
            # spark.jars alone is not enough here: the server resolves data sources in its
            # sessions' class loader, which does not see them (DATA_SOURCE_NOT_FOUND: DELTA).
            # On the driver's own class path they are visible everywhere.
            "spark.driver.extraClassPath": conf["spark.jars"].replace(",", os.pathsep),
            "spark.driver.extraJavaOptions": (
                f"-Dlog4j2.configurationFile={state_dir / 'log4j2.properties'} -Duser.timezone={config.timezone}"
            ),
            STATE_MARKER_CONF: str(state_dir),
        }
    )
    cmd = [
        _spark_submit(),
        "--master", master,
        "--name", f"{config.app_name}:thrift-server",
        "--class", THRIFT_CLASS,
    ]  # fmt: skip
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    cmd += [
        "spark-internal",
        "--hiveconf", f"hive.server2.thrift.bind.host={host}",
        "--hiveconf", f"hive.server2.thrift.port={port}",
        "--hiveconf", "hive.server2.transport.mode=binary",
        "--hiveconf", f"hive.server2.logging.operation.log.location={state_dir / 'operation_logs'}",
    ]  # fmt: skip
    return cmd


def start(
    config: LakehouseConfig,
    host: str,
    port: int,
    state_dir: Path,
    timeout: float = 180.0,
    driver_memory: str | None = None,
) -> int:
    current = running_server(state_dir)
    if current:
        same = (current.host, current.port, current.warehouse) == (host, port, config.paths.warehouse)
        _log(
            f"already running (pid {current.pid}) on {current.host}:{current.port}, "
            f"warehouse {current.warehouse}"
            + ("" if same else f"; NOT restarted with {host}:{port}, {config.paths.warehouse}: stop it first")
        )
        return 0 if same else 1
    if _port_open(host, port):
        raise ThriftError(f"port {host}:{port} is in use by another process (choose --port)")

    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
    log = log_file(state_dir)
    cmd = server_command(config, host, port, state_dir, driver_memory)
    env = dict(os.environ)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    # spark-defaults.conf of this virtualenv would add the same jars again; harmless, but the
    # command line above is complete on its own.
    began = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n=== {datetime.now(UTC).isoformat()} starting: {' '.join(cmd)}\n")
        out.flush()
        # Own session: the server outlives this command and is not hit by its terminal's signals.
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=state_dir, env=env, start_new_session=True,
        )  # fmt: skip
    _pid_file(state_dir).write_text(f"{proc.pid}\n")
    state = ServerState(
        pid=proc.pid, host=host, port=port, warehouse=config.paths.warehouse, timezone=config.timezone,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"), log_file=str(log),
        state_dir=str(state_dir),
    )  # fmt: skip
    _state_file(state_dir).write_text(json.dumps(asdict(state), indent=2) + "\n")
    _log(f"starting on {host}:{port} (pid {proc.pid}, warehouse {config.paths.warehouse}, log {log})")

    deadline = began + timeout
    while not answers(host, port):
        if proc.poll() is not None:
            _clear_state(state_dir)
            raise ThriftError(f"the server exited with code {proc.returncode} during start-up:\n{_tail(log)}")
        if time.monotonic() > deadline:
            tail = _tail(log)
            _stop_pid(proc.pid, 30.0)
            _clear_state(state_dir)
            raise ThriftError(f"no answer on {host}:{port} after {timeout:.0f} s; stopped it. Log tail:\n{tail}")
        time.sleep(1.0)
    up_after = time.monotonic() - began
    try:
        register(host, port, config)
    except Exception as exc:
        # A server that cannot serve the tables is of no use: stop it, so a start is all or nothing.
        _stop_pid(proc.pid, 30.0)
        _clear_state(state_dir)
        message = exc if isinstance(exc, ThriftError) else error_message(exc)
        raise ThriftError(f"registering the tables failed, server stopped: {message}\n{_tail(log)}") from exc
    rss = rss_bytes(proc.pid)
    _log(
        f"ready on {host}:{port} after {up_after:.0f} s (pid {proc.pid}"
        + (f", RSS {rss / 2**30:.2f} GiB" if rss else "")
        + "); stop with scripts/stop_thrift_server.sh"
    )
    return 0


def _stop_pid(pid: int, timeout: float) -> bool:
    """TERM, wait, then KILL. True if it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.3)
    if not _alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return True


def stop(state_dir: Path, timeout: float = 30.0) -> int:
    current = running_server(state_dir)
    if current is None:
        stale = _pid_file(state_dir).exists()
        _clear_state(state_dir)
        _log("not running" + (" (stale pid file removed)" if stale else ""))
        return 0
    _log(f"stopping pid {current.pid} ({current.host}:{current.port})")
    began = time.monotonic()
    killed = _stop_pid(current.pid, timeout)
    if _alive(current.pid):
        raise ThriftError(f"pid {current.pid} still alive after SIGKILL")
    _clear_state(state_dir)
    _log(f"stopped after {time.monotonic() - began:.1f} s" + (" (SIGKILL after timeout)" if killed else ""))
    return 0


def status(state_dir: Path) -> int:
    current = running_server(state_dir)
    if current is None:
        _log(f"not running (state dir {state_dir})")
        return 3
    rss = rss_bytes(current.pid)
    ok = answers(current.host, current.port)
    print(
        f"running: pid {current.pid} on {current.host}:{current.port}, since {current.started_at}, "
        f"warehouse {current.warehouse}, time zone {current.timezone}"
        + (f", RSS {rss / 2**30:.2f} GiB" if rss else "")
        + ("" if ok else " -- but it does not answer queries")
        + f"; log {current.log_file}"
    )
    return 0 if ok else 1


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", help="base config file (default conf/lakehouse.yaml)")
    parser.add_argument("--env", help="environment overlay conf/env/<ENV>.yaml (or LAKEHOUSE_ENV)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)"
    )
    parser.add_argument("--warehouse", help="shortcut for --set paths.warehouse=DIR")


def config_from(args: argparse.Namespace) -> LakehouseConfig:
    overrides = list(args.set)
    if args.warehouse:
        overrides.append(f"paths.warehouse={args.warehouse}")
    return load_config(args.conf, args.env, overrides)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Spark Thrift Server over the lakehouse's Delta tables.")
    p.add_argument("--state-dir", help="pid, log and scratch folder (default .cache/thrift or THRIFT_STATE_DIR)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("start", help="start the server, wait until it answers, register the tables")
    _config_args(s)
    s.add_argument("--host", help="bind address (default serving.thrift_host)")
    s.add_argument("--port", type=int, help="port (default serving.thrift_port)")
    s.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for an answer (default 180)")
    s.add_argument(
        "--driver-memory",
        default=os.environ.get("THRIFT_DRIVER_MEMORY"),
        help="JVM heap of the server (default: the jobs' spark settings; or THRIFT_DRIVER_MEMORY)",
    )

    r = sub.add_parser("register", help="register tables created since the start (idempotent)")
    _config_args(r)

    t = sub.add_parser("stop", help="stop the server started from the state dir and wait for it")
    t.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL (default 30)")

    sub.add_parser("status", help="exit 0 if running and answering, 3 if not running")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    state_dir = state_dir_from(args.state_dir)
    try:
        if args.command == "start":
            config = config_from(args)
            host = args.host or config.serving.thrift_host
            port = args.port or config.serving.thrift_port
            return start(config, host, port, state_dir, args.timeout, args.driver_memory)
        if args.command == "register":
            current = running_server(state_dir)
            if current is None:
                _log(f"no running server (state dir {state_dir}); start it with scripts/start_thrift_server.sh")
                return 1
            if not args.warehouse and not any(s.startswith("paths.warehouse=") for s in args.set):
                args.warehouse = current.warehouse
            config = config_from(args)
            if config.paths.warehouse != current.warehouse:
                _log(
                    f"the server serves warehouse {current.warehouse}, not {config.paths.warehouse}: "
                    "restart it with --warehouse to serve another one"
                )
                return 1
            register(current.host, current.port, config)
            return 0
        if args.command == "stop":
            return stop(state_dir, args.timeout)
        return status(state_dir)
    except (ThriftError, ConfigError) as exc:
        _log(f"ERROR: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
