"""The one place where the Spark / Delta / Scala versions are written.

Python pins in setup.py and the JVM coordinates below must move together: the Delta Python
package and the Delta JVM jars must be the same release, and the JVM artifact name carries the
Spark minor version (``delta-spark_<spark minor>_<scala>``) from Delta 4.1 on.

Why 4.4.0 and not 4.4.1: the Maven Central mirror reachable from this project's machines serves
``io.delta:delta-spark_4.2_2.13`` up to 4.4.0 only, while PyPI already has ``delta-spark`` 4.4.1.
A 4.4.1 Python package over 4.4.0 jars is a mismatch, so both sides are pinned to 4.4.0
(which, like 4.4.1, declares ``pyspark>=4.0.1,<=4.2.0``).
"""

from __future__ import annotations

SPARK_VERSION = "4.2.0"
DELTA_VERSION = "4.4.0"
SCALA_BINARY_VERSION = "2.13"

_SPARK_MINOR = ".".join(SPARK_VERSION.split(".")[:2])

#: Maven coordinates resolved once into the local jar cache (see ``lakehouse.jars``).
DELTA_MAVEN_COORDINATES = (
    f"io.delta:delta-spark_{_SPARK_MINOR}_{SCALA_BINARY_VERSION}:{DELTA_VERSION}",
    f"io.delta:delta-storage:{DELTA_VERSION}",
)
