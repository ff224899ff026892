"""From a stored archive to a file of validated records and the statement's totals."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from bankrecon.archive import archive_path, staged_file
from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey, StatementTotals
from bankrecon.records import RecordWriter, records_path
from bankrecon.statement import (
    ArchiveLimits,
    DetailLines,
    ExpectedStatement,
    validate_statement_archive,
)


def decode_archive(
    data_dir: Path,
    key: StatementKey,
    archive: ArchiveRef,
    limits: ArchiveLimits,
    currency: str | None = None,
    on_progress: Callable[[int], None] = lambda _count: None,
) -> DecodedStatement:
    """Validate the whole statement; the records file exists only if every rule held."""
    target = records_path(data_dir, archive.sha256, key.account_no, key.bill_date.isoformat())
    expected = ExpectedStatement(key.account_no, key.bill_date, currency)
    with staged_file(target.parent) as (out, staged):
        records = RecordWriter(out)

        def keep(details: DetailLines) -> None:
            records.write(details)
            on_progress(records.count)

        summary = validate_statement_archive(archive_path(data_dir, archive.sha256), expected, limits, keep)
    os.replace(staged, target)
    return DecodedStatement(
        totals=StatementTotals(
            currency=summary.currency,
            opening_balance=summary.opening_balance,
            closing_balance=summary.closing_balance,
            credit_count=summary.credit_count,
            debit_count=summary.debit_count,
            credit_total=summary.credit_total,
            debit_total=summary.debit_total,
            transaction_count=summary.transaction_count,
        ),
        source_sha256=archive.sha256,
        records_file=str(target.relative_to(data_dir)),
        part_count=summary.part_count,
    )
