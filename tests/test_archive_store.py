"""The archive store: what one host puts, another host (another DATA_DIR) gets back byte for byte,
from the database on SQLite and PostgreSQL and from a real S3 server; expired archives go."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bankrecon.store.archive import archive_path
from bankrecon.store.archives import (
    ARCHIVE_CHUNK_BYTES,
    ArchiveNotStored,
    ArchiveStore,
    LocalArchiveStore,
    archive_store,
)
from bankrecon.store.db import archive_chunks
from bankrecon.store.schema import open_database


def _write_archive(data_dir: Path, size: int) -> str:
    content = os.urandom(size)
    sha256 = hashlib.sha256(content).hexdigest()
    path = archive_path(data_dir, sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return sha256


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3 server (moto's) on a loopback port, with a bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="archives")
    try:
        yield endpoint
    finally:
        server.stop()


def _round_trip(store: ArchiveStore, tmp_path: Path) -> None:
    fetching_host, decoding_host = tmp_path / "host-a", tmp_path / "host-b"
    sha256 = _write_archive(fetching_host, 2 * ARCHIVE_CHUNK_BYTES + 12345)
    store.put(fetching_host, sha256)
    store.put(fetching_host, sha256)  # a retried fetch puts it again
    got = store.get(decoding_host, sha256)
    assert got == archive_path(decoding_host, sha256)
    assert got.read_bytes() == archive_path(fetching_host, sha256).read_bytes()
    assert [p.name for p in got.parent.iterdir()] == [got.name]  # nothing staged is left
    with pytest.raises(ArchiveNotStored, match="neither"):
        store.get(decoding_host, "0" * 64)


def test_the_database_store_hands_an_archive_to_another_host(database_url: str, tmp_path: Path) -> None:
    engine = open_database(database_url)
    store = archive_store("database", engine)
    _round_trip(store, tmp_path)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(archive_chunks)).scalar_one() == 3


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_stores_archives_in_the_database_unless_told(database_url: str, tmp_path: Path) -> None:
    assert archive_store(None, open_database(f"sqlite:///{tmp_path / 'b.db'}")).shared is False
    assert archive_store(None, open_database(database_url)).shared is True
    assert archive_store("local", open_database(database_url)).shared is False


def test_the_s3_store_hands_an_archive_to_another_host(
    s3_endpoint: str, sqlite_url: str, tmp_path: Path
) -> None:
    url = f"s3://archives/bankrecon/prod?endpoint={s3_endpoint}&region=us-east-1"
    store = archive_store(url, open_database(sqlite_url))
    _round_trip(store, tmp_path)


def test_a_stored_archive_that_is_not_the_one_asked_for_is_refused(database_url: str, tmp_path: Path) -> None:
    engine = open_database(database_url)
    store = archive_store("database", engine)
    sha256 = _write_archive(tmp_path / "a", 100)
    store.put(tmp_path / "a", sha256)
    with engine.begin() as conn:
        conn.execute(archive_chunks.update().values(data=b"not the archive"))
    with pytest.raises(ArchiveNotStored, match="hashes to"):
        store.get(tmp_path / "b", sha256)
    assert not archive_path(tmp_path / "b", sha256).exists()


def test_local_store_names_the_setting_when_the_archive_is_on_another_host(tmp_path: Path) -> None:
    with pytest.raises(ArchiveNotStored, match="ARCHIVE_STORE_URL=local"):
        LocalArchiveStore().get(tmp_path, "0" * 64)


def test_expired_archives_leave_the_database_in_batches(database_url: str, tmp_path: Path) -> None:
    engine = open_database(database_url)
    store = archive_store("database", engine)
    for _ in range(3):
        store.put(tmp_path, _write_archive(tmp_path, 10))
    assert store.expire(datetime.now(UTC) - timedelta(days=1), batch=2) == 0
    assert store.expire(datetime.now(UTC) + timedelta(seconds=1), batch=2) == 2
    assert store.expire(datetime.now(UTC) + timedelta(seconds=1), batch=2) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(archive_chunks)).scalar_one() == 0


def test_expired_archives_leave_s3(s3_endpoint: str, sqlite_url: str, tmp_path: Path) -> None:
    url = f"s3://archives/expiring?endpoint={s3_endpoint}&region=us-east-1"
    store = archive_store(url, open_database(sqlite_url))
    shas = [_write_archive(tmp_path, 10) for _ in range(3)]
    for sha256 in shas:
        store.put(tmp_path, sha256)
    assert store.expire(datetime.now(UTC) - timedelta(days=1), batch=10) == 0
    assert store.expire(datetime.now(UTC) + timedelta(seconds=5), batch=2) == 2
    assert store.expire(datetime.now(UTC) + timedelta(seconds=5), batch=2) == 1
    with pytest.raises(ArchiveNotStored):
        store.get(tmp_path / "elsewhere", shas[0])
