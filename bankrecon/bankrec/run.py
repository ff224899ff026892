"""One bank run: the cash book against the bank statement for an account, up to a day, stored whole.

A run of day D reads what the account's last run before D did not: the cash book's days and the
statement's lines after that run's day up to D (from the day after ``opening_date`` for the
first), and takes that run's open items along. Items of up to ``carry_days`` before D are matched
again with the new lines; older ones stay open as they were. So the run of D holds every item
open at the end of D, and its 余额调节表 needs nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, Row, insert, select
from sqlalchemy.exc import DBAPIError

from bankrecon.bankrec.cashbook import cashbook_entries
from bankrecon.bankrec.config import BankAccountRecon, FileCashbook
from bankrecon.bankrec.entries import BANK, BOOK, Entry
from bankrecon.bankrec.matching import MatchRules, match_entries
from bankrecon.bankrec.models import BANK_RUN, MATCHED, OPEN_STATES
from bankrecon.bankrec.tables import bankrec_balances
from bankrecon.recon.fingerprint import LinesFingerprint
from bankrecon.recon.models import ReconDay, ReconRunRequest
from bankrecon.recon.run import record_run
from bankrecon.recon.tables import recon_items, recon_runs
from bankrecon.store.db import statements, transactions

# The sources whose statements carry balances; a channel's bill has none to reconcile to.
BALANCED_SOURCES = ("refbank", "sftp")
PAST_CARRY = "past carry_days: no longer matched"


class BankRecRefused(Exception):
    """The account cannot have a bank reconciliation (a channel's, no balance); the message says why."""


def previous_run(conn: Connection, account_no: str, day: date) -> Row[Any, Any, Any] | None:
    """The account's latest bank run of the nearest day before ``day``, with its balances."""
    r = recon_runs.c
    return conn.execute(
        select(r.run_id, r.recon_date, bankrec_balances.c.book_balance)
        .join(bankrec_balances, bankrec_balances.c.run_id == r.run_id)
        .where(r.account_no == account_no, r.kind == BANK_RUN, r.recon_date < day)
        .order_by(r.recon_date.desc(), r.finished_at.desc(), r.run_id.desc())
        .limit(1)
    ).first()


def _days(first: date, last: date) -> Iterator[date]:
    for ordinal in range(first.toordinal(), last.toordinal() + 1):
        yield date.fromordinal(ordinal)


def first_book_day(conn: Connection, account: BankAccountRecon, day: ReconDay) -> date:
    """The first cash-book day the run of ``day`` reads: the day after the previous run's (or the opening)."""
    previous = previous_run(conn, day.account_no, day.recon_date)
    start = previous.recon_date if previous is not None else account.cashbook.opening_date
    return start + timedelta(days=1)


def statement_balance(conn: Connection, account_no: str, day: date) -> tuple[date, Decimal]:
    """The closing balance at the end of ``day``: its statement's, or the last one's before it
    where the day's carries none (a day without transactions); BankRecRefused for a channel's."""
    s = statements.c
    stored = conn.execute(
        select(s.source_kind).where(s.account_no == account_no, s.bill_date == day)
    ).scalar()
    if stored is not None and stored not in BALANCED_SOURCES:
        raise BankRecRefused(
            f"{account_no} is a {stored} account: its bills carry no balance, so it has no "
            "bank reconciliation (only refbank, MT940 and camt.053 statements have one)"
        )
    found = conn.execute(
        select(s.bill_date, s.closing_balance)
        .where(s.account_no == account_no, s.bill_date <= day, s.closing_balance.is_not(None))
        .order_by(s.bill_date.desc())
        .limit(1)
    ).first()
    if found is None:
        raise BankRecRefused(f"{account_no} has no statement with a closing balance up to {day}")
    return found.bill_date, found.closing_balance


def inputs_missing(engine: Engine, account: BankAccountRecon, day: ReconDay) -> str | None:
    """What the run of ``day`` still waits for (its statement, a cash-book file); None: nothing."""
    with engine.connect() as conn:
        stored = conn.execute(
            select(statements.c.bill_date).where(
                statements.c.account_no == day.account_no, statements.c.bill_date == day.recon_date
            )
        ).first()
        if stored is None:
            return f"the statement of {day.account_no} for {day.recon_date} is not stored yet"
        statement_balance(conn, day.account_no, day.recon_date)
        first = first_book_day(conn, account, day)
    cashbook = account.cashbook
    if isinstance(cashbook, FileCashbook):
        for book_day in _days(first, day.recon_date):
            if not cashbook.file_for(book_day).is_file():
                return f"the cash book for {book_day} is not there yet: {cashbook.file_for(book_day)}"
    return None


def _bank_lines(conn: Connection, account_no: str, first: date, last: date) -> list[Entry]:
    t = transactions.c
    rows = conn.execute(
        select(
            t.bill_date, t.seq, t.serial_no, t.direction, t.amount, t.counterparty_name,
            t.counterparty_account, t.memo, t.reference,
        )
        .where(t.account_no == account_no, t.bill_date.between(first, last))
        .order_by(t.bill_date, t.seq)
    )  # fmt: skip
    return [
        Entry(
            side=BANK, booked_on=row.bill_date, seq=row.seq, direction=row.direction, amount=row.amount,
            key=row.serial_no, line_ref=row.serial_no, counterparty_name=row.counterparty_name,
            counterparty_account=row.counterparty_account, memo=row.memo, reference=row.reference,
        )
        for row in rows
    ]  # fmt: skip


def _carried(conn: Connection, run_id: str) -> list[Entry]:
    """The open items of an earlier run, as the lines they were (in the order they were stored)."""
    i = recon_items.c
    rows = conn.execute(
        select(recon_items).where(i.run_id == run_id, i.state.in_(OPEN_STATES.values())).order_by(i.item_id)
    )
    return [
        Entry(
            side=row.side, booked_on=row.booked_on, seq=seq, direction=row.direction, amount=row.amount,
            key=row.reference, line_ref=row.line_ref, counterparty_name=row.counterparty_name,
            counterparty_account=row.counterparty_account, memo=row.memo, reference=row.shared_reference,
        )
        for seq, row in enumerate(rows, start=1)
    ]  # fmt: skip


def _fingerprint(entries: Iterable[Entry]) -> LinesFingerprint:
    fingerprint = LinesFingerprint()
    for e in entries:
        fields = (e.booked_on, e.key, e.direction, e.amount, e.counterparty_account, e.counterparty_name,
                  e.memo, e.reference)  # fmt: skip
        fingerprint.add("|".join("" if part is None else str(part) for part in fields))
    return fingerprint


def _item(run_id: str, day: ReconDay, entry: Entry, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "account_no": day.account_no,
        "recon_date": day.recon_date,
        "state": state,
        "side": entry.side,
        "reference": entry.key,
        "direction": entry.direction,
        "amount": entry.amount,
        "line_ref": entry.line_ref,
        "booked_on": entry.booked_on,
        "counterparty_name": entry.counterparty_name,
        "counterparty_account": entry.counterparty_account,
        "memo": entry.memo,
        "shared_reference": entry.reference,
        "rule": None,
        "match_no": None,
        "counterpart_total": None,
        "detail": None,
        **extra,
    }


def _store_items(conn: Connection, items: list[dict[str, Any]]) -> None:
    """The run's items: by COPY into PostgreSQL (a parameter set a row costs the driver a round
    each, three times the matching), by executemany into SQLite."""
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        if items:
            conn.execute(insert(recon_items), items)
        return
    columns = list(items[0]) if items else []
    statement = f"COPY recon_items ({', '.join(columns)}) FROM STDIN"
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for item in items:
                copy.write_row([item[name] for name in columns])
    except psycopg.Error as exc:
        # Past SQLAlchemy: wrapped as it would have, its parameters (the lines) hidden.
        if raw.broken:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            statement, None, exc, psycopg.Error, hide_parameters=True,
            connection_invalidated=raw.broken, dialect=conn.dialect,
        ) from None  # fmt: skip


