"""Canonical rows: written by any source's decode, stored exactly on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bankrecon.models import PersistRequest, StatementKey, StatementTotals
from bankrecon.statements.canonical import CanonicalRecordWriter, CanonicalRow
from bankrecon.statements.common import CHINA_STANDARD_TIME, StatementDamaged
from bankrecon.store.db import make_engine
from bankrecon.store.persistence import load_statement, save_statement
from bankrecon.store.schema import prepare_schema

KEY = StatementKey(account_no="wx-main-trade", bill_date=date(2026, 11, 24))
AWKWARD = "tab\there, line\nbreak, CR\r, backslash \\ and \\N, 引号\"'; 䶮𠀀"
ROWS = [
    CanonicalRow(
        serial_no="4200000612032130748613220688",
        traded_at=datetime(2026, 11, 24, 13, 51, 31, tzinfo=CHINA_STANDARD_TIME),
        direction="C",
        amount=Decimal("12345678901234.56"),
        fee=Decimal("0.00600"),
        reference="2021WERUN1647840687637",
        memo=AWKWARD,
        details={"商户订单号": "2021WERUN1647840687637", "手续费": "0.00600", "备注": AWKWARD},
    ),
    CanonicalRow(
        serial_no="50300000012026112400000000001",
        traded_at=datetime(2026, 11, 24, 23, 59, 59, tzinfo=CHINA_STANDARD_TIME),
        direction="D",
        amount=Decimal("0.01"),
        fee=Decimal("-0.00001"),
        balance_after=Decimal("-5.00"),
        counterparty_name="",  # an empty field is NULL
    ),
    CanonicalRow(
        serial_no="voucher-only",
        traded_at=datetime(2026, 11, 24, 0, 0, tzinfo=CHINA_STANDARD_TIME),
        direction="C",
        amount=Decimal("0.00"),
    ),
]
TOTALS = StatementTotals(
    currency="CNY",
    opening_balance=None,
    closing_balance=None,
    credit_count=2,
    debit_count=1,
    credit_total=Decimal("12345678901234.56"),
    debit_total=Decimal("0.01"),
    transaction_count=3,
    fee_total=Decimal("0.00599"),
    summary={"总交易单数": "3", "手续费总金额": "0.00599"},
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    prepare_schema(engine)
    yield engine
    engine.dispose()


def _records(data_dir: Path, rows: list[CanonicalRow]) -> str:
    path = data_dir / "records" / "canonical.lines"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        writer = CanonicalRecordWriter(out)
        for row in rows:
            writer.write(row)
        writer.flush()
    return str(path.relative_to(data_dir))


def test_every_field_is_stored_as_written_on_both_databases(engine: Engine, tmp_path: Path) -> None:
    request = PersistRequest(
        statement=KEY,
        bank_code="SUCCESS",
        totals=TOTALS,
        records_file=_records(tmp_path, ROWS),
        records_format="canonical",
        source_sha256="ab" * 32,
        fetched_at=datetime(2026, 11, 25, 2, 0, tzinfo=UTC),
    )

    result = save_statement(engine, tmp_path, request, source_kind="wechatpay")

    assert (result.written, result.transaction_count) == (True, 3)
    statement, rows = load_statement(engine, KEY)
    assert statement is not None
    assert (statement.source_kind, statement.bank_code, statement.fee_total, statement.summary) == (
        "wechatpay",
        "SUCCESS",
        Decimal("0.00599"),
        {"总交易单数": "3", "手续费总金额": "0.00599"},
    )
    assert str(statement.fee_total) == "0.00599"
    stored = [
        CanonicalRow(
            serial_no=row.serial_no,
            traded_at=row.traded_at,
            direction=row.direction,
            amount=row.amount,
            fee=row.fee,
            balance_after=row.balance_after,
            reference=row.reference,
            counterparty_account=row.counterparty_account,
            counterparty_name=row.counterparty_name,
            memo=row.memo,
            details=row.details,
        )
        for row in rows
    ]
    assert stored == [ROWS[0], replace(ROWS[1], counterparty_name=None), ROWS[2]]
    assert [str(row.fee) for row in rows] == ["0.00600", "-0.00001", "None"]
    assert [row.seq for row in rows] == [1, 2, 3]


@pytest.mark.parametrize(
    ("row", "rule"),
    [
        (CanonicalRow(ROWS[2].serial_no, ROWS[2].traded_at, "C", Decimal("1.00"), memo="a\x00b"), "text"),
        (CanonicalRow(ROWS[2].serial_no, ROWS[2].traded_at, "C", Decimal("-1.00")), "amount"),
        (CanonicalRow(ROWS[2].serial_no, ROWS[2].traded_at, "C", Decimal("1.001")), "amount"),
        (CanonicalRow("x" * 129, ROWS[2].traded_at, "C", Decimal("1.00")), "serial"),
        (CanonicalRow("", ROWS[2].traded_at, "C", Decimal("1.00")), "serial"),
    ],
)
def test_what_the_tables_cannot_hold_is_damage(tmp_path: Path, row: CanonicalRow, rule: str) -> None:
    with (tmp_path / "out").open("wb") as out, pytest.raises(StatementDamaged) as damage:
        CanonicalRecordWriter(out).write(row)
    assert damage.value.rule == rule
