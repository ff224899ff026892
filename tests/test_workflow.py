"""DailyStatementWorkflow with real activities, on the time-skipping test server, against the simulator."""

from __future__ import annotations

import asyncio
import base64
import re
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from bankrecon.config import Settings
from bankrecon.models import DailyStatementInput, DailyStatementResult
from bankrecon.sources.refbank.simulator.generator import generate_statement
from bankrecon.sources.refbank.simulator.server import (
    DEMO_MERCHANT_ID,
    DEMO_MERCHANT_SECRET,
    BankSimulator,
    StatementPlan,
)
from bankrecon.statements.common import CHINA_STANDARD_TIME
from tests.harness import ACCOUNT, BILL_DATE, count_rows, fails_with, stored_rows
from tests.temporal_fixtures import Collect
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id, yesterday_in_china

HALF_HOUR = timedelta(minutes=30)


async def test_five_refusals_then_success_each_attempt_half_an_hour_apart(
    time_skipping_env: WorkflowEnvironment, bank: BankSimulator, collect: Collect, sqlite_url: str
) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(ready_after=5, lines=40, parts=2))
    loop = asyncio.get_running_loop()
    workflow_times: list[datetime] = []
    lock = threading.Lock()

    def note_workflow_time(_record: object) -> None:
        # Runs on the simulator's thread while the test's loop awaits the workflow.
        now = asyncio.run_coroutine_threadsafe(time_skipping_env.get_current_time(), loop).result(10)
        with lock:
            workflow_times.append(now)

    bank.on_request = note_workflow_time
    result = await collect(sqlite_url)

    assert result.fetch_attempts == 6
    assert [r.code for r in bank.requests_for(ACCOUNT, BILL_DATE)] == ["9999"] * 5 + ["0000"]
    gaps = [later - earlier for earlier, later in pairwise(workflow_times)]
    assert len(gaps) == 5
    for gap in gaps:
        assert HALF_HOUR <= gap < HALF_HOUR + timedelta(seconds=5), gaps

    expected = generate_statement(ACCOUNT, BILL_DATE, seed=bank.seed, lines=40, parts=2)
    statement, rows = stored_rows(sqlite_url, ACCOUNT, BILL_DATE)
    assert result.transaction_count == 40 and len(rows) == 40
    assert statement.closing_balance == expected.closing_balance == result.closing_balance
    assert [(r.serial_no, r.direction, r.amount, r.balance_after) for r in rows] == [
        (t.serial_no, t.direction, t.amount, t.balance_after) for t in expected.transactions()
    ]


async def test_no_attempt_cap(bank: BankSimulator, collect: Collect, sqlite_url: str) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(ready_after=100, lines=3))
    result = await collect(sqlite_url)
    assert result.fetch_attempts == 101
    assert result.transaction_count == 3


@pytest.mark.parametrize(
    ("code", "advice", "account_no", "bill_date", "overrides"),
    [
        ("1001", "BANK_MERCHANT_SECRET", ACCOUNT, BILL_DATE, {"bank_merchant_secret": "wrong"}),
        ("1002", "account unknown", "6222029999999999", BILL_DATE, {}),
        # In the future of the simulated bank's today.
        ("1003", "90-day retention", ACCOUNT, date(2026, 12, 24), {}),
    ],
)
async def test_permanent_answers_fail_after_one_request(
    bank: BankSimulator,
    collect: Collect,
    sqlite_url: str,
    code: str,
    advice: str,
    account_no: str,
    bill_date: date,
    overrides: dict[str, Any],
) -> None:
    message = await fails_with(
        collect(sqlite_url, account_no=account_no, bill_date=bill_date, **overrides), "BankRejected"
    )
    assert code in message and advice in message
    assert len(bank.requests) == 1
    assert count_rows(sqlite_url) == 0


@pytest.mark.parametrize("plan", [StatementPlan(outcome="empty"), StatementPlan(lines=0, parts=2)])
async def test_no_transactions_persist_an_empty_statement(
    bank: BankSimulator, collect: Collect, database_url: str, plan: StatementPlan
) -> None:
    bank.plan(ACCOUNT, BILL_DATE, plan)
    result = await collect(database_url)
    statement, rows = stored_rows(database_url, ACCOUNT, BILL_DATE)
    assert result.transaction_count == 0 and rows == []
    assert statement.transaction_count == 0
    assert statement.bank_code == result.bank_code == ("2001" if plan.outcome == "empty" else "0000")
    if plan.outcome == "empty":
        assert statement.opening_balance is None and statement.currency is None
    else:
        assert statement.opening_balance == statement.closing_balance is not None


