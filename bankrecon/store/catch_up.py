"""Which statements of a run of days are not stored yet, nor cancelled, nor failed for good: what a
nightly run must start, a page at a time."""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, timedelta

from sqlalchemy import Connection, Engine, select

from bankrecon.models import StatementKey
from bankrecon.store.db import cancelled_statements, failed_statements, statements

# Dates an operator cancelled, and dates whose last run failed for good, wait for an operator.
SETTLED = (statements, cancelled_statements, failed_statements)
# Looked up by primary key (account, date), this many accounts a query: far below any
# database's limit on a statement's parameters, whatever the number of accounts.
ACCOUNTS_PER_QUERY = 500


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def missing_statements(
    engine: Engine,
    accounts: list[str],
    first: date,
    last: date,
    *,
    after: StatementKey | None = None,
    limit: int | None = None,
) -> list[StatementKey]:
    """Every (account, date) from ``first`` to ``last`` neither stored, nor cancelled by an operator,
    nor failed for good; oldest date first, then by account. Only those after ``after`` in that
    order, and at most ``limit`` of them: the database is read no further than the page needs."""
    ordered = sorted(accounts)
    found: list[StatementKey] = []
    with engine.connect() as conn:
        for day in days(first if after is None else max(first, after.bill_date), last):
            start = 0
            if after is not None and day == after.bill_date:
                start = bisect_right(ordered, after.account_no)
            for offset in range(start, len(ordered), ACCOUNTS_PER_QUERY):
                chunk = ordered[offset : offset + ACCOUNTS_PER_QUERY]
                settled = _settled(conn, chunk, day)
                found += [StatementKey(account_no=a, bill_date=day) for a in chunk if a not in settled]
                if limit is not None and len(found) >= limit:
                    return found[:limit]
    return found


def _settled(conn: Connection, accounts: list[str], day: date) -> set[str]:
    """Which of ``accounts`` need nothing started for ``day``."""
    return {
        account
        for table in SETTLED
        for account in conn.execute(
            select(table.c.account_no).where(table.c.bill_date == day, table.c.account_no.in_(accounts))
        ).scalars()
    }
