"""From a stored archive to a file of validated records and the statement's totals."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey, StatementTotals
from bankrecon.sources.refbank.format import DetailLines, ExpectedStatement, validate_statement_archive
from bankrecon.sources.refbank.records import RecordWriter, records_path
from bankrecon.sources.refbank.shards import MIN_ARCHIVE_BYTES, available_shards, validate_in_shards
from bankrecon.statements.common import ArchiveLimits
from bankrecon.store.archive import archive_path, staged_file


def decode_archive(
    data_dir: Path,
    key: StatementKey,
    archive: ArchiveRef,
    limits: ArchiveLimits,
    currency: str | None = None,
    on_progress: Callable[[int], None] = lambda _count: None,
    shards: int | None = None,
) -> DecodedStatement:
    """Validate the whole statement; the records file exists only if every rule held.

    A large archive is validated by ``shards`` processes (default: one per core), and
    validated again in this one wherever they had a doubt, to name the fault.
    """
    target = records_path(data_dir, archive.sha256, key.account_no, key.bill_date.isoformat())
    expected = ExpectedStatement(key.account_no, key.bill_date, currency)
    zip_path = archive_path(data_dir, archive.sha256)
    if shards is None:
        shards = available_shards() if archive.size >= MIN_ARCHIVE_BYTES else 1
    with staged_file(target.parent) as (out, staged):
        summary = None
        if shards > 1:
            summary = validate_in_shards(zip_path, expected, limits, out, target.parent, shards, on_progress)
            if summary is None:
                out.seek(0)
                out.truncate()
        if summary is None:
            records = RecordWriter(out)

            def keep(details: DetailLines) -> None:
                records.write(details)
                on_progress(records.count)

            summary = validate_statement_archive(zip_path, expected, limits, keep)
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
