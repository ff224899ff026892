"""Decode a statement file of either format into a records file of canonical rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey
from bankrecon.sources.sftp.camt import read_camt053
from bankrecon.sources.sftp.pages import write_pages
from bankrecon.sources.sftp.swift import read_mt940
from bankrecon.store.archive import archive_path
from bankrecon.store.records import decoded_into_records


def decode_statement(
    data_dir: Path,
    key: StatementKey,
    archive: ArchiveRef,
    format: Literal["mt940", "camt053"],
    on_progress: Callable[[int], None],
) -> DecodedStatement:
    """Check the whole statement file; its records file exists only if every rule held."""
    source = archive_path(data_dir, archive.sha256)
    pages = read_mt940(source) if format == "mt940" else read_camt053(source)
    return decoded_into_records(
        data_dir, key, archive.sha256, lambda writer: write_pages(pages, key, writer.write, on_progress)
    )
