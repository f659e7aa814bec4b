"""The jobs' path speaks only what a classic session and a Spark Connect client share (STYLE 24): no
``sparkContext``, ``_jvm``, ``_jsc``, RDDs or Delta's Python ``DeltaTable`` (it needs a JVM of its own) in any module a
job runs. Guards the refactoring; that every job *runs* on a Connect session is the suite's engine mode
(``LAKEHOUSE_TEST_SESSION=engine``: the session fixture and every in-process job are the engine's clients)."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

PATTERN = re.compile(r"\bsparkContext\b|\._jvm\b|\._jsc\b|\.rdd\b|\bfrom delta\.tables\b|\bDeltaTable\.forPath\b")

#: Modules outside the jobs' path, and why they may touch the JVM.
OUTSIDE = {
    "lakehouse/session.py": "the session factory: it builds classic sessions too (log level, spark-submit's gateway)",
    "lakehouse/jvm.py": "the driver JVM's class-data archive: its training run is a classic session by definition",
    "lakehouse/benchmark.py": "reads the scheduler's job counter of a classic run (an engine run uses the event log)",
    "lakehouse/duckdb_peer.py": "not Spark",
}


def test_no_module_of_the_jobs_path_reaches_into_the_jvm():
    found = []
    for path in sorted((REPO_ROOT / "lakehouse").rglob("*.py")):
        relative = path.relative_to(REPO_ROOT).as_posix()
        if relative in OUTSIDE or relative.startswith("lakehouse/serving/"):
            continue  # serving: the Thrift server and Superset, not jobs
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if PATTERN.search(line) and not line.lstrip().startswith("#"):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)
    assert all((REPO_ROOT / p).exists() for p in OUTSIDE)
