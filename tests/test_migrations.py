"""The schema's migrations: a database of the previous release upgraded with every row intact,
the head equal to db.py's tables, start-up checks, concurrent upgrades, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Date, Engine, MetaData, String, Table, inspect, select, text
from temporalio.testing import WorkflowEnvironment

import bankrecon.bankrec.tables
import bankrecon.recon.tables
from bankrecon.store import db
from bankrecon.store.db import make_engine
from bankrecon.store.schema import (
    MIGRATIONS,
    REVISIONS,
    SchemaError,
    SchemaUpgrade,
    current_revision,
    head_revision,
    migrations_config,
    prepare_schema,
    upgrade_schema,
)
from tests import previous_release
from tests.harness import changed_url
from tests.previous_release import create_previous_release_schema

HEAD = head_revision()
BEHIND = f"database schema is at revision 0001, this bankrecon needs {HEAD}: run `bankrecon db upgrade`"
AT = datetime(2026, 11, 25, 2, 0, 0, 123456, tzinfo=UTC)
ACCOUNT = "6222020000000001"
BANKRECON = [sys.executable, "-m", "bankrecon.ops.cli"]
ROOT = Path(__file__).parents[1]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _fill_as_the_previous_release(engine: Engine) -> None:
    old = previous_release
    money = {"credit_total": Decimal("12345678901234.56"), "debit_total": Decimal("0.01")}
    with engine.begin() as conn:
        conn.execute(
            old.statements.insert(),
            [
                {
                    "account_no": ACCOUNT, "bill_date": date(2026, 11, 24), "bank_code": "0000",
                    "currency": "CNY", "opening_balance": Decimal("99999999999999.99"),
                    "closing_balance": Decimal("-12345678901234.55"), "credit_count": 1, "debit_count": 1,
                    **money, "transaction_count": 2, "source_sha256": "a" * 64,
                    "fetched_at": AT, "persisted_at": AT,
                },
                {  # 2001: the bank has no transactions for the day, and sends no header
                    "account_no": ACCOUNT, "bill_date": date(2026, 11, 23), "bank_code": "2001",
                    "currency": None, "opening_balance": None, "closing_balance": None,
                    "credit_count": 0, "debit_count": 0, "credit_total": Decimal("0.00"),
                    "debit_total": Decimal("0.00"), "transaction_count": 0, "source_sha256": None,
                    "fetched_at": AT, "persisted_at": AT,
                },
            ],
        )  # fmt: skip
        conn.execute(
            old.transactions.insert(),
            [
                {
                    "account_no": ACCOUNT, "bill_date": date(2026, 11, 24), "serial_no": "S" * 32, "seq": 1,
                    "traded_at": AT, "direction": "C", "amount": Decimal("12345678901234.56"),
                    "balance_after": Decimal("99999999999999.99"), "counterparty_account": "6217000000000042",
                    "counterparty_name": "上海某某科技有限公司" * 25, "memo": "货款" * 256,
                },
                {
                    "account_no": ACCOUNT, "bill_date": date(2026, 11, 24), "serial_no": "0002", "seq": 2,
                    "traded_at": AT, "direction": "D", "amount": Decimal("0.01"),
                    "balance_after": Decimal("-12345678901234.55"), "counterparty_account": None,
                    "counterparty_name": None, "memo": None,
                },
            ],
        )  # fmt: skip
        conn.execute(
            old.bank_windows.insert(),
            [
                {"merchant_id": "M100001", "next_request_at": AT, "holder": "req-2"},
                {"merchant_id": "M100002", "next_request_at": AT, "holder": None},
            ],
        )
        conn.execute(
            old.bank_window_queue.insert(),
            {"merchant_id": "M100001", "workflow_id": "statement-x", "run_id": "r1", "waiting_since": AT,
             "seen_at": AT},
        )  # fmt: skip
        conn.execute(
            old.bank_requests.insert(),
            [
                {"request_id": f"req-{n}", "merchant_id": "M100001", "account_no": ACCOUNT,
                 "bill_date": date(2026, 11, 24), "workflow_id": "statement-x", "run_id": "r1",
                 "activity_attempt": n, "sent_at": AT, "answered_at": AT if n == 1 else None,
                 "outcome": "1001" if n == 1 else None}
                for n in (1, 2)
            ],
        )  # fmt: skip
        conn.execute(
            old.merchant_pauses.insert(),
            {"merchant_id": "M100002", "paused_at": AT, "reason": "bank says so"},
        )
        conn.execute(
            old.cancelled_statements.insert(),
            {"account_no": ACCOUNT, "bill_date": date(2026, 11, 22), "cancelled_at": AT,
             "workflow_id": "statement-y", "run_id": "r9"},
        )  # fmt: skip


def _every_row(engine: Engine, tables: MetaData, columns: MetaData) -> dict[str, list[dict[str, Any]]]:
    """Every row of ``columns``' tables, read through the same-named tables of ``tables``."""
    with engine.connect() as conn:
        return {
            name: [
                dict(row._mapping)
                for row in conn.execute(
                    select(*(tables.tables[name].c[c.name] for c in table.c)).order_by(*table.primary_key)
                )
            ]
            for name, table in columns.tables.items()
        }


