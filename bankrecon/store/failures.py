"""Dates whose last run failed for good: remembered in the database, since Temporal forgets closed runs.

The nightly run's id reuse policy allows a new run after a failed one. For a failure that
does not heal by itself (the bank refused the request for good, the account is not
configured, every download was damaged) a new run would only fail again, spend one of the
merchant's bank windows and page the operators every night; this record keeps the
catch-up from starting the date until an operator starts it (``bankrecon refetch``,
``backfill``).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, delete, insert, select

from bankrecon.models import StatementFailure, StatementKey
from bankrecon.store.db import failed_statements, rows_of


def record_failure(engine: Engine, failure: StatementFailure) -> None:
    """Remember the failed date; a later failure of the same date replaces the earlier one."""
    key = failure.statement
    with engine.begin() as conn:
        conn.execute(delete(failed_statements).where(rows_of(failed_statements, key)))
        conn.execute(
            insert(failed_statements).values(
                account_no=key.account_no,
                bill_date=key.bill_date,
                failed_at=failure.failed_at,
                workflow_id=failure.workflow_id,
                run_id=failure.run_id,
                error_type=failure.error_type,
                reason=failure.reason,
            )
        )


def forget_failure(engine: Engine, key: StatementKey, started_run_id: str) -> bool:
    """An operator started the date again as run ``started_run_id``: an earlier run's failure no
    longer holds (that run's own, should it have failed already, does); False if there was none."""
    with engine.begin() as conn:
        return bool(
            conn.execute(
                delete(failed_statements).where(
                    rows_of(failed_statements, key), failed_statements.c.run_id != started_run_id
                )
            ).rowcount
        )


def failed_dates(
    engine: Engine, account_no: str | None = None, bill_date: date | None = None
) -> list[StatementFailure]:
    """The dates waiting for an operator, oldest first; of one account or one date if given."""
    query = select(failed_statements).order_by(failed_statements.c.bill_date, failed_statements.c.account_no)
    if account_no is not None:
        query = query.where(failed_statements.c.account_no == account_no)
    if bill_date is not None:
        query = query.where(failed_statements.c.bill_date == bill_date)
    with engine.connect() as conn:
        return [
            StatementFailure(
                statement=StatementKey(account_no=row.account_no, bill_date=row.bill_date),
                workflow_id=row.workflow_id,
                run_id=row.run_id,
                failed_at=row.failed_at,
                error_type=row.error_type,
                reason=row.reason,
            )
            for row in conn.execute(query)
        ]
