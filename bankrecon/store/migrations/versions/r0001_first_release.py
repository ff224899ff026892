"""The schema of the first release, as its create_all made it (commit d289433).

Types are spelled out per database rather than imported from db.py, so that this revision
stays what it was when db.py changes: money is NUMERIC(20, 2) in PostgreSQL and integer
cents in SQLite; times are TIMESTAMP WITH TIME ZONE in PostgreSQL and fixed-width UTC text
in SQLite.

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

MONEY = sa.Numeric(20, 2).with_variant(sa.BigInteger(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")


def upgrade() -> None:
    op.create_table(
        "statements",
        sa.Column("account_no", sa.String(32), nullable=False),
        sa.Column("bill_date", sa.Date(), nullable=False),
        sa.Column("bank_code", sa.String(4), nullable=False),
        sa.Column("currency", sa.String(3)),
        sa.Column("opening_balance", MONEY),
        sa.Column("closing_balance", MONEY),
        sa.Column("credit_count", sa.Integer(), nullable=False),
        sa.Column("debit_count", sa.Integer(), nullable=False),
        sa.Column("credit_total", MONEY, nullable=False),
        sa.Column("debit_total", MONEY, nullable=False),
        sa.Column("transaction_count", sa.Integer(), nullable=False),
        sa.Column("source_sha256", sa.String(64)),
        sa.Column("fetched_at", UTC_TIME, nullable=False),
        sa.Column("persisted_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("account_no", "bill_date", name="statements_pkey"),
    )
    op.create_table(
        "transactions",
        sa.Column("account_no", sa.String(32), nullable=False),
        sa.Column("bill_date", sa.Date(), nullable=False),
        sa.Column("serial_no", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("traded_at", UTC_TIME, nullable=False),
        sa.Column("direction", sa.String(1), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("balance_after", MONEY, nullable=False),
        sa.Column("counterparty_account", sa.String(64)),
        sa.Column("counterparty_name", sa.String(256)),
        sa.Column("memo", sa.String(512)),
        sa.PrimaryKeyConstraint("account_no", "bill_date", "serial_no", name="transactions_pkey"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "bank_windows",
        sa.Column("merchant_id", sa.String(64), primary_key=True),
        sa.Column("next_request_at", UTC_TIME, nullable=False),
        sa.Column("holder", sa.String(64)),
    )
    op.create_table(
        "bank_window_queue",
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("waiting_since", UTC_TIME, nullable=False),
        sa.Column("seen_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "workflow_id", "run_id", name="bank_window_queue_pkey"),
    )
    op.create_table(
        "bank_requests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("account_no", sa.String(32), nullable=False),
        sa.Column("bill_date", sa.Date(), nullable=False),
        sa.Column("workflow_id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("activity_attempt", sa.Integer(), nullable=False),
        sa.Column("sent_at", UTC_TIME, nullable=False),
        sa.Column("answered_at", UTC_TIME),
        sa.Column("outcome", sa.String(64)),
    )
    op.create_index("bank_requests_workflow_run", "bank_requests", ["workflow_id", "run_id"])
    op.create_table(
        "merchant_pauses",
        sa.Column("merchant_id", sa.String(64), primary_key=True),
        sa.Column("paused_at", UTC_TIME, nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
    )
    op.create_table(
        "cancelled_statements",
        sa.Column("account_no", sa.String(32), nullable=False),
        sa.Column("bill_date", sa.Date(), nullable=False),
        sa.Column("cancelled_at", UTC_TIME, nullable=False),
        sa.Column("workflow_id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("account_no", "bill_date", name="cancelled_statements_pkey"),
    )
