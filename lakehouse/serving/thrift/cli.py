"""``python -m lakehouse.serving.thrift start|register|status|stop|add-user|...|grant|revoke|grants`` (see the
package docstring)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from lakehouse.config import ConfigError
from lakehouse.serving.options import add_config_args, asks_for_warehouse, config_from_args
from lakehouse.serving.thrift import auth, grants
from lakehouse.serving.thrift.auth import state_dir_from
from lakehouse.serving.thrift.client import ThriftError, log, register
from lakehouse.serving.thrift.server import running_server, start, status, stop
from lakehouse.serving.thrift.tls import TlsError


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
    g = sub.add_parser(
        "grant",
        help="let USER read OBJECT (layer.table or layer.*), optionally only some columns and rows; "
        "replaces USER's grant of the same OBJECT; counts from the next statement, no restart",
    )
    g.add_argument("user")
    g.add_argument("object", help="layer.table, or layer.* for every table of the layer")
    g.add_argument("--columns", help="comma-separated columns USER may read (default: all)")
    g.add_argument(
        "--where",
        help="a SQL condition on the table's columns: USER sees only those rows (current_user() is the logged-in user)",
    )
    v = sub.add_parser("revoke", help="remove USER's grant of exactly OBJECT (a table grant or a layer.* one)")
    v.add_argument("user")
    v.add_argument("object")
    ls = sub.add_parser("grants", help="list the grants (of USER only, if given)")
    ls.add_argument("user", nargs="?")
    w = sub.add_parser("password", help="print the password of one of the project's own clients (for scripts)")
    w.add_argument("--user", default="superset", choices=auth.SERVICE_USERS)
    return p


def _users(args: argparse.Namespace, state_dir) -> int:
    if args.command == "add-user":
        if args.name in auth.SERVICE_USERS:
            raise auth.AuthError(f"{args.name} is one of the project's own clients; choose another name")
        new = args.name not in auth.read_users(state_dir)
        creds = auth.add_user(state_dir, args.name, os.environ.get("THRIFT_NEW_PASSWORD") or None)
        log(f"user {creds.user} added to {auth.users_file(state_dir)} (the running server reads it at the next login)")
        if new:
            added = grants.ensure_grants(state_dir, creds.user, grants.NEW_USER_GRANTS)
            if added:
                log(f"granted {', '.join(added)} (the default for a new user; lakehouse thrift grant for more)")
        if not os.environ.get("THRIFT_NEW_PASSWORD"):
            print(f"password for {creds.user} (shown once, only its hash is kept): {creds.password}")
        return 0
    if args.command == "remove-user":
        if auth.remove_user(state_dir, args.name):
            grants.revoke_all(state_dir, args.name)
            log(f"user {args.name} removed, with their grants")
            return 0
        log(f"no user {args.name} in {auth.users_file(state_dir)}")
        return 1
    if args.command in ("grant", "revoke", "grants"):
        return _grants(args, state_dir)
    if args.command == "users":
        for name in auth.read_users(state_dir):
            print(name + ("  (service user of the project)" if name in auth.SERVICE_USERS else ""))
        return 0
    print(auth.service_credentials(state_dir, args.user).password)
    return 0


def _grants(args: argparse.Namespace, state_dir) -> int:
    if args.command == "grants":
        every = grants.read_grants(state_dir)
        for user in sorted(every) if args.user is None else [args.user]:
            entries = grants.user_grants(state_dir, user)
            print(f"{user}:" + ("" if entries else " nothing (reads no table)"))
            for entry in entries:
                print(f"  {entry.describe()}")
        return 0
    if args.user == "lakehouse":
        raise grants.GrantsError("lakehouse is the project's own client (sql.sh, table registration): it reads "
                                 "every layer; its grants are not changed")  # fmt: skip
    if args.command == "revoke":
        if grants.revoke(state_dir, args.user, args.object):
            log(f"revoked {args.object} from {args.user} (from the next statement, no restart)")
            return 0
        log(f"{args.user} has no grant of exactly {args.object}: lakehouse thrift grants {args.user}")
        return 1
    columns = args.columns.split(",") if args.columns is not None else None
    new = grants.make_grant(args.object, columns, args.where)
    previous = grants.grant(state_dir, args.user, new)
    log(
        f"granted to {args.user}: {new.describe()}"
        + (f" (was: {previous.describe()})" if previous else "")
        + " -- from the next statement, no restart"
    )
    if new.where is not None:
        log(
            "the row filter is checked by the server when a query reads the table: try it "
            f"(lakehouse sql as {args.user}, or beeline)"
        )
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
    register(current.host, current.port, config, auth.service_credentials(state_dir), ca_file=current.ca_file)
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
    except (ThriftError, ConfigError, auth.AuthError, TlsError) as exc:
        log(f"ERROR: {exc}")
        return 1
