"""A source's checked rows into its canonical records file: written whole, or not at all."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey, StatementTotals
from bankrecon.statements.canonical import CanonicalRecordWriter, CanonicalRow
from bankrecon.statements.common import CHINA_STANDARD_TIME, StatementDamaged
from bankrecon.store.archive import archive_path, staged_file

# Reads the archive at the path, giving each row to the writer in order; the checked totals.
ReadArchive = Callable[[Path, Callable[[CanonicalRow], None]], StatementTotals]


def records_path(data_dir: Path, source_sha256: str, key: StatementKey) -> Path:
    return data_dir / "records" / f"{source_sha256}-{key.account_no}-{key.bill_date.isoformat()}.canonical"


def decode_to_records(
    data_dir: Path, key: StatementKey, archive: ArchiveRef, read: ReadArchive
) -> DecodedStatement:
    """Check the whole archive with ``read``; its records file exists only if every rule held."""
    target = records_path(data_dir, archive.sha256, key)
    with staged_file(target.parent) as (out, staged):
        totals = read(archive_path(data_dir, archive.sha256), CanonicalRecordWriter(out).write)
    os.replace(staged, target)
    return DecodedStatement(
        totals=totals,
        source_sha256=archive.sha256,
        records_file=str(target.relative_to(data_dir)),
        part_count=1,
        records_format="canonical",
    )


def china_time(text: str, column: str, line: int) -> datetime:
    """``YYYY-MM-DD HH:MM:SS`` as the channels write their times: China Standard Time."""
    try:
        if len(text) != 19:
            raise ValueError
        return datetime.fromisoformat(text).replace(tzinfo=CHINA_STANDARD_TIME)
    except ValueError:
        raise StatementDamaged("time", f"{column} is not YYYY-MM-DD HH:MM:SS", line=line) from None


def column_index(header: Sequence[str], name: str, line: int | None = None) -> int:
    """Where the column ``name`` is in the header row at ``line``."""
    try:
        return header.index(name)
    except ValueError:
        raise StatementDamaged("columns", f"the bill has no column {name}", line=line) from None


def name_repeated_key(
    reread: Callable[[Callable[[CanonicalRow], None]], object], candidates: set[int], first_line: int
) -> None:
    """Reads the rows again to name the first key that is really repeated; returns if none is.

    ``candidates`` are the key hashes seen more than once; rows are one line each from ``first_line``.
    """
    first_seen: dict[str, int] = {}
    line = first_line - 1

    def check(row: CanonicalRow) -> None:
        nonlocal line
        line += 1
        if hash(row.serial_no) not in candidates:
            return
        if row.serial_no in first_seen:
            raise StatementDamaged(
                "duplicate key",
                f"the row's key repeats the one of line {first_seen[row.serial_no]}",
                line=line,
            )
        first_seen[row.serial_no] = line

    reread(check)
