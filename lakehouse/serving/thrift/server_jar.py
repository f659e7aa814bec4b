"""The server's own jar: the read-only guard, the password check and the main class, compiled from
the Java sources next to this module (``java/``) against this virtualenv's Spark jars.

Built with the JDK's ``javac`` on first use and cached as ``<jar cache>/lakehouse-thrift-<hash>.jar``;
the hash covers the sources and the Spark version, so an edit or an upgrade builds a new jar and an
unchanged tree reuses the old one (no compiler run). ``lakehouse thrift start`` builds it when needed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from lakehouse.versions import SPARK_VERSION

JAVA_SOURCES = Path(__file__).resolve().parent / "java"
PACKAGE = "com.heymax.lakehouse.serving"
MAIN_CLASS = f"{PACKAGE}.LakehouseThriftServer"
GUARD_EXTENSION = f"{PACKAGE}.ReadOnlyGuard"
AUTHENTICATOR = f"{PACKAGE}.PasswordFileAuthenticator"


class ServerJarError(RuntimeError):
    """The jar could not be built; the message says what is missing."""


def _sources() -> list[Path]:
    sources = sorted(JAVA_SOURCES.rglob("*.java"))
    if not sources:
        raise ServerJarError(f"no Java sources under {JAVA_SOURCES}")
    return sources


def _digest(sources: list[Path]) -> str:
    h = hashlib.sha256(SPARK_VERSION.encode())
    for path in sources:
        h.update(path.relative_to(JAVA_SOURCES).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _javac() -> str:
    from lakehouse.jars import jdk_tool

    javac = jdk_tool("javac")
    if not javac:
        raise ServerJarError(
            "javac was not found: the Thrift server's read-only guard is compiled on first start; "
            "install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME"
        )
    return javac


def ensure_server_jar(jar_cache: str | os.PathLike[str]) -> Path:
    """The jar's path, compiling it when no jar of these sources is cached (idempotent)."""
    from lakehouse.jars import spark_home

    sources = _sources()
    target = Path(jar_cache) / f"lakehouse-thrift-{_digest(sources)}.jar"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lakehouse-thrift-jar.") as tmp:
        classes = Path(tmp, "classes")
        cmd = [
            _javac(), "--release", "17", "-nowarn", "-encoding", "UTF-8",
            "-cp", str(spark_home() / "jars" / "*"), "-d", str(classes), *map(str, sources),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ServerJarError(f"javac failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        partial = Path(tmp, target.name)
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", f"Manifest-Version: 1.0\nMain-Class: {MAIN_CLASS}\n\n")
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        # Same-folder rename: a concurrent start sees the whole jar or none.
        staged = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copyfile(partial, staged)
        os.replace(staged, target)
    return target
