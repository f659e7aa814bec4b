"""The server process: its command line, start (wait for an answer, register the tables), stop,
status, and the state files under the state directory (see :mod:`lakehouse.serving.thrift`)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from lakehouse import processes
from lakehouse.config import LakehouseConfig
from lakehouse.serving.catalog import create_database_statement, create_table_statement
from lakehouse.serving.thrift import auth, grants, tls
from lakehouse.serving.thrift.client import ThriftError, answers, error_message, log, port_open, register
from lakehouse.serving.thrift.server_jar import AUTHENTICATOR, GUARD_EXTENSION, MAIN_CLASS, ensure_server_jar
from lakehouse.session import FULL_JIT
from lakehouse.tables import TABLES

#: The server's main class (our jar): Spark's HiveThriftServer2 plus the server-side registration.
THRIFT_CLASS = MAIN_CLASS
#: Marks the server's command line, so ``stop`` never signals an unrelated process that reused
#: the pid; the value is the state directory.
STATE_MARKER_CONF = "spark.lakehouse.thrift.stateDir"

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
    #: HTTP transport with TLS (serving.tls); False: binary transport, SASL PLAIN in clear.
    tls: bool = False

    @property
    def ca_file(self) -> Path | None:
        """The CA the project's clients verify this server with; None without TLS."""
        return tls.tls_files(Path(self.state_dir)).ca if self.tls else None


#: The service's name in its state directory (``thrift.pid``, ``thrift.log``; :mod:`lakehouse.processes`).
SERVICE = "thrift"


def _service(state_dir: Path) -> processes.StateDir:
    return processes.StateDir(state_dir)


def _marker(state_dir: Path) -> str:
    """Only our server's command line holds this (the state dir in a conf of its own)."""
    return f"{STATE_MARKER_CONF}={state_dir}"


def _pid_file(state_dir: Path) -> Path:
    return _service(state_dir).pid_file(SERVICE)


def _state_file(state_dir: Path) -> Path:
    return state_dir / "thrift.json"


def log_file(state_dir: Path) -> Path:
    return _service(state_dir).log_file(SERVICE)


def registrations_file(state_dir: Path) -> Path:
    return state_dir / "registrations.tsv"


def write_registrations(config: LakehouseConfig, state_dir: Path) -> Path:
    """The tables the server registers itself, as it finds their Delta logs (see ``LakehouseThriftServer``):
    ``name TAB location TAB create-database TAB create-table``, from :mod:`lakehouse.serving.catalog`."""
    lines = []
    for spec in TABLES:
        fields = (
            spec.full_name, spec.path(config), create_database_statement(spec.layer),
            create_table_statement(spec, config),
        )  # fmt: skip
        if any("\t" in f or "\n" in f for f in fields):
            raise ThriftError(f"{spec.full_name}: a tab or newline in its location {spec.path(config)!r}")
        lines.append("\t".join(fields))
    path = registrations_file(state_dir)
    path.write_text("\n".join(lines) + "\n")
    return path


def running_server(state_dir: Path) -> ServerState | None:
    """The state of the server started from ``state_dir`` if it is still running, else None."""
    pid = processes.running_pid(_service(state_dir), SERVICE, THRIFT_CLASS)
    if pid is None or _marker(state_dir) not in processes.process_cmdline(pid):
        return None
    try:
        data = json.loads(_state_file(state_dir).read_text())
        return ServerState(**{**data, "pid": pid})
    except (OSError, ValueError, TypeError):
        return None


def _clear_state(state_dir: Path) -> None:
    for path in (_pid_file(state_dir), _state_file(state_dir)):
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------
# start / stop / status
# ------------------------------------------------------------------------------------------


def _spark_submit() -> str:
    candidate = Path(sys.executable).parent / "spark-submit"
    if candidate.exists():
        return str(candidate)
    from lakehouse.jars import spark_home

    return str(spark_home() / "bin" / "spark-submit")


