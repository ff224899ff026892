"""Which database errors a retry can cure: real errors from real PostgreSQL and SQLite servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from bankrecon.store.db import make_engine, retry_can_cure

ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def postgres(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _error_of(engine: Engine, *statements: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as raised, engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    return raised.value


@ON_POSTGRESQL
@pytest.mark.parametrize(
    ("sqlstate", "curable"),
    [
        ("22001", False),  # string data right truncation: a value longer than its column
        ("22003", False),  # numeric value out of range
        ("22021", False),  # a character the encoding cannot hold (NUL)
        ("23514", False),  # check constraint
        ("23502", False),  # not null
        ("23505", True),  # unique: a concurrent attempt stored it first
        ("40001", True),  # serialization failure
        ("40P01", True),  # deadlock
        ("55P03", True),  # lock not available (lock_timeout)
        ("57014", True),  # statement timeout
        ("57P01", True),  # the server shuts down
        ("53300", True),  # too many connections
        ("08006", True),  # connection failure
    ],
)
def test_postgresql_errors(postgres: Engine, sqlstate: str, curable: bool) -> None:
    error = _error_of(postgres, f"DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{sqlstate}'; END $$")
    assert getattr(error.orig, "sqlstate", None) == sqlstate
    assert retry_can_cure(error) is curable


@ON_POSTGRESQL
def test_postgresql_refusing_real_data(postgres: Engine) -> None:
    setup = "CREATE TABLE t (name varchar(4) NOT NULL CHECK (name <> 'bad'), amount numeric(4, 2))"
    too_long = _error_of(postgres, setup, "INSERT INTO t VALUES ('longer', 1)")
    assert not retry_can_cure(too_long)
    too_large = _error_of(postgres, setup, "INSERT INTO t VALUES ('ok', 1000)")
    assert not retry_can_cure(too_large)
    checked = _error_of(postgres, setup, "INSERT INTO t VALUES ('bad', 1)")
    assert not retry_can_cure(checked)


@ON_POSTGRESQL
def test_a_lost_postgresql_connection_is_curable(postgres: Engine) -> None:
    error = _error_of(postgres, "SELECT pg_terminate_backend(pg_backend_pid())")
    assert error.connection_invalidated and retry_can_cure(error)


def test_sqlite_errors(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'errors.db'}")
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (name <> 'bad'))")
        )
        conn.execute(text("INSERT INTO t VALUES (1, 'one')"))
    assert not retry_can_cure(_error_of(engine, "INSERT INTO t VALUES (2, 'bad')"))
    assert not retry_can_cure(_error_of(engine, "INSERT INTO t VALUES (2, NULL)"))
    assert not retry_can_cure(_error_of(engine, "INSERT INTO t VALUES ('two', 'x')"))  # datatype mismatch
    assert retry_can_cure(_error_of(engine, "INSERT INTO t VALUES (1, 'again')"))  # unique
    # Another connection holds the write lock: "database is locked" heals once it lets go.
    with make_engine(f"sqlite:///{tmp_path / 'errors.db'}").connect() as holder:
        holder.exec_driver_sql("BEGIN IMMEDIATE")
        impatient = create_engine(f"sqlite:///{tmp_path / 'errors.db'}", connect_args={"timeout": 0})
        locked = _error_of(impatient, "INSERT INTO t VALUES (3, 'three')")
        assert "locked" in str(locked.orig) and retry_can_cure(locked)
        impatient.dispose()
    engine.dispose()
