"""The activities themselves, run by Temporal's ActivityEnvironment against real databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.statements import HeartbeatWhenDue, StatementActivities
from bankrecon.models import PersistRequest, StatementKey, StatementTotals
from bankrecon.sources.refbank.format import Transaction
from bankrecon.statements.common import CHINA_STANDARD_TIME
from tests.harness import ACCOUNT, BILL_DATE, count_rows, settings_for, write_records

ROW = Transaction(
    serial_no="S77",
    traded_at=datetime(2026, 11, 24, 9, 30, tzinfo=CHINA_STANDARD_TIME),
    direction="C",
    amount=Decimal("98765.43"),
    balance_after=Decimal("98765.43"),
    counterparty_account="6217000000000042",
    counterparty_name="上海某某科技有限公司",
    memo="货款",
)


async def test_a_failed_persist_tells_temporal_and_the_log_no_statement_data(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    activities = StatementActivities.from_settings(
        settings_for(data_dir, database_url, "http://127.0.0.1:9", "unused")
    )
    key = StatementKey(account_no=ACCOUNT, bill_date=BILL_DATE)
    # The same serial twice: the database refuses the batch.
    write_records(data_dir, "twice.txt", [ROW, ROW], key)
    request = PersistRequest(
        statement=key,
        bank_code="0000",
        totals=StatementTotals.empty().model_copy(update={"transaction_count": 2, "currency": "CNY"}),
        records_file="records/twice.txt",
        source_sha256="c" * 64,
        fetched_at=datetime.now(UTC),
    )
    try:
        with pytest.raises(ApplicationError) as failure:
            ActivityEnvironment().run(activities.persist_statement, request)
    finally:
        await activities.close()
    error = failure.value
    assert error.type == "DatabaseError" and not error.non_retryable
    assert error.message.startswith(f"database error while storing {ACCOUNT} {BILL_DATE}: ")
    assert "IntegrityError" in error.message or "UniqueViolation" in error.message
    assert error.__cause__ is None  # nothing of the database's own message travels along
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("storing failed, to be retried: ")]
    # Where it failed, not what was in the row (PostgreSQL's DETAIL would name the serial).
    assert "SQLITE_CONSTRAINT_PRIMARYKEY" in error.message or (
        "(SQLSTATE 23505) on table transactions constraint transactions_pkey" in error.message
    )
    for value in ("S77", "98765.43", "6217000000000042", "上海某某科技有限公司", "货款"):
        assert value not in error.message and value not in logged.getMessage()
    assert count_rows(database_url) == 0


def test_a_load_heartbeats_its_progress_only_once_a_heartbeat_is_due() -> None:
    env = ActivityEnvironment()
    beats: list[tuple[object, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)

    def load() -> None:
        not_yet, due = HeartbeatWhenDue(timedelta(hours=1)), HeartbeatWhenDue(timedelta(0))
        not_yet(100)
        due(200)
        due(300)

    env.run(load)

    assert beats == [(200,), (300,)]
