"""Files as the client sees them: the landing folder, Delta logs, the lock file; local or on object storage.

The jobs run in a classic Spark session or as clients of a Spark Connect engine (:mod:`lakehouse.engine`);
a Connect client has no JVM of its own, so no file is listed, hashed or written through Hadoop's file
system in the jobs' path. Everything below is done by this process:

* a local path (``/x``, ``file:/x``, ``file:///x``) through Python's file API;
* ``s3a://`` / ``s3://`` (S3 and S3-compatible stores) through boto3, configured from the same keys Spark's
  s3a connector reads (``spark.extra_conf``'s ``spark.hadoop.fs.s3a.endpoint``, ``.endpoint.region``,
  ``.path.style.access``, ``.connection.ssl.enabled``, ``.access.key`` / ``.secret.key`` /
  ``.session.token``), credentials otherwise from the AWS default chain (environment, profile, container and
  instance roles), as Hadoop's ``DefaultCredentialsProvider`` does: one config for both sides.

Other schemes (``abfss://``, ``gs://``, ``hdfs://``) have no client-side store here: :class:`StorageError`
names the scheme. Paths are reported in the form Hadoop reports them (``file:/abs/path``,
``s3a://bucket/key``), and :func:`uri_key` gives the form Spark's ``_metadata.file_path`` uses.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from lakehouse.config import LakehouseConfig, local_path

S3_SCHEMES = ("s3a", "s3")
S3A_PREFIX = "spark.hadoop.fs.s3a."


class StorageError(RuntimeError):
    """A path this process cannot reach (an unsupported scheme, a store that refuses)."""


@dataclass(frozen=True)
class FileStatus:
    #: As Hadoop would report it: ``file:/abs/path`` or ``s3a://bucket/key``.
    path: str
    name: str
    size: int
    #: Modification time, naive UTC, millisecond precision (what Hadoop's ``getModificationTime`` gives).
    modified_at: datetime
    is_dir: bool = False


class Storage(Protocol):
    def status(self, uri: str) -> FileStatus | None:
        """A file or a folder (None when neither exists)."""
        ...

    def list(self, uri: str) -> list[FileStatus]:
        """The files and folders directly in a folder ([] when it does not exist)."""
        ...

    def walk(self, uri: str) -> Iterator[FileStatus]:
        """Every file under a folder, at any depth."""
        ...

    def open(self, uri: str) -> BinaryIO: ...

    def read_text(self, uri: str) -> str | None:
        """The file's text (UTF-8), None when it does not exist."""
        ...

    def create_if_absent(self, uri: str, data: bytes) -> bool:
        """Write ``data`` only if nothing is there yet, atomically; False when the file exists."""
        ...

    def write(self, uri: str, data: bytes) -> None:
        """Replace the file's content whole (a reader sees the old or the new content)."""
        ...

    def delete(self, uri: str) -> None: ...


