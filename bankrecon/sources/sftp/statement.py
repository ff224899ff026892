"""Decode a statement file of either format into a records file of canonical rows."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey
from bankrecon.sources.sftp.camt import read_camt053
from bankrecon.sources.sftp.pages import write_pages
from bankrecon.sources.sftp.swift import read_mt940
from bankrecon.sources.wechatpay.bill import records_path
from bankrecon.statements.canonical import CanonicalRecordWriter
from bankrecon.store.archive import archive_path, staged_file


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
    target = records_path(data_dir, archive.sha256, key)
    with staged_file(target.parent) as (out, staged):
        totals = write_pages(pages, key, CanonicalRecordWriter(out).write, on_progress)
    os.replace(staged, target)
    return DecodedStatement(
        totals=totals,
        source_sha256=archive.sha256,
        records_file=str(target.relative_to(data_dir)),
        part_count=1,
        records_format="canonical",
    )
