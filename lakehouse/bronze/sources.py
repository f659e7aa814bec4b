"""Source files: listing the landing folder, file identity, and numbered physical lines.

Works on any Hadoop file system (local, ``s3a://``...) through the JVM, so the same code lists and
hashes files on a laptop and on object storage. A file's identity is its name and the SHA-256 of its
bytes; the bronze batch id derives from it, so the same file always makes the same batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import local_path
from lakehouse.registry import SOURCE_HEADER as EXPECTED_HEADER


class SourceError(RuntimeError):
    """The input path is missing or a file cannot be read."""


@dataclass(frozen=True)
class SourceFile:
    path: str
    name: str
    size: int
    sha256: str
    #: When the listing saw it (recorded for the fast path; not part of the identity).
    modified_at: datetime | None = field(default=None, compare=False)
    #: Set for a file whose content could not be read (its id then derives from the listing).
    unread_id: str | None = field(default=None, compare=False)

    @property
    def batch_id(self) -> str:
        if self.unread_id:
            return self.unread_id
        return hashlib.sha256(f"{self.name}:{self.sha256}".encode()).hexdigest()[:16]


def _hadoop_fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    jpath = jvm.org.apache.hadoop.fs.Path(path)
    return jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jpath


@dataclass(frozen=True)
class ListedFile:
    """A file as the listing saw it: path, name, size and modification time (no content read)."""

    path: str
    name: str
    size: int
    modified_at: datetime

    @property
    def fingerprint(self) -> tuple[str, int, datetime]:
        """Name, size and modification time: an ingested file with the same three is not read again."""
        return self.name, self.size, self.modified_at


def _listed(status) -> ListedFile:
    path = status.getPath().toString()
    modified = datetime.fromtimestamp(status.getModificationTime() / 1000, UTC).replace(tzinfo=None)
    return ListedFile(path, path.rsplit("/", 1)[-1], int(status.getLen()), modified)


#: Compressed exports Spark reads natively (Hadoop picks the codec from the exact, lower-case suffix).
COMPRESSED_SUFFIXES = (".gz", ".bz2")


def is_csv_name(name: str) -> bool:
    """``*.csv`` (any case), or a ``*.csv`` compressed as ``.gz`` / ``.bz2`` (lower-case suffix)."""
    for suffix in COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.lower().endswith(".csv")


def list_input_files(spark: SparkSession | None, input_path: str) -> tuple[list[ListedFile], list[ListedFile]]:
    """(CSV files, other files) of a folder, each in name order (local or object storage).

    CSV files are ``*.csv`` (any case) and ``*.csv.gz``, ``*.csv.bz2``: compressed files are
    decompressed by Spark's reader, so their lines, line numbers and conservation checks are those
    of the plain file. Every other file is returned too, so the caller can account for it (the
    bronze job records it as ignored); sub-folders are not descended into. A path naming one file
    is taken as a CSV file whatever its name.

    One listing call; sizes and modification times come with it, so deciding which files are new
    reads no file. ``spark`` None (a decision made before any JVM starts): a local folder is listed
    by Python, giving the same paths, sizes and millisecond times as Hadoop's local file system;
    object storage needs Spark (``ValueError``).
    """
    if spark is None:
        if local_path(input_path) is None:
            raise ValueError(f"listing {input_path} needs Spark (object storage)")
        return _list_local(input_path)
    fs, jpath = _hadoop_fs(spark, input_path)
    if not fs.exists(jpath):
        raise SourceError(f"input path does not exist: {input_path}")
    status = fs.getFileStatus(jpath)
    if status.isFile():
        return [_listed(status)], []
    files = sorted((_listed(s) for s in fs.listStatus(jpath) if s.isFile()), key=lambda f: f.name)
    return [f for f in files if is_csv_name(f.name)], [f for f in files if not is_csv_name(f.name)]


def _list_local(input_path: str) -> tuple[list[ListedFile], list[ListedFile]]:
    """:func:`list_input_files` of a local path, without the JVM (same results as Hadoop's local FS)."""
    path = local_path(input_path).resolve()

    def listed(p: Path) -> ListedFile:
        st = p.stat()
        modified = datetime.fromtimestamp(st.st_mtime_ns // 1_000_000 / 1000, UTC).replace(tzinfo=None)
        return ListedFile(f"file:{p}", p.name, int(st.st_size), modified)

    if not path.exists():
        raise SourceError(f"input path does not exist: {input_path}")
    if path.is_file():
        return [listed(path)], []
    files = sorted((listed(p) for p in path.iterdir() if p.is_file()), key=lambda f: f.name)
    return [f for f in files if is_csv_name(f.name)], [f for f in files if not is_csv_name(f.name)]


IGNORED_REASON = "not a CSV export (expected *.csv, *.csv.gz or *.csv.bz2): not read"


def identify(spark: SparkSession | None, listed: ListedFile) -> SourceFile:
    """Name, size and content SHA-256: streamed in the JVM (any Hadoop file system), or read by Python
    for a local file when ``spark`` is None (the same digest of the same bytes)."""
    if spark is None:
        return _identify_local(listed)
    fs, jpath = _hadoop_fs(spark, listed.path)
    jvm = spark.sparkContext._jvm
    try:
        stream = fs.open(jpath)
        try:
            digest = jvm.org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream)
        finally:
            stream.close()
    except Exception as exc:  # py4j wraps the Java IOException
        raise SourceError(f"cannot read input file {listed.path}: {exc}") from exc
    return SourceFile(listed.path, listed.name, listed.size, str(digest), listed.modified_at)


def _identify_local(listed: ListedFile) -> SourceFile:
    path = local_path(listed.path)
    if path is None:
        raise ValueError(f"hashing {listed.path} needs Spark (object storage)")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise SourceError(f"cannot read input file {listed.path}: {exc}") from exc
    return SourceFile(listed.path, listed.name, listed.size, digest.hexdigest(), listed.modified_at)


def spark_path_key(spark: SparkSession, path: str) -> str:
    """The form in which Spark reports a file's path (``_metadata.file_path``: a URI, %-encoded)."""
    return str(spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path).toUri().toString())


