"""Writing one statement to the database, in one transaction, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, Row, delete, insert, select, text
from sqlalchemy.exc import DBAPIError

from bankrecon.models import PersistRequest, PersistResult, StatementKey
from bankrecon.statements.canonical import CANONICAL_COLUMNS, CANONICAL_COPY_OPTIONS, CanonicalRecords
from bankrecon.statements.detail_records import COPY_OPTIONS, RECORD_COLUMNS, StatementRecords
from bankrecon.store.db import rows_of, statements, transactions

log = logging.getLogger(__name__)

# Characters of the records file loaded at a time: some 600 rows, one write to COPY
# (PostgreSQL) or one executemany (SQLite). Larger blocks load no faster, and each costs some
# twenty times its size in the worker's memory while it is made (lines, fields, text, bytes):
# at 512K characters a persist took a worker's RSS up by 26 MB, at 64K by 3.
LOAD_BLOCK_CHARS = 64 * 1024
_COLUMNS = ", ".join(RECORD_COLUMNS)
_COPY = f"COPY transactions ({_COLUMNS}) FROM STDIN WITH ({COPY_OPTIONS})"
# SQLite turns the records' texts into stored values itself, in C: money into integer cents
# (db.Money), "" into NULL; a Python loop over the rows would cost more than the inserts.
_SQLITE_VALUES = {
    "amount": "CAST(REPLACE(?, '.', '') AS INTEGER)",
    "balance_after": "CAST(REPLACE(?, '.', '') AS INTEGER)",
    "counterparty_account": "NULLIF(?, '')",
    "counterparty_name": "NULLIF(?, '')",
    "memo": "NULLIF(?, '')",
}
_INSERT = (
    f"INSERT INTO transactions ({_COLUMNS}) "
    f"VALUES ({', '.join(_SQLITE_VALUES.get(column, '?') for column in RECORD_COLUMNS)})"
)
_CANONICAL_COLUMNS = ", ".join(("account_no", "bill_date", "seq", *CANONICAL_COLUMNS))
_CANONICAL_COPY = f"COPY transactions ({_CANONICAL_COLUMNS}) FROM STDIN WITH ({CANONICAL_COPY_OPTIONS})"
_CANONICAL_SQLITE_VALUES = {
    "amount": "CAST(REPLACE(?, '.', '') AS INTEGER)",
    "balance_after": "CAST(REPLACE(?, '.', '') AS INTEGER)",
}
_CANONICAL_INSERT = (
    f"INSERT INTO transactions ({_CANONICAL_COLUMNS}) VALUES (?, ?, ?, "
    f"{', '.join(_CANONICAL_SQLITE_VALUES.get(column, '?') for column in CANONICAL_COLUMNS)})"
)
LOCK_TIMEOUT = "20s"


def save_statement(
    engine: Engine,
    data_dir: Path,
    request: PersistRequest,
    on_progress: Callable[[int], None] = lambda _count: None,
    source_kind: str = "refbank",
) -> PersistResult:
    """Store the statement and its transactions, or nothing at all; then drop the records file.

    A rerun of the same download (a retried activity) finds it stored and writes
    nothing; a different download of the same date (an operator's re-fetch) replaces
    the old one whole.
    """
    key = request.statement
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # A retry blocked behind a dead attempt's row lock fails and is retried, instead
            # of hanging without heartbeats; below the activities' 30 s heartbeat timeout.
            conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        stored = conn.execute(
            select(statements.c.source_sha256, statements.c.bank_code).where(rows_of(statements, key))
        ).first()
        if stored is not None and tuple(stored) == (request.source_sha256, request.bank_code):
            discard_records(data_dir, request)
            return PersistResult(written=False, transaction_count=request.totals.transaction_count)
        if stored is not None:
            log.warning(
                "replacing statement %s %s: stored source %s, new source %s",
                key.account_no,
                key.bill_date,
                stored.source_sha256,
                request.source_sha256,
            )
            conn.execute(delete(transactions).where(rows_of(transactions, key)))
            conn.execute(delete(statements).where(rows_of(statements, key)))
        totals = request.totals
        conn.execute(
            insert(statements).values(
                account_no=key.account_no,
                bill_date=key.bill_date,
                bank_code=request.bank_code,
                currency=totals.currency,
                opening_balance=totals.opening_balance,
                closing_balance=totals.closing_balance,
                credit_count=totals.credit_count,
                debit_count=totals.debit_count,
                credit_total=totals.credit_total,
                debit_total=totals.debit_total,
                transaction_count=totals.transaction_count,
                source_sha256=request.source_sha256,
                fetched_at=request.fetched_at,
                persisted_at=datetime.now(UTC),
                source_kind=source_kind,
                fee_total=totals.fee_total,
                summary=totals.summary,
            )
        )
        written = 0
        if request.records_file is not None:
            written = _load_records(conn, data_dir / request.records_file, request, on_progress)
        if written != totals.transaction_count:
            raise RuntimeError(
                f"records file holds {written} transactions, the statement says "
                f"{totals.transaction_count}: nothing was written"
            )
    discard_records(data_dir, request)
    return PersistResult(written=True, transaction_count=written)


def _load_records(
    conn: Connection, path: Path, request: PersistRequest, on_progress: Callable[[int], None]
) -> int:
    key = request.statement
    postgresql = conn.dialect.name == "postgresql"
    if request.records_format == "canonical":
        canonical = CanonicalRecords(path, LOAD_BLOCK_CHARS)
        if postgresql:
            blocks = canonical.copy_text(key.account_no, key.bill_date.isoformat())
            return _copy(conn, _CANONICAL_COPY, blocks, on_progress)
        rows = (
            [(key.account_no, key.bill_date.isoformat(), seq, *fields) for seq, fields in block]
            for block in canonical.rows()
        )
        return _insert(conn, _CANONICAL_INSERT, rows, on_progress)
    records = StatementRecords(path, key.account_no, key.bill_date, LOAD_BLOCK_CHARS)
    if postgresql:
        return _copy(conn, _COPY, records.copy_text(), on_progress)
    return _insert(conn, _INSERT, records.sqlite_rows(), on_progress)


def _copy(
    conn: Connection, statement: str, blocks: Iterator[tuple[bytes, int]], on_progress: Callable[[int], None]
) -> int:
    """COPY the blocks in, each made while the server is still busy with the one before."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    written = 0
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for block, rows in blocks:
                copy.write(block)
                written += rows
                on_progress(written)
    except psycopg.Error as exc:
        # Raised past SQLAlchemy, which would otherwise have wrapped it, hiding parameters
        # and noticing a lost connection: do both here, the same way.
        if raw.broken:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            statement,
            None,
            exc,
            psycopg.Error,
            hide_parameters=True,
            connection_invalidated=raw.broken,
            dialect=conn.dialect,
        ) from None
    return written


