"""Damaged and hostile downloads: nothing stored, the archive quarantined with the reason, the
worker unharmed and serving others, and the statement fetched again up to a limit."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from bankrecon.config import Settings
from bankrecon.models import DailyStatementInput
from bankrecon.sources.refbank.simulator.generator import generate_statement
from bankrecon.sources.refbank.simulator.server import DEMO_MERCHANT_ID, BankSimulator, StatementPlan
from tests.harness import ACCOUNT, BILL_DATE, count_rows, fails_with, stored_rows
from tests.temporal_fixtures import Collect
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

GOOD = generate_statement(ACCOUNT, BILL_DATE, seed=7, lines=10, parts=2)
OTHER_ACCOUNT = "6222020000000002"


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _good_members() -> dict[str, bytes]:
    texts = GOOD.part_texts()
    return {name: text.encode("gb18030") for name, text in zip(GOOD.member_names, texts, strict=True)}


def _broken_line() -> bytes:
    members = _good_members()
    second = GOOD.member_names[1]
    members[second] = members[second].replace(b"\nT|", b"\nD|garbage\nT|", 1)
    return _zip(members)


def _broken_crc() -> bytes:
    data = bytearray(_zip(_good_members(), zipfile.ZIP_STORED))
    data[data.index(b"\nD|") + 5] ^= 0x01  # inside the first member's stored bytes
    return bytes(data)


def _bomb() -> bytes:
    """A member that inflates to 200 MB of zeros from about 200 KB."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open(GOOD.member_names[0], "w", force_zip64=True) as member,
    ):
        zeros = bytes(1024 * 1024)
        for _ in range(200):
            member.write(zeros)
    return buffer.getvalue()


def _traversal() -> bytes:
    return _zip(_good_members() | {"../../etc/cron.d/x.txt": b"* * * * * root true\n"})


def _many_members() -> bytes:
    return _zip(_good_members() | {f"filler/{n}.txt": b"" for n in range(1_000)})


def _large() -> bytes:
    return generate_statement(ACCOUNT, BILL_DATE, seed=7, lines=20_000).to_zip_bytes()


# kind: (archive, what the error must say, worker settings)
HOSTILE: dict[str, tuple[Callable[[], bytes], str, dict[str, int]]] = {
    "broken line": (_broken_line, "D record has 2 fields, expected 10", {}),
    "broken CRC": (_broken_crc, "archive", {}),
    # Refused at its first 256 bytes: nothing is inflated past the header line.
    "zip bomb": (_bomb, "header line longer than 256 bytes", {}),
    "member-count bomb": (_many_members, "at most 1000 allowed", {}),
    "over the size limit": (
        _large,
        "archive inflates to more than 1000000 bytes",
        {"archive_max_total_bytes": 1_000_000},
    ),
    "path traversal": (_traversal, "'..' segment", {}),
    "not a zip": (lambda: b"<html>maintenance</html>", "not a readable zip", {}),
}


def _quarantined(data_dir: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted((data_dir / "quarantine").glob("*.json"))]


@pytest.mark.parametrize("kind", HOSTILE)
async def test_hostile_archive_is_quarantined_while_the_worker_serves_others(
    dev_env: WorkflowEnvironment,
    bank: BankSimulator,
    settings: Callable[..., Settings],
    task_queue: str,
    tmp_path: Path,
    sqlite_url: str,
    kind: str,
) -> None:
    make_archive, reason, limits = HOSTILE[kind]
    bank.accounts = {DEMO_MERCHANT_ID: {ACCOUNT, OTHER_ACCOUNT}}
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(archive=make_archive()))
    bank.plan(OTHER_ACCOUNT, BILL_DATE, StatementPlan(lines=12))
    # Real time: two statements of one merchant contend for its window, which the
    # time-skipping server's clock jumps would distort.
    client = dev_env.client
    async with asyncio.timeout(120), running_worker(client, settings(sqlite_url, **limits)):
        hostile = client.execute_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(account_no=ACCOUNT, bill_date=BILL_DATE, max_damaged_downloads=1),
            id=statement_workflow_id(ACCOUNT, BILL_DATE),
            task_queue=task_queue,
        )
        good = client.execute_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(account_no=OTHER_ACCOUNT, bill_date=BILL_DATE),
            id=statement_workflow_id(OTHER_ACCOUNT, BILL_DATE),
            task_queue=task_queue,
        )
        message, served = await asyncio.gather(fails_with(hostile, "StatementDamaged"), good)

    assert reason in message and "quarantined at" in message
    assert stored_rows(sqlite_url, ACCOUNT, BILL_DATE) == (None, [])
    assert served.transaction_count == 12  # the same worker went on serving
    data_dir = tmp_path / "data"
    (record,) = _quarantined(data_dir)
    assert record["account_no"] == ACCOUNT and reason in str(record["error"])
    kept = data_dir / "quarantine" / f"{ACCOUNT}-{BILL_DATE}-{record['sha256']}.zip"
    assert kept.exists() and str(kept) in message
    assert not list((data_dir / "archives").glob(f"{record['sha256']}*"))  # out of the store
    # Nothing was ever written under a name taken from the archive.
    assert not (tmp_path / "etc").exists() and not list(tmp_path.rglob("x.txt"))


async def test_a_damaged_download_is_fetched_again_up_to_the_limit(
    bank: BankSimulator, collect: Collect, tmp_path: Path, database_url: str
) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(archive=_broken_line()))
    message = await fails_with(collect(database_url), "StatementDamaged")
    assert message.startswith("3 damaged download(s) in a row")
    assert "part 2" in message and "line" in message and "quarantined at" in message
    assert len(bank.requests) == 3
    assert count_rows(database_url) == 0
    assert len(_quarantined(tmp_path / "data")) == 1  # the same file each time


async def test_the_bank_regenerates_the_file_and_the_statement_lands(
    time_skipping_env: WorkflowEnvironment,
    bank: BankSimulator,
    settings: Callable[..., Settings],
    task_queue: str,
    tmp_path: Path,
    sqlite_url: str,
) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(archive=_broken_line()))
    quarantine = tmp_path / "data" / "quarantine"
    async with asyncio.timeout(60), running_worker(time_skipping_env.client, settings(sqlite_url)):
        # Time skips only while a result is awaited; this test watches, so its interval is real.
        handle = await time_skipping_env.client.start_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(account_no=ACCOUNT, bill_date=BILL_DATE, retry_interval_seconds=2),
            id=statement_workflow_id(ACCOUNT, BILL_DATE),
            task_queue=task_queue,
        )
        while not list(quarantine.glob("*.zip")):
            await asyncio.sleep(0.05)
        bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=10, parts=2))
        while (waiting := await handle.query(DailyStatementWorkflow.status)) and waiting.phase == "decoding":
            await asyncio.sleep(0.05)
        result = await handle.result()
    assert result.fetch_attempts == 2
    # Between the damaged download and the next fetch, the status says what it waits for.
    assert waiting is not None and waiting.phase == "waiting_for_bank"
    assert waiting.last_answer is not None and waiting.next_attempt_at is not None
    after_answer = waiting.next_attempt_at - waiting.last_answer.at
    assert timedelta(seconds=2) <= after_answer < timedelta(seconds=2 + 30)
    _, rows = stored_rows(sqlite_url, ACCOUNT, BILL_DATE)
    expected = generate_statement(ACCOUNT, BILL_DATE, seed=bank.seed, lines=10, parts=2)
    assert [(r.serial_no, r.amount, r.balance_after) for r in rows] == [
        (t.serial_no, t.amount, t.balance_after) for t in expected.transactions()
    ]
