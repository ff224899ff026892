"""The 银行存款余额调节表 of a bank account at the end of a day, drawn from that day's latest run.

Bank side: the statement's closing balance + book_credit_not_in_bank − book_debit_not_in_bank.
Book side: the book balance + bank_credit_not_booked − bank_debit_not_booked. Equal when every
item is accounted for; their difference is what nothing explains.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Engine, func, select, type_coerce

from bankrecon.bankrec.models import BANK_RUN, MATCHED, OPEN_STATES, BankRunSummary
from bankrecon.bankrec.tables import bankrec_balances
from bankrecon.recon.models import ReconDay, StateTotal
from bankrecon.recon.tables import recon_items, recon_runs
from bankrecon.store.db import Money

ZERO = Decimal("0.00")


class BalanceUnavailable(Exception):
    """There is no bank run to draw the statement from; the message says how to make one."""


@dataclass(frozen=True)
class OpenItem:
    item_id: int
    state: str
    booked_on: date
    amount: Decimal
    counterparty: str  # the name, else the account
    memo: str
    reference: str  # the book's voucher number, the bank's serial number
    age_days: int  # days from its date to the statement's
    detail: str


@dataclass(frozen=True)
class BalanceStatement:
    account_no: str
    as_of: date
    run_id: str
    statement_date: date  # the statement whose closing balance is the bank's
    bank_balance: Decimal
    book_balance: Decimal
    items: dict[str, list[OpenItem]]  # per state of OPEN_STATES, each in its order

    def total(self, state: str) -> Decimal:
        return sum((item.amount for item in self.items.get(state, [])), ZERO)

    @property
    def adjusted_bank_balance(self) -> Decimal:
        return (
            self.bank_balance + self.total("book_credit_not_in_bank") - self.total("book_debit_not_in_bank")
        )

    @property
    def adjusted_book_balance(self) -> Decimal:
        return self.book_balance + self.total("bank_credit_not_booked") - self.total("bank_debit_not_booked")

    @property
    def difference(self) -> Decimal:
        return self.adjusted_bank_balance - self.adjusted_book_balance


def month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def latest_bank_run(engine: Engine, account_no: str, day: date) -> str | None:
    r = recon_runs.c
    with engine.connect() as conn:
        return conn.execute(
            select(r.run_id)
            .where(r.account_no == account_no, r.recon_date == day, r.kind == BANK_RUN)
            .order_by(r.finished_at.desc(), r.run_id.desc())
            .limit(1)
        ).scalar()


def balance_statement(engine: Engine, run_id: str) -> BalanceStatement:
    i = recon_items.c
    with engine.connect() as conn:
        balances = conn.execute(select(bankrec_balances).where(bankrec_balances.c.run_id == run_id)).first()
        account_no = conn.execute(
            select(recon_runs.c.account_no).where(recon_runs.c.run_id == run_id)
        ).scalar()
        if balances is None or account_no is None:
            raise BalanceUnavailable(f"no bank reconciliation run {run_id}")
        rows = conn.execute(
            select(recon_items)
            .where(i.run_id == run_id, i.state.in_(OPEN_STATES.values()))
            .order_by(i.booked_on, i.item_id)
        ).all()
    items: dict[str, list[OpenItem]] = {state: [] for state in OPEN_STATES.values()}
    for row in rows:
        items[row.state].append(
            OpenItem(
                item_id=row.item_id,
                state=row.state,
                booked_on=row.booked_on,
                amount=row.amount,
                counterparty=row.counterparty_name or row.counterparty_account or "",
                memo=row.memo or "",
                reference=row.reference,
                age_days=(balances.as_of - row.booked_on).days,
                detail=row.detail or "",
            )
        )
    return BalanceStatement(
        account_no=account_no,
        as_of=balances.as_of,
        run_id=run_id,
        statement_date=balances.statement_date,
        bank_balance=balances.bank_balance,
        book_balance=balances.book_balance,
        items=items,
    )


def day_balance(engine: Engine, account_no: str, day: date) -> BalanceStatement:
    """The statement at the end of ``day``, from its latest run; BalanceUnavailable if it has none."""
    run_id = latest_bank_run(engine, account_no, day)
    if run_id is None:
        raise BalanceUnavailable(
            f"{account_no} has no bank reconciliation for {day} yet; to run it: "
            f"bankrecon recon {account_no} {day} --rerun"
        )
    return balance_statement(engine, run_id)


def bank_run_summary(engine: Engine, run_id: str) -> BankRunSummary:
    i = recon_items.c
    with engine.connect() as conn:
        run = conn.execute(select(recon_runs).where(recon_runs.c.run_id == run_id)).one()
        totals = conn.execute(
            select(i.state, i.side, func.count(), type_coerce(func.sum(i.amount), Money))
            .where(i.run_id == run_id)
            .group_by(i.state, i.side)
            .order_by(i.state, i.side)
        ).all()
        rules = conn.execute(
            select(i.rule, func.count(func.distinct(i.match_no)))
            .where(i.run_id == run_id, i.state == MATCHED)
            .group_by(i.rule)
            .order_by(i.rule)
        ).all()
    statement = balance_statement(engine, run_id)
    return BankRunSummary(
        run_id=run_id,
        day=ReconDay(account_no=run.account_no, recon_date=run.recon_date),
        finished_at=run.finished_at,
        totals=[StateTotal(state=s, side=side, lines=n, amount=amount) for s, side, n, amount in totals],
        rules={rule: count for rule, count in rules},
        adjusted_bank_balance=statement.adjusted_bank_balance,
        adjusted_book_balance=statement.adjusted_book_balance,
    )
