"""The Spark Thrift Server (HiveServer2 protocol) over the lakehouse's Delta tables: read-only for
its clients, and authenticated.

    python -m lakehouse.serving.thrift start [--warehouse DIR] [--port N] [--set key=value ...]
    python -m lakehouse.serving.thrift register      # wait until tables created since are served
    python -m lakehouse.serving.thrift add-user NAME # an analyst: prints the generated password once
    python -m lakehouse.serving.thrift grant NAME layer.table [--columns a,b] [--where SQL] | revoke | grants
    python -m lakehouse.serving.thrift remove-user NAME | users | status | stop

(``scripts/start_thrift_server.sh`` / ``scripts/stop_thrift_server.sh`` wrap start and stop;
:func:`main` is the same command for a console script.) Clients, over TLS by default (:mod:`.tls`):
Superset (``hive+https`` URI, PyHive), ``scripts/sql.sh``, or the pyspark wheel's beeline with the
virtualenv's ``bin`` on PATH, with the URL ``status`` prints.

Modules: :mod:`.server` (the process: command line, start/stop/status, pid and state files),
:mod:`.client` (authenticated PyHive connections, health probe, error messages, waiting for
registration), :mod:`.auth` (users file of password hashes, the project's client passwords),
:mod:`.grants`, :mod:`.tls`,
:mod:`.server_jar` (compiles the Java classes in ``java/`` once) and :mod:`.cli`. The registration
statements come from :mod:`lakehouse.serving.catalog`, the one registration code of the project.

How it runs, and why:

- ``spark-submit --class com.heymax.lakehouse.serving.LakehouseThriftServer <our jar>`` from this
  virtualenv's pyspark (the pip wheel has no ``sbin/start-thriftserver.sh``): Spark's own
  ``HiveThriftServer2``, preceded by the table registration, with Delta's jars, extension and
  catalog, the session time zone and the local-mode settings of ``lakehouse.session.session_conf``:
  the server sees the tables exactly as the jobs do.
- Read-only: ``ReadOnlyGuard`` (``spark.sql.extensions``) refuses every statement whose analyzed plan
  is a write or DDL, before it runs; only queries and SHOW / DESCRIBE / EXPLAIN / SET / USE pass.
- Authenticated: ``hive.server2.authentication=CUSTOM`` with ``PasswordFileAuthenticator`` over
  ``<state dir>/auth/users`` (PBKDF2 hashes, mode 600; see :mod:`.auth`). No anonymous sessions.
- Grants: ``AccessGuard`` (same extension) lets each user read only the tables, columns and rows of
  ``<state dir>/auth/grants.json`` (:mod:`.grants`).
- TLS (``serving.tls``, default on): HTTP transport with TLS only, a local CA and server certificate
  made once under ``<state dir>/tls`` (:mod:`.tls`).
- ``spark.sql.catalogImplementation=in-memory``: the embedded Derby metastore admits one
  process, and the jobs (which write by path) must keep running while the server is up. The
  catalog therefore lives in the server only, and the server fills it itself from
  ``<state dir>/registrations.tsv`` (written at start): every registry table whose Delta log
  exists is registered as ``<layer>.<name>`` before the port opens, and a table created later
  within ``lakehouse.thrift.registerIntervalSeconds`` (2 s). Data committed to a registered table
  needs nothing: Delta reads the newest snapshot at every query.
- Bound to ``serving.thrift_host`` (127.0.0.1) and ``serving.thrift_port`` from config.
- State under ``.cache/thrift/`` (``--state-dir`` or ``THRIFT_STATE_DIR`` to change):
  ``thrift.pid``, ``thrift.json`` (host, port, warehouse of the running server), ``thrift.log``,
  ``auth/``, and the server's scratch (working directory, ``spark.sql.warehouse.dir``, log4j2
  settings). ``stop`` ends exactly the process in the pid file, after checking that its command
  line is this server's, and waits until it is gone.
"""

from __future__ import annotations

from lakehouse.serving.thrift.auth import state_dir_from
from lakehouse.serving.thrift.cli import main
from lakehouse.serving.thrift.client import ThriftError, answers, connect, error_message, register
from lakehouse.serving.thrift.server import ServerState, running_server, start, status, stop

__all__ = [
    "ServerState",
    "ThriftError",
    "answers",
    "connect",
    "error_message",
    "main",
    "register",
    "running_server",
    "start",
    "state_dir_from",
    "status",
    "stop",
]
