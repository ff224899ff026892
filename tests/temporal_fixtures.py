"""Temporal servers and a one-statement runner for the tests that need them (see conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Any, Protocol

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bankrecon.config import Settings
from bankrecon.models import DailyStatementInput, DailyStatementResult
from bankrecon.ops.binaries import find_binary
from bankrecon.temporal.search_attributes import register_search_attributes
from tests.harness import ACCOUNT, BILL_DATE
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id


@asynccontextmanager
async def time_skipping_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_server() as env:
        yield env


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        ui=False,
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


class Collect(Protocol):
    def __call__(
        self,
        database_url: str,
        *,
        account_no: str = ...,
        bill_date: date = ...,
        inputs: dict[str, Any] | None = ...,
        **settings: Any,
    ) -> Awaitable[DailyStatementResult]: ...


@pytest.fixture
def collect(
    time_skipping_env: WorkflowEnvironment, settings: Callable[..., Settings], task_queue: str
) -> Collect:
    """Run one statement's workflow to its end, with a worker configured by ``settings``."""

    async def run(
        database_url: str,
        *,
        account_no: str = ACCOUNT,
        bill_date: date = BILL_DATE,
        inputs: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> DailyStatementResult:
        # The date's deadline has passed on this server's clock; alerts are tested on their own
        # (test_status_and_alerts.py), so here only the statement's own activities run.
        given = {"alert_when_late": False} | (inputs or {})
        client = time_skipping_env.client
        async with running_worker(client, settings(database_url, **overrides)):
            handle = await client.start_workflow(
                DailyStatementWorkflow.run,
                DailyStatementInput(account_no=account_no, bill_date=bill_date, **given),
                id=statement_workflow_id(account_no, bill_date),
                task_queue=task_queue,
            )
            try:
                # A broken retry policy must fail the test, not hang it.
                async with asyncio.timeout(120):
                    return await handle.result()
            finally:
                # A run left behind would hold the id that later tests of this server use.
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("the test ended")

    return run
