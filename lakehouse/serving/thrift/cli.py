"""``python -m lakehouse.serving.thrift start|register|status|stop`` (see the package docstring)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from lakehouse.config import ConfigError
from lakehouse.serving.options import add_config_args, asks_for_warehouse, config_from_args
from lakehouse.serving.thrift import auth
from lakehouse.serving.thrift.auth import state_dir_from
from lakehouse.serving.thrift.client import ThriftError, log, register
from lakehouse.serving.thrift.server import running_server, start, status, stop


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

    a = sub.add_parser(
        "add-user",
        help="add an analyst (or reset a password): prints the generated password once "
        "(or takes THRIFT_NEW_PASSWORD from the environment); no restart needed",
    )
    a.add_argument("name")
    d = sub.add_parser("remove-user", help="remove a user; its next connection is refused")
    d.add_argument("name")
    sub.add_parser("users", help="list the users of the users file")
    w = sub.add_parser("password", help="print the password of one of the project's own clients (for scripts)")
    w.add_argument("--user", default="superset", choices=auth.SERVICE_USERS)
    return p


def _users(args: argparse.Namespace, state_dir) -> int:
    if args.command == "add-user":
        if args.name in auth.SERVICE_USERS:
            raise auth.AuthError(f"{args.name} is one of the project's own clients; choose another name")
        creds = auth.add_user(state_dir, args.name, os.environ.get("THRIFT_NEW_PASSWORD") or None)
        log(f"user {creds.user} added to {auth.users_file(state_dir)} (the running server reads it at the next login)")
        if not os.environ.get("THRIFT_NEW_PASSWORD"):
            print(f"password for {creds.user} (shown once, only its hash is kept): {creds.password}")
        return 0
    if args.command == "remove-user":
        if auth.remove_user(state_dir, args.name):
            log(f"user {args.name} removed")
            return 0
        log(f"no user {args.name} in {auth.users_file(state_dir)}")
        return 1
    if args.command == "users":
        for name in auth.read_users(state_dir):
            print(name + ("  (service user of the project)" if name in auth.SERVICE_USERS else ""))
        return 0
    print(auth.service_credentials(state_dir, args.user).password)
    return 0


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
    register(current.host, current.port, config, auth.service_credentials(state_dir))
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
        if args.command == "status":
            return status(state_dir)
        return _users(args, state_dir)
    except (ThriftError, ConfigError, auth.AuthError) as exc:
        log(f"ERROR: {exc}")
        return 1
