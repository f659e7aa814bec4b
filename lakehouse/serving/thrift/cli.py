"""``python -m lakehouse.serving.thrift start|register|status|stop`` (see the package docstring)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from lakehouse.config import ConfigError
from lakehouse.serving.options import add_config_args, asks_for_warehouse, config_from_args
from lakehouse.serving.thrift.client import ThriftError, log, register
from lakehouse.serving.thrift.server import running_server, start, state_dir_from, status, stop


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Spark Thrift Server over the lakehouse's Delta tables.")
    p.add_argument("--state-dir", help="pid, log and scratch folder (default .cache/thrift or THRIFT_STATE_DIR)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("start", help="start the server, wait until it answers, register the tables")
    add_config_args(s)
    s.add_argument("--host", help="bind address (default serving.thrift_host)")
    s.add_argument("--port", type=int, help="port (default serving.thrift_port)")
    s.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for an answer (default 180)")
    s.add_argument(
        "--driver-memory",
        default=os.environ.get("THRIFT_DRIVER_MEMORY"),
        help="JVM heap of the server (default: the jobs' spark settings; or THRIFT_DRIVER_MEMORY)",
    )

    r = sub.add_parser("register", help="register tables created since the start (idempotent)")
    add_config_args(r)

    t = sub.add_parser("stop", help="stop the server started from the state dir and wait for it")
    t.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL (default 30)")

    sub.add_parser("status", help="exit 0 if running and answering, 3 if not running")
    return p


def _register(args: argparse.Namespace) -> int:
    state_dir = state_dir_from(args.state_dir)
    current = running_server(state_dir)
    if current is None:
        log(f"no running server (state dir {state_dir}); start it with scripts/start_thrift_server.sh")
        return 1
    if not asks_for_warehouse(args):
        args.warehouse = current.warehouse
    config = config_from_args(args)
    if config.paths.warehouse != current.warehouse:
        log(
            f"the server serves warehouse {current.warehouse}, not {config.paths.warehouse}: "
            "restart it with --warehouse to serve another one"
        )
        return 1
    register(current.host, current.port, config)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    state_dir = state_dir_from(args.state_dir)
    try:
        if args.command == "start":
            config = config_from_args(args)
            host = args.host or config.serving.thrift_host
            port = args.port or config.serving.thrift_port
            return start(config, host, port, state_dir, args.timeout, args.driver_memory)
        if args.command == "register":
            return _register(args)
        if args.command == "stop":
            return stop(state_dir, args.timeout)
        return status(state_dir)
    except (ThriftError, ConfigError) as exc:
        log(f"ERROR: {exc}")
        return 1