def _insert(
    conn: Connection, statement: str, batches: Iterable[Sequence[Any]], on_progress: Callable[[int], None]
) -> int:
    """Batched inserts of the records' texts, past SQLAlchemy's per-value type processing."""
    written = 0
    for batch in batches:
        conn.exec_driver_sql(statement, batch)
        written += len(batch)
        on_progress(written)
    return written


def is_stored(engine: Engine, request: PersistRequest) -> bool:
    """Whether this very download of the statement is stored already (a retry after the commit)."""
    with engine.connect() as conn:
        stored = conn.execute(
            select(statements.c.source_sha256, statements.c.bank_code).where(
                rows_of(statements, request.statement)
            )
        ).first()
    return stored is not None and tuple(stored) == (request.source_sha256, request.bank_code)


def discard_records(data_dir: Path, request: PersistRequest) -> None:
    """Drop the records file once nothing will read it: the statement is stored (a rerun finds it
    so) or refused for good. The archive stays as the source of record."""
    if request.records_file is not None:
        (data_dir / request.records_file).unlink(missing_ok=True)


def load_statement(engine: Engine, key: StatementKey) -> tuple[Row[Any] | None, list[Row[Any]]]:
    """The stored statement row (None if absent) and its transactions in statement order."""
    with engine.connect() as conn:
        statement = conn.execute(select(statements).where(rows_of(statements, key))).one_or_none()
        rows = conn.execute(
            select(transactions).where(rows_of(transactions, key)).order_by(transactions.c.seq)
        ).all()
    return statement, list(rows)


def stored_statements(engine: Engine, account_no: str, first: date, last: date) -> dict[date, Row[Any]]:
    """The account's stored statement rows from ``first`` to ``last``, by date."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(statements).where(
                statements.c.account_no == account_no, statements.c.bill_date.between(first, last)
            )
        ).all()
    return {row.bill_date: row for row in rows}
