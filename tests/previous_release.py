"""The schema of the release before migrations (commit d289433), frozen: what its ``create_schema``
made with create_all, for the tests of the upgrade from it. Its money and time types are the
ones it stored with, unchanged since."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    Engine,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)

from bankrecon.store.db import Money, UtcDateTime

metadata = MetaData()

statements = Table(
    "statements",
    metadata,
    Column("account_no", String(32), nullable=False),
    Column("bill_date", Date, nullable=False),
    Column("bank_code", String(4), nullable=False),
    Column("currency", String(3)),
    Column("opening_balance", Money),
    Column("closing_balance", Money),
    Column("credit_count", Integer, nullable=False),
    Column("debit_count", Integer, nullable=False),
    Column("credit_total", Money, nullable=False),
    Column("debit_total", Money, nullable=False),
    Column("transaction_count", Integer, nullable=False),
    Column("source_sha256", String(64)),
    Column("fetched_at", UtcDateTime, nullable=False),
    Column("persisted_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("account_no", "bill_date", name="statements_pkey"),
)

transactions = Table(
    "transactions",
    metadata,
    Column("account_no", String(32), nullable=False),
    Column("bill_date", Date, nullable=False),
    Column("serial_no", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("traded_at", UtcDateTime, nullable=False),
    Column("direction", String(1), nullable=False),
    Column("amount", Money, nullable=False),
    Column("balance_after", Money, nullable=False),
    Column("counterparty_account", String(64)),
    Column("counterparty_name", String(256)),
    Column("memo", String(512)),
    PrimaryKeyConstraint("account_no", "bill_date", "serial_no", name="transactions_pkey"),
    sqlite_with_rowid=False,
)

bank_windows = Table(
    "bank_windows",
    metadata,
    Column("merchant_id", String(64), primary_key=True),
    Column("next_request_at", UtcDateTime, nullable=False),
    Column("holder", String(64)),
)

bank_window_queue = Table(
    "bank_window_queue",
    metadata,
    Column("merchant_id", String(64), nullable=False),
    Column("workflow_id", String(255), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("waiting_since", UtcDateTime, nullable=False),
    Column("seen_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("merchant_id", "workflow_id", "run_id", name="bank_window_queue_pkey"),
)

bank_requests = Table(
    "bank_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("merchant_id", String(64), nullable=False),
    Column("account_no", String(32), nullable=False),
    Column("bill_date", Date, nullable=False),
    Column("workflow_id", String(255), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("activity_attempt", Integer, nullable=False),
    Column("sent_at", UtcDateTime, nullable=False),
    Column("answered_at", UtcDateTime),
    Column("outcome", String(64)),
    Index("bank_requests_workflow_run", "workflow_id", "run_id"),
)

merchant_pauses = Table(
    "merchant_pauses",
    metadata,
    Column("merchant_id", String(64), primary_key=True),
    Column("paused_at", UtcDateTime, nullable=False),
    Column("reason", String(256), nullable=False),
)

cancelled_statements = Table(
    "cancelled_statements",
    metadata,
    Column("account_no", String(32), nullable=False),
    Column("bill_date", Date, nullable=False),
    Column("cancelled_at", UtcDateTime, nullable=False),
    Column("workflow_id", String(255), nullable=False),
    Column("run_id", String(64), nullable=False),
    PrimaryKeyConstraint("account_no", "bill_date", name="cancelled_statements_pkey"),
)


def create_previous_release_schema(engine: Engine) -> None:
    """The database a worker of the previous release left: its tables, no ``alembic_version``."""
    metadata.create_all(engine)
