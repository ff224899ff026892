"""The database: schema, exact money and time types, engine set-up. Same schema on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import JSON, TypeDecorator, TypeEngine

from bankrecon.models import StatementKey
from bankrecon.statements.common import stored_utc_text

CENT = Decimal("0.01")


class Money(TypeDecorator[Decimal]):
    """NUMERIC(20, 2) in PostgreSQL; integer cents in SQLite, whose NUMERIC would turn into REAL.

    Integer cents keep every cent of 15-digit amounts and keep SQLite's SUM exact.
    """

    impl = Numeric(20, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value != value.quantize(CENT):
            raise ValueError(f"money must have at most two fraction digits, got {value}")
        return int(value.scaleb(2)) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-2)
        return Decimal(value).quantize(CENT)


class UtcDateTime(TypeDecorator[datetime]):
    """TIMESTAMP WITH TIME ZONE in PostgreSQL; in SQLite fixed-width UTC text, whose order is time order."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: times are stored with their zone")
        return stored_utc_text(value) if dialect.name == "sqlite" else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f+00:00").replace(tzinfo=UTC)
        assert isinstance(value, datetime)
        return value.astimezone(UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    """A decimal kept exactly as written, every fraction digit (WeChat fees have five): NUMERIC
    without precision or scale in PostgreSQL; in SQLite the decimal's text, as NUMERIC there is REAL."""

    impl = Numeric()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not value.is_finite():
            raise ValueError(f"an exact decimal must be finite, got {value}")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


# The schema of the newest migration (bankrecon/store/migrations); tests/test_migrations.py
# checks that the two agree. A change here goes with a new migration.
metadata = MetaData()

statements = Table(
    "statements",
    metadata,
    Column("account_no", String(64), nullable=False),
    Column("bill_date", Date, nullable=False),
    # The reference bank's 0000 with a file, 2001 no transactions; another source's own word.
    Column("bank_code", String(64), nullable=False),
    Column("currency", String(3)),  # NULL only for 2001, which carries no header
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
    Column("source_kind", String(32), nullable=False, server_default=text("'refbank'")),
    Column("fee_total", ExactDecimal),  # where the source's summary carries one
    Column("summary", JSON),  # the source's summary line, by its own names, values as written
    PrimaryKeyConstraint("account_no", "bill_date", name="statements_pkey"),
)

# No foreign key to statements: PostgreSQL checks one row by row, which took longer than
# the COPY itself (4.6 s of 7.5 s for a million rows). persistence.save_statement is the one
# writer, and it inserts and deletes a statement and its transactions in one transaction.
transactions = Table(
    "transactions",
    metadata,
    Column("account_no", String(64), nullable=False),
    Column("bill_date", Date, nullable=False),
    Column("serial_no", String(128), nullable=False),
    Column("seq", Integer, nullable=False),  # position in the statement, parts in order
    Column("traded_at", UtcDateTime, nullable=False),
    Column("direction", String(1), nullable=False),
    Column("amount", Money, nullable=False),
    Column("balance_after", Money),  # channel bills carry no balance
    Column("counterparty_account", Text),
    Column("counterparty_name", Text),
    Column("memo", Text),
    Column("reference", Text),  # the merchant's own order or reference number
    Column("fee", ExactDecimal),
    Column("details", JSON),  # every field of the source's line by its header name, as written
    PrimaryKeyConstraint("account_no", "bill_date", "serial_no", name="transactions_pkey"),
    # In SQLite the rows live in the primary key's B-tree instead of beside it: a statement's
    # load writes one tree, not two.
    sqlite_with_rowid=False,
)

# One row per merchant: when its next request may be sent (see window.py).
bank_windows = Table(
    "bank_windows",
    metadata,
    Column("merchant_id", String(64), primary_key=True),
    Column("next_request_at", UtcDateTime, nullable=False),
    Column("holder", String(64)),  # the request holding the window, until it is answered
)

# The statements waiting for a merchant's window (see window.py): the window goes to whoever
# has waited longest, so a date the bank never gets ready cannot take every turn.
bank_window_queue = Table(
    "bank_window_queue",
    metadata,
    Column("merchant_id", String(64), nullable=False),
    Column("workflow_id", String(255), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("waiting_since", UtcDateTime, nullable=False),
    # Its latest attempt: a row not seen for long is forgotten.
    Column("seen_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("merchant_id", "workflow_id", "run_id", name="bank_window_queue_pkey"),
)

# Every request sent to the bank, for operators and for counting a workflow's attempts.
bank_requests = Table(
    "bank_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("merchant_id", String(64), nullable=False),
    Column("account_no", String(64), nullable=False),
    Column("bill_date", Date, nullable=False),
    Column("workflow_id", String(255), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("activity_attempt", Integer, nullable=False),
    Column("sent_at", UtcDateTime, nullable=False),
    Column("answered_at", UtcDateTime),
    Column("outcome", String(64)),  # bank code, or the transport failure
    # window.requests_sent counts a run's requests on every fetch attempt.
    Index("bank_requests_workflow_run", "workflow_id", "run_id"),
)

# Merchants an operator paused (``bankrecon pause``): their statements send nothing until resumed.
merchant_pauses = Table(
    "merchant_pauses",
    metadata,
    Column("merchant_id", String(64), primary_key=True),
    Column("paused_at", UtcDateTime, nullable=False),
    Column("reason", Text, nullable=False),
)

# Dates an operator cancelled (``temporal workflow cancel``): the nightly catch-up leaves them
# alone until ``bankrecon backfill`` or ``refetch`` starts them again.
cancelled_statements = Table(
    "cancelled_statements",
    metadata,
    Column("account_no", String(64), nullable=False),
    Column("bill_date", Date, nullable=False),
    Column("cancelled_at", UtcDateTime, nullable=False),
    Column("workflow_id", String(255), nullable=False),
    Column("run_id", String(64), nullable=False),
    PrimaryKeyConstraint("account_no", "bill_date", name="cancelled_statements_pkey"),
)

# Dates whose last run failed for a reason that does not heal by itself (the bank refused the
# request for good, the account is not configured, every download was damaged): the nightly
# catch-up leaves them alone until ``bankrecon refetch`` or ``backfill`` starts them again.
failed_statements = Table(
    "failed_statements",
    metadata,
    Column("account_no", String(64), nullable=False),
    Column("bill_date", Date, nullable=False),
    Column("failed_at", UtcDateTime, nullable=False),
    Column("workflow_id", String(255), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("error_type", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    PrimaryKeyConstraint("account_no", "bill_date", name="failed_statements_pkey"),
)


# The archives every worker reaches when ARCHIVE_STORE_URL is "database" (bankrecon/store/archives.py):
# one row per archive, written in the same transaction as its chunks, so a reader finds all or none.
stored_archives = Table(
    "stored_archives",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("stored_at", UtcDateTime, nullable=False),  # retention counts from here
)

# An archive's bytes in pieces of at most ARCHIVE_CHUNK_BYTES, read back in ``seq`` order one at
# a time: neither side ever holds the whole file.
archive_chunks = Table(
    "archive_chunks",
    metadata,
    Column("sha256", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("sha256", "seq", name="archive_chunks_pkey"),
)


SQLITE_BUSY_SECONDS = 30


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets readers run beside the one writer; several worker processes share the file.
    _use_write_ahead_log(cursor)
    cursor.close()


def _use_write_ahead_log(cursor: Any) -> None:
    # The mode is kept in the file, so only its first connection changes it. That change needs
    # the file to itself, and SQLite answers "database is locked" at once, without waiting out
    # busy_timeout, when processes that start together all try it on a new file: wait here.
    # (An in-memory database answers "memory", and keeps it.)
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# A transaction whose client vanished (a killed worker behind a half-open connection) would
# hold its locks until TCP gives up, hours later; the server ends it after this instead.
IDLE_IN_TRANSACTION_TIMEOUT = "60s"
# The client notices a dead server within about a minute.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def connection_options(url: URL) -> str:
    """The PostgreSQL options a connection of ``make_engine(url)`` starts with: the URL's own, then ours."""
    given = url.query.get("options")
    return " ".join(
        [
            *([given] if isinstance(given, str) else given or []),
            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT}",
        ]
    )


def make_engine(url: str) -> Engine:
    # hide_parameters: a database error's message would otherwise quote the rows being
    # written, and that message becomes an activity failure stored in Temporal's history.
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS}, hide_parameters=True)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    parsed = make_url(url)
    return create_engine(
        parsed.difference_update_query(["options"]),
        connect_args={**_KEEPALIVES, "options": connection_options(parsed)},
        pool_pre_ping=True,
        hide_parameters=True,
    )


def database_location(url: str) -> str:
    """Where a database URL points, without the user and password: for messages and logs."""
    return url.split("@")[-1]


class DatabaseUnusable(Exception):
    """The database cannot be reached or set up; the message is one line, without the password."""

    def __init__(self, url: str, error: DBAPIError):
        # The driver's words: where it failed and why (refused, no such role or database),
        # on several lines for PostgreSQL.
        said = " ".join(str(error.orig).split())
        super().__init__(f"cannot use the database {database_location(url)} (DATABASE_URL): {said}")


def rows_of(table: Table, key: StatementKey) -> ColumnElement[bool]:
    """The rows of ``table`` that belong to the statement ``key``."""
    return and_(table.c.account_no == key.account_no, table.c.bill_date == key.bill_date)


def describe_error(error: DBAPIError) -> str:
    """What kind of database error it was and where, without its message: PostgreSQL's DETAIL
    quotes the failing row or key, which must go neither into logs nor into Temporal."""
    cause = error.orig if error.orig is not None else error
    diagnostics = getattr(cause, "diag", None)
    sqlstate = getattr(cause, "sqlstate", None)
    table = getattr(diagnostics, "table_name", None)
    constraint = getattr(diagnostics, "constraint_name", None)
    kind = [
        type(cause).__name__,
        f"(SQLSTATE {sqlstate})" if sqlstate else "",
        getattr(cause, "sqlite_errorname", None) or "",
        f"on table {table}" if table else "",
        f"constraint {constraint}" if constraint else "",
    ]
    said = " ".join(part for part in kind if part)
    return f"{said}, connection lost" if error.connection_invalidated else said


# SQLite result codes for data the database refuses whatever the attempt (Python's sqlite3
# raises DataError or IntegrityError for them).
_SQLITE_REFUSALS = ("SQLITE_TOOBIG", "SQLITE_MISMATCH", "SQLITE_CONSTRAINT")
_SQLITE_UNIQUE = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


def retry_can_cure(error: DBAPIError) -> bool:
    """Whether the same write may succeed if tried again.

    Not when the database refused the data itself: a data exception (SQLSTATE class 22, a
    value the column cannot hold) or a constraint violation (class 23). A unique violation
    is the exception: a concurrent attempt stored the same statement first, and the retry
    finds it stored. Everything else heals: a lost connection, a lock or statement timeout,
    a serialization failure or deadlock, a server shutting down or out of resources.
    """
    if error.connection_invalidated:
        return True
    cause = error.orig
    sqlstate = getattr(cause, "sqlstate", None)
    if isinstance(sqlstate, str):
        return not (sqlstate.startswith("22") or (sqlstate.startswith("23") and sqlstate != "23505"))
    name = getattr(cause, "sqlite_errorname", None)
    if isinstance(name, str):
        return not name.startswith(_SQLITE_REFUSALS) or name in _SQLITE_UNIQUE
    return True
