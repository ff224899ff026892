"""From a stored archive to a file of validated records and the statement's totals."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from bankrecon.archive import archive_path, staged_file
from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey, StatementTotals
from bankrecon.records import records_path, write_record
from bankrecon.statement import (
    ArchiveLimits,
    ExpectedStatement,
    Transaction,
    read_statement_archive,
)

PROGRESS_EVERY = 10_000


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
        count = 0

        def keep(txn: Transaction) -> None:
            nonlocal count
            write_record(out, txn)
            count += 1
            if count % PROGRESS_EVERY == 0:
                on_progress(count)

        summary = read_statement_archive(archive_path(data_dir, archive.sha256), expected, limits, keep)
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