def reconcile_bank_day(engine: Engine, account: BankAccountRecon, request: ReconRunRequest) -> str:
    """Match the account up to the day and store the run in one transaction; its run id. A retry
    of a stored run stores nothing again."""
    day = request.day
    started_at = datetime.now(UTC)
    with engine.begin() as conn:
        if conn.execute(select(recon_runs.c.run_id).where(recon_runs.c.run_id == request.run_id)).first():
            return request.run_id
        statement_date, bank_balance = statement_balance(conn, day.account_no, day.recon_date)
        previous = previous_run(conn, day.account_no, day.recon_date)
        first = first_book_day(conn, account, day)
        book = [
            entry
            for book_day in _days(first, day.recon_date)
            for entry in cashbook_entries(account.cashbook, day.account_no, book_day)
        ]
        bank = _bank_lines(conn, day.account_no, first, day.recon_date)
        carried = _carried(conn, previous.run_id) if previous is not None else []
        oldest = day.recon_date - timedelta(days=account.carry_days)
        kept = [entry for entry in carried if entry.booked_on < oldest]
        matching = match_entries(
            [*(e for e in carried if e.side == BOOK and e.booked_on >= oldest), *book],
            [*(e for e in carried if e.side == BANK and e.booked_on >= oldest), *bank],
            MatchRules(account.date_window_days, account.group_max, account.voucher_pattern),
        )
        items = []
        for number, match in enumerate(matching.matches, start=1):
            for entry in (*match.book, *match.bank):
                items.append(_item(request.run_id, day, entry, MATCHED, rule=match.rule, match_no=number))
        for entry in (*matching.open_book, *matching.open_bank):
            items.append(_item(request.run_id, day, entry, OPEN_STATES[(entry.side, entry.direction)]))
        for entry in kept:
            state = OPEN_STATES[(entry.side, entry.direction)]
            items.append(_item(request.run_id, day, entry, state, detail=PAST_CARRY))
        _store_items(conn, items)
        opening = previous.book_balance if previous is not None else account.cashbook.opening_balance
        book_fingerprint, bank_fingerprint = _fingerprint(book), _fingerprint(bank)
        record_run(
            conn, request, started_at, book_fingerprint, bank_fingerprint, account.model_dump_json(), BANK_RUN
        )
        conn.execute(
            insert(bankrec_balances).values(
                run_id=request.run_id,
                as_of=day.recon_date,
                statement_date=statement_date,
                bank_balance=bank_balance,
                book_balance=opening + sum((entry.signed for entry in book), Decimal("0.00")),
                book_from=first,
            )
        )
    return request.run_id
