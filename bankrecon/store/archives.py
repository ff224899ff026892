"""Where downloaded archives live so that every worker reaches them (ARCHIVE_STORE_URL).

Sources write an archive into their host's DATA_DIR (``archive.archive_path``) and decode reads
it from there: DATA_DIR is each worker's own working area. The store is what the workers
share: the fetch puts the archive in it, and an activity that lands on a host without a local
copy fetches one from it first.

- ``local``: DATA_DIR is the store (one host, or hosts sharing a volume). Nothing to do.
- ``database``: in the database, in chunks (``stored_archives``, ``archive_chunks``).
- ``s3://bucket/prefix?endpoint=URL&region=NAME``: an S3-compatible object store, through boto3,
  with the usual AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or a role).

Unset, it is ``database`` with PostgreSQL (workers on several hosts reach it already) and
``local`` with SQLite (one host).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Engine, delete, insert, select, update

from bankrecon.store.archive import archive_path, staged_file
from bankrecon.store.db import archive_chunks, stored_archives

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

# A piece small enough that a worker holding one costs nothing, large enough that a 100 MB
# archive is a hundred rows.
ARCHIVE_CHUNK_BYTES = 1024 * 1024
STORE_URL_FORMS = "local, database, or s3://bucket/prefix?endpoint=https://host:port&region=name"


class ArchiveNotStored(Exception):
    """Neither this host's DATA_DIR nor the store holds the archive."""


class ArchiveStore(Protocol):
    """The archives every worker reaches, beside each host's own DATA_DIR."""

    @property
    def shared(self) -> bool:
        """Whether another host reaches what this one puts here (False: DATA_DIR alone)."""

    def put(self, data_dir: Path, sha256: str) -> None:
        """Keep the archive at ``archive_path(data_dir, sha256)`` in the store; a second put is a no-op."""

    def get(self, data_dir: Path, sha256: str) -> Path:
        """The archive's local path, copied from the store if this host lacks it; else ArchiveNotStored."""

    def expire(self, stored_before: datetime, batch: int) -> int:
        """Delete up to ``batch`` archives stored before the time; how many went."""


def _verified_copy(data_dir: Path, sha256: str, pieces: Iterator[bytes]) -> Path:
    """Write the pieces into place as the archive ``sha256``, checking that they are it."""
    target = archive_path(data_dir, sha256)
    digest = hashlib.sha256()
    with staged_file(target.parent) as (out, staged):
        for piece in pieces:
            digest.update(piece)
            out.write(piece)
        if digest.hexdigest() != sha256:
            raise ArchiveNotStored(f"the stored archive {sha256} hashes to {digest.hexdigest()}")
    os.replace(staged, target)
    return target


