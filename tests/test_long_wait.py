"""A date the bank never gets ready: the wait goes on for a year without its history growing unbounded."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from bankrecon.config import Settings
from bankrecon.models import DailyStatementInput
from bankrecon.sources.refbank.simulator.server import BankSimulator, StatementPlan
from bankrecon.store.db import bank_requests, make_engine
from tests.harness import ACCOUNT, BILL_DATE
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

DAYS = int(os.environ.get("BANKRECON_LONG_WAIT_DAYS", "400"))
# Three attempts a day: 1,200 in 400 days, some 8,400 events in one history without the bound.
INTERVAL = timedelta(hours=8)
EVENT_LIMIT = 10_000


async def _runs(client: Client, workflow_id: str, first_run_id: str) -> list[int]:
    """The history length of each run of the workflow, following continue-as-new from the first."""
    lengths = []
    run_id: str | None = first_run_id
    while run_id is not None:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        lengths.append(len(history.events))
        last = history.events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return lengths


async def test_a_date_refused_for_400_days_keeps_every_run_under_the_event_limit(
    time_skipping_env: WorkflowEnvironment,
    bank: BankSimulator,
    settings: Callable[..., Settings],
    sqlite_url: str,
    task_queue: str,
) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(outcome="9999"))
    client = time_skipping_env.client
    workflow_id = statement_workflow_id(ACCOUNT, BILL_DATE)
    async with running_worker(client, settings(sqlite_url)):
        handle = await client.start_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(
                account_no=ACCOUNT,
                bill_date=BILL_DATE,
                retry_interval_seconds=INTERVAL.total_seconds(),
                alert_when_late=False,
            ),
            id=workflow_id,
            task_queue=task_queue,
        )
        try:
            # In steps: one long sleep is one long call, which the test server's connection drops.
            for _ in range(DAYS // 10):
                await time_skipping_env.sleep(timedelta(days=10))
            current = client.get_workflow_handle(workflow_id)
            status = await current.query(DailyStatementWorkflow.status)
            described = await current.describe()
        finally:
            await client.get_workflow_handle(workflow_id).terminate("the test ended")

    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        sent = conn.execute(
            select(func.count()).select_from(bank_requests).where(bank_requests.c.workflow_id == workflow_id)
        ).scalar_one()
    engine.dispose()
    assert sent >= DAYS * timedelta(days=1) // INTERVAL * 9 // 10
    lengths = await _runs(client, workflow_id, handle.result_run_id or "")
    assert len(lengths) > 1 and max(lengths) < EVENT_LIMIT, lengths
    assert described.status == WorkflowExecutionStatus.RUNNING
    assert status is not None and status.phase == "waiting_for_bank"
    # Every run's requests count, not only the current run's.
    assert sent - 1 <= status.fetch_attempts <= sent
    assert status.last_answer is not None and status.last_answer.code == "9999"
    assert status.next_attempt_at is not None
    assert status.next_attempt_at - status.last_answer.at == INTERVAL