def test_a_database_of_the_previous_release_is_upgraded_with_every_row_intact_and_takes_new_sources(
    engine: Engine,
) -> None:
    create_previous_release_schema(engine)
    _fill_as_the_previous_release(engine)
    before = _every_row(engine, previous_release.metadata, previous_release.metadata)
    assert sum(map(len, before.values())) == 11

    assert upgrade_schema(engine) == SchemaUpgrade(before="0001", after=HEAD)

    # Read through the head's tables: the same values, to the cent and the microsecond.
    assert _every_row(engine, db.metadata, previous_release.metadata) == before
    with engine.connect() as conn:
        added = conn.execute(
            select(db.statements.c.source_kind, db.statements.c.fee_total, db.statements.c.summary)
        )
        assert set(added) == {("refbank", None, None)}
        added = conn.execute(
            select(db.transactions.c.reference, db.transactions.c.fee, db.transactions.c.details)
        )
        assert set(added) == {(None, None, None)}

    # A channel's statement, which the previous schema could not hold.
    account = "wx-main-tradebill-" + "x" * 22
    statement = {
        "account_no": account, "bill_date": date(2026, 11, 24), "bank_code": "SUCCESS",
        "currency": "CNY", "opening_balance": None, "closing_balance": None, "credit_count": 1,
        "debit_count": 0, "credit_total": Decimal("100.00"), "debit_total": Decimal("0.00"),
        "transaction_count": 1, "source_sha256": "b" * 64, "fetched_at": AT, "persisted_at": AT,
        "source_kind": "wechatpay", "fee_total": Decimal("0.12340"),
        "summary": {"总交易单数": "1", "应结订单总金额": "100.00", "手续费总金额": "0.12340"},
    }  # fmt: skip
    row = {
        "account_no": account, "bill_date": date(2026, 11, 24), "serial_no": "4200" * 16, "seq": 1,
        "traded_at": AT, "direction": "C", "amount": Decimal("100.00"), "balance_after": None,
        "counterparty_account": "o" * 300, "counterparty_name": "某" * 1000, "memo": "m" * 5000,
        "reference": "ORDER-20261124-0001", "fee": Decimal("0.12340"),
        "details": {"微信订单号": "4200" * 7, "手续费": "0.12340", "extra column": "kept"},
    }  # fmt: skip
    assert len(account) == 40
    with engine.begin() as conn:
        conn.execute(db.statements.insert(), statement)
        conn.execute(db.transactions.insert(), row)
    with engine.connect() as conn:
        stored = conn.execute(select(db.statements).where(db.statements.c.account_no == account)).one()
        stored_row = conn.execute(
            select(db.transactions).where(db.transactions.c.account_no == account)
        ).one()
    assert dict(stored._mapping) == statement
    assert dict(stored_row._mapping) == row
    # Every decimal as written, the trailing zero too.
    assert (str(stored.fee_total), str(stored_row.fee)) == ("0.12340", "0.12340")


