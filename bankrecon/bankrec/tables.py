"""Bank reconciliation's own table, on the store's shared metadata (migration 0006 makes it); its
runs and items are reconciliation's (recon_runs with kind 'bank', recon_items)."""

from __future__ import annotations

from sqlalchemy import Column, Date, String, Table

from bankrecon.store.db import Money, metadata

# The two balances a bank run ends with, from which its 余额调节表 is drawn.
bankrec_balances = Table(
    "bankrec_balances",
    metadata,
    Column("run_id", String(64), primary_key=True),  # recon_runs.run_id
    Column("as_of", Date, nullable=False),  # the run's day
    Column("statement_date", Date, nullable=False),  # the statement whose closing balance it is
    Column("bank_balance", Money, nullable=False),  # that statement's closing balance
    Column("book_balance", Money, nullable=False),  # opening balance plus the cash book to as_of
    Column("book_from", Date, nullable=False),  # the first day of the cash book this run read
)
