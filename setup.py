"""Packaging for the HeyMax lakehouse job suite.

The Spark and Delta pins come from ``lakehouse/versions.py`` so that the Python packages and the
JVM jars handed to Spark are always the same release.
"""

from __future__ import annotations

import re
from pathlib import Path

from setuptools import find_packages, setup

#: Clients of the Thrift server (scripts/sql.sh, the serving tests): a real Hive/Thrift client.
SERVING = [
    "pyhive==0.7.0",
    "thrift>=0.16,<1",
    "thrift-sasl>=0.4.3",
    "pure-sasl>=0.6.2",
    "requests>=2.31,<3",
]

_versions = Path(__file__).parent.joinpath("lakehouse", "versions.py").read_text()
SPARK_VERSION = re.search(r'^SPARK_VERSION = "([^"]+)"', _versions, re.M).group(1)
DELTA_VERSION = re.search(r'^DELTA_VERSION = "([^"]+)"', _versions, re.M).group(1)

setup(
    name="heymax-lakehouse",
    version="0.1.0",
    description="PySpark + Delta Lake job suite: bronze/silver/gold tables for the HeyMax loyalty program",
    packages=find_packages(include=["lakehouse", "lakehouse.*"]),
    # The Thrift server's own classes, compiled on first start (lakehouse/serving/thrift/server_jar.py).
    package_data={"lakehouse.serving.thrift": ["java/com/heymax/lakehouse/serving/*.java"]},
    python_requires=">=3.11",
    install_requires=[
        # The connect extra: the Spark Connect client the jobs use on the warm engine (lakehouse/engine.py),
        # grpcio and friends as pyspark pins them; pandas below 3, which PySpark 4.2 warns it does not support.
        f"pyspark[connect]=={SPARK_VERSION}",
        "pandas>=2.2,<3",
        f"delta-spark=={DELTA_VERSION}",
        "pyyaml>=6,<7",
        # Runs with nothing to do read and record their bookkeeping without a JVM (lakehouse/delta_rs.py).
        "deltalake==1.6.6",
        "pyarrow==26.0.1",
        # Files on S3 listed, hashed and locked by the client (lakehouse/storage.py): a conditional PUT.
        "boto3>=1.35.16,<2",
        # Audience conditions parsed when the config is loaded, without Spark (lakehouse/config.py).
        "sqlglot==30.31.0",
    ],
    extras_require={
        "serving": SERVING,
        # Tests: the serving clients (requests also drives Superset's REST API), DataFrame
        # assertions, the linter, and Playwright driving Debian's chromium.
        # duckdb: the benchmark's peer (lakehouse/duckdb_peer.py); aiosmtpd: a real SMTP server for the alert tests.
        "dev": [
            *SERVING,
            "pytest>=8,<10",
            "chispa==0.12.0",
            "ruff==0.17.6",
            "playwright==1.58.0",
            "duckdb==2.0.1",
            "aiosmtpd==1.4.6",
        ],
    },
    entry_points={
        "console_scripts": [
            "lakehouse=lakehouse.cli:entry",
        ],
    },
)
