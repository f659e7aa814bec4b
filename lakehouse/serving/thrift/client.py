"""Talking to a running Spark Thrift Server: PyHive connections, health probe, error messages,
and registering the registry's tables in its catalog (through :mod:`lakehouse.serving.catalog`)."""

from __future__ import annotations

import socket
import sys

from lakehouse.config import LakehouseConfig
from lakehouse.serving.catalog import Registration, RegistrationError, cursor_executor, register_tables


class ThriftError(RuntimeError):
    """The server could not be started, reached, stopped or given its tables; the message says why."""


def log(message: str) -> None:
    print(f"[thrift] {message}", file=sys.stderr, flush=True)


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


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers(host: str, port: int) -> bool:
    """True when the server runs a query (``SELECT 1``), not just when the port is open."""
    if not port_open(host, port):
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


def register(host: str, port: int, config: LakehouseConfig, quiet: bool = False) -> Registration:
    """Register every existing registry table in the server's catalog, over one connection.

    Idempotent; a table already registered keeps the location it was registered with.
    """

    def skipped(table: str, message: str) -> None:
        if not quiet:
            log(f"{table}: not registered ({message[:300]})")

    conn = connect(host, port)
    try:
        result = register_tables(cursor_executor(conn.cursor()), config, on_skip=skipped, describe_error=error_message)
    except RegistrationError as exc:
        raise ThriftError(str(exc)) from exc
    finally:
        conn.close()
    if not quiet:
        for line in result.summary():
            log(line)
    return result
