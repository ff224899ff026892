"""Dates whose last run failed for good, which the nightly catch-up leaves to an operator (issue 10).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")


def upgrade() -> None:
    op.create_table(
        "failed_statements",
        sa.Column("account_no", sa.String(64), nullable=False),
        sa.Column("bill_date", sa.Date(), nullable=False),
        sa.Column("failed_at", UTC_DATETIME, nullable=False),
        sa.Column("workflow_id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("error_type", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("account_no", "bill_date", name="failed_statements_pkey"),
    )