def _millis(mtime_ns: int) -> datetime:
    """A modification time as Hadoop's local file system reports it: whole milliseconds, naive UTC."""
    return datetime.fromtimestamp(mtime_ns // 1_000_000 / 1000, UTC).replace(tzinfo=None)


class LocalStorage:
    """A local (or POSIX-mounted) file system."""

    @staticmethod
    def _path(uri: str) -> Path:
        path = local_path(uri)
        if path is None:
            raise StorageError(f"not a local path: {uri}")
        return path

    def _status(self, path: Path, st: os.stat_result | None = None) -> FileStatus:
        st = st or path.stat()
        is_dir = path.is_dir()
        return FileStatus(f"file:{path}", path.name, 0 if is_dir else int(st.st_size), _millis(st.st_mtime_ns),
                          is_dir)  # fmt: skip

    def status(self, uri: str) -> FileStatus | None:
        path = self._path(uri).resolve()
        try:
            return self._status(path)
        except FileNotFoundError:
            return None

    def list(self, uri: str) -> list[FileStatus]:
        path = self._path(uri).resolve()
        if not path.is_dir():
            return []
        return [self._status(p) for p in path.iterdir()]

    def walk(self, uri: str) -> Iterator[FileStatus]:
        root = self._path(uri).resolve()
        for folder, _dirs, files in os.walk(root):
            for name in files:
                yield self._status(Path(folder) / name)

    def open(self, uri: str) -> BinaryIO:
        return open(self._path(uri), "rb")

    def read_text(self, uri: str) -> str | None:
        try:
            return self._path(uri).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def create_if_absent(self, uri: str, data: bytes) -> bool:
        """Written whole to a private file, then hard-linked into place: ``link`` fails if the target
        exists (atomic, like ``O_EXCL``), and a reader never sees a half-written file."""
        path = self._path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.new")
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        return True

    def write(self, uri: str, data: bytes) -> None:
        path = self._path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def delete(self, uri: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(uri).unlink()


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None = None
    region: str | None = None
    path_style: bool = False
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None

    @staticmethod
    def from_config(config: LakehouseConfig) -> S3Settings:
        """The s3a connector's keys of ``spark.extra_conf``: the client reaches the store Spark reaches."""
        conf = {k.removeprefix(S3A_PREFIX): v for k, v in config.spark.extra_conf.items() if k.startswith(S3A_PREFIX)}
        endpoint = conf.get("endpoint")
        if endpoint and "://" not in endpoint:
            ssl = conf.get("connection.ssl.enabled", "true").lower() != "false"
            endpoint = f"{'https' if ssl else 'http'}://{endpoint}"
        return S3Settings(endpoint or None, conf.get("endpoint.region"), conf.get("path.style.access") == "true",
                          conf.get("access.key"), conf.get("secret.key"), conf.get("session.token"))  # fmt: skip


def _split_s3(uri: str) -> tuple[str, str]:
    scheme, rest = uri.split("://", 1)
    if scheme not in S3_SCHEMES:
        raise StorageError(f"not an S3 path: {uri}")
    bucket, _, key = rest.partition("/")
    return bucket, key.strip("/")


class S3Storage:
    """An S3-compatible store through boto3 (imported on first use: local runs never need it)."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=s.endpoint, region_name=s.region or None, aws_access_key_id=s.access_key,
                aws_secret_access_key=s.secret_key, aws_session_token=s.session_token,
                config=Config(s3={"addressing_style": "path" if s.path_style else "auto"},
                              retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60),
            )  # fmt: skip
        return self._client

    @staticmethod
    def _missing(exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def _objects(self, bucket: str, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        kwargs = {"Bucket": bucket, "Prefix": prefix, **({"Delimiter": delimiter} if delimiter else {})}
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            for item in page.get("CommonPrefixes", []):
                yield {"prefix": item["Prefix"]}
            yield from page.get("Contents", [])

    @staticmethod
    def _file(scheme: str, bucket: str, item: dict[str, Any]) -> FileStatus:
        key = item["Key"]
        modified = item["LastModified"].astimezone(UTC).replace(tzinfo=None)
        modified = modified.replace(microsecond=modified.microsecond // 1000 * 1000)
        return FileStatus(f"{scheme}://{bucket}/{key}", key.rsplit("/", 1)[-1], int(item["Size"]), modified)

    def status(self, uri: str) -> FileStatus | None:
        scheme, bucket, key = uri.split("://", 1)[0], *_split_s3(uri)
        if key:
            try:
                head = self.client.head_object(Bucket=bucket, Key=key)
                return self._file(scheme, bucket, {"Key": key, "LastModified": head["LastModified"],
                                                   "Size": head["ContentLength"]})  # fmt: skip
            except Exception as exc:
                if not self._missing(exc):
                    raise
        for _ in self._objects(bucket, f"{key}/" if key else "", None):
            return FileStatus(uri.rstrip("/"), key.rsplit("/", 1)[-1], 0, datetime(1970, 1, 1), True)
        return None

    def list(self, uri: str) -> list[FileStatus]:
        scheme, bucket, key = uri.split("://", 1)[0], *_split_s3(uri)
        listed = []
        for item in self._objects(bucket, f"{key}/" if key else "", "/"):
            if "prefix" in item:
                name = item["prefix"].rstrip("/").rsplit("/", 1)[-1]
                listed.append(FileStatus(f"{scheme}://{bucket}/{item['prefix'].rstrip('/')}", name, 0,
                                         datetime(1970, 1, 1), True))  # fmt: skip
            elif not item["Key"].endswith("/"):  # a folder marker object is not a file
                listed.append(self._file(scheme, bucket, item))
        return listed

    def walk(self, uri: str) -> Iterator[FileStatus]:
        scheme, bucket, key = uri.split("://", 1)[0], *_split_s3(uri)
        for item in self._objects(bucket, f"{key}/" if key else "", None):
            if not item["Key"].endswith("/"):
                yield self._file(scheme, bucket, item)

    def open(self, uri: str) -> BinaryIO:
        bucket, key = _split_s3(uri)
        return self.client.get_object(Bucket=bucket, Key=key)["Body"]

    def read_text(self, uri: str) -> str | None:
        try:
            with contextlib.closing(self.open(uri)) as body:
                return body.read().decode("utf-8")
        except Exception as exc:
            if self._missing(exc):
                return None
            raise

    def create_if_absent(self, uri: str, data: bytes) -> bool:
        """A conditional PUT (``If-None-Match: *``): the store answers 412 when the object exists, so of two
        writers exactly one creates it (AWS S3 since 2024; SeaweedFS and s3proxy honour it too)."""
        bucket, key = _split_s3(uri)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise
        return True

    def write(self, uri: str, data: bytes) -> None:
        bucket, key = _split_s3(uri)
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def delete(self, uri: str) -> None:
        bucket, key = _split_s3(uri)
        self.client.delete_object(Bucket=bucket, Key=key)


_LOCAL = LocalStorage()
_S3: dict[S3Settings, S3Storage] = {}


def storage_for(uri: str, config: LakehouseConfig | None) -> Storage:
    """The store holding ``uri`` (one boto3 client per S3 configuration per process; without a config, S3 is
    reached with boto3's own defaults: environment, profile)."""
    if local_path(uri) is not None:
        return _LOCAL
    scheme = uri.split("://", 1)[0]
    if scheme in S3_SCHEMES:
        settings = S3Settings.from_config(config) if config is not None else S3Settings()
        if settings not in _S3:
            _S3[settings] = S3Storage(settings)
        return _S3[settings]
    raise StorageError(
        f"{uri}: no client-side store for {scheme}:// (local paths and s3a:// are supported); the jobs list, hash "
        "and lock files in this process, also when Spark runs elsewhere (docs/engine.md)"
    )


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


# --------------------------------------------------------------------------- Hadoop's URI form of a path

_ALPHANUM = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
#: java.net.URI's legal path characters (unreserved, punct, ``;`` and ``/``): others are %-encoded.
_PATH_CHARS = _ALPHANUM | set("-_.!~*'()") | set(":@&=+$,") | set(";/")


def _quote_path(path: str) -> str:
    out = []
    for ch in path:
        if ord(ch) < 0x80:  # "%" included: Hadoop's Path quotes it always (a name "x%20y" is "x%2520y")
            out.append(ch if ch in _PATH_CHARS else f"%{ord(ch):02X}")
        elif ch.isspace() or not ch.isprintable():
            out.append("".join(f"%{b:02X}" for b in ch.encode()))
        else:
            out.append(ch)  # java.net.URI keeps "other" (non-ASCII) characters as they are
    return "".join(out)


def uri_key(path: str) -> str:
    """``new org.apache.hadoop.fs.Path(path).toUri().toString()`` without a JVM: how Spark reports a file
    (``_metadata.file_path``), e.g. ``file:/data/a%20b.csv`` for ``file:/data/a b.csv``."""
    local = local_path(path)
    if local is not None:
        text = str(local)
        normalized = "/" + "/".join(p for p in text.split("/") if p) if text.startswith("/") else text
        return "file:" + _quote_path(normalized)
    scheme, rest = path.split("://", 1)
    authority, _, key = rest.partition("/")
    key = "/".join(p for p in key.split("/") if p)
    return f"{scheme}://{authority}" + _quote_path("/" + key if key else "")
