"""Reconciliation's runs, items and operators' notes (issue 15).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(20, 2).with_variant(sa.BigInteger(), "sqlite")
EXACT_DECIMAL = sa.Numeric().with_variant(sa.Text(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
ITEM_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "recon_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("workflow_id", sa.String(255), nullable=False),
        sa.Column("account_no", sa.String(64), nullable=False),
        sa.Column("recon_date", sa.Date(), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=False),
        sa.Column("ledger_sha256", sa.String(64), nullable=False),
        sa.Column("statement_sha256", sa.String(64), nullable=False),
        sa.Column("ledger_lines", sa.Integer(), nullable=False),
        sa.Column("channel_lines", sa.Integer(), nullable=False),
        sa.Column("settings_json", sa.Text(), nullable=False),
    )
    op.create_index("recon_runs_account_date", "recon_runs", ["account_no", "recon_date", "finished_at"])
    op.create_table(
        "recon_items",
        sa.Column("item_id", ITEM_ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("account_no", sa.String(64), nullable=False),
        sa.Column("recon_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("direction", sa.String(1), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("fee", EXACT_DECIMAL),
        sa.Column("occurred_at", UTC_DATETIME),
        sa.Column("line_ref", sa.Text(), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("counterpart_total", MONEY),
        sa.Column("detail", sa.Text()),
    )
    op.create_index("recon_items_run_state", "recon_items", ["run_id", "state"])
    op.create_table(
        "recon_notes",
        sa.Column("account_no", sa.String(64), nullable=False),
        sa.Column("recon_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("direction", sa.String(1), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("noted_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint(
            "account_no", "recon_date", "state", "side", "reference", "direction", name="recon_notes_pkey"
        ),
    )
