"""The cash book for a bank account (银行存款日记账), read (never written) from the company's database
or from a file per day with the ledger's readers (bankrecon/recon/ledger.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

from bankrecon.bankrec.config import SqlCashbook
from bankrecon.bankrec.entries import BOOK, Entry
from bankrecon.recon.config import FileLedger
from bankrecon.recon.ledger import CENT, LedgerError, decimal_of, file_rows, sql_rows, text_of

REQUIRED_COLUMNS = (
    "booked_on", "amount", "direction", "counterparty_name", "counterparty_account", "memo", "voucher_no",
)  # fmt: skip
DIRECTIONS = {
    "c": "C", "receipt": "C", "收": "C", "收入": "C", "借": "C",
    "d": "D", "payment": "D", "付": "D", "支出": "D", "贷": "D",
}  # fmt: skip
BOOK_NAME = "cash book"


def cashbook_entries(source: SqlCashbook | FileLedger, account_no: str, day: date) -> Iterator[Entry]:
    """The cash book's entries of ``day``; LedgerError names the line of a wrong one,
    LedgerMissing says the day's file is not there."""
    rows = (
        sql_rows(source, account_no, day, REQUIRED_COLUMNS, BOOK_NAME)
        if isinstance(source, SqlCashbook)
        else file_rows(source, day, REQUIRED_COLUMNS, BOOK_NAME)
    )
    for seq, (where, row) in enumerate(rows, start=1):
        entry = _entry(row, where, seq)
        if entry.booked_on != day:
            raise LedgerError(f"{where}: booked_on {entry.booked_on} is not the day read ({day})")
        yield entry


def _entry(row: Mapping[str, Any], where: str, seq: int) -> Entry:
    direction = DIRECTIONS.get(text_of(row["direction"]).lower())
    if direction is None:
        raise LedgerError(f"{where}: direction {row['direction']!r} is none of C, D, receipt, payment")
    amount = decimal_of(row["amount"], CENT, f"{where}: amount")
    if amount <= 0:
        raise LedgerError(f"{where}: amount {amount} is not positive (a payment says so in its direction)")
    voucher_no = text_of(row["voucher_no"])
    return Entry(
        side=BOOK,
        booked_on=_day(row["booked_on"], where),
        seq=seq,
        direction=direction,
        amount=amount,
        key=voucher_no,
        line_ref=where,
        counterparty_name=text_of(row["counterparty_name"]) or None,
        counterparty_account=text_of(row["counterparty_account"]) or None,
        memo=text_of(row["memo"]) or None,
        reference=text_of(row.get("reference")) or None,
    )


def _day(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(text_of(value)[:10])
    except ValueError:
        raise LedgerError(f"{where}: booked_on {value!r} is not a date (YYYY-MM-DD)") from None
