"""Dates an operator cancelled: remembered in the database, since Temporal forgets closed runs.

The id reuse policy of the nightly run allows a new run after a cancelled one, and a
cancelled run leaves the namespace after its retention anyway; this record is what keeps
the nightly catch-up from starting the date again.
"""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert

from bankrecon.models import StatementCancellation, StatementKey
from bankrecon.store.db import cancelled_statements, rows_of


def record_cancellation(engine: Engine, cancellation: StatementCancellation) -> None:
    """Remember the cancelled date; a later cancellation of the same date replaces the earlier one."""
    key = cancellation.statement
    with engine.begin() as conn:
        conn.execute(delete(cancelled_statements).where(rows_of(cancelled_statements, key)))
        conn.execute(
            insert(cancelled_statements).values(
                account_no=key.account_no,
                bill_date=key.bill_date,
                cancelled_at=cancellation.cancelled_at,
                workflow_id=cancellation.workflow_id,
                run_id=cancellation.run_id,
            )
        )


def forget_cancellation(engine: Engine, key: StatementKey) -> bool:
    """An operator started the date again; False if it was not cancelled."""
    with engine.begin() as conn:
        return bool(
            conn.execute(delete(cancelled_statements).where(rows_of(cancelled_statements, key))).rowcount
        )
