"""Superset for the gold tables, started and stopped from this checkout: ``lakehouse superset up|down|status|install``.

``up`` (idempotent; the second time it takes seconds):

1. Superset's own virtualenv ``.cache/superset-venv`` from :data:`REQUIREMENTS` (:mod:`lakehouse.venvs`);
2. a warning when ``conf/superset/bundle`` is not what :mod:`.bundle` writes for this config;
3. credentials: ``SUPERSET_SECRET_KEY``, ``SUPERSET_ADMIN_USER``, ``SUPERSET_ADMIN_PASSWORD`` from the
   environment, else from ``.cache/superset/credentials.env`` (mode 600), else generated into it;
4. the metadata DB (SQLite under ``.cache/superset/home``): ``superset db upgrade`` and ``superset init``
   once per install (``SUPERSET_FORCE_INIT=1`` redoes them);
5. the bundle imported by :mod:`.bootstrap` (in Superset's virtualenv), the database URI pointing at
   the Thrift server as its service user ``superset``, whose password comes from the Thrift server's
   state directory (through the environment, never argv), over TLS verified against the server's CA
   (``serving.tls``); that user is granted the tables the dashboards read;
6. gunicorn on 127.0.0.1 (:mod:`lakehouse.processes`: own session, pid file, log, readiness on
   ``/health``); a server already running on the same port is left running (the bundle was re-imported
   into it).

``install`` does steps 1, 3 and 4 only (nothing started, no Thrift server needed): the test suite's set-up
runs it in the background while the JVM's archive is built (``scripts/test.sh``).

``down`` stops exactly the gunicorn that ``up`` started, with its workers. Setup output (pip, db upgrade,
import) goes to ``.cache/superset/setup.log``; the server's to ``.cache/superset/superset.log``.

Addresses default to the config (``serving.superset_host/_port``, ``serving.thrift_host/_port``); the
environment variables ``SUPERSET_HOST``, ``SUPERSET_PORT``, ``THRIFT_HOST``, ``THRIFT_PORT``,
``THRIFT_USER``, ``THRIFT_STATE_DIR``, ``SUPERSET_WORKERS``, ``SUPERSET_START_TIMEOUT`` win when set.
The week start always comes from the config (it must match the data).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lakehouse import processes, venvs
from lakehouse.config import PROJECT_ROOT, ConfigError, LakehouseConfig
from lakehouse.serving.options import add_config_args, config_from_args

# The published apache-superset 6.1.0 wheel does not start as installed with the newest releases of
# dependencies it leaves open; this set was found by trying on this kind of machine: flask-caching<2.5,
# rich<15 and cachetools. Spark Thrift driver: PyHive 0.7.0 over the pure-Python SASL stack (nothing to
# compile); thrift<1 is what PyHive's generated code supports; PyHive 0.7.0 has no `hive_pure_sasl` extra,
# so its packages are listed. gunicorn serves the app (a dependency of apache-superset, named because it
# is called here).
REQUIREMENTS = (
    "apache-superset==6.1.0", "flask-caching<2.5", "rich<15", "cachetools", "pyhive==0.7.0", "thrift<1",
    "thrift-sasl", "pure-sasl", "gunicorn",
)  # fmt: skip
SERVICE = "superset"
#: In the command line of the gunicorn master and its workers.
MARKER = "superset.app:create_app()"
CREDENTIAL_KEYS = ("SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_USER", "SUPERSET_ADMIN_PASSWORD")


def log(message: str) -> None:
    print(f"[superset] {message}", file=sys.stderr, flush=True)


class SupersetError(RuntimeError):
    """Superset could not be set up or started; the message says why."""


@dataclass(frozen=True)
class Layout:
    """Everything Superset writes lives under ``.cache/`` (gitignored)."""

    root: Path = PROJECT_ROOT

    @property
    def cache(self) -> Path:
        return self.root / ".cache" / "superset"

    @property
    def venv(self) -> Path:
        return self.root / ".cache" / "superset-venv"

    @property
    def home(self) -> Path:
        return self.cache / "home"

    @property
    def state(self) -> processes.StateDir:
        return processes.StateDir(self.cache)

    @property
    def credentials(self) -> Path:
        return self.cache / "credentials.env"

    @property
    def port_file(self) -> Path:
        return self.cache / "superset.port"

    @property
    def ca_bundle(self) -> Path:
        return self.cache / "thrift-ca-bundle.pem"

    @property
    def setup_log(self) -> Path:
        return self.cache / "setup.log"

    @property
    def bundle(self) -> Path:
        return self.root / "conf" / "superset" / "bundle"

    @property
    def code(self) -> Path:
        return self.root / "lakehouse" / "serving" / "superset"

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    thrift_host: str
    thrift_port: int
    thrift_user: str
    thrift_state_dir: Path
    #: The Thrift server serves TLS (serving.tls): the connection is hive+https, verified against its CA.
    thrift_tls: bool
    week_start: str
    workers: int
    start_timeout: float

    @classmethod
    def from_config(cls, config: LakehouseConfig, environ: dict[str, str] | None = None) -> Settings:
        from lakehouse.serving.thrift.auth import state_dir_from

        env = os.environ if environ is None else environ
        serving = config.serving
        return cls(
            host=env.get("SUPERSET_HOST") or serving.superset_host,
            port=int(env.get("SUPERSET_PORT") or serving.superset_port),
            thrift_host=env.get("THRIFT_HOST") or serving.thrift_host,
            thrift_port=int(env.get("THRIFT_PORT") or serving.thrift_port),
            thrift_user=env.get("THRIFT_USER") or "superset",
            thrift_state_dir=state_dir_from(env.get("THRIFT_STATE_DIR")),
            thrift_tls=config.serving.tls,
            week_start=config.week_start,
            workers=int(env.get("SUPERSET_WORKERS") or 2),  # the machine has 2 cores
            start_timeout=float(env.get("SUPERSET_START_TIMEOUT") or 180),
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def database_uri(self) -> str:
        """Superset's connection to the Thrift server, without the password (set by bootstrap.py).

        With TLS: PyHive's ``hive+https`` dialect (the server's HTTP transport), ``ssl_cert=required`` and
        ``check_hostname=true``, so the certificate is verified against ``SSL_CERT_FILE`` (set to the
        server's CA by :func:`superset_env`; PyHive verifies nothing without them). Without TLS: the binary
        transport, SASL PLAIN (``auth=CUSTOM``)."""
        where = f"{self.thrift_user}@{self.thrift_host}:{self.thrift_port}/gold"
        if self.thrift_tls:
            return f"hive+https://{where}?ssl_cert=required&check_hostname=true"
        return f"hive://{where}?auth=CUSTOM"


def read_credentials(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of the credentials file (never evaluated by a shell)."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                values[key] = value
    return values


def credentials(layout: Layout, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment wins; else the credentials file; else generated and remembered in the file
    (mode 600). Values that came from the environment are never written to disk."""
    env = os.environ if environ is None else environ
    stored = read_credentials(layout.credentials)
    generate = {
        "SUPERSET_SECRET_KEY": lambda: secrets.token_urlsafe(42),
        "SUPERSET_ADMIN_USER": lambda: "superset_admin",
        "SUPERSET_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(18),
    }
    values, generated = {}, False
    for key in CREDENTIAL_KEYS:
        value = env.get(key) or stored.get(key)
        if not value:
            value = stored[key] = generate[key]()
            generated = True
        values[key] = value
    if generated:
        layout.cache.mkdir(parents=True, exist_ok=True)
        tmp = layout.credentials.with_suffix(".tmp")
        lines = ["# Generated by lakehouse superset up; environment variables of the same name win."]
        lines += [f"{key}={stored[key]}" for key in CREDENTIAL_KEYS if stored.get(key)]
        tmp.touch(mode=0o600)
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(layout.credentials)
        log(f"generated credentials written to {layout.credentials}")
    if layout.credentials.exists():
        layout.credentials.chmod(0o600)
    return values


def superset_env(layout: Layout, settings: Settings, creds: dict[str, str], tls: bool = True) -> dict[str, str]:
    """What every Superset process gets (superset_config.py reads these); ``tls=False``: without the Thrift
    server's CA bundle (for the metadata DB's set-up, which does not talk to the server)."""
    env = {
        "SUPERSET_HOME": str(layout.home),
        "SUPERSET_CONFIG_PATH": str(layout.code / "superset_config.py"),
        "FLASK_APP": "superset",
        "LAKEHOUSE_WEEK_START": settings.week_start,
        **creds,
    }
    if settings.thrift_tls and tls:
        env["SSL_CERT_FILE"] = str(layout.ca_bundle)
    return env


def write_ca_bundle(layout: Layout, settings: Settings) -> None:
    """``SSL_CERT_FILE`` for Superset: the Thrift server's CA after the system's CAs (Python's default TLS
    context reads this one file; the system's CAs stay trusted for anything else)."""
    from lakehouse.serving.thrift.tls import tls_files

    ca = tls_files(settings.thrift_state_dir).ca
    if not ca.exists():
        raise SupersetError(f"no Thrift server CA at {ca}: start the Thrift server first (lakehouse thrift start), "
                            "which makes it")  # fmt: skip
    system = ssl.get_default_verify_paths().cafile
    parts = [Path(system).read_text()] if system and Path(system).is_file() else []
    layout.ca_bundle.write_text("".join([*parts, ca.read_text()]))


def _logged(layout: Layout, what: str, cmd: Sequence[str], env: dict[str, str]) -> None:
    """A set-up step with its (long) output in setup.log; on failure the tail is in the error."""
    with layout.setup_log.open("a") as out:
        out.write(f"\n### {what}: {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env={**os.environ, **env}, cwd=layout.root, check=False)  # fmt: skip
    if proc.returncode:
        tail = "\n".join(layout.setup_log.read_text(errors="replace").splitlines()[-40:])
        raise SupersetError(f"{what} failed (exit {proc.returncode}; full output: {layout.setup_log}):\n{tail}")


def check_bundle(layout: Layout) -> None:
    """A stale bundle still imports (and its charts still work), so this only warns."""
    cmd = [sys.executable, "-m", "lakehouse.serving.superset.bundle", "--check", "--superset-venv", str(layout.venv)]
    try:
        _logged(layout, "bundle check", cmd, {})
    except SupersetError:
        log(f"WARNING: {layout.bundle} is not what python -m lakehouse.serving.superset.bundle writes for this "
            f"config and registry; importing it anyway (details: {layout.setup_log})")  # fmt: skip


def init_metadata_db(layout: Layout, env: dict[str, str], install_hash: str) -> None:
    marker = layout.home / ".initialized"
    current = marker.read_text().strip() if marker.exists() else ""
    if not os.environ.get("SUPERSET_FORCE_INIT") and (layout.home / "superset.db").exists() and current == install_hash:
        log(f"metadata DB already initialised for this install ({layout.home})")
        return
    log("initialising the metadata DB (db upgrade, init)")
    _logged(layout, "superset db upgrade", [layout.bin("superset"), "db", "upgrade"], env)
    _logged(layout, "superset init", [layout.bin("superset"), "init"], env)
    marker.write_text(install_hash + "\n")


def grant_dashboard_tables(settings: Settings) -> None:
    """The Thrift user of Superset may read the tables the dashboards read (``SERVED_TABLES``): whole, or only
    the columns the dashboards read where ``SERVED_COLUMNS`` names them (the bookkeeping tables and the anomaly
    table); grants it has already are kept (an administrator may have narrowed or widened them)."""
    from lakehouse.serving.superset.bundle import served_grants
    from lakehouse.serving.thrift import grants

    added = grants.ensure_grants(settings.thrift_state_dir, settings.thrift_user, served_grants())
    if added:
        log(f"granted {settings.thrift_user} on the Thrift server: {', '.join(added)}")


def import_bundle(layout: Layout, settings: Settings, env: dict[str, str]) -> None:
    from lakehouse.serving.thrift.auth import AuthError, service_credentials

    uri = settings.database_uri
    try:
        password = service_credentials(settings.thrift_state_dir, settings.thrift_user).password
    except AuthError as exc:
        raise SupersetError(f"no Thrift password for {settings.thrift_user} in {settings.thrift_state_dir}: "
                            f"start the Thrift server first (lakehouse thrift start): {exc}") from exc  # fmt: skip
    try:
        grant_dashboard_tables(settings)
    except AuthError as exc:  # a malformed grants file, named in the message
        raise SupersetError(f"could not grant {settings.thrift_user} the dashboards' tables: {exc}") from exc
    log(f"importing {layout.bundle} (database URI {uri}, password from {settings.thrift_state_dir}/auth)")
    # The password goes through the environment (never argv); Superset keeps it encrypted.
    cmd = [layout.bin("python"), str(layout.code / "bootstrap.py"), "--bundle", str(layout.bundle),
           "--sqlalchemy-uri", uri]  # fmt: skip
    _logged(layout, "import bundle", cmd, {**env, "THRIFT_PASSWORD": password})
    for line in layout.setup_log.read_text(errors="replace").splitlines():
        if re.match(r"\[superset\] (dashboard|\d+ database)", line):
            print(line, file=sys.stderr)


def running(layout: Layout) -> int | None:
    """The pid of the gunicorn master ``up`` started, if it still runs."""
    return processes.running_pid(layout.state, SERVICE, MARKER)


def healthy(settings: Settings) -> bool:
    answer = processes.http(f"{settings.url}/health", timeout=5.0)
    return answer is not None and answer[0] == 200 and answer[1].strip() == b"OK"


def start_server(layout: Layout, settings: Settings, env: dict[str, str]) -> int:
    pid = running(layout)
    if pid is not None:
        port = layout.port_file.read_text().strip() if layout.port_file.exists() else "?"
        if port != str(settings.port):
            raise SupersetError(f"Superset already runs (pid {pid}) on port {port}; run lakehouse superset down first")
        log(f"web server already running (pid {pid}); bundle re-imported into it")
        return pid
    if processes.http(f"{settings.url}/", timeout=2.0) is not None:
        raise SupersetError(f"port {settings.port} is in use by another process (set SUPERSET_PORT or "
                            "serving.superset_port)")  # fmt: skip
    log(f"starting gunicorn on {settings.host}:{settings.port} (log {layout.state.log_file(SERVICE)})")
    # --timeout is above SUPERSET_WEBSERVER_TIMEOUT (superset_config.py), so slow Spark queries end with
    # Superset's timeout message rather than a killed worker. The admin password stays out of the
    # server's environment: it does not need it.
    cmd = [
        layout.bin("gunicorn"), "--bind", f"{settings.host}:{settings.port}", "--workers", str(settings.workers),
        "--worker-class", "gthread", "--threads", "4", "--timeout", "190", "--graceful-timeout", "10",
        "--limit-request-line", "0", "--limit-request-field_size", "0", MARKER,
    ]  # fmt: skip
    pid = processes.start(layout.state, SERVICE, cmd, env, cwd=layout.cache, drop=("SUPERSET_ADMIN_PASSWORD",))
    layout.port_file.write_text(f"{settings.port}\n")
    try:
        processes.wait_ready(f"Superset on {settings.url}", lambda: healthy(settings), settings.start_timeout,
                             layout.state, SERVICE, pid)  # fmt: skip
    except processes.ServiceError as exc:
        tail = processes.tail(layout.state, SERVICE, 40)
        down(layout)
        raise SupersetError(f"{exc}; stopped it. Log tail:\n{tail}") from exc
    return pid


def install(config: LakehouseConfig, layout: Layout | None = None) -> dict[str, str]:
    """Superset's virtualenv, its credentials and its metadata DB (each once; seconds when done before);
    nothing started. The credentials."""
    layout = layout or Layout()
    settings = Settings.from_config(config)
    layout.cache.mkdir(parents=True, exist_ok=True)
    layout.home.mkdir(parents=True, exist_ok=True)
    layout.setup_log.write_text("")
    install_hash = venvs.ensure_venv(layout.venv, REQUIREMENTS, what="Superset", log=log, entry_point="gunicorn",
                                     pip_log=layout.setup_log)  # fmt: skip
    creds = credentials(layout)
    init_metadata_db(layout, superset_env(layout, settings, creds, tls=False), install_hash)
    return creds


def up(config: LakehouseConfig, layout: Layout | None = None) -> int:
    layout = layout or Layout()
    began = time.monotonic()
    settings = Settings.from_config(config)
    log(f"web on {settings.host}:{settings.port}, Thrift at {settings.thrift_host}:{settings.thrift_port}, "
        f"weeks start on {settings.week_start}")  # fmt: skip
    creds = install(config, layout)
    check_bundle(layout)
    if settings.thrift_tls:
        write_ca_bundle(layout, settings)
    env = superset_env(layout, settings, creds)
    import_bundle(layout, settings, env)
    pid = start_server(layout, settings, env)
    log(f"ready in {time.monotonic() - began:.0f} s: {settings.url}/ (pid {pid})")
    log(f"login: user {creds['SUPERSET_ADMIN_USER']}; password from SUPERSET_ADMIN_PASSWORD or {layout.credentials}")
    return 0


def down(layout: Layout | None = None) -> int:
    """Stop the gunicorn master ``up`` started and its workers (its process group); no-op if not running."""
    layout = layout or Layout()
    stale = layout.state.pid_file(SERVICE).exists() and running(layout) is None
    # TERM: gunicorn stops accepting, lets workers finish (graceful timeout 10 s) and exits.
    pid = processes.stop(layout.state, SERVICE, MARKER, timeout=30.0, group=True)
    layout.port_file.unlink(missing_ok=True)
    log(f"stopped (pid {pid})" if pid else "not running" + (" (stale pid file removed)" if stale else ""))
    return 0


def status(config: LakehouseConfig, layout: Layout | None = None) -> int:
    layout = layout or Layout()
    pid = running(layout)
    if pid is None:
        print("superset: stopped")
        return 3
    port = layout.port_file.read_text().strip() if layout.port_file.exists() else str(config.serving.superset_port)
    settings = Settings.from_config(config, {**os.environ, "SUPERSET_PORT": port})
    ok = healthy(settings)
    print(f"superset: running, pid {pid}, {settings.url}/" + ("" if ok else " -- but /health does not answer OK"))
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse superset", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "status", "install"))
    add_config_args(parser)
    args = parser.parse_args(argv)
    if args.action == "down":
        return down()
    try:
        config = config_from_args(args)
        if args.action == "install":
            began = time.monotonic()
            install(config)
            log(f"installed (virtualenv, credentials, metadata DB) in {time.monotonic() - began:.0f} s; start with up")
            return 0
        return up(config) if args.action == "up" else status(config)
    except (ConfigError, SupersetError, subprocess.CalledProcessError) as exc:
        log(f"ERROR: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