async def test_transport_faults_and_odd_answers_are_retried(
    bank: BankSimulator, collect: Collect, sqlite_url: str
) -> None:
    faults = ["500", "500html", "502", "reset", "stall:3"]
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=5, mime_wrap=True, faults=faults))
    result = await collect(sqlite_url, bank_request_timeout_seconds=1)
    assert result.fetch_attempts == len(faults) + 1
    assert result.transaction_count == 5


async def test_unknown_code_and_checksum_mismatch_are_retried(
    time_skipping_env: WorkflowEnvironment,
    bank: BankSimulator,
    settings: Callable[..., Settings],
    task_queue: str,
    sqlite_url: str,
) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(outcome="7777"))
    async with running_worker(time_skipping_env.client, settings(sqlite_url)):
        # Time skips only while a result is awaited; this test watches, so its interval is short.
        handle = await time_skipping_env.client.start_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(account_no=ACCOUNT, bill_date=BILL_DATE, retry_interval_seconds=0.1),
            id=statement_workflow_id(ACCOUNT, BILL_DATE),
            task_queue=task_queue,
        )
        failures = await _pending_failures(handle, until=lambda: len(bank.requests) >= 2)
        assert any("7777" in f for f in failures), failures
        bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=4, sha256_override="0" * 64))
        seen = len(bank.requests)
        failures = await _pending_failures(handle, until=lambda: len(bank.requests) >= seen + 2)
        assert any("file_sha256 mismatch" in f for f in failures), failures
        assert count_rows(sqlite_url) == 0
        bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=4))
        result = await handle.result()
    assert result.transaction_count == 4
    assert result.fetch_attempts == len(bank.requests)


async def _pending_failures(handle: WorkflowHandle[Any, Any], until: Callable[[], bool]) -> set[str]:
    """The fetch's last-failure messages seen while waiting for ``until()``."""
    seen: set[str] = set()
    for _ in range(200):
        description = await handle.describe()
        seen |= {p.last_failure.message for p in description.raw_description.pending_activities}
        if until():
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not reached; failures seen: {seen}")


async def test_invalid_input_fails_the_workflow_with_the_reason(
    time_skipping_env: WorkflowEnvironment,
    bank: BankSimulator,
    settings: Callable[..., Settings],
    task_queue: str,
    sqlite_url: str,
) -> None:
    async with running_worker(time_skipping_env.client, settings(sqlite_url)):
        with pytest.raises(WorkflowFailureError) as failure:
            await time_skipping_env.client.execute_workflow(
                "DailyStatementWorkflow",
                {"account_no": "62220200", "bill_date": "2026-11-24"},
                id="statement-bad-input",
                task_queue=task_queue,
            )
    assert "account_no" in str(failure.value.cause)
    assert bank.requests == []


async def test_history_holds_no_statement_data_and_no_credentials(
    time_skipping_env: WorkflowEnvironment, bank: BankSimulator, collect: Collect, sqlite_url: str
) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(ready_after=1, lines=30))
    await collect(sqlite_url)
    handle = time_skipping_env.client.get_workflow_handle(statement_workflow_id(ACCOUNT, BILL_DATE))
    raw = (await handle.fetch_history()).to_json()
    # Payloads are base64 in the JSON: read them decoded, as the Web UI shows them.
    history = raw + "".join(
        base64.b64decode(data).decode("utf-8", "replace")
        for data in re.findall(r'"data":\s*"([A-Za-z0-9+/=]+)"', raw)
    )
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=bank.seed, lines=30)
    assert DEMO_MERCHANT_SECRET not in history
    for txn in statement.transactions():
        assert txn.serial_no not in history
        if txn.counterparty_name:
            assert txn.counterparty_name not in history
    assert '"transaction_count":30' in history.replace(" ", "")  # the summary is there, readable


OTHER_MERCHANT, OTHER_SECRET, OTHER_ACCOUNT = "M200002", "other-secret", "6222030000000009"


