"""Canonical statements and transactions, which every source kind stores into (issue 11).

statements: the source kind (existing rows are the reference bank's), the fee total of a
source's summary and the summary itself; room for other sources' codes and account names.
transactions: the merchant's reference, the fee and the source's whole line (details);
balance_after nullable, as channel bills carry none; longer serials and account names, and
unbounded counterparty and memo text. merchant_pauses: an operator's reason of any length.

PostgreSQL alters in place: adding a column with a constant default, widening a VARCHAR and
VARCHAR to TEXT rewrite no table. SQLite cannot alter a column, so its tables with one to
change are copied into a new table; transactions keeps its WITHOUT ROWID layout.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Every decimal kept as written: NUMERIC without precision or scale, SQLite's text.
EXACT_DECIMAL = sa.Numeric().with_variant(sa.Text(), "sqlite")
MONEY = sa.Numeric(20, 2).with_variant(sa.BigInteger(), "sqlite")


def _widen(batch: BatchOperations, column: str, before: sa.String, after: int | None) -> None:
    """``column`` (nullable or not, as it is) to VARCHAR(after), or TEXT for None."""
    batch.alter_column(column, existing_type=before, type_=sa.Text() if after is None else sa.String(after))


def upgrade() -> None:
    with op.batch_alter_table("statements") as batch:
        batch.add_column(
            sa.Column("source_kind", sa.String(32), nullable=False, server_default=sa.text("'refbank'"))
        )
        batch.add_column(sa.Column("fee_total", EXACT_DECIMAL))
        batch.add_column(sa.Column("summary", sa.JSON()))
        _widen(batch, "account_no", sa.String(32), 64)
        _widen(batch, "bank_code", sa.String(4), 64)
    with op.batch_alter_table("transactions", table_kwargs={"sqlite_with_rowid": False}) as batch:
        batch.add_column(sa.Column("reference", sa.Text()))
        batch.add_column(sa.Column("fee", EXACT_DECIMAL))
        batch.add_column(sa.Column("details", sa.JSON()))
        batch.alter_column("balance_after", existing_type=MONEY, nullable=True)
        _widen(batch, "account_no", sa.String(32), 64)
        _widen(batch, "serial_no", sa.String(32), 128)
        _widen(batch, "counterparty_account", sa.String(64), None)
        _widen(batch, "counterparty_name", sa.String(256), None)
        _widen(batch, "memo", sa.String(512), None)
    for table in ("bank_requests", "cancelled_statements"):
        with op.batch_alter_table(table) as batch:
            _widen(batch, "account_no", sa.String(32), 64)
    with op.batch_alter_table("merchant_pauses") as batch:
        _widen(batch, "reason", sa.String(256), None)
