"""The bank's window is shared: statements of one merchant never make it answer 1005.

Real time on the dev server, because the bank's window is measured in real time.
"""

from __future__ import annotations

import asyncio
from datetime import date
from itertools import pairwise
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bankrecon.models import DailyStatementInput
from bankrecon.sources.refbank.simulator.server import BankSimulator, StatementPlan
from tests.harness import settings_for, stored_rows
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

WINDOW = 0.5
ACCOUNTS = [f"622202000000000{n}" for n in range(1, 4)]
DATES = [date(2026, 11, 23), date(2026, 11, 24)]


async def test_four_statements_of_one_merchant_on_two_workers_never_collide(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, database_url: str
) -> None:
    statements = [
        (ACCOUNTS[0], DATES[0]),
        (ACCOUNTS[0], DATES[1]),
        (ACCOUNTS[1], DATES[1]),
        (ACCOUNTS[2], DATES[1]),
    ]
    with BankSimulator(min_interval=WINDOW, today=lambda: date(2026, 11, 25)) as bank:
        for account, bill_date in statements:
            bank.plan(account, bill_date, StatementPlan(ready_after=2, lines=6))
        # Two workers of one task queue, each with its own connection pool to the one database.
        settings = [
            settings_for(
                tmp_path / "data", database_url, bank.url, task_queue, bank_min_interval_seconds=WINDOW
            )
            for _ in range(2)
        ]
        # A second connection, as a second worker process would have.
        other_client = await Client.connect(
            dev_env.client.service_client.config.target_host, data_converter=pydantic_data_converter
        )
        async with (
            running_worker(dev_env.client, settings[0]),
            running_worker(other_client, settings[1]),
        ):
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        dev_env.client.execute_workflow(
                            DailyStatementWorkflow.run,
                            DailyStatementInput(
                                account_no=account, bill_date=bill_date, retry_interval_seconds=WINDOW
                            ),
                            id=statement_workflow_id(account, bill_date),
                            task_queue=task_queue,
                        )
                        for account, bill_date in statements
                    )
                ),
                timeout=120,
            )
        log = bank.requests

    assert [r.code for r in log].count("1005") == 0, [r.code for r in log]
    assert len(log) == 3 * len(statements)
    arrivals = [r.arrived_monotonic for r in log]
    assert min(b - a for a, b in pairwise(arrivals)) >= WINDOW
    for (account, bill_date), result in zip(statements, results, strict=True):
        assert result.fetch_attempts == 3 and result.transaction_count == 6
        statement, rows = stored_rows(database_url, account, bill_date)
        assert statement is not None and len(rows) == 6
