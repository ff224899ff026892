"""Persisting statements: exact money, one transaction, exactly one copy; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from bankrecon.models import PersistRequest, StatementKey, StatementTotals
from bankrecon.sources.refbank.format import Transaction
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.store.db import make_engine, statements, transactions
from bankrecon.store.persistence import save_statement
from bankrecon.store.schema import prepare_schema
from tests.harness import write_records

KEY = StatementKey(account_no="6222020000000001", bill_date=date(2026, 11, 24))
BIG = Decimal("123456789012345.67")


def _txn(n: int, direction: str, amount: str, balance: str, memo: str | None = "货款") -> Transaction:
    return Transaction(
        serial_no=f"S{n:06d}",
        traded_at=datetime(2026, 11, 24, 9, 30, n % 60, tzinfo=CHINA_STANDARD_TIME),
        direction=direction,
        amount=Decimal(amount),
        balance_after=Decimal(balance),
        counterparty_account=None if memo is None else "6217000000000001",
        counterparty_name=None if memo is None else "上海某某科技有限公司 䶮𠀀",
        memo=memo,
    )


# Opening -100000000000000.00 (overdraft), a 15-digit credit, then many cents.
TRANSACTIONS = [
    _txn(1, "C", str(BIG), "23456789012345.67"),
    *[
        _txn(n, "D", "0.01", str(Decimal("23456789012345.67") - Decimal("0.01") * (n - 1)), memo=None)
        for n in range(2, 1203)
    ],
]
CLOSING = TRANSACTIONS[-1].balance_after
TOTALS = StatementTotals(
    currency="CNY",
    opening_balance=Decimal("-100000000000000.00"),
    closing_balance=CLOSING,
    credit_count=1,
    debit_count=len(TRANSACTIONS) - 1,
    credit_total=BIG,
    debit_total=Decimal("0.01") * (len(TRANSACTIONS) - 1),
    transaction_count=len(TRANSACTIONS),
)


@pytest.fixture
def engine(database_url: str) -> Engine:
    engine = make_engine(database_url)
    prepare_schema(engine)
    return engine


def _records(data_dir: Path, txns: list[Transaction], name: str = "r.txt") -> str:
    return write_records(data_dir, name, txns, KEY)


def _request(records_file: str | None, sha: str | None = "a" * 64, **totals: object) -> PersistRequest:
    return PersistRequest(
        statement=KEY,
        bank_code="0000" if records_file else "2001",
        totals=TOTALS.model_copy(update=totals) if records_file else StatementTotals.empty(),
        records_file=records_file,
        source_sha256=sha,
        fetched_at=datetime(2026, 11, 25, 1, 0, tzinfo=UTC),
    )


def _count(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(statements)).scalar_one(),
            conn.execute(select(func.count()).select_from(transactions)).scalar_one(),
        )


def test_money_and_text_round_trip_exactly(engine: Engine, tmp_path: Path) -> None:
    result = save_statement(engine, tmp_path, _request(_records(tmp_path, TRANSACTIONS)))
    assert result.written and result.transaction_count == len(TRANSACTIONS)
    with engine.connect() as conn:
        rows = conn.execute(select(transactions).order_by(transactions.c.seq)).all()
        stored = conn.execute(select(statements)).one()
        credit_sum = conn.execute(
            select(func.sum(transactions.c.amount)).where(transactions.c.direction == "C")
        ).scalar_one()
        debit_sum = conn.execute(
            select(func.sum(transactions.c.amount)).where(transactions.c.direction == "D")
        ).scalar_one()
    assert [
        (
            r.serial_no,
            r.traded_at,
            r.direction,
            r.amount,
            r.balance_after,
            r.counterparty_account,
            r.counterparty_name,
            r.memo,
        )
        for r in rows
    ] == [
        (
            t.serial_no,
            t.traded_at,
            t.direction,
            t.amount,
            t.balance_after,
            t.counterparty_account,
            t.counterparty_name,
            t.memo,
        )
        for t in TRANSACTIONS
    ]
    assert rows[0].amount == BIG and str(rows[0].amount) == "123456789012345.67"
    assert (credit_sum, debit_sum) == (BIG, Decimal("12.01"))
    assert stored.opening_balance == Decimal("-100000000000000.00")
    assert stored.closing_balance == CLOSING
    assert (stored.credit_total, stored.debit_total) == (BIG, Decimal("12.01"))
    assert stored.currency == "CNY" and stored.transaction_count == len(TRANSACTIONS)


def test_money_is_never_stored_as_floating_point(engine: Engine, tmp_path: Path) -> None:
    save_statement(engine, tmp_path, _request(_records(tmp_path, TRANSACTIONS[:3]), transaction_count=3))
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            kinds = conn.execute(
                text("SELECT DISTINCT typeof(amount), typeof(balance_after) FROM transactions")
            ).all()
            assert kinds == [("integer", "integer")]
            # Raw SQL sums stay exact: integer cents.
            assert conn.execute(text("SELECT SUM(amount) FROM transactions")).scalar_one() == (
                int(BIG * 100) + 2
            )
        else:
            types: dict[str, str] = dict(
                conn.execute(
                    text(
                        "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_name = 'transactions' AND table_schema = current_schema()"
                    )
                ).all()
            )
            assert types["amount"] == types["balance_after"] == "numeric"
            assert types["traded_at"] == "timestamp with time zone"
            assert conn.execute(text("SELECT SUM(amount) FROM transactions")).scalar_one() == (
                BIG + Decimal("0.02")
            )


def test_rerun_leaves_exactly_one_copy(engine: Engine, tmp_path: Path) -> None:
    request = _request(_records(tmp_path, TRANSACTIONS))
    assert save_statement(engine, tmp_path, request).written
    assert request.records_file is not None
    assert not (tmp_path / request.records_file).exists()  # committed: no second copy on disk
    again = save_statement(engine, tmp_path, request)
    assert not again.written and again.transaction_count == len(TRANSACTIONS)
    assert _count(engine) == (1, len(TRANSACTIONS))


def test_failure_midway_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    records = _records(tmp_path, TRANSACTIONS)
    with (tmp_path / records).open("ab") as out:
        out.write(b"D|not|a|record\n")  # the crash point: after several batches went in
    with pytest.raises(ValueError, match="not enough values to unpack"):
        save_statement(engine, tmp_path, _request(records))
    assert _count(engine) == (0, 0)
    # The retried activity, with the file intact, then lands the statement once.
    save_statement(engine, tmp_path, _request(_records(tmp_path, TRANSACTIONS)))
    assert _count(engine) == (1, len(TRANSACTIONS))


def test_a_records_file_in_another_format_is_refused_and_nothing_written(
    engine: Engine, tmp_path: Path
) -> None:
    # What a worker before the current format left between decode and persist.
    older = tmp_path / "records" / "older.txt"
    older.parent.mkdir()
    older.write_text("S000001|2026-11-24T09:30:01+08:00|C|1.00|1.00|||\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not hold D records"):
        save_statement(engine, tmp_path, _request("records/older.txt", transaction_count=1))
    assert _count(engine) == (0, 0)


def test_count_disagreement_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    request = _request(_records(tmp_path, TRANSACTIONS), transaction_count=len(TRANSACTIONS) + 1)
    with pytest.raises(RuntimeError, match="nothing was written"):
        save_statement(engine, tmp_path, request)
    assert _count(engine) == (0, 0)


def test_new_download_of_the_same_date_replaces_the_old_whole(engine: Engine, tmp_path: Path) -> None:
    save_statement(engine, tmp_path, _request(_records(tmp_path, TRANSACTIONS)))
    fewer = TRANSACTIONS[:2]
    replaced = save_statement(
        engine,
        tmp_path,
        _request(
            _records(tmp_path, fewer, "fewer.txt"),
            sha="b" * 64,
            transaction_count=2,
            debit_count=1,
            debit_total=Decimal("0.01"),
            closing_balance=fewer[-1].balance_after,
        ),
    )
    assert replaced.written
    assert _count(engine) == (1, 2)
    with engine.connect() as conn:
        assert conn.execute(select(statements.c.source_sha256)).scalar_one() == "b" * 64


def test_empty_statement(engine: Engine, tmp_path: Path) -> None:
    request = _request(None, sha=None)
    assert save_statement(engine, tmp_path, request).written
    assert not save_statement(engine, tmp_path, request).written
    with engine.connect() as conn:
        row = conn.execute(select(statements)).one()
    assert (row.bank_code, row.transaction_count, row.credit_total, row.opening_balance) == (
        "2001",
        0,
        Decimal("0.00"),
        None,
    )
    assert _count(engine) == (1, 0)


def test_database_errors_quote_no_bound_parameters(engine: Engine, tmp_path: Path) -> None:
    twice = [TRANSACTIONS[0], TRANSACTIONS[0]]  # a duplicate serial makes the insert fail
    with pytest.raises(IntegrityError) as failure:
        save_statement(engine, tmp_path, _request(_records(tmp_path, twice), transaction_count=2))
    message = str(failure.value)
    # The statement that failed is named (SQLite inserts, PostgreSQL copies)...
    assert "INSERT INTO transactions" in message or "COPY transactions" in message
    for value in ("123456789012345.67", "上海某某科技有限公司", "6217000000000001", "货款"):
        assert value not in message  # ...but not the rows it carried
    assert _count(engine) == (0, 0)


def test_postgresql_sessions_end_abandoned_transactions(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL session settings")
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one() == "1min"
        # The URL's own options (here the test schema's search_path) still apply.
        assert conn.execute(text("SHOW search_path")).scalar_one() == database_url.rsplit("%3D", 1)[1]
    engine.dispose()


def test_backslashes_and_copy_escape_lookalikes_round_trip(engine: Engine, tmp_path: Path) -> None:
    # The records file is COPY text, where a backslash starts an escape and \N means NULL.
    memo = r"C:\temp\N \\ \t \. end\ "
    txn = _txn(1, "C", "1.00", "1.00", memo=memo)
    save_statement(engine, tmp_path, _request(_records(tmp_path, [txn]), transaction_count=1))
    with engine.connect() as conn:
        row = conn.execute(select(transactions)).one()
    assert (row.memo, row.counterparty_name) == (memo, txn.counterparty_name)