def _pieces(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while piece := source.read(ARCHIVE_CHUNK_BYTES):
            yield piece


class LocalArchiveStore:
    """DATA_DIR alone: one host, or several sharing one volume."""

    shared = False

    def put(self, data_dir: Path, sha256: str) -> None:
        return None

    def get(self, data_dir: Path, sha256: str) -> Path:
        path = archive_path(data_dir, sha256)
        if not path.exists():
            raise ArchiveNotStored(
                f"archive {path} is missing (ARCHIVE_STORE_URL=local: every worker of this task queue "
                "must share DATA_DIR, or set ARCHIVE_STORE_URL to database or s3://...)"
            )
        return path

    def expire(self, stored_before: datetime, batch: int) -> int:
        # The archives are DATA_DIR's: retention.expire_files removes them with the other files.
        return 0


class DatabaseArchiveStore:
    """Archives in the database in chunks, each written and read one at a time."""

    shared = True

    def __init__(self, engine: Engine):
        self._engine = engine

    def put(self, data_dir: Path, sha256: str) -> None:
        path = archive_path(data_dir, sha256)
        with self._engine.begin() as conn:
            refreshed = conn.execute(
                update(stored_archives)
                .where(stored_archives.c.sha256 == sha256)
                .values(stored_at=datetime.now(UTC))
            )
            if refreshed.rowcount:
                return
            count = 0
            for seq, piece in enumerate(_pieces(path)):
                conn.execute(insert(archive_chunks).values(sha256=sha256, seq=seq, data=piece))
                count += 1
            conn.execute(
                insert(stored_archives).values(
                    sha256=sha256, size=path.stat().st_size, chunk_count=count, stored_at=datetime.now(UTC)
                )
            )

    def get(self, data_dir: Path, sha256: str) -> Path:
        path = archive_path(data_dir, sha256)
        if path.exists():
            return path
        with self._engine.connect() as conn:
            count = conn.execute(
                select(stored_archives.c.chunk_count).where(stored_archives.c.sha256 == sha256)
            ).scalar()
            if count is None:
                raise ArchiveNotStored(f"archive {sha256} is neither in {path.parent} nor in the database")
            # One row at a time (seq is the key's second column): never the whole archive in memory.
            pieces = (
                conn.execute(
                    select(archive_chunks.c.data).where(
                        archive_chunks.c.sha256 == sha256, archive_chunks.c.seq == seq
                    )
                ).scalar_one()
                for seq in range(count)
            )
            return _verified_copy(data_dir, sha256, pieces)

    def expire(self, stored_before: datetime, batch: int) -> int:
        with self._engine.begin() as conn:
            expired = (
                conn.execute(
                    select(stored_archives.c.sha256)
                    .where(stored_archives.c.stored_at < stored_before)
                    .order_by(stored_archives.c.stored_at)
                    .limit(batch)
                )
                .scalars()
                .all()
            )
            if expired:
                conn.execute(delete(stored_archives).where(stored_archives.c.sha256.in_(expired)))
                conn.execute(delete(archive_chunks).where(archive_chunks.c.sha256.in_(expired)))
        return len(expired)


class S3ArchiveStore:
    """Archives as objects ``<prefix>/<sha256>.zip`` in an S3-compatible bucket."""

    shared = True

    def __init__(self, bucket: str, prefix: str, client: S3Client):
        self._bucket = bucket
        self._prefix = prefix
        self._client = client

    @classmethod
    def from_url(cls, url: str) -> S3ArchiveStore:
        import boto3  # only a deployment that configures S3 pays for loading it
        from botocore.config import Config

        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"ARCHIVE_STORE_URL names no bucket: use {STORE_URL_FORMS}")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint", "region"}
        if unknown:
            raise ValueError(f"ARCHIVE_STORE_URL: unknown parameter(s) {', '.join(sorted(unknown))}")
        client = boto3.client(
            "s3",
            endpoint_url=query.get("endpoint"),
            region_name=query.get("region"),
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )
        return cls(parts.netloc, parts.path.strip("/"), client)

    def _key(self, sha256: str) -> str:
        return f"{self._prefix}/{sha256}.zip" if self._prefix else f"{sha256}.zip"

    def put(self, data_dir: Path, sha256: str) -> None:
        # Multipart for a large file, read from disk a part at a time.
        self._client.upload_file(str(archive_path(data_dir, sha256)), self._bucket, self._key(sha256))

    def get(self, data_dir: Path, sha256: str) -> Path:
        path = archive_path(data_dir, sha256)
        if path.exists():
            return path
        try:
            body = self._client.get_object(Bucket=self._bucket, Key=self._key(sha256))["Body"]
        except self._client.exceptions.NoSuchKey:
            raise ArchiveNotStored(
                f"archive {sha256} is neither in {path.parent} nor in s3://{self._bucket}/{self._prefix}"
            ) from None
        with contextlib.closing(body):
            return _verified_copy(data_dir, sha256, body.iter_chunks(ARCHIVE_CHUNK_BYTES))

    def expire(self, stored_before: datetime, batch: int) -> int:
        expired: list[ObjectIdentifierTypeDef] = []
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=f"{self._prefix}/" if self._prefix else ""
        )
        for page in pages:
            expired += [
                {"Key": item["Key"]}
                for item in page.get("Contents", [])
                if item["Key"].endswith(".zip") and item["LastModified"] < stored_before
            ]
            if len(expired) >= batch:
                break
        expired = expired[:batch]
        if expired:
            self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": expired, "Quiet": True})
        return len(expired)


def archive_store(url: str | None, engine: Engine) -> ArchiveStore:
    """The store ARCHIVE_STORE_URL names; unset, the database's with PostgreSQL, else DATA_DIR's."""
    if url is None:
        url = "database" if engine.dialect.name == "postgresql" else "local"
    if url == "local":
        return LocalArchiveStore()
    if url == "database":
        return DatabaseArchiveStore(engine)
    if url.startswith("s3://"):
        return S3ArchiveStore.from_url(url)
    raise ValueError(f"ARCHIVE_STORE_URL must be {STORE_URL_FORMS}")
