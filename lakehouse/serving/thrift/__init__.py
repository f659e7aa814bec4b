"""The Spark Thrift Server (HiveServer2 protocol) over the lakehouse's Delta tables.

    python -m lakehouse.serving.thrift start [--warehouse DIR] [--port N] [--set key=value ...]
    python -m lakehouse.serving.thrift register      # (re-)register tables created since
    python -m lakehouse.serving.thrift status
    python -m lakehouse.serving.thrift stop

(``scripts/start_thrift_server.sh`` / ``scripts/stop_thrift_server.sh`` wrap start and stop;
:func:`main` is the same command for a console script.) Clients: Superset (``hive://`` URI,
PyHive), ``scripts/sql.sh``, or the pyspark wheel's beeline with the virtualenv's ``bin`` on PATH:
``beeline -u jdbc:hive2://127.0.0.1:10000/default -n $USER``.

Modules: :mod:`.server` (the process: command line, start/stop/status, pid and state files),
:mod:`.client` (PyHive connections, health probe, error messages, registration over a
connection) and :mod:`.cli`. The registration statements themselves come from
:mod:`lakehouse.serving.catalog`, the one registration code of the project.

How it runs, and why:

- ``spark-submit --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 spark-internal``
  from this virtualenv's pyspark (the pip wheel has no ``sbin/start-thriftserver.sh``), with
  Delta's jars, extension and catalog, the session time zone and the local-mode settings of
  ``lakehouse.session.session_conf``: the server sees the tables exactly as the jobs do.
- ``spark.sql.catalogImplementation=in-memory``: the embedded Derby metastore admits one
  process, and the jobs (which write by path) must keep running while the server is up. The
  catalog therefore lives in the server only; once it answers, every registry table that exists
  is registered over the Thrift connection itself, as ``<layer>.<name>`` in databases
  ``bronze``, ``silver``, ``gold`` and ``ops``. ``register`` is idempotent; run it again after a
  job has created a new table (``scripts/sql.sh`` does it before each query). Data committed to
  a table that is already registered needs nothing: Delta reads the newest snapshot at every query.
- Bound to ``serving.thrift_host`` (127.0.0.1) and ``serving.thrift_port`` from config; no
  authentication, so it must not listen on a public interface.
- State under ``.cache/thrift/`` (``--state-dir`` or ``THRIFT_STATE_DIR`` to change):
  ``thrift.pid``, ``thrift.json`` (host, port, warehouse of the running server), ``thrift.log``,
  and the server's scratch (working directory, ``spark.sql.warehouse.dir``, log4j2 settings).
  ``stop`` ends exactly the process in the pid file, after checking that its command line is
  this server's, and waits until it is gone.
"""

from __future__ import annotations

from lakehouse.serving.thrift.cli import main
from lakehouse.serving.thrift.client import ThriftError, answers, connect, error_message, register
from lakehouse.serving.thrift.server import ServerState, running_server, start, state_dir_from, status, stop

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
