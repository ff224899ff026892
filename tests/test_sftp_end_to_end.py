"""End to end on the dev server: a statement file that appears on a real SFTP server after two polls is
stored once, rows and balances exact, then moved away; on SQLite and PostgreSQL, MT940 and camt.053."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from bankrecon.models import DailyStatementInput
from bankrecon.sources.sftp.simulator import FilePlan
from tests.harness import count_rows, fails_with, settings_for, stored_rows
from tests.sftp_setup import (
    BILL_DATE,
    DATA,
    PASSWORD,
    PASSWORD_ENV,
    SAMPLES,
    accounts_file,
    changed_host_key,
    sftp_server,
)
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

# What each sample must store: its balances and its rows' (key, direction, amount).
EXPECTED = {
    "mt940_de.sta": (
        Decimal("1234.56"),
        Decimal("3499.66"),
        [
            ("0000000000001", "D", "120.00"),
            ("0000000000002", "C", "2500.00"),
            ("0000000000003", "D", "100.00"),
            ("line-17", "D", "14.90"),
        ],
    ),
    "camt053_001_02.xml": (
        Decimal("10000.00"),
        Decimal("11237.60"),
        [
            ("CH-20261124-0001/1", "C", "500.00"),
            ("CH-20261124-0001/2", "C", "700.00"),
            ("CH-20261124-0001/3", "C", "300.00"),
            ("E2", "D", "250.40"),
            ("entry-3", "D", "12.00"),
        ],
    ),
    "camt053_001_08.xml": (
        Decimal("5000.00"),
        Decimal("5500.01"),
        [
            ("GB-20261124-0001-A", "C", "300.00"),
            ("GB-20261124-0001-B", "C", "500.00"),
            ("GB-20261124-0002", "D", "200.00"),
            ("GB-20261124-0003", "D", "99.99"),
        ],
    ),
}


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
async def test_a_file_appearing_after_two_polls_is_stored_once_and_moved(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, database_url: str, sample: str
) -> None:
    account_no = SAMPLES[sample][1]
    remote = f"/outbox/{account_no}/{BILL_DATE:%Y%m%d}.dat"
    plan = FilePlan(remote, (DATA / sample).read_bytes(), absent_for=2)
    async with sftp_server(tmp_path, plans=[plan]) as server:
        settings = settings_for(
            tmp_path / "data",
            database_url,
            "http://unused.invalid",
            task_queue,
            bank_accounts_file=accounts_file(tmp_path, server, server.known_hosts_file, *SAMPLES[sample]),
        )
        async with running_worker(dev_env.client, settings):
            result = await asyncio.wait_for(
                dev_env.client.execute_workflow(
                    DailyStatementWorkflow.run,
                    DailyStatementInput(
                        account_no=account_no,
                        bill_date=BILL_DATE,
                        retry_interval_seconds=0.3,
                        alert_when_late=False,
                    ),
                    id=statement_workflow_id(account_no, BILL_DATE),
                    task_queue=task_queue,
                ),
                timeout=60,
            )
        moved = server.root / "outbox" / "processed" / f"{BILL_DATE:%Y%m%d}.dat"
        assert moved.read_bytes() == plan.content and not (server.root / remote.lstrip("/")).exists()
    opening, closing, rows = EXPECTED[sample]
    assert (result.status, result.fetch_attempts, result.opening_balance, result.closing_balance) == (
        "persisted",
        3,
        opening,
        closing,
    )
    statement, stored = stored_rows(database_url, account_no, BILL_DATE)
    assert statement is not None and statement.source_kind == "sftp"
    assert (statement.opening_balance, statement.closing_balance) == (opening, closing)
    assert [(row.serial_no, row.direction, str(row.amount)) for row in stored] == rows


async def test_a_changed_host_key_fails_the_statement_and_stores_nothing(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, sqlite_url: str
) -> None:
    sample = "mt940_de.sta"
    account_no = SAMPLES[sample][1]
    remote = f"/outbox/{account_no}/{BILL_DATE:%Y%m%d}.dat"
    async with sftp_server(
        tmp_path, plans=[FilePlan(remote, (DATA / sample).read_bytes(), absent_for=0)]
    ) as server:
        known_hosts = changed_host_key(tmp_path, server)
        settings = settings_for(
            tmp_path / "data",
            sqlite_url,
            "http://unused.invalid",
            task_queue,
            bank_accounts_file=accounts_file(tmp_path, server, known_hosts, *SAMPLES[sample]),
        )
        async with running_worker(dev_env.client, settings):
            message = await fails_with(
                dev_env.client.execute_workflow(
                    DailyStatementWorkflow.run,
                    DailyStatementInput(
                        account_no=account_no,
                        bill_date=BILL_DATE,
                        retry_interval_seconds=0.3,
                        alert_when_late=False,
                    ),
                    id=statement_workflow_id(account_no, BILL_DATE),
                    task_queue=task_queue,
                ),
                "BankRejected",
            )
    assert "HOST_KEY" in message and "known_hosts_file" in message
    assert count_rows(sqlite_url) == 0
