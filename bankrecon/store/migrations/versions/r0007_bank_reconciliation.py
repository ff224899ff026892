"""Bank reconciliation: the cash book against the bank statement (issue 22).

A run records its kind (recon_runs.kind: channel, bank); a bank run's items say the rule that
matched them and carry what later runs match them by; bankrec_balances holds each bank run's
statement and book balances.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(20, 2).with_variant(sa.BigInteger(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("recon_runs") as runs:
        runs.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default=sa.text("'channel'")))
    with op.batch_alter_table("recon_items") as items:
        items.add_column(sa.Column("rule", sa.String(16)))
        items.add_column(sa.Column("match_no", sa.Integer()))
        items.add_column(sa.Column("counterparty_name", sa.Text()))
        items.add_column(sa.Column("counterparty_account", sa.Text()))
        items.add_column(sa.Column("memo", sa.Text()))
        items.add_column(sa.Column("shared_reference", sa.Text()))
    op.create_table(
        "bankrec_balances",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("statement_date", sa.Date(), nullable=False),
        sa.Column("bank_balance", MONEY, nullable=False),
        sa.Column("book_balance", MONEY, nullable=False),
        sa.Column("book_from", sa.Date(), nullable=False),
    )
