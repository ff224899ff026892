"""The database schema's revision: created, checked and upgraded through the migrations in
bankrecon/store/migrations (Alembic), one process at a time.

A database the first release made (its tables, no ``alembic_version``) is that release's
revision, 0001, and is stamped so before it is upgraded.

Checking a database's revision, what every worker does at start, reads ``alembic_version``
itself: Alembic (some 11 MB of a worker's memory) is imported only to change a schema.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from bankrecon.store.db import DatabaseUnusable, make_engine

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
# Alembic's INFO lines (its dialect at every check, each step) tell an operator nothing that
# SchemaUpgrade does not; its warnings and errors still show.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).parent / "migrations"
# Each migration's file is named after its revision, r<revision>_<what it does>.py, and each
# revises the one before: the revisions in the order of their names are the history, the last
# its head (tests/test_migrations.py checks this against Alembic's own reading).
REVISIONS = tuple(
    sorted(
        match.group(1)
        for path in (MIGRATIONS / "versions").glob("r*.py")
        if (match := re.fullmatch(r"r(\d{4})_\w+\.py", path.name))
    )
)
FIRST_RELEASE = "0001"
# The first release's tables and columns: what recognises a database it made.
FIRST_RELEASE_COLUMNS = {
    "statements": {
        "account_no", "bill_date", "bank_code", "currency", "opening_balance", "closing_balance",
        "credit_count", "debit_count", "credit_total", "debit_total", "transaction_count",
        "source_sha256", "fetched_at", "persisted_at",
    },
    "transactions": {
        "account_no", "bill_date", "serial_no", "seq", "traded_at", "direction", "amount",
        "balance_after", "counterparty_account", "counterparty_name", "memo",
    },
    "bank_windows": {"merchant_id", "next_request_at", "holder"},
    "bank_window_queue": {"merchant_id", "workflow_id", "run_id", "waiting_since", "seen_at"},
    "bank_requests": {
        "id", "request_id", "merchant_id", "account_no", "bill_date", "workflow_id", "run_id",
        "activity_attempt", "sent_at", "answered_at", "outcome",
    },
    "merchant_pauses": {"merchant_id", "paused_at", "reason"},
    "cancelled_statements": {"account_no", "bill_date", "cancelled_at", "workflow_id", "run_id"},
}  # fmt: skip
FIRST_RELEASE_LATE_INDEX = (
    "CREATE INDEX IF NOT EXISTS bank_requests_workflow_run ON bank_requests (workflow_id, run_id)"
)
# pg_advisory_xact_lock's key for schema changes: any constant of bankrecon's own.
SCHEMA_LOCK_KEY = 0x62616E6B7265636F  # "bankreco"


# Alembic's ``op`` and ``context`` are module globals: one migration at a time in a process,
# whichever database it is on (the schema lock orders processes on the same database).
_MIGRATING = threading.Lock()


class SchemaError(Exception):
    """The database's schema is not one this bankrecon can run on; the message says what to do."""


@dataclass(frozen=True)
class SchemaUpgrade:
    before: str | None  # None: the database was empty
    after: str

    def __str__(self) -> str:
        if self.before is None:
            return f"database schema created at revision {self.after}"
        if self.before == self.after:
            return f"database schema already at revision {self.after}"
        return f"database schema upgraded from revision {self.before} to {self.after}"


def head_revision() -> str:
    """The revision this bankrecon's code needs."""
    assert REVISIONS, "bankrecon/store/migrations/versions holds no migration"
    return REVISIONS[-1]


def _stamped(connection: Connection) -> str | None:
    """Alembic's stamp (its ``alembic_version`` table's one row), if the database has one."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def _revision(connection: Connection) -> str | None:
    """The database's revision: Alembic's stamp, or 0001 for the first release's tables; None if empty."""
    stamped = _stamped(connection)
    if stamped is not None:
        return stamped
    inspector = inspect(connection)
    present = set(inspector.get_table_names()) & FIRST_RELEASE_COLUMNS.keys()
    if not present:
        return None
    missing: list[str] = []
    for table, columns in FIRST_RELEASE_COLUMNS.items():
        if table in present:
            found = {column["name"] for column in inspector.get_columns(table)}
            missing += [f"{table}.{column}" for column in sorted(columns - found)]
        else:
            missing.append(table)
    if missing:
        raise SchemaError(
            "the database holds some of bankrecon's tables but not a schema bankrecon made "
            f"(missing {', '.join(missing)}): leaving it alone"
        )
    return FIRST_RELEASE


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; None for an empty database."""
    with engine.connect() as connection:
        return _revision(connection)


def _known(revision: str) -> bool:
    return revision in REVISIONS


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that only one process at a time holds, committed at the end.

    PostgreSQL: an advisory lock that the transaction holds, its DDL being transactional.
    SQLite: an exclusive transaction, opened by hand as the driver would begin none before DDL.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("BEGIN EXCLUSIVE")
            try:
                yield connection
            except BaseException:
                connection.exec_driver_sql("ROLLBACK")
                raise
            connection.exec_driver_sql("COMMIT")
        else:
            with connection.begin():
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
                yield connection


def migrations_config(connection: Connection) -> Config:
    """Alembic's configuration for bankrecon's migrations, run on ``connection`` (see env.py)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade_schema(engine: Engine) -> SchemaUpgrade:
    """Apply the migrations the database lacks, creating an empty one, in one transaction."""
    head = head_revision()
    with _schema_lock(engine) as connection:
        before = _revision(connection)
        if before is not None and not _known(before):
            raise _ahead(before)
        if before != head:
            from alembic import command

            config = migrations_config(connection)
            with _MIGRATING:
                if before == FIRST_RELEASE and _stamped(connection) is None:
                    # The first release added this index to its older databases at start; one
                    # that never started it lacks the index, which revision 0001 has.
                    connection.execute(text(FIRST_RELEASE_LATE_INDEX))
                    command.stamp(config, FIRST_RELEASE)
                command.upgrade(config, head)
    return SchemaUpgrade(before=before, after=head)


def _ahead(revision: str) -> SchemaError:
    return SchemaError(
        f"database schema is at revision {revision}, which this bankrecon does not know "
        f"(it needs {head_revision()}): a newer bankrecon upgraded it; run that one"
    )


def prepare_schema(engine: Engine) -> None:
    """At start-up: create the schema of an empty database, or check that it is at the code's head.

    Raises SchemaError, in one line, for a schema behind the code (``bankrecon db upgrade``) or
    ahead of it. Checking locks nothing: only an empty database takes the schema lock.
    """
    head = head_revision()
    revision = current_revision(engine)
    if revision is None:
        upgrade = upgrade_schema(engine)
        if upgrade.before is None:
            log.info("empty database: %s", upgrade)
        return
    if revision == head:
        return
    if not _known(revision):
        raise _ahead(revision)
    raise SchemaError(
        f"database schema is at revision {revision}, this bankrecon needs {head}: run `bankrecon db upgrade`"
    )


def open_database(url: str) -> Engine:
    """An engine on ``url`` whose schema is ready (see prepare_schema); one-line errors otherwise.

    DatabaseUnusable when the database cannot be reached or used, SchemaError when its schema
    does not fit this bankrecon.
    """
    engine = make_engine(url)
    try:
        prepare_schema(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise DatabaseUnusable(url, exc) from None
    except SchemaError:
        engine.dispose()
        raise
    return engine