def read_numbered_lines(spark: SparkSession, paths: list[str]) -> tuple[DataFrame, DataFrame, dict[str, str]]:
    """Every physical line of the files, with ``_file_key`` and its 1-based line number, in one pass.

    Spark splits large files into blocks and reads them in any order, so line numbers are rebuilt
    from (file, block start, position within the block): rows of one block are read in order and
    carry increasing ``monotonically_increasing_id`` values. Only the per-block counts reach the
    driver, with each file's first line (its header) from the same pass. The raw lines are
    persisted so the ids are computed once; the second DataFrame returned is that cache, which the
    caller must unpersist (a cached read of a path would otherwise serve stale content when the
    file changes). The third value maps ``_file_key`` to the file's first line (absent: empty file).
    """
    raw = (
        spark.read.text(paths)
        .select(
            "value",
            F.col("_metadata.file_path").alias("_file_key"),
            F.col("_metadata.file_block_start").alias("_block_start"),
            F.monotonically_increasing_id().alias("_row_id"),
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    blocks = sorted(
        raw.groupBy("_file_key", "_block_start")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min("_row_id").alias("first_id"),
            F.min_by("value", "_row_id").alias("first_line"),
        )
        .collect()
    )
    headers = {b["_file_key"]: b["first_line"] for b in blocks if b["_block_start"] == 0}
    offsets, seen = [], {}
    for block in blocks:
        before = seen.get(block["_file_key"], 0)
        offsets.append((block["_file_key"], block["_block_start"], block["first_id"], before))
        seen[block["_file_key"]] = before + block["n"]
    schema = "_file_key string, _block_start long, _first_id long, _lines_before long"
    offsets_df = spark.createDataFrame(offsets, schema)
    numbered = raw.join(F.broadcast(offsets_df), on=["_file_key", "_block_start"], how="inner").select(
        "value",
        "_file_key",
        (F.col("_lines_before") + F.col("_row_id") - F.col("_first_id") + 1).alias("_source_line"),
    )
    return numbered, raw, headers


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def header_problem(first_line: str | None) -> str | None:
    if first_line is None:
        return None  # an empty file: a zero-row batch
    header = _strip_bom(first_line).rstrip("\r")
    if header == EXPECTED_HEADER:
        return None
    return f"header is {header[:200]!r}, expected {EXPECTED_HEADER!r}"
