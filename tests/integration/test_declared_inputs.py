"""Each job's declared inputs cover what its body reads: the decision "is there work?" is made from the
declaration (lakehouse/job_runtime.py), so a body that reads a table or a consumer's records it did not
declare could have work the decision does not see.

One run of every job of conf's DAG (each with work: a new file on a copy of the sample's warehouse), with
every table read (``delta_io.read``) and every consumer's records looked up (``Ledger.consumed``) traced
to the job that did it; then one check per job.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lakehouse import batches, delta_io
from lakehouse.bronze.fct_event_stream import Landing
from lakehouse.config import load_config
from lakehouse.job_catalog import job
from lakehouse.job_runtime import Consumes, RunCaches
from lakehouse.ops import OpsSink
from lakehouse.registry import SOURCE_HEADER
from tests.conftest import make_config

pytestmark = pytest.mark.e2e

#: A new export: a day after the sample's last one, and one late event weeks back.
NEW_ROWS = [
    "2025-07-06 10:00:00.000000,u_0001,miles_earned,dining,100.0,ios,tiktok,ID",
    "2025-07-06 11:00:00.000000,u_0002,miles_redeemed,flight,900.0,web,google,SG",
    "2025-06-01 09:00:00.000000,u_0003,like,,,android,organic,MY",
]
DAG = list(load_config().dag)


@pytest.fixture(scope="module")
def traced(spark, sample_pipeline, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("declared")
    shutil.copytree(Path(sample_pipeline.paths.warehouse), root / "wh")
    shutil.copytree(Path(sample_pipeline.paths.input), root / "input")
    (root / "input" / "event_stream_2025-07-06.csv").write_text("\n".join([SOURCE_HEADER, *NEW_ROWS]) + "\n")
    config = make_config(root / "wh", root / "input")
    seen: dict[str, dict] = {}
    current: list[str] = []
    real_read, real_consumed = delta_io.read, batches.Ledger.consumed

    def read(spark_, spec, config_):
        seen[current[-1]]["tables"].add(spec.full_name)
        return real_read(spark_, spec, config_)

    def consumed(self, consumer):
        if current:
            seen[current[-1]]["consumers"].add(consumer)
        return real_consumed(self, consumer)

    caches, sink = RunCaches(), OpsSink()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(delta_io, "read", read)
        patch.setattr(batches.Ledger, "consumed", consumed)
        for name in DAG:
            j = job(name)
            seen[name] = {"tables": set(), "consumers": set()}
            current.append(name)
            runs: list = []
            assert j.execute(spark, config, j.params_from({}), caches, sink, runs) == 0, name
            seen[name]["worked"] = not (runs[-1].message or "").startswith("nothing to do")
            current.pop()
    sink.flush(spark, config)
    return {"seen": seen, "config": config}


@pytest.mark.parametrize("name", DAG)
def test_declared_inputs_cover_what_the_body_reads(traced, name):
    seen, config = traced["seen"][name], traced["config"]
    assert seen["worked"], f"{name} found nothing to do: the check below would prove nothing"
    inputs = job(name).inputs
    assert inputs is not None
    declared_tables = {spec.full_name for spec in inputs.reads}
    assert seen["tables"] <= declared_tables, f"{name} reads undeclared tables {seen['tables'] - declared_tables}"
    if isinstance(inputs, Consumes):
        declared = {inputs.name(config), *inputs.upstream, inputs.dates_from or inputs.upstream[0]}
    else:
        assert isinstance(inputs, Landing)
        declared = set()  # the landing folder: committed, bad and ignored files, not a consumer's records
    assert seen["consumers"] <= declared, f"{name} reads undeclared consumers {seen['consumers'] - declared}"
