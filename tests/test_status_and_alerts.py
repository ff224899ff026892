"""The status query and the late-data alert, on a time-skipping server whose clock starts now.

The deadline belongs to the statement's date (09:00 China time the day after), so these
tests take today's date in China as the statement's date: its deadline lies ahead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from bankrecon.models import DailyStatementInput, DailyStatementResult, DailyStatementStatus
from bankrecon.sources.refbank.simulator.server import DEMO_MERCHANT_ID, BankSimulator, StatementPlan
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.temporal.search_attributes import (
    BANK_ACCOUNT,
    BILL_DATE,
    STATEMENT_LATE,
    STATEMENT_PHASE,
)
from tests.harness import ACCOUNT, settings_for
from tests.temporal_fixtures import time_skipping_server
from tests.webhook import WebhookReceiver, webhook_receiver
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_deadline, statement_workflow_id


@pytest.fixture
async def fresh_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of its own: the shared one's clock runs far ahead after a while."""
    async with time_skipping_server() as env:
        yield env


@pytest.fixture
async def today_in_china(fresh_env: WorkflowEnvironment) -> date:
    return (await fresh_env.get_current_time()).astimezone(CHINA_STANDARD_TIME).date()


@pytest.fixture
def bank(today_in_china: date) -> Iterator[BankSimulator]:
    with BankSimulator(
        min_interval=0,
        today=lambda: today_in_china + timedelta(days=1),
        accounts={DEMO_MERCHANT_ID: {ACCOUNT}},
    ) as sim:
        yield sim


async def _run(
    env: WorkflowEnvironment,
    bank: BankSimulator,
    hook: WebhookReceiver,
    tmp_path: Path,
    task_queue: str,
    bill_date: date,
    interval: timedelta,
) -> tuple[DailyStatementResult, DailyStatementStatus, datetime]:
    settings = settings_for(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'bankrecon.db'}",
        bank.url,
        task_queue,
        alert_webhook_url=hook.url,
    )
    async with asyncio.timeout(120), running_worker(env.client, settings):
        handle = await env.client.start_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(
                account_no=ACCOUNT, bill_date=bill_date, retry_interval_seconds=interval.total_seconds()
            ),
            id=statement_workflow_id(ACCOUNT, bill_date),
            task_queue=task_queue,
        )
        result = await handle.result()
        status = await handle.query(DailyStatementWorkflow.status)
        started = (await handle.describe()).start_time
    assert status is not None
    return result, status, started


def _alert_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bankrecon.alerts"]


