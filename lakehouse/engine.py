"""The warm engine: Apache Spark's own Spark Connect server, kept running, the jobs its clients.

``lakehouse engine start|status|stop|restart``. A job run in its own process pays a cold JVM: 10-16 s,
of which its Spark work is under 3 s (docs/performance.md). The engine is one long-lived Spark driver
(``org.apache.spark.sql.connect.service.SparkConnectServer`` from the pyspark wheel's jars, with Delta's
extension and catalog); ``lakehouse run``, ``lakehouse job``, ``spark-submit jobs/<job>.py`` and each
Airflow task then open a thin Spark Connect session on it (about 0.5 s) instead of starting Spark.

- **One engine per checkout** (``engine.state_dir``, default ``.cache/engine``), serving every warehouse:
  the jobs name their tables by path. A client connects only to an engine started with the settings its
  config needs (:func:`settings`: the master, s3a's keys and jars); others run classic and the log says why.
- **A writer's endpoint, not the analysts' door**: it listens on 127.0.0.1 only, and every call must carry
  a pre-shared token (Spark's ``SPARK_CONNECT_AUTHENTICATE_TOKEN``), generated on the first start into
  ``<state_dir>/token`` (mode 600) and read from there by the project's clients. Analysts use the Thrift
  server (TLS, grants per user). The Python client sends a token without TLS only to the host name
  ``localhost``: the clients' URL says ``localhost``, the server binds 127.0.0.1.
- **When it is used** (``engine.use``): ``auto`` (default) connects when an engine serving this config
  runs, and restarts one that was started and has died (its ``engine.json`` is still there: only
  ``stop`` removes it); ``always`` also starts it when it is not running; ``never`` always runs a classic
  session in the job's process. Everything else stays in the client: the warehouse lock, the idle decision
  without any JVM, the bookkeeping (:mod:`lakehouse.launcher`).
- **Its JVM** runs the full tiered JIT (a server lives for days, unlike a short job's C1-only JIT),
  ``engine.driver_memory`` of heap, on ``engine.java_home`` when set (Temurin 25: see docs/engine.md).
- **Start** waits for the server's "started" log line, then runs a small Delta workload through a client
  session (create, write, MERGE, read, history on a scratch table) so that the first real job does not pay
  the engine's class loading and first compilations.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse import processes
from lakehouse.config import ConfigError, LakehouseConfig
from lakehouse.jars import ensure_delta_jars, ensure_s3a_jars, jdk_tool, spark_home, uses_s3a
from lakehouse.job_runtime import add_config_args, config_from_args, setup_logging
from lakehouse.jvm import launch_env
from lakehouse.session import FULL_JIT, RemoteEngine, existing_session, get_spark, is_remote, session_conf

log = logging.getLogger("lakehouse")

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
SERVICE = "engine"
#: Marks the engine's command line (with its state folder), so ``stop`` never signals a reused pid.
STATE_MARKER_CONF = "spark.lakehouse.engine.stateDir"
READY_LINE = "Spark Connect server started at"
TOKEN_ENV = "SPARK_CONNECT_AUTHENTICATE_TOKEN"
#: The host in the clients' URL: the Python client sends a token without TLS to this name only.
CLIENT_HOST = "localhost"
BIND_HOST = "127.0.0.1"

LOG4J2_PROPERTIES = """\
# Written by lakehouse.engine: warnings and errors, the server's start line and each session's close.
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.server.name = org.apache.spark.sql.connect.service.SparkConnectServer
logger.server.level = info
# "Closing session with userId: ... and sessionId: ..." (a client released its session); the same logger
# logs every access of a session at INFO too, which the filter drops.
logger.session.name = org.apache.spark.sql.connect.service.SessionHolder
logger.session.level = info
logger.session.filter.access.type = RegexFilter
logger.session.filter.access.regex = .*accessed at timestamp.*
logger.session.filter.access.onMatch = DENY
logger.session.filter.access.onMismatch = NEUTRAL
# A client's asynchronous release of its last operation may arrive after it closed its session: the server
# logs that race as an error with a stack (the client has its results); not one.
logger.errors.name = org.apache.spark.sql.connect.utils.ErrorUtils
logger.errors.level = off
"""


class EngineError(RuntimeError):
    """The engine did not start, is not running when it must be, or stopped answering."""


@dataclass(frozen=True)
class EngineState:
    """``<state_dir>/engine.json``: written by ``start``, removed by ``stop`` only (a dead engine whose state
    is still there was started and not stopped: clients restart it)."""

    pid: int
    port: int
    master: str
    settings: str
    started_at: str
    java: str
    driver_memory: str
    log_file: str
    state_dir: str

    @property
    def url(self) -> str:
        """The client URL without its token."""
        return f"sc://{CLIENT_HOST}:{self.port}"


def _state_dir(config: LakehouseConfig) -> Path:
    return Path(config.engine.state_dir)


def _service(config: LakehouseConfig) -> processes.StateDir:
    return processes.StateDir(_state_dir(config))


def _state_file(config: LakehouseConfig) -> Path:
    return _state_dir(config) / "engine.json"


def token_file(config: LakehouseConfig) -> Path:
    return _state_dir(config) / "token"


def _marker(config: LakehouseConfig) -> str:
    return f"{STATE_MARKER_CONF}={_state_dir(config)}"


def master(config: LakehouseConfig) -> str:
    return config.engine.master or config.spark.master


def settings(config: LakehouseConfig) -> str:
    """What an engine must have been started with to serve this config: its master, the Hadoop keys (s3a's
    endpoint...) and whether it has s3a's jars. Session settings (time zone, shuffle partitions, light or
    heavy run) are not in it: each client sets them on its own session."""
    hadoop = {k: v for k, v in sorted(config.spark.extra_conf.items()) if k.startswith("spark.hadoop.")}
    wanted = {"master": master(config), "hadoop": hadoop, "s3a": uses_s3a(config.paths.input, config.paths.warehouse)}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]


def ensure_token(config: LakehouseConfig) -> str:
    """The pre-shared token (generated once into a file only this user reads)."""
    path = token_file(config)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".new"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        os.replace(path.with_suffix(".new"), path)
    return read_token(config)


def read_token(config: LakehouseConfig) -> str:
    path = token_file(config)
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text().strip()
    except OSError as exc:
        raise EngineError(f"the engine's token file {path} cannot be read ({exc}): lakehouse engine start") from exc
    if mode & 0o077:
        raise EngineError(f"the engine's token file {path} is readable by others (mode {mode:o}): chmod 600 {path}")
    return text


def client_url(state: EngineState, token: str, user: str | None = None) -> str:
    """``sc://localhost:PORT/;token=...;user_id=...``: the user id names the client in the engine's log."""
    user = user or _os_user()
    return f"{state.url}/;token={token};user_id={user}"


