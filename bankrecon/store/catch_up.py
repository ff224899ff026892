"""Which statements of a run of days are not stored yet (nor cancelled): what a nightly run must start."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Engine, select

from bankrecon.models import StatementKey
from bankrecon.store.db import cancelled_statements, statements


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def missing_statements(engine: Engine, accounts: list[str], first: date, last: date) -> list[StatementKey]:
    """Every (account, date) from ``first`` to ``last`` neither stored nor cancelled by an operator,
    oldest date first."""
    if not accounts:
        return []
    with engine.connect() as conn:
        settled = {
            (row.account_no, row.bill_date)
            for table in (statements, cancelled_statements)
            for row in conn.execute(
                select(table.c.account_no, table.c.bill_date).where(
                    table.c.bill_date.between(first, last),
                    table.c.account_no.in_(accounts),
                )
            )
        }
    return [
        StatementKey(account_no=account, bill_date=day)
        for day in days(first, last)
        for account in accounts
        if (account, day) not in settled
    ]
