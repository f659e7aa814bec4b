"""One whole-pipeline run on the shipped sample, shared by the integration tests that read it."""

from __future__ import annotations

import shutil
from datetime import datetime

import pytest

from lakehouse import pipeline
from tests.conftest import REPO_ROOT, make_config

SAMPLE_DIR = REPO_ROOT / "data" / "sample"
SAMPLE_FILES = sorted(SAMPLE_DIR.glob("*.csv"))
#: For the reference's future-time rule; every sample event is long before both this and "now".
REFERENCE_INGESTED_AT = datetime(2025, 7, 10)


def pipeline_args(input_dir, warehouse) -> list[str]:
    return ["--env", "local", "--input", str(input_dir), "--warehouse", str(warehouse), "--no-summary",
            "--set", "spark.shuffle_partitions=2"]  # fmt: skip


@pytest.fixture(scope="session")
def sample_pipeline(spark, tmp_path_factory):
    """Config of a warehouse built by the single-application pipeline over the whole sample."""
    root = tmp_path_factory.mktemp("sample_pipeline")
    shutil.copytree(SAMPLE_DIR, root / "input")
    assert pipeline.main(pipeline_args(root / "input", root / "wh")) == 0
    return make_config(root / "wh", root / "input")


@pytest.fixture(scope="session")
def sample_reference():
    from tests.reference import spec_reference

    return spec_reference.compute([str(p) for p in SAMPLE_FILES], ingested_at=REFERENCE_INGESTED_AT)