def test_sqlites_transactions_stay_without_rowid_on_the_same_key_after_the_upgrade(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        create_previous_release_schema(engine)
        upgrade_schema(engine)
        with engine.connect() as conn:
            sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'transactions'")).scalar_one()
    finally:
        engine.dispose()
    assert sql.rstrip().endswith("WITHOUT ROWID")
    assert "CONSTRAINT transactions_pkey PRIMARY KEY (account_no, bill_date, serial_no)" in sql


def _differences(engine: Engine, metadata: MetaData) -> list[Any]:
    with engine.connect() as conn:
        options = {"compare_type": True, "compare_server_default": True}
        context = MigrationContext.configure(conn, opts=options)
        return list(compare_metadata(context, metadata))


def test_revision_0001_is_the_schema_the_previous_release_made(engine: Engine) -> None:
    with engine.begin() as conn:
        command.upgrade(migrations_config(conn), "0001")
    assert _differences(engine, previous_release.metadata) == []


def test_the_notes_of_revision_0005_become_explain_actions(engine: Engine) -> None:
    with engine.begin() as conn:
        command.upgrade(migrations_config(conn), "0005")
    notes = Table(
        "recon_notes",
        MetaData(),
        *(Column(name, String(64)) for name in ("account_no", "state", "side", "reference", "direction")),
        Column("recon_date", Date),
        Column("note", String(200)),
        Column("noted_at", db.UtcDateTime),
    )
    note = {
        "account_no": "wx-1900000001", "recon_date": date(2026, 11, 24), "state": "duplicate",
        "side": "channel", "reference": "O-006", "direction": "C", "note": "refund asked for",
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(notes.insert(), note | {"noted_at": AT})
    assert upgrade_schema(engine) == SchemaUpgrade(before="0005", after=HEAD)
    actions = bankrecon.recon.tables.recon_actions
    with engine.connect() as conn:
        carried = conn.execute(select(actions)).one()
    assert "recon_notes" not in inspect(engine).get_table_names()
    assert {name: getattr(carried, name) for name in note if name != "note"} == {
        name: value for name, value in note.items() if name != "note"
    }
    assert (carried.action, carried.reason, carried.acted_by, carried.acted_at) == (
        "explain", "refund asked for", "(before revision 0006)", AT
    )  # fmt: skip


def test_the_revisions_read_from_the_file_names_are_alembics_history_in_order() -> None:
    scripts = ScriptDirectory(str(MIGRATIONS))
    history = [script.revision for script in reversed(list(scripts.walk_revisions()))]
    assert list(REVISIONS) == history
    assert head_revision() == scripts.get_current_head()


def test_checking_the_schema_at_start_up_leaves_alembic_unimported(sqlite_url: str) -> None:
    # Alembic is some 11 MB of a worker's memory: only changing a schema needs it.
    start_up = f"""
import sys
from bankrecon.store.schema import open_database
open_database({sqlite_url!r}).dispose()
print("alembic" in sys.modules)
"""

    def alembic_imported() -> str:
        run = subprocess.run(
            [sys.executable, "-c", start_up], check=True, cwd=ROOT, capture_output=True, text=True
        )
        return run.stdout.strip()

    assert alembic_imported() == "True"  # the empty database is created by the migrations
    assert alembic_imported() == "False"  # the next start only checks its revision


def test_the_heads_schema_is_db_pys_tables(engine: Engine) -> None:
    prepare_schema(engine)
    assert current_revision(engine) == head_revision()
    assert _differences(engine, db.metadata) == []


def test_postgresql_keeps_the_schema_and_its_revision_in_the_urls_search_path(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's search_path")
    prepare_schema(engine)
    with engine.connect() as conn:
        schema = conn.execute(text("SHOW search_path")).scalar_one()
        tables = conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"),
            {"schema": schema},
        )
        assert set(tables.scalars()) == {"alembic_version", *db.metadata.tables}
        assert schema.startswith("t_")  # the test's own, not public


# A worker's start-up: processes held until every one is ready, so that they really start together.
WHEN_TOLD = """
import pathlib, sys, time
from bankrecon.store.db import make_engine
from bankrecon.store.schema import upgrade_schema
engine = make_engine(sys.argv[1])
print("ready", flush=True)
while not pathlib.Path(sys.argv[2]).exists():
    time.sleep(0.001)
with engine.connect() as connection:
    print({said})
"""


JOURNAL_MODE = 'connection.exec_driver_sql("PRAGMA journal_mode").scalar()'


def started_together(said: str, database_url: str, go: Path, count: int) -> list[tuple[str, int]]:
    """What ``count`` processes said, and their exit codes, each printing ``said`` once ``go`` exists."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WHEN_TOLD.format(said=said), database_url, str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
    go.touch()
    return sorted((process.communicate(timeout=60)[0], process.returncode) for process in processes)


def test_processes_upgrading_an_empty_database_together_create_it_once(
    database_url: str, tmp_path: Path
) -> None:
    said = started_together("upgrade_schema(engine)", database_url, tmp_path / "go", 4)
    assert said == [(f"database schema already at revision {HEAD}\n", 0)] * 3 + [
        (f"database schema created at revision {HEAD}\n", 0)
    ]
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
    finally:
        engine.dispose()


def test_processes_opening_a_new_sqlite_file_together_all_open_it_in_wal_mode(tmp_path: Path) -> None:
    """Switching a file to WAL needs it to itself, and SQLite refused that at once, without waiting,
    to about one process in fifty that started together (it failed 5 of 30 such rounds)."""
    for round_ in range(6):
        url = f"sqlite:///{tmp_path / f'{round_}.db'}"
        said = started_together(JOURNAL_MODE, url, tmp_path / f"go{round_}", 8)
        assert said == [("wal\n", 0)] * 8


def test_an_in_memory_sqlite_database_opens_with_its_journal_in_memory() -> None:
    """It cannot be switched to WAL: asking must not wait for a switch that never comes."""
    opened = subprocess.run(
        # Told at once: ROOT exists.
        [sys.executable, "-c", WHEN_TOLD.format(said=JOURNAL_MODE), "sqlite://", str(ROOT)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (opened.stdout, opened.returncode) == ("ready\nmemory\n", 0), opened.stderr


def test_threads_creating_different_databases_at_once_all_succeed(tmp_path: Path) -> None:
    """As workers of several tests, or of several deployments, in one process."""
    engines = [make_engine(f"sqlite:///{tmp_path / f'{n}.db'}") for n in range(4)]
    together = threading.Barrier(len(engines))
    upgrades: list[SchemaUpgrade | BaseException] = []

    def upgrade(engine: Engine) -> None:
        together.wait()
        try:
            upgrades.append(upgrade_schema(engine))
        except BaseException as exc:
            upgrades.append(exc)

    threads = [threading.Thread(target=upgrade, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for engine in engines:
        engine.dispose()
    assert upgrades == [SchemaUpgrade(before=None, after=HEAD)] * 4


def test_a_schema_behind_the_code_is_refused_and_left_alone(engine: Engine) -> None:
    create_previous_release_schema(engine)
    with pytest.raises(SchemaError) as refused:
        prepare_schema(engine)
    assert str(refused.value) == BEHIND
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is None
    assert _every_row(engine, previous_release.metadata, previous_release.metadata)["statements"] == []


def test_a_schema_ahead_of_the_code_is_refused(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        prepare_schema(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
        for check in (prepare_schema, upgrade_schema):
            with pytest.raises(
                SchemaError, match=r"^database schema is at revision 0999, which this bankrecon"
            ):
                check(engine)
    finally:
        engine.dispose()


def test_tables_that_bankrecon_did_not_make_are_left_alone(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        Table(
            "statements", metadata := MetaData(), Column("account_no", String(32)), Column("bill_date", Date)
        )
        metadata.create_all(engine)
        with pytest.raises(
            SchemaError, match=r"missing statements.bank_code, .*, transactions, bank_windows, "
        ):
            upgrade_schema(engine)
        assert inspect(engine).get_table_names() == ["statements"]
    finally:
        engine.dispose()


def _environment(database_url: str, tmp_path: Path, **env: str) -> dict[str, str]:
    return (
        dict(os.environ)
        | {"DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url, "BANK_MERCHANT_SECRET": "s"}
        | env
    )


def _run(args: list[str], database_url: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = _environment(database_url, tmp_path, **env)
    return subprocess.run(args, env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_console_upgrades_and_refuses_an_old_schema_in_one_line_without_the_password(
    database_url: str, tmp_path: Path
) -> None:
    secret = "pw-not-to-show"
    with_password = (
        changed_url(database_url, password=secret) if "postgresql" in database_url else database_url
    )
    engine = make_engine(database_url)
    try:
        create_previous_release_schema(engine)
    finally:
        engine.dispose()

    refused = _run([*BANKRECON, "status"], with_password, tmp_path)
    assert (refused.returncode, refused.stdout, refused.stderr) == (2, "", f"bankrecon: {BEHIND}\n")

    current = _run([*BANKRECON, "db", "current"], with_password, tmp_path)
    assert current.stdout.endswith(f": revision 0001; this release needs {HEAD}\n")
    upgraded = _run([*BANKRECON, "db", "upgrade"], with_password, tmp_path)
    assert upgraded.stdout.endswith(f": database schema upgraded from revision 0001 to {HEAD}\n")
    again = _run([*BANKRECON, "db", "upgrade"], with_password, tmp_path)
    assert again.stdout.endswith(f": database schema already at revision {HEAD}\n")
    for run in (current, upgraded, again):
        assert run.returncode == 0 and run.stderr == ""
        assert secret not in run.stdout


def test_the_worker_refuses_an_old_schema_in_one_line(
    dev_env: WorkflowEnvironment, sqlite_url: str, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    try:
        create_previous_release_schema(engine)
    finally:
        engine.dispose()
    address = dev_env.client.service_client.config.target_host
    worker = _run([sys.executable, "worker.py"], sqlite_url, tmp_path, TEMPORAL_ADDRESS=address)
    assert (worker.returncode, worker.stderr) == (1, f"bankrecon: {BEHIND}\n")
