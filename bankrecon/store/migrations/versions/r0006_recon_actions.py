"""Reconciliation's actions: notes, pairs, write-offs, reopenings, matches across days (issue 20).

The operators' notes of recon_notes become its first actions (``explain``), by whoever wrote
them, which that table did not record; recon_notes goes.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(20, 2).with_variant(sa.BigInteger(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
ACTION_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
IDENTITY = "account_no, recon_date, state, side, reference, direction"
# Who wrote a note before the actions recorded it.
NOTES_BY = "(before revision 0006)"


def upgrade() -> None:
    op.create_table(
        "recon_actions",
        sa.Column("action_id", ACTION_ID, primary_key=True, autoincrement=True),
        sa.Column("account_no", sa.String(64), nullable=False),
        sa.Column("recon_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("direction", sa.String(1), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("acted_by", sa.String(128), nullable=False),
        sa.Column("acted_at", UTC_DATETIME, nullable=False),
        sa.Column("item_id", ACTION_ID),
        sa.Column("other_item_id", ACTION_ID),
        sa.Column("other_day", sa.Date()),
        sa.Column("ledger_account", sa.String(64)),
        sa.Column("difference", MONEY),
    )
    op.create_index(
        "recon_actions_identity", "recon_actions", ["account_no", "recon_date", "reference", "action_id"]
    )
    op.execute(
        sa.text(
            f"INSERT INTO recon_actions ({IDENTITY}, action, reason, acted_by, acted_at) "
            f"SELECT {IDENTITY}, 'explain', note, :notes_by, noted_at FROM recon_notes ORDER BY noted_at"
        ).bindparams(notes_by=NOTES_BY)
    )
    op.drop_table("recon_notes")
