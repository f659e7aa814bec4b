"""Talking to a running Spark Thrift Server: authenticated PyHive connections, health probe, error
messages, and waiting until it serves the registry's tables (it registers them itself)."""

from __future__ import annotations

import base64
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lakehouse.config import LakehouseConfig
from lakehouse.serving.catalog import Registration, table_exists_locally
from lakehouse.serving.thrift.auth import Credentials, service_credentials, state_dir_from
from lakehouse.tables import TABLES


class ThriftError(RuntimeError):
    """The server could not be started, reached, stopped or given its tables; the message says why."""


def log(message: str) -> None:
    print(f"[thrift] {message}", file=sys.stderr, flush=True)


def connect(
    host: str,
    port: int,
    credentials: Credentials | None = None,
    database: str = "default",
    timeout: float | None = None,
    ca_file: Path | None = None,
):
    """A PyHive connection to the server, authenticated.

    ``ca_file`` given: HTTPS (the server's HTTP transport with TLS), the server's certificate verified
    against that CA and the host name, the password in HTTP Basic authentication inside TLS. Without it:
    the binary transport, SASL PLAIN in clear (``serving.tls: false``). ``credentials`` default to the
    project's own client ``lakehouse`` of the default state dir (``.cache/thrift`` or
    ``THRIFT_STATE_DIR``). ``timeout`` (seconds) bounds every socket operation, so a probe of a server
    that accepts connections but does not answer fails instead of hanging; None waits as long as a query
    runs.
    """
    from pyhive import hive

    if credentials is None:
        credentials = service_credentials(state_dir_from(None))
    if ca_file is not None:
        from thrift.transport import THttpClient

        from lakehouse.serving.thrift.tls import HTTP_PATH, client_context

        transport = THttpClient.THttpClient(f"https://{host}:{port}/{HTTP_PATH}", ssl_context=client_context(ca_file))
        if timeout is not None:
            transport.setTimeout(int(timeout * 1000))
        basic = base64.b64encode(f"{credentials.user}:{credentials.password}".encode()).decode()
        transport.setCustomHeaders({"Authorization": f"Basic {basic}"})
        return hive.connect(thrift_transport=transport, username=credentials.user, database=database)
    if timeout is None:
        return hive.connect(
            host=host, port=port, username=credentials.user, password=credentials.password,
            auth="CUSTOM", database=database,
        )  # fmt: skip
    import thrift_sasl
    from thrift.transport import TSocket

    sock = TSocket.TSocket(host, port)
    sock.setTimeout(int(timeout * 1000))
    # What PyHive builds for auth CUSTOM, plus the timeout.
    transport = thrift_sasl.TSaslClientTransport(
        lambda: hive.get_installed_sasl(
            host=host, sasl_auth="PLAIN", username=credentials.user, password=credentials.password
        ),
        "PLAIN",
        sock,
    )
    return hive.connect(thrift_transport=transport, username=credentials.user, database=database)


def error_message(exc: BaseException) -> str:
    """The server's message of a failed statement (PyHive's errors carry the whole Java stack)."""
    status = getattr(exc.args[0], "status", None) if exc.args else None
    message = getattr(status, "errorMessage", None)
    if message:
        return message
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers(host: str, port: int, credentials: Credentials, ca_file: Path | None = None) -> bool:
    """True when the server runs a query (``SELECT 1``), not just when the port is open."""
    if not port_open(host, port):
        return False
    try:
        conn = connect(host, port, credentials, timeout=10, ca_file=ca_file)
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT 1")
            return cursor.fetchall() == [(1,)]
        finally:
            conn.close()
    except Exception:
        return False


def served_tables(cursor, layers: Sequence[str]) -> set[str]:
    """``layer.name`` of every table the server's catalog lists in ``layers``."""
    served: set[str] = set()
    for layer in layers:
        try:
            cursor.execute(f"SHOW TABLES IN {layer}")
        except Exception:  # the database is created with its first table
            continue
        # Rows are (namespace, tableName, isTemporary) in Spark 3+ and 4.
        served.update(f"{layer}.{row[1]}" for row in cursor.fetchall())
    return served


def register(
    host: str,
    port: int,
    config: LakehouseConfig,
    credentials: Credentials | None = None,
    quiet: bool = False,
    timeout: float = 60.0,
    ca_file: Path | None = None,
) -> Registration:
    """Wait until the server serves every registry table whose Delta log exists here.

    The server registers tables itself (clients are read-only): every table that exists when it
    starts, before it answers, and the ones jobs create later within seconds
    (``lakehouse.thrift.registerIntervalSeconds``). Tables on remote storage (``s3a://``) cannot be
    checked from here: they are reported as served or not created yet, without waiting.
    """
    layers = list(dict.fromkeys(spec.layer for spec in TABLES))
    local = {spec.full_name: table_exists_locally(spec.path(config)) for spec in TABLES}
    expected = {name for name, exists in local.items() if exists}
    conn = connect(host, port, credentials, ca_file=ca_file)
    try:
        cursor = conn.cursor()
        first = served = served_tables(cursor, layers)
        deadline = time.monotonic() + timeout
        while not expected <= served:
            if time.monotonic() > deadline:
                raise ThriftError(
                    f"the server has not registered {', '.join(sorted(expected - served))} after {timeout:.0f} s "
                    "(its log says why: lakehouse thrift status)"
                )
            time.sleep(0.5)
            served = served_tables(cursor, layers)
    finally:
        conn.close()
    order = [spec.full_name for spec in TABLES]
    result = Registration(
        new=[n for n in order if n in served and n not in first],
        present=[n for n in order if n in first],
        missing=[n for n in order if n not in served],
    )
    if not quiet:
        for line in result.summary():
            log(line)
    return result