def server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What the server's ``spark-submit`` gets on top of ``environ``: loopback, this Python, and the full
    tiered JIT. A server runs for hours: C2's faster code pays back, unlike in the short jobs that get the
    C1-only JIT (:mod:`lakehouse.jvm`); ``spark-env.sh`` puts the caller's ``SPARK_SUBMIT_OPTS`` after its
    own flags, so this one wins."""
    return {
        "SPARK_LOCAL_IP": environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
        "PYSPARK_PYTHON": environ.get("PYSPARK_PYTHON", sys.executable),
        "SPARK_SUBMIT_OPTS": f"{environ.get('SPARK_SUBMIT_OPTS', '')} {FULL_JIT}".strip(),
    }


def server_command(
    config: LakehouseConfig,
    host: str,
    port: int,
    state_dir: Path,
    driver_memory: str | None = None,
    server_jar: Path | None = None,
) -> list[str]:
    from lakehouse.session import session_conf

    jar = server_jar or ensure_server_jar(config.paths.jar_cache)
    conf = session_conf(config, under_submit=False)
    master = conf.pop("spark.master")
    if driver_memory:
        conf["spark.driver.memory"] = driver_memory
    extensions = [e for e in conf.get("spark.sql.extensions", "").split(",") if e]
    java_options = [
        f"-Dlog4j2.configurationFile={state_dir / 'log4j2.properties'}",
        f"-Duser.timezone={config.timezone}",
        f"-Dlakehouse.thrift.users={auth.users_file(state_dir)}",
        f"-Dlakehouse.thrift.grants={grants.grants_file(state_dir)}",
        f"-Dlakehouse.thrift.registrations={registrations_file(state_dir)}",
        # Granted by name only (Grants.java): the tables that hold user ids.
        f"-Dlakehouse.thrift.restricted={','.join(sorted(grants.restricted_tables()))}",
    ]
    files = tls.tls_files(state_dir)
    if config.serving.tls:
        # Read by our main class from the file: the password never shows on a command line.
        java_options.append(f"-Dlakehouse.thrift.keystorePasswordFile={files.keystore_password}")
    conf.update(
        {
            # Derby admits one process; jobs write by path. See the package docstring.
            "spark.sql.catalogImplementation": "in-memory",
            "spark.sql.warehouse.dir": str(state_dir / "spark-warehouse"),
            # Every session read-only (a static setting: no client can change it).
            "spark.sql.extensions": ",".join([*extensions, GUARD_EXTENSION]),
            # spark.jars alone is not enough here: the server resolves data sources in its
            # sessions' class loader, which does not see them (DATA_SOURCE_NOT_FOUND: DELTA).
            # On the driver's own class path they are visible everywhere (the password check too).
            "spark.driver.extraClassPath": os.pathsep.join([*conf["spark.jars"].split(","), str(jar)]),
            "spark.driver.extraJavaOptions": " ".join(java_options),
            STATE_MARKER_CONF: str(state_dir),  # see _marker
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
        str(jar),
        "--hiveconf", f"hive.server2.thrift.bind.host={host}",
        "--hiveconf", f"hive.server2.logging.operation.log.location={state_dir / 'operation_logs'}",
        # Passwords checked against the users file (lakehouse.serving.thrift.auth); no anonymous sessions.
        "--hiveconf", "hive.server2.authentication=CUSTOM",
        "--hiveconf", f"hive.server2.custom.authentication.class={AUTHENTICATOR}",
        "--hiveconf", "hive.server2.enable.doAs=false",
        # The logged-in user is the one the grants apply to: no client may ask to be someone else
        # (hive.server2.proxy.user in the session settings or the URL).
        "--hiveconf", "hive.server2.allow.user.substitution=false",
    ]  # fmt: skip
    if config.serving.tls:
        # HTTP transport + TLS: the one setting beeline, PyHive and Superset all verify (binary mode + TLS
        # has no TLS option in PyHive, nor in Superset's Hive connection).
        cmd += [
            "--hiveconf", "hive.server2.transport.mode=http",
            "--hiveconf", f"hive.server2.thrift.http.port={port}",
            "--hiveconf", f"hive.server2.thrift.http.path={tls.HTTP_PATH}",
            "--hiveconf", "hive.server2.use.SSL=true",
            "--hiveconf", f"hive.server2.keystore.path={files.keystore}",
            "--hiveconf", f"hive.ssl.protocol.blacklist={tls.PROTOCOL_BLACKLIST}",
        ]  # fmt: skip
    else:
        cmd += [
            "--hiveconf", "hive.server2.transport.mode=binary",
            "--hiveconf", f"hive.server2.thrift.port={port}",
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
        log(
            f"already running (pid {current.pid}) on {current.host}:{current.port}, "
            f"warehouse {current.warehouse}"
            + ("" if same else f"; NOT restarted with {host}:{port}, {config.paths.warehouse}: stop it first")
        )
        return 0 if same else 1
    if port_open(host, port):
        raise ThriftError(f"port {host}:{port} is in use by another process (choose --port)")

    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
    credentials = auth.ensure_credentials(state_dir)["lakehouse"]
    grants.ensure_grants(state_dir, "lakehouse", grants.service_grants())
    grants.read_grants(state_dir)  # a malformed file stops the start here, with its message
    ca_file = tls.ensure_tls(state_dir, host).ca if config.serving.tls else None
    write_registrations(config, state_dir)
    log_path = log_file(state_dir)
    cmd = server_command(config, host, port, state_dir, driver_memory)
    env = server_environment(os.environ)
    service = _service(state_dir)
    began = time.monotonic()
    # Own session: the server outlives this command and is not hit by its terminal's signals.
    pid = processes.start(service, SERVICE, cmd, env, cwd=state_dir)
    state = ServerState(
        pid=pid, host=host, port=port, warehouse=config.paths.warehouse, timezone=config.timezone,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"), log_file=str(log_path),
        state_dir=str(state_dir), tls=config.serving.tls,
    )  # fmt: skip
    _state_file(state_dir).write_text(json.dumps(asdict(state), indent=2) + "\n")
    log(
        f"starting on {host}:{port} ({'TLS, HTTP transport' if ca_file else 'binary transport, no TLS'}; pid {pid}, "
        f"warehouse {config.paths.warehouse}, log {log_path})"
    )

    try:
        processes.wait_ready(f"the Thrift server on {host}:{port}", lambda: answers(host, port, credentials, ca_file),
                             timeout, service, SERVICE, pid)  # fmt: skip
    except processes.ServiceError as exc:
        _stop(state_dir, 30.0)
        raise ThriftError(f"{exc}; stopped it. Log tail:\n{processes.tail(service, SERVICE, 40)}") from exc
    up_after = time.monotonic() - began
    try:
        register(host, port, config, credentials, ca_file=ca_file)
    except Exception as exc:
        # A server that cannot serve the tables is of no use: stop it, so a start is all or nothing.
        _stop(state_dir, 30.0)
        message = exc if isinstance(exc, ThriftError) else error_message(exc)
        tail = processes.tail(service, SERVICE, 40)
        raise ThriftError(f"registering the tables failed, server stopped: {message}\n{tail}") from exc
    rss = processes.rss_bytes(pid)
    log(
        f"ready on {host}:{port} after {up_after:.0f} s (pid {pid}"
        + (f", RSS {rss / 2**30:.2f} GiB" if rss else "")
        + "); stop with scripts/stop_thrift_server.sh"
    )
    return 0


def _stop(state_dir: Path, timeout: float) -> int | None:
    """Stop our server (TERM, then KILL after ``timeout``) and clear its state; the pid it stopped."""
    pid = processes.stop(_service(state_dir), SERVICE, _marker(state_dir), timeout=timeout)
    _clear_state(state_dir)
    return pid


def stop(state_dir: Path, timeout: float = 30.0) -> int:
    current = running_server(state_dir)
    if current is None:
        stale = _pid_file(state_dir).exists()
        _clear_state(state_dir)
        log("not running" + (" (stale pid file removed)" if stale else ""))
        return 0
    log(f"stopping pid {current.pid} ({current.host}:{current.port})")
    began = time.monotonic()
    _stop(state_dir, timeout)
    if not processes.gone(current.pid):
        raise ThriftError(f"pid {current.pid} still alive after SIGKILL")
    log(f"stopped after {time.monotonic() - began:.1f} s")
    return 0


def status(state_dir: Path) -> int:
    current = running_server(state_dir)
    if current is None:
        log(f"not running (state dir {state_dir})")
        return 3
    rss = processes.rss_bytes(current.pid)
    try:
        ok = answers(current.host, current.port, auth.service_credentials(state_dir), current.ca_file)
    except auth.AuthError as exc:
        log(str(exc))
        ok = False
    print(
        f"running: pid {current.pid} on {current.host}:{current.port}, since {current.started_at}, "
        f"warehouse {current.warehouse}, time zone {current.timezone}"
        + (f", RSS {rss / 2**30:.2f} GiB" if rss else "")
        + ("" if ok else " -- but it does not answer queries")
        + f"; log {current.log_file}"
    )
    files = tls.tls_files(state_dir) if current.tls else None
    print(f'beeline: beeline -u "{tls.jdbc_url(current.host, current.port, files)}" -n USER -w PASSWORD_FILE')
    if files:
        print(
            f"  TLS (HTTP transport): the CA is {files.ca} (PyHive, SSL_CERT_FILE), the JDBC truststore "
            f"{files.truststore}, its password in {files.truststore_password}"
        )
    else:
        print("  no TLS (serving.tls: false): passwords and rows cross the network in clear")
    return 0 if ok else 1
