"""Canonical records files in DATA_DIR: written whole or not at all, named by their statement and source."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bankrecon.models import DecodedStatement, StatementKey, StatementTotals
from bankrecon.statements.canonical import CanonicalRecordWriter
from bankrecon.store.archive import staged_file

Read = TypeVar("Read")


def records_path(data_dir: Path, source_sha256: str, key: StatementKey) -> Path:
    return data_dir / "records" / f"{source_sha256}-{key.account_no}-{key.bill_date.isoformat()}.canonical"


def decoded_into_records(
    data_dir: Path,
    key: StatementKey,
    source_sha256: str,
    read: Callable[[CanonicalRecordWriter], StatementTotals],
    part_count: int = 1,
) -> DecodedStatement:
    """``read`` writes the statement's rows and returns its checked totals; the records file
    exists only if it returned (StatementDamaged leaves nothing behind)."""
    target = records_path(data_dir, source_sha256, key)
    with staged_file(target.parent) as (out, staged):
        writer = CanonicalRecordWriter(out)
        totals = read(writer)
        writer.flush()
    os.replace(staged, target)
    return DecodedStatement(
        totals=totals,
        source_sha256=source_sha256,
        records_file=str(target.relative_to(data_dir)),
        part_count=part_count,
        records_format="canonical",
    )