async def test_one_alert_at_the_deadline_and_one_recovery_notice_when_the_data_lands(
    fresh_env: WorkflowEnvironment,
    bank: BankSimulator,
    today_in_china: date,
    tmp_path: Path,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bankrecon.alerts")
    interval = timedelta(hours=2)
    deadline = statement_deadline(today_in_china, time(9, 0))
    now = await fresh_env.get_current_time()
    # Ready two attempts after the deadline.
    refusals = (deadline - now) // interval + 2
    bank.plan(ACCOUNT, today_in_china, StatementPlan(ready_after=refusals))

    # The receiver is down for the first POST: the alert is retried, and still sent once.
    with webhook_receiver(fail_first=1) as hook:
        result, status, started = await _run(
            fresh_env, bank, hook, tmp_path, task_queue, today_in_china, interval
        )

    assert result.fetch_attempts == refusals + 1
    assert [p.body["event"] for p in hook.posts] == ["statement_late", "statement_recovered"]
    late, recovered = (p.body for p in hook.posts)
    workflow_id = statement_workflow_id(ACCOUNT, today_in_china)
    described = await fresh_env.client.get_workflow_handle(workflow_id).describe()
    assert [p.headers["Idempotency-Key"] for p in hook.posts] == [
        f"{workflow_id}/{described.run_id}/late",
        f"{workflow_id}/{described.run_id}/recovered",
    ]
    assert late["run_id"] == recovered["run_id"] == described.run_id
    assert hook.posts[0].path == "/hooks/bankrecon?token=s3cret"
    assert late["statement"] == {"account_no": ACCOUNT, "bill_date": today_in_china.isoformat()}
    assert datetime.fromisoformat(late["deadline"]) == deadline
    assert deadline <= datetime.fromisoformat(late["at"]) < deadline + timedelta(minutes=1)
    # Attempts at start, start + 2 h, ... up to the deadline had been answered 9999.
    assert late["fetch_attempts"] == (deadline - started) // interval + 1
    assert late["last_answer"]["code"] == "9999"
    assert datetime.fromisoformat(recovered["at"]) >= started + refusals * interval
    assert recovered["fetch_attempts"] == refusals + 1

    assert status.late and status.phase == "done"
    attributes = described.typed_search_attributes
    assert attributes.get(STATEMENT_LATE) is True
    assert attributes.get(STATEMENT_PHASE) == "done"
    records = _alert_records(caplog)
    assert [r.getMessage().split(":")[0] for r in records] == [
        "statement not stored by its deadline; still trying",
        "late statement now stored",
    ]


async def test_no_alert_when_the_statement_lands_before_its_deadline(
    fresh_env: WorkflowEnvironment,
    bank: BankSimulator,
    today_in_china: date,
    tmp_path: Path,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bankrecon.alerts")
    bank.plan(ACCOUNT, today_in_china, StatementPlan(ready_after=2))
    with webhook_receiver() as hook:
        result, status, _ = await _run(
            fresh_env, bank, hook, tmp_path, task_queue, today_in_china, timedelta(hours=2)
        )
    assert result.fetch_attempts == 3
    assert hook.posts == []
    assert _alert_records(caplog) == []
    assert not status.late


async def test_a_webhook_that_stays_down_does_not_hold_the_statement(
    fresh_env: WorkflowEnvironment,
    bank: BankSimulator,
    today_in_china: date,
    tmp_path: Path,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    interval = timedelta(hours=2)
    deadline = statement_deadline(today_in_china, time(9, 0))
    refusals = (deadline - await fresh_env.get_current_time()) // interval + 2
    bank.plan(ACCOUNT, today_in_china, StatementPlan(ready_after=refusals))
    with webhook_receiver(fail_first=1_000) as hook:
        result, status, _ = await _run(fresh_env, bank, hook, tmp_path, task_queue, today_in_china, interval)
    assert result.status == "persisted" and status.late
    assert hook.posts == [] and hook.fail_first == 1_000 - 24  # 12 tries for each notice
    undelivered = [r.getMessage() for r in caplog.records if "could not deliver" in r.getMessage()]
    assert len(undelivered) == 2
    assert not any("s3cret" in record.getMessage() for record in caplog.records)


async def _status_when(
    handle: WorkflowHandle[DailyStatementWorkflow, DailyStatementResult], attempts: int
) -> DailyStatementStatus:
    """The status once the workflow has heard of ``attempts`` bank requests (reports are signals)."""
    async with asyncio.timeout(20):
        while True:
            status = await handle.query(DailyStatementWorkflow.status)
            if status is not None and status.fetch_attempts >= attempts:
                return status
            await asyncio.sleep(0.1)


async def test_status_shows_attempts_last_answer_next_attempt_and_deadline(
    fresh_env: WorkflowEnvironment, bank: BankSimulator, today_in_china: date, tmp_path: Path, task_queue: str
) -> None:
    bank.plan(ACCOUNT, today_in_china, StatementPlan(ready_after=3))
    settings = settings_for(tmp_path / "data", f"sqlite:///{tmp_path / 'b.db'}", bank.url, task_queue)
    async with asyncio.timeout(120), running_worker(fresh_env.client, settings):
        handle = await fresh_env.client.start_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(account_no=ACCOUNT, bill_date=today_in_china),
            id=statement_workflow_id(ACCOUNT, today_in_china),
            task_queue=task_queue,
        )
        await fresh_env.sleep(timedelta(minutes=61))  # attempts at 0, 30 and 60 minutes
        waiting = await _status_when(handle, 3)
        described = await handle.describe()
        result = await handle.result()
        done = await handle.query(DailyStatementWorkflow.status)
        history = await handle.fetch_history()

    assert waiting.phase == "waiting_for_bank"
    assert waiting.fetch_attempts == 3
    assert waiting.last_answer is not None
    assert (waiting.last_answer.code, waiting.last_answer.message) == ("9999", "系统错误")
    assert waiting.next_attempt_at == waiting.last_answer.at + timedelta(minutes=30)
    assert waiting.deadline == statement_deadline(today_in_china, time(9, 0))
    assert not waiting.late
    attributes = described.typed_search_attributes
    assert attributes.get(BANK_ACCOUNT) == ACCOUNT
    assert attributes.get(BILL_DATE) == today_in_china.isoformat()
    assert attributes.get(STATEMENT_PHASE) == "waiting_for_bank"

    assert result.fetch_attempts == 4
    assert done is not None and done.phase == "done" and done.fetch_attempts == 4
    assert done.last_answer is not None
    assert (done.last_answer.code, done.last_answer.message) == ("0000", "成功")
    assert done.next_attempt_at is None
    # A signal for each refusal; the answer with the file came with the fetch's result.
    signals = [e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")]
    assert len(signals) == 3
