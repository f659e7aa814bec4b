"""The ``lakehouse`` command: the everyday verbs in one place.

    lakehouse run [--full-refresh] [--jobs a,b] [--input PATH] [--warehouse DIR] [--set k=v]
    lakehouse job NAME [job arguments]        # one job, e.g. lakehouse job silver_dim_users --ds 2025-07-05
    lakehouse jobs                            # the jobs and the DAG of conf
    lakehouse engine start|status|stop|restart # the warm engine: jobs run as its Spark Connect clients
    lakehouse audience list|show|export       # named user lists from gold.user_status_weekly
    lakehouse alerts preview|test CHANNEL|send # the morning brief to conf's alert channels
    lakehouse sql "SELECT ..."                # Thrift server if running, else a local session
    lakehouse thrift start|stop|status|register|add-user|remove-user|users|grant|revoke|grants|password
    lakehouse superset up|down|status|install # Superset with the dashboards (needs the Thrift server)
    lakehouse generate --out DIR [...]        # synthetic event files
    lakehouse docs [--check]                  # regenerate docs/tables.md and README's catalogue
    lakehouse benchmark [--cases ...] [...]   # time the whole DAG on generated data (scripts/benchmark.sh)
    lakehouse maintain [--tables a.b,c.d]     # OPTIMIZE + VACUUM (operations.vacuum_retention_hours)
    lakehouse restore --table gold.X --version N   # undo a bad publish (the next run rebuilds X whole)

Each verb hands its arguments to the module that owns it (``--help`` after a verb shows them).
The scripts in ``scripts/`` set up the virtualenv and call these.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _run(argv: list[str]) -> int:
    from lakehouse.launcher import run_main

    return run_main(argv, prog="lakehouse run")


def _job(argv: list[str]) -> int:
    from lakehouse.job_catalog import JOB_INDEX, job

    if not argv or argv[0] in ("-h", "--help"):
        print("usage: lakehouse job NAME [--help | job arguments]\n\njobs: " + ", ".join(JOB_INDEX))
        return 0 if argv else 2
    try:
        selected = job(argv[0])
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    from lakehouse.launcher import job_main

    return job_main(selected, argv[1:], prog=f"lakehouse job {selected.name}")


def _jobs(argv: list[str]) -> int:
    from lakehouse.config import ConfigError
    from lakehouse.job_catalog import JOB_INDEX, check_dag, job
    from lakehouse.job_runtime import base_parser, config_from_args

    args = base_parser("List every job and its place in conf's DAG.", "lakehouse jobs").parse_args(argv)
    try:
        config = config_from_args(args)
        check_dag(config)
        dag = config.dag
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name in JOB_INDEX:
        position = f"dag #{dag.index(name) + 1}" if name in dag else "not in dag"
        print(f"{name:36} {position:11} {job(name).description}")
    return 0


def _sql(argv: list[str]) -> int:
    from lakehouse.serving.sql import main

    return main(argv)


def _thrift(argv: list[str]) -> int:
    from lakehouse.serving.thrift import main

    return main(argv)


def _superset(argv: list[str]) -> int:
    from lakehouse.serving.superset.service import main

    return main(argv)


def _generate(argv: list[str]) -> int:
    from lakehouse.generator import main

    return main(argv)


def _docs(argv: list[str]) -> int:
    from lakehouse.docs import main

    return main(argv)


def _maintain(argv: list[str]) -> int:
    from lakehouse.launcher import job_main
    from lakehouse.maintenance import MAINTAIN_JOB

    return job_main(MAINTAIN_JOB, argv, prog="lakehouse maintain")


def _restore(argv: list[str]) -> int:
    from lakehouse.launcher import job_main
    from lakehouse.maintenance import RESTORE_JOB

    return job_main(RESTORE_JOB, argv, prog="lakehouse restore")


def _alerts(argv: list[str]) -> int:
    from lakehouse.alerts.brief import main

    return main(argv)


def _audience(argv: list[str]) -> int:
    from lakehouse.audiences import main

    return main(argv)


def _engine(argv: list[str]) -> int:
    from lakehouse.engine import main

    return main(argv)


def _cluster(argv: list[str]) -> int:
    from lakehouse.cluster import main

    return main(argv)


def _airflow(argv: list[str]) -> int:
    from lakehouse.orchestration.airflow import main

    return main(argv)


def _diff(argv: list[str]) -> int:
    from lakehouse.warehouse_diff import main

    return main(argv)


def _benchmark(argv: list[str]) -> int:
    from lakehouse.benchmark import main

    return main(argv, prog="lakehouse benchmark")


VERBS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "run": (_run, "run the DAG of conf (or --jobs a,b) in one Spark application, then print a summary"),
    "job": (_job, "run one job: lakehouse job NAME [arguments] (same as spark-submit jobs/NAME.py)"),
    "jobs": (_jobs, "list the jobs and their place in the DAG"),
    "alerts": (_alerts, "preview | test CHANNEL | send: the morning brief to conf's alerts.channels"),
    "audience": (_audience, "list | show NAME | export NAME --out FILE: the named user lists of conf's audiences"),
    "engine": (_engine, "start | status | stop | restart the warm engine (Spark Connect) the jobs run as clients of"),
    "sql": (_sql, "run Spark SQL on the Thrift server (if started) or in a local session"),
    "thrift": (
        _thrift,
        "start | stop | status | register | add-user | remove-user | users | grant | revoke | grants: Thrift server",
    ),
    "superset": (_superset, "up | down | status | install: Superset with the dashboards, over the Thrift server"),
    "generate": (_generate, "write synthetic event_stream CSV files"),
    "docs": (_docs, "regenerate (or --check) docs/tables.md and README's table catalogue from the registry"),
    "maintain": (_maintain, "OPTIMIZE and VACUUM every table (files before/after); takes the warehouse lock"),
    "restore": (_restore, "restore a gold table to an earlier version after a bad publish (takes the lock)"),
    "cluster": (_cluster, "up | down | status a local Spark standalone cluster + S3 server; submit JOB.py to it"),
    "airflow": (_airflow, "render | test | up | down | status | install: the job DAG under Apache Airflow"),
    "diff": (_diff, "compare the tables of two warehouses (e.g. local and S3), exit 1 if any differs"),
    "benchmark": (_benchmark, "time the whole DAG on generated data (backfill, one new day, nothing new, sample)"),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lakehouse",
        description="HeyMax lakehouse: bronze/silver/gold Delta tables from raw event files.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="verbs:\n"
        + "\n".join(f"  {name:10} {text}" for name, (_, text) in VERBS.items())
        + "\n\n'lakehouse VERB --help' shows a verb's arguments.",
    )
    p.add_argument("verb", choices=list(VERBS), metavar="VERB", help="one of: " + ", ".join(VERBS))
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the verb")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # argparse names a program after sys.argv[0]: each verb's --help then reads "lakehouse VERB".
    sys.argv[0] = f"lakehouse {args.verb}"
    return VERBS[args.verb][0](list(args.args))


def entry() -> None:
    """The ``lakehouse`` console script."""
    from lakehouse.job_runtime import exit_process

    exit_process(main())


if __name__ == "__main__":
    entry()
