"""Real servers for the tests: Temporal (time-skipping and dev), SQLite and PostgreSQL, the simulator."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bankrecon.config import Settings
from bankrecon.models import DailyStatementInput, DailyStatementResult
from bankrecon.ops.binaries import find_binary
from bankrecon.sources.refbank.simulator.server import DEMO_MERCHANT_ID, BankSimulator
from bankrecon.temporal.search_attributes import register_search_attributes
from tests.harness import ACCOUNT, BILL_DATE, settings_for
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

POSTGRES_URL = os.environ.get("BANKRECON_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


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


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


def _postgres_schema_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test gets an empty database of each kind: a SQLite file or its own PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bankrecon.db'}"
    else:
        yield from _postgres_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bankrecon.db'}"


@pytest.fixture
def bank() -> Iterator[BankSimulator]:
    """The simulated bank for time-skipping tests, knowing ACCOUNT; its today is 2026-11-25."""
    # The bank's window is real time; the time-skipping server's retries are not.
    # Here the window is off on both sides and spacing is the retry policy's alone.
    with BankSimulator(
        min_interval=0, today=lambda: date(2026, 11, 25), accounts={DEMO_MERCHANT_ID: {ACCOUNT}}
    ) as sim:
        yield sim


@pytest.fixture
def settings(bank: BankSimulator, task_queue: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(database_url: str, **overrides: Any) -> Settings:
        return settings_for(tmp_path / "data", database_url, bank.url, task_queue, **overrides)

    return make


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