@pytest.fixture
def accounts_file(bank: BankSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two merchants of one bank, each with its own account and credentials."""
    bank.merchants[OTHER_MERCHANT] = OTHER_SECRET
    bank.accounts = {DEMO_MERCHANT_ID: {ACCOUNT}, OTHER_MERCHANT: {OTHER_ACCOUNT}}
    monkeypatch.setenv("TEST_OTHER_SECRET", OTHER_SECRET)
    path = tmp_path / "accounts.toml"
    path.write_text(
        f'[[merchant]]\nid = "{DEMO_MERCHANT_ID}"\nsecret = "{DEMO_MERCHANT_SECRET}"\n'
        f'[[merchant]]\nid = "{OTHER_MERCHANT}"\nsecret_env = "TEST_OTHER_SECRET"\n'
        f'[[account]]\naccount_no = "{ACCOUNT}"\nmerchant = "{DEMO_MERCHANT_ID}"\ncurrency = "CNY"\n'
        f'[[account]]\naccount_no = "{OTHER_ACCOUNT}"\nmerchant = "{OTHER_MERCHANT}"\ncurrency = "USD"\n'
    )
    return path


async def test_each_account_is_fetched_with_its_merchants_credentials(
    bank: BankSimulator, collect: Collect, sqlite_url: str, accounts_file: Path
) -> None:
    bank.plan(OTHER_ACCOUNT, BILL_DATE, StatementPlan(lines=3, currency="USD"))
    first = await collect(sqlite_url, bank_accounts_file=accounts_file)
    second = await collect(sqlite_url, account_no=OTHER_ACCOUNT, bank_accounts_file=accounts_file)
    assert (first.currency, second.currency) == ("CNY", "USD")
    assert [(r.merchant_id, r.account_no, r.code) for r in bank.requests] == [
        (DEMO_MERCHANT_ID, ACCOUNT, "0000"),
        (OTHER_MERCHANT, OTHER_ACCOUNT, "0000"),
    ]


async def test_an_unconfigured_account_fails_without_asking_the_bank(
    bank: BankSimulator, collect: Collect, sqlite_url: str, accounts_file: Path
) -> None:
    message = await fails_with(
        collect(sqlite_url, account_no="6222040000000000", bank_accounts_file=accounts_file),
        "AccountNotConfigured",
    )
    assert "BANK_ACCOUNTS_FILE" in message
    assert bank.requests == []


async def test_a_statement_in_another_currency_than_configured_is_damaged(
    bank: BankSimulator, collect: Collect, sqlite_url: str, accounts_file: Path
) -> None:
    bank.plan(OTHER_ACCOUNT, BILL_DATE, StatementPlan(lines=3, currency="CNY"))  # configured: USD
    message = await fails_with(
        collect(sqlite_url, account_no=OTHER_ACCOUNT, bank_accounts_file=accounts_file), "StatementDamaged"
    )
    assert "rule 1" in message and "USD" in message
    assert count_rows(sqlite_url) == 0


@pytest.mark.parametrize(
    ("started_utc", "bill_date"),
    [
        (datetime(2026, 11, 24, 16, 30, tzinfo=UTC), date(2026, 11, 24)),  # 00:30 on the 25th in Shanghai
        (datetime(2026, 11, 24, 15, 59, tzinfo=UTC), date(2026, 11, 23)),  # 23:59 on the 24th in Shanghai
        (datetime(2026, 3, 1, 0, 0, tzinfo=UTC), date(2026, 2, 28)),
    ],
)
def test_yesterday_is_taken_in_china_standard_time(started_utc: datetime, bill_date: date) -> None:
    assert yesterday_in_china(started_utc) == bill_date


async def test_bill_date_defaults_to_yesterday_from_the_workflows_start(
    dev_env: WorkflowEnvironment,
    bank: BankSimulator,
    settings: Callable[..., Settings],
    task_queue: str,
    sqlite_url: str,
) -> None:
    # The real clock: the time-skipping server's own runs far ahead once workflows have ended.
    bank.today = lambda: datetime.now(UTC).astimezone(CHINA_STANDARD_TIME).date()
    async with running_worker(dev_env.client, settings(sqlite_url)):
        handle = await dev_env.client.start_workflow(
            "DailyStatementWorkflow",
            {"account_no": ACCOUNT},  # as from the CLI: no bill_date
            id=f"statement-{ACCOUNT}-yesterday",
            task_queue=task_queue,
            result_type=DailyStatementResult,
        )
        result = await asyncio.wait_for(handle.result(), 60)
        started = (await handle.describe()).start_time
    assert result.bill_date == yesterday_in_china(started)
    assert stored_rows(sqlite_url, ACCOUNT, result.bill_date)[0] is not None