def _os_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "lakehouse")


def running(config: LakehouseConfig) -> EngineState | None:
    """The engine of this config's state folder if its process is alive and still the server we started."""
    return _running_in(_state_dir(config))


def _running_in(state_dir: Path) -> EngineState | None:
    pid = processes.running_pid(processes.StateDir(state_dir), SERVICE, SERVER_CLASS)
    if pid is None or f"{STATE_MARKER_CONF}={state_dir}" not in processes.process_cmdline(pid):
        return None
    state = _read_state_in(state_dir)
    return state if state is not None and state.pid == pid else None


def _read_state(config: LakehouseConfig) -> EngineState | None:
    return _read_state_in(_state_dir(config))


def _read_state_in(state_dir: Path) -> EngineState | None:
    try:
        return EngineState(**json.loads((state_dir / "engine.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def wanted(config: LakehouseConfig) -> bool:
    """An engine was started from this state folder and not stopped (it may have died since)."""
    return _state_file(config).exists()


def port_open(port: int, host: str = BIND_HOST) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


# --------------------------------------------------------------------------- the server's command


#: ``engine.java_home: auto`` prefers a JDK of at least this version (Spark 4.2 deprecates 25 before 25.0.3).
PREFERRED_JAVA = (25, 0, 3)
#: Where ``auto`` looks for it: the JDK folders of Debian's and Temurin's packages.
JDK_FOLDERS = ("/usr/lib/jvm",)


def jdk_release_version(home: str | os.PathLike[str]) -> tuple[int, ...] | None:
    """(25, 0, 3) from a JDK's ``release`` file (``JAVA_VERSION="25.0.3"``); None when it has none."""
    try:
        text = Path(home, "release").read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r'^JAVA_VERSION="(\d+(?:\.\d+)*)', text, re.MULTILINE)
    return tuple(int(part) for part in found.group(1).split(".")) if found else None


def preferred_jdk(folders: Sequence[str] | None = None) -> str | None:
    """The newest JDK of at least :data:`PREFERRED_JAVA` installed in ``folders`` (:data:`JDK_FOLDERS`), or None."""
    found = []
    for folder in JDK_FOLDERS if folders is None else folders:
        for home in sorted(Path(folder).glob("*")) if Path(folder).is_dir() else []:
            version = jdk_release_version(home)
            if version and version >= PREFERRED_JAVA and (home / "bin" / "java").exists():
                found.append((version, str(home)))
    return max(found)[1] if found else None


def java_home(config: LakehouseConfig) -> str | None:
    """The JDK the engine runs on. ``engine.java_home``: ``auto`` (default) = a Java 25 (>= 25.0.3) when one is
    installed (measured faster for the engine: docs/performance.md), else the environment's; ``""`` = the
    environment's (JAVA_HOME, else java from PATH: None); a JDK's folder = that one."""
    configured = config.engine.java_home
    if configured == "auto":
        return preferred_jdk() or os.environ.get("JAVA_HOME") or None
    if configured and not Path(configured, "bin", "java").exists():
        raise ConfigError(f"config key 'engine.java_home': no bin/java under {configured}")
    return configured or os.environ.get("JAVA_HOME") or None


def _java_version(home: str | None) -> str:
    java = str(Path(home, "bin", "java")) if home else (jdk_tool("java") or "java")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
        return out.splitlines()[0] if out else java
    except (OSError, subprocess.SubprocessError):
        return java


def spark_submit() -> str:
    candidate = Path(sys.executable).parent / "spark-submit"
    return str(candidate) if candidate.exists() else str(spark_home() / "bin" / "spark-submit")


def server_command(config: LakehouseConfig, port: int) -> list[str]:
    """``spark-submit --class SparkConnectServer`` with Delta, bound to 127.0.0.1:``port``."""
    conf = session_conf(config, under_submit=False, master=master(config))
    conf.pop("spark.master")
    conf.pop("spark.driver.memory", None)
    jars = conf["spark.jars"].split(",")
    state_dir = _state_dir(config)
    conf.update(
        {
            "spark.connect.grpc.binding.address": BIND_HOST,
            "spark.connect.grpc.binding.port": str(port),
            # Delta's classes on the driver's own class path: the server resolves data sources in its
            # sessions' class loader, which does not see spark.jars (the Thrift server found the same).
            "spark.driver.extraClassPath": os.pathsep.join(jars),
            "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={state_dir / 'log4j2.properties'} "
                                             f"-Duser.timezone={config.timezone}",
            # A client that died without releasing its session: the server drops it after this idle time.
            "spark.connect.session.manager.defaultSessionTimeout": "30m",
            STATE_MARKER_CONF: str(state_dir),
        }
    )  # fmt: skip
    cmd = [spark_submit(), "--master", master(config), "--name", f"{config.app_name}:engine", "--class", SERVER_CLASS,
           "--driver-memory", config.engine.driver_memory]  # fmt: skip
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    return [*cmd, "spark-internal"]


def java_major(version_line: str) -> int:
    """17 of 'openjdk version "17.0.15" 2025-04-15'; 0 when it cannot be read."""
    found = re.search(r'version "(\d+)', version_line)
    return int(found.group(1)) if found else 0


@dataclass(frozen=True)
class AotCache:
    """Java 25's AOT cache of the engine (JEP 483/514/515: its classes loaded and linked, method profiles)."""

    #: Where every engine of this checkout maps it from (beside the jobs' CDS archive, ``.cache/jars/jvm``).
    shared: Path
    #: Where a start without one records it: the JVM writes it there as it stops (about 25 s, 250 MB), and
    #: :func:`stop` moves it to ``shared`` (:func:`adopt_aot_caches`): two engines recording at once never write
    #: one file.
    recording: Path

    def flag(self) -> str:
        return f"-XX:AOTCache={self.shared}" if self.shared.exists() else f"-XX:AOTCacheOutput={self.recording}"


def adopt_aot_caches(config: LakehouseConfig) -> None:
    """After the engine stopped: a cache it recorded becomes the shared one (when none is there yet)."""
    shared = Path(config.paths.jar_cache) / "jvm"
    for recorded in _state_dir(config).glob("engine-*.aot"):
        if (shared / recorded.name).exists():
            recorded.unlink()
        else:
            shared.mkdir(parents=True, exist_ok=True)
            os.replace(recorded, shared / recorded.name)


def aot_cache(config: LakehouseConfig, java: str) -> AotCache | None:
    """The engine's AOT cache when ``engine.aot_cache`` and its JDK is 25 or later, else None. Named by what it
    depends on (the JDK, Spark's jars, the engine's class path: Delta's jars, s3a's when it has them), so a new
    one is recorded when one of them changes; a stale or foreign one costs only time (the JVM then runs without)."""
    if not config.engine.aot_cache or java_major(java) < 25:
        return None
    from lakehouse.jvm import fingerprint

    jars = session_conf(config, under_submit=False, master=master(config))["spark.jars"].split(",")
    name = f"engine-{fingerprint(config.paths.jar_cache, jars, java)}.aot"
    return AotCache(shared=Path(config.paths.jar_cache) / "jvm" / name, recording=_state_dir(config) / name)


def server_environment(config: LakehouseConfig, token: str, java: str = "") -> dict[str, str]:
    """The token (never on the command line), loopback, this Python, the JDK, and the JVM's flags: this
    virtualenv's ``spark-env.sh`` is skipped (its class-data archive and C1-only JIT are for short jobs), the
    same Delta class path and the full tiered JIT instead; on Java 25, the AOT cache (:func:`aot_cache`)."""
    env = launch_env(config.paths.jar_cache, ensure_delta_jars(config.paths.jar_cache), None)
    flags = [FULL_JIT]
    cache = aot_cache(config, java)
    if cache is not None:
        cache.shared.parent.mkdir(parents=True, exist_ok=True)
        flags.append(cache.flag())
    env["SPARK_SUBMIT_OPTS"] = f"{env['SPARK_SUBMIT_OPTS']} {' '.join(flags)}"
    env.update({TOKEN_ENV: token, "SPARK_ENV_LOADED": "1", "SPARK_LOCAL_IP": BIND_HOST,
                "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)})  # fmt: skip
    home = java_home(config)
    if home:
        env["JAVA_HOME"] = home
    return env


# --------------------------------------------------------------------------- start / stop / status


@contextlib.contextmanager
def _start_lock(config: LakehouseConfig) -> Iterator[None]:
    """One start at a time per state folder (two clients finding the engine dead restart it once)."""
    folder = _state_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "start.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start(
    config: LakehouseConfig, *, warm_up: bool = True, timeout: float = 240.0, port: int | None = None
) -> EngineState:
    """Start the engine (or return the one running with the same settings); waits until it answers.

    ``port``: another than ``engine.port`` (a restart keeps the port the engine had)."""
    with _start_lock(config):
        current = running(config)
        if current is not None:
            if current.settings != settings(config):
                raise EngineError(
                    f"an engine with other settings runs (pid {current.pid}, master {current.master}, "
                    f"{current.url}): lakehouse engine restart (with this config) or stop it first"
                )
            return current
        return _start(config, warm_up=warm_up, timeout=timeout, port=port or config.engine.port)


def _start(config: LakehouseConfig, *, warm_up: bool, timeout: float, port: int) -> EngineState:
    if port_open(port):
        raise EngineError(f"port {BIND_HOST}:{port} is in use by another program (engine.port)")
    if uses_s3a(config.paths.input, config.paths.warehouse):
        ensure_s3a_jars(config.paths.jar_cache)
    service, state_dir = _service(config), _state_dir(config)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
    token = ensure_token(config)
    cmd = server_command(config, port)
    java = _java_version(java_home(config))
    env = server_environment(config, token, java)
    log_path = service.log_file(SERVICE)
    offset = log_path.stat().st_size if log_path.exists() else 0
    began = time.monotonic()
    pid = processes.start(service, SERVICE, cmd, env, cwd=state_dir)
    state = EngineState(pid=pid, port=port, master=master(config), settings=settings(config),
                        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        java=java, driver_memory=config.engine.driver_memory,
                        log_file=str(log_path), state_dir=str(state_dir))  # fmt: skip
    _state_file(config).write_text(json.dumps(asdict(state), indent=2) + "\n")
    log.info("engine: starting (pid %s, master %s, port %s, %s; log %s)", pid, state.master, port, state.java,
             log_path)  # fmt: skip

    def ready() -> bool:
        try:
            with open(log_path, "rb") as f:
                f.seek(offset)
                return READY_LINE.encode() in f.read() and port_open(port)
        except OSError:
            return False

    try:
        processes.wait_ready(f"the engine on {BIND_HOST}:{port}", ready, timeout, service, SERVICE, pid)
    except processes.ServiceError as exc:
        processes.stop(service, SERVICE, _marker(config), timeout=30)
        _state_file(config).unlink(missing_ok=True)
        raise EngineError(str(exc)) from exc
    log.info("engine: ready on %s after %.1f s", state.url, time.monotonic() - began)
    if warm_up:
        seconds = _warm_up(config, state, token)
        log.info("engine: warmed up in %.1f s (a Delta write, MERGE and read on a scratch table)", seconds)
    return state


def _warm_up(config: LakehouseConfig, state: EngineState, token: str) -> float:
    """A small Delta workload through a client session, so that the engine's first classes and compilations
    are paid here rather than by the first job. Runs in a child process: this one may hold a classic session."""
    began = time.monotonic()
    scratch = _state_dir(config) / "warm-up"
    shutil.rmtree(scratch, ignore_errors=True)
    env = {**os.environ, "LAKEHOUSE_ENGINE_URL": client_url(state, token, "engine-warm-up")}
    done = subprocess.run([sys.executable, "-m", "lakehouse.engine", "--warm-up", str(scratch)], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode:
        log.warning("engine: the warm-up failed (the engine runs; the first job pays its start): %s",
                    (done.stderr or done.stdout).strip()[-2000:])  # fmt: skip
    return time.monotonic() - began


def _warm_up_workload(scratch: str) -> int:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.remote(os.environ["LAKEHOUSE_ENGINE_URL"]).getOrCreate()
    try:
        path = f"{scratch}/table"
        spark.sql(f"CREATE TABLE delta.`{path}` (id BIGINT NOT NULL, v STRING, d DATE) USING DELTA "
                  "PARTITIONED BY (d)")  # fmt: skip
        rows = spark.range(200).select("id", F.lit("a").alias("v"), F.current_date().alias("d"))
        rows.write.format("delta").mode("append").save(path)
        rows.withColumn("v", F.lit("b")).createOrReplaceTempView("warm_up_source")
        spark.sql(f"MERGE INTO delta.`{path}` t USING warm_up_source s ON t.id = s.id "
                  "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *").collect()  # fmt: skip
        df = spark.read.format("delta").load(path)
        df.groupBy("v").agg(F.count("*")).localCheckpoint().collect()
        spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
        df.write.format("delta").mode("overwrite").option("replaceWhere", "d = current_date()").save(path)
    finally:
        spark.stop()
    return 0


def stop(config: LakehouseConfig, timeout: float = 60.0) -> int | None:
    """Stop the engine and forget it (clients stop restarting it); the pid stopped, None if none ran."""
    with _start_lock(config):
        current = running(config)
        pid = processes.stop(_service(config), SERVICE, _marker(config), timeout=timeout)
        _state_file(config).unlink(missing_ok=True)
        if current is not None and processes.gone(current.pid):
            adopt_aot_caches(config)
    if current is not None and not processes.gone(current.pid):
        raise EngineError(f"the engine (pid {current.pid}) is still alive after SIGKILL")
    return pid


def memory(pid: int) -> dict[str, Any]:
    """The engine's resident memory, and its heap after a full collection (what it keeps: ``jcmd`` of the JDK that
    runs it, which may be another than this environment's)."""
    figures: dict[str, Any] = {"rss_mb": round((processes.rss_bytes(pid) or 0) / 2**20)}
    java = Path(os.readlink(f"/proc/{pid}/exe")) if Path(f"/proc/{pid}/exe").exists() else None
    jcmd = str(java.with_name("jcmd")) if java is not None and java.with_name("jcmd").exists() else jdk_tool("jcmd")
    if jcmd:
        try:
            subprocess.run([jcmd, str(pid), "GC.run"], capture_output=True, text=True, timeout=120)
            info = subprocess.run([jcmd, str(pid), "GC.heap_info"], capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            info = ""
        # "garbage-first heap   total 262144K, used 123456K" (Java 17); "total reserved ..., committed ..., used" (25)
        used = re.search(r"heap\s+total[^\n]*?used (\d+)K", info)
        if used:
            figures["heap_used_after_gc_mb"] = round(int(used.group(1)) / 1024)
        figures["rss_after_gc_mb"] = round((processes.rss_bytes(pid) or 0) / 2**20)
    return figures


# --------------------------------------------------------------------------- the clients' side


@dataclass(frozen=True)
class Target:
    """The engine a client connects to."""

    state: EngineState
    url: str

    def describe(self) -> str:
        return f"the engine at {self.state.url} (pid {self.state.pid}, log {self.state.log_file})"

    def alive(self) -> bool:
        return _running_in(Path(self.state.state_dir)) is not None

    def remote(self) -> RemoteEngine:
        return RemoteEngine(self.url, self.state.master, self.alive)


def target(config: LakehouseConfig) -> Target | None:
    """The engine the jobs of ``config`` run on, by ``engine.use`` (module docstring); None: a classic session.

    Restarts an engine that was started and has died (its state file is still there), so that a task retried
    after the engine was killed runs on a new one; starts one when ``engine.use`` is ``always``.
    """
    if config.engine.use == "never":
        return None
    state = running(config)
    if state is None and (config.engine.use == "always" or wanted(config)):
        dead = _read_state(config)
        reason = "it was started and is no longer running" if dead else "engine.use is 'always'"
        log.warning("engine: starting it (%s)", reason)
        state = start(config, warm_up=False, port=dead.port if dead else None)
    if state is None:
        return None
    if state.settings != settings(config):
        message = (f"the engine at {state.url} was started with other settings (master {state.master}; "
                   f"s3a keys or jars) than this config needs")  # fmt: skip
        if config.engine.use == "always":
            raise EngineError(f"{message}: lakehouse engine restart with this config")
        log.warning("%s: this run starts its own Spark", message)
        return None
    return Target(state, client_url(state, read_token(config)))


def stop_orphaned_work(engine_dir: str, session_id: str, user: str = "") -> None:
    """Interrupt what a dead client's session still runs on the engine, before its lock is taken over.

    The engine finishes a command whose client was killed (a write included: measured); the run taking over the
    lock would otherwise write beside it. Interrupting through the same session (the client URL's
    ``session_id``) stops it; done in a child process, which repeats ``interruptAll`` until the session runs
    nothing (as the same user: the engine keys its sessions by user and id). Nothing to do when that engine is
    no longer running (its work died with it).
    """
    folder = Path(engine_dir)
    state = _running_in(folder)
    if state is None or not session_id:
        return
    try:
        token = (folder / "token").read_text().strip()
    except OSError as exc:
        log.warning("engine: cannot read %s to stop the dead run's work: %s", folder / "token", exc)
        return
    env = {**os.environ, "LAKEHOUSE_ENGINE_URL": f"{client_url(state, token, user or None)};session_id={session_id}"}
    done = subprocess.run([sys.executable, "-m", "lakehouse.engine", "--quiesce"], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    if done.returncode:
        log.warning("engine: could not check the dead run's session %s: %s", session_id, done.stderr.strip()[-1000:])
    else:
        log.warning("engine: the dead run's session %s: %s", session_id, done.stdout.strip() or "nothing running")


def _quiesce(timeout: float = 120.0) -> int:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(os.environ["LAKEHOUSE_ENGINE_URL"]).create()
    interrupted: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            found = spark.interruptAll()
            if not found:
                break
            interrupted += [op for op in found if op not in interrupted]
            time.sleep(0.5)
        else:
            print(f"still running after {timeout:.0f} s: {found}")
            return 1
    finally:
        spark.stop()
    print(f"interrupted {len(interrupted)} operation(s) it still ran" if interrupted else "nothing running")
    return 0


class RunSession:
    """The run's Spark session, started on demand: a client of the warm engine when one serves this config
    (:func:`target`), else classic. A Connect session this run opened is released at its end
    (the engine drops its state; a client process that does not release it does not exit either)."""

    def __init__(self, config: LakehouseConfig, app_name: str) -> None:
        self.config, self.app_name = config, app_name
        self.engine: Target | None = None
        self._opened: Any = None

    def start(self, *, full_jit: bool = False, light: bool | None = None) -> Any:
        before = existing_session()
        if before is None or is_remote(before):
            self.engine = target(self.config)
        spark = get_spark(self.config, app_name=self.app_name, full_jit=full_jit and before is None, light=light,
                          remote=self.engine.remote() if self.engine else None)  # fmt: skip
        if self.engine is not None and is_remote(spark):
            log.info("running as a client of %s, session %s", self.engine.describe(), spark.session_id)
            if before is None:
                self._opened = spark
        else:
            self.engine = None
        return spark

    def release(self) -> None:
        if self._opened is not None:
            opened, self._opened = self._opened, None
            if self.engine is not None and not self.engine.alive():
                opened.release_session_on_close = False  # nothing to release: only close the channel
            try:
                opened.stop()
            except Exception as exc:  # the engine may be gone: the run's own outcome is what matters
                log.warning("the engine's session was not released: %s", exc)


@contextlib.contextmanager
def spark_session(config: LakehouseConfig, app_name: str) -> Iterator[Any]:
    """A session for a command that only reads (an audience, the brief): the engine's when it serves this config,
    else classic; released at the end."""
    session = RunSession(config, app_name)
    try:
        yield session.start()
    finally:
        session.release()


# --------------------------------------------------------------------------- command line


def _status(config: LakehouseConfig) -> int:
    state = running(config)
    if state is None:
        dead = _read_state(config)
        print(
            f"not running (state folder {_state_dir(config)})"
            + (f"; it was started at {dead.started_at} and died: the next client restarts it" if dead else "")
        )
        return 3
    rss = processes.rss_bytes(state.pid)
    up = datetime.now(UTC) - datetime.fromisoformat(state.started_at)
    print(f"running: pid {state.pid}, {state.url} (token in {token_file(config)}), master {state.master}, "
          f"driver memory {state.driver_memory}" + (f", RSS {rss / 2**30:.2f} GiB" if rss else "")
          + f", up {int(up.total_seconds())} s, {state.java}; log {state.log_file}")  # fmt: skip
    same = state.settings == settings(config)
    print(
        "serves this config's jobs (engine.use: " + config.engine.use + ")"
        if same
        else "started with other settings than this config's: its jobs run classic (lakehouse engine restart)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(prog="lakehouse engine", description="The warm engine: a Spark Connect server "
                                "the jobs run as clients of (docs/engine.md).")  # fmt: skip
    p.add_argument("action", choices=("start", "status", "stop", "restart"))
    p.add_argument("--no-warm-up", action="store_true", help="start without the warm-up workload")
    add_config_args(p)
    args = p.parse_args(argv)
    try:
        config = config_from_args(args)
        if args.action in ("stop", "restart"):
            pid = stop(config)
            print(f"stopped (pid {pid})" if pid else "not running")
        if args.action in ("start", "restart"):
            state = start(config, warm_up=not args.no_warm_up)
            rss = processes.rss_bytes(state.pid)
            print(f"running: pid {state.pid}, {state.url}, master {state.master}"
                  + (f", RSS {rss / 2**30:.2f} GiB" if rss else "") + f"; log {state.log_file}")  # fmt: skip
        if args.action == "status":
            return _status(config)
    except (EngineError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--warm-up":
        sys.exit(_warm_up_workload(sys.argv[2]))
    if sys.argv[1:] == ["--quiesce"]:
        sys.exit(_quiesce())
    from lakehouse.job_runtime import exit_process

    exit_process(main())
