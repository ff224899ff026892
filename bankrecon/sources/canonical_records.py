"""A source's checked rows into its canonical records file: written whole, or not at all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey, StatementTotals
from bankrecon.statements.canonical import CanonicalRow
from bankrecon.statements.common import CHINA_STANDARD_TIME, StatementDamaged
from bankrecon.store.archive import archive_path
from bankrecon.store.records import decoded_into_records

# Reads the archive at the path, giving each row to the writer in order; the checked totals.
ReadArchive = Callable[[Path, Callable[[CanonicalRow], None]], StatementTotals]


def decode_to_records(
    data_dir: Path, key: StatementKey, archive: ArchiveRef, read: ReadArchive
) -> DecodedStatement:
    """Check the whole archive with ``read``; its records file exists only if every rule held."""
    path = archive_path(data_dir, archive.sha256)
    return decoded_into_records(data_dir, key, archive.sha256, lambda writer: read(path, writer.write))


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
    reread: Callable[[Callable[[str], None]], object], candidates: set[int], first_line: int
) -> None:
    """Reads the rows again, giving each one's key to a check, to name the first key that is really
    repeated; returns if none is.

    ``candidates`` are the key hashes seen more than once; rows are one line each from ``first_line``.
    """
    first_seen: dict[str, int] = {}
    line = first_line - 1

    def check(serial_no: str) -> None:
        nonlocal line
        line += 1
        if hash(serial_no) not in candidates:
            return
        if serial_no in first_seen:
            raise StatementDamaged(
                "duplicate key",
                f"the row's key repeats the one of line {first_seen[serial_no]}",
                line=line,
            )
        first_seen[serial_no] = line

    reread(check)
