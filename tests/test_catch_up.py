"""Which dates a nightly run must start: every date of the range neither stored nor cancelled."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select

from bankrecon.models import PersistRequest, StatementCancellation, StatementKey, StatementTotals
from bankrecon.store.cancellations import forget_cancellation, record_cancellation
from bankrecon.store.catch_up import days, missing_statements
from bankrecon.store.db import cancelled_statements, make_engine
from bankrecon.store.persistence import save_statement
from bankrecon.store.schema import prepare_schema

ACCOUNTS = ["6222020000000001", "6222020000000002"]


def test_only_dates_without_a_stored_statement_are_missing(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    try:
        prepare_schema(engine)
        stored = [
            (ACCOUNTS[0], date(2026, 11, 22)),
            (ACCOUNTS[1], date(2026, 11, 24)),
            ("6222020000000009", date(2026, 11, 23)),
        ]
        for account, day in stored:
            save_statement(
                engine,
                tmp_path,
                PersistRequest(
                    statement=StatementKey(account_no=account, bill_date=day),
                    bank_code="2001",
                    totals=StatementTotals.empty(),
                    records_file=None,
                    source_sha256=None,
                    fetched_at=datetime(2026, 11, 25, tzinfo=UTC),
                ),
            )
        missing = missing_statements(engine, ACCOUNTS, date(2026, 11, 22), date(2026, 11, 24))
    finally:
        engine.dispose()
    assert [(key.account_no, key.bill_date.day) for key in missing] == [
        (ACCOUNTS[1], 22),
        (ACCOUNTS[0], 23),
        (ACCOUNTS[1], 23),
        (ACCOUNTS[0], 24),
    ]


def test_no_accounts_nothing_missing_and_days_are_inclusive(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    assert missing_statements(engine, [], date(2026, 11, 1), date(2026, 11, 30)) == []
    engine.dispose()
    assert days(date(2026, 12, 30), date(2027, 1, 2)) == [
        date(2026, 12, 30),
        date(2026, 12, 31),
        date(2027, 1, 1),
        date(2027, 1, 2),
    ]
    assert days(date(2026, 12, 30), date(2026, 12, 29)) == []


def test_a_date_an_operator_cancelled_is_not_missing_until_started_again(database_url: str) -> None:
    engine = make_engine(database_url)
    cancelled = StatementKey(account_no=ACCOUNTS[0], bill_date=date(2026, 11, 23))
    try:
        prepare_schema(engine)
        for run_id in ("first-run", "second-run"):  # cancelled, started again, cancelled again
            record_cancellation(
                engine,
                StatementCancellation(
                    statement=cancelled,
                    workflow_id=f"statement-{ACCOUNTS[0]}-2026-11-23",
                    run_id=run_id,
                    cancelled_at=datetime(2026, 11, 24, 10, tzinfo=UTC),
                ),
            )
        skipped = missing_statements(engine, ACCOUNTS, date(2026, 11, 23), date(2026, 11, 23))
        with engine.connect() as conn:
            recorded = conn.execute(select(cancelled_statements.c.run_id)).scalars().all()
        assert forget_cancellation(engine, cancelled)
        assert not forget_cancellation(engine, cancelled)
        again = missing_statements(engine, ACCOUNTS, date(2026, 11, 23), date(2026, 11, 23))
    finally:
        engine.dispose()
    assert [key.account_no for key in skipped] == [ACCOUNTS[1]]
    assert recorded == ["second-run"]
    assert [key.account_no for key in again] == ACCOUNTS
