"""Archives in the database, for workers on several hosts without a shared DATA_DIR (issue 12).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stored_archives",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("stored_at", UTC_DATETIME, nullable=False),
    )
    op.create_table(
        "archive_chunks",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "seq", name="archive_chunks_pkey"),
    )
    if op.get_context().dialect.name == "postgresql":
        # A zip does not compress again: PostgreSQL's attempt at each chunk would only cost time.
        op.execute("ALTER TABLE archive_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("archive_chunks")
    op.drop_table("stored_archives")
