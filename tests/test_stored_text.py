"""Free text (counterparty names, memos) stored whole on both databases, and what a database
refuses fails the statement at once instead of being retried without end."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from bankrecon.sources.refbank.simulator.generator import generate_statement
from bankrecon.sources.refbank.simulator.server import BankSimulator, StatementPlan
from bankrecon.store.db import make_engine
from bankrecon.store.schema import prepare_schema
from tests.harness import ACCOUNT, BILL_DATE, count_rows, fails_with, stored_rows
from tests.temporal_fixtures import Collect
from workflows.daily_statement import statement_workflow_id

STATEMENT = generate_statement(ACCOUNT, BILL_DATE, seed=7, lines=10, parts=2)
LONG_NAME = "上海某某科技有限公司" * 30  # 300 characters
# 600 characters, with a tab, other control characters and a backslash among them.
LONG_MEMO = "货款\t\x01\x1b\\" * 120


def _archive(free_text: Callable[[int], tuple[str, str]]) -> bytes:
    """STATEMENT with the counterparty_name and memo of its n-th detail line (from 0) replaced."""
    buffer = io.BytesIO()
    details = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, part in zip(STATEMENT.member_names, STATEMENT.part_texts(), strict=True):
            lines = part.split("\n")
            for i, line in enumerate(lines):
                if line.startswith("D|"):
                    fields = line.split("|")
                    fields[8], fields[9] = free_text(details)
                    lines[i] = "|".join(fields)
                    details += 1
            archive.writestr(member, "\n".join(lines).encode("gb18030"))
    return buffer.getvalue()


def _quarantined(data_dir: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in (data_dir / "quarantine").glob("*.json")]


async def test_long_text_and_control_characters_are_stored_as_written(
    bank: BankSimulator, collect: Collect, database_url: str
) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(archive=_archive(lambda n: (f"{n}{LONG_NAME}", LONG_MEMO))))
    result = await collect(database_url)
    assert result.transaction_count == 10
    _, rows = stored_rows(database_url, ACCOUNT, BILL_DATE)
    assert [(row.counterparty_name, row.memo) for row in rows] == [
        (f"{n}{LONG_NAME}", LONG_MEMO) for n in range(10)
    ]


async def test_a_nul_character_is_damage_named_by_its_line(
    bank: BankSimulator, collect: Collect, database_url: str
) -> None:
    bank.plan(
        ACCOUNT, BILL_DATE, StatementPlan(archive=_archive(lambda n: ("张三", "货\x00款" if n == 2 else "")))
    )
    message = await fails_with(collect(database_url, inputs={"max_damaged_downloads": 1}), "StatementDamaged")
    # The third detail line of part 1 is its fourth line, after the header.
    assert "line 4: field memo: holds a NUL character" in message and "quarantined at" in message
    assert count_rows(database_url) == 0


def _narrow_memo_column(database_url: str) -> None:
    """The transactions table as an earlier version made it, its memo limited to 512 characters."""
    engine = make_engine(database_url)
    prepare_schema(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE transactions ALTER COLUMN memo TYPE varchar(512)"))
        else:  # SQLite does not enforce a declared length: a trigger refuses in its place
            conn.execute(
                text(
                    "CREATE TRIGGER memo_fits BEFORE INSERT ON transactions WHEN length(NEW.memo) > 512 "
                    "BEGIN SELECT RAISE(ABORT, 'memo longer than 512 characters'); END"
                )
            )
    engine.dispose()


async def test_data_the_database_refuses_fails_the_statement_at_once_and_quarantines_it(
    time_skipping_env: WorkflowEnvironment,
    bank: BankSimulator,
    collect: Collect,
    database_url: str,
    tmp_path: Path,
) -> None:
    _narrow_memo_column(database_url)
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(archive=_archive(lambda n: ("张三", LONG_MEMO))))
    message = await fails_with(collect(database_url), "StatementRefused")
    assert message.startswith(f"the database refused statement {ACCOUNT} {BILL_DATE}")
    assert ("SQLSTATE 22001" if "postgresql" in database_url else "SQLITE_CONSTRAINT") in message
    assert "货款" not in message  # what kind of error, never the data
    assert count_rows(database_url) == 0
    (record,) = _quarantined(tmp_path / "data")
    assert record["rule"] == "refused by the database" and str(record["sha256"]) in message
    assert not list((tmp_path / "data" / "records").iterdir())
    # Refused on the first attempt, not retried.
    handle = time_skipping_env.client.get_workflow_handle(statement_workflow_id(ACCOUNT, BILL_DATE))
    attempts = [
        event.activity_task_started_event_attributes.attempt
        async for event in handle.fetch_history_events()
        if event.HasField("activity_task_started_event_attributes")
    ]
    assert attempts[-1] == 1  # the last activity: the persist
