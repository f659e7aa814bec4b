"""Source files: listing the landing folder, file identity, and numbered physical lines.

Files are listed and hashed by this process (:mod:`lakehouse.storage`: a local folder or an S3 bucket), the
same way whether Spark runs in this process or in a Spark Connect engine; only the lines are read by Spark.
A file's identity is its name and the SHA-256 of its bytes; the bronze batch id derives from it, so the same
file always makes the same batch.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import LakehouseConfig
from lakehouse.registry import SOURCE_HEADER as EXPECTED_HEADER
from lakehouse.storage import FileStatus, StorageError, storage_for, uri_key


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


def _listed(status: FileStatus) -> ListedFile:
    return ListedFile(status.path, status.name, status.size, status.modified_at)


#: Compressed exports Spark reads natively (Hadoop picks the codec from the exact, lower-case suffix).
COMPRESSED_SUFFIXES = (".gz", ".bz2")


def is_compressed(name: str) -> bool:
    return name.endswith(COMPRESSED_SUFFIXES)


def is_csv_name(name: str) -> bool:
    """``*.csv`` (any case), or a ``*.csv`` compressed as ``.gz`` / ``.bz2`` (lower-case suffix)."""
    for suffix in COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.lower().endswith(".csv")


def list_input_files(
    input_path: str, config: LakehouseConfig | None = None
) -> tuple[list[ListedFile], list[ListedFile]]:
    """(CSV files, other files) of a folder, each in name order (local or object storage).

    CSV files are ``*.csv`` (any case) and ``*.csv.gz``, ``*.csv.bz2``: compressed files are
    decompressed by Spark's reader, so their lines, line numbers and conservation checks are those
    of the plain file. Every other file is returned too, so the caller can account for it (the
    bronze job records it as ignored); sub-folders are not descended into. A path naming one file
    is taken as a CSV file whatever its name.

    One listing call; sizes and modification times (milliseconds, as Hadoop reports them) come with it, so
    deciding which files are new reads no file. ``config`` says how to reach object storage (s3a's keys).
    """
    try:
        store = storage_for(input_path, config)
        status = store.status(input_path)
        if status is None:
            raise SourceError(f"input path does not exist: {input_path}")
        if not status.is_dir:
            return [_listed(status)], []
        files = sorted((_listed(s) for s in store.list(input_path) if not s.is_dir), key=lambda f: f.name)
    except StorageError as exc:
        raise SourceError(str(exc)) from exc
    return [f for f in files if is_csv_name(f.name)], [f for f in files if not is_csv_name(f.name)]


IGNORED_REASON = "not a CSV export (expected *.csv, *.csv.gz or *.csv.bz2): not read"


def identify(listed: ListedFile, config: LakehouseConfig | None = None) -> SourceFile:
    """Name, size and content SHA-256, streamed by this process from the file's store."""
    digest = hashlib.sha256()
    try:
        with contextlib.closing(storage_for(listed.path, config).open(listed.path)) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except Exception as exc:  # OSError locally, botocore's errors on S3
        raise SourceError(f"cannot read input file {listed.path}: {exc}") from exc
    return SourceFile(listed.path, listed.name, listed.size, digest.hexdigest(), listed.modified_at)


def spark_path_key(path: str) -> str:
    """The form in which Spark reports a file's path (``_metadata.file_path``: a URI, %-encoded)."""
    return uri_key(path)


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
