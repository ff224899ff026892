"""The bank's window is shared: statements of one merchant never make it answer 1005.

Real time on the dev server, because the bank's window is measured in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bankrecon.models import DailyStatementInput
from bankrecon.sources.refbank.simulator.server import BankSimulator, StatementPlan
from tests.harness import settings_for, stored_rows
from tests.processes import ProcessGroup, start_worker, worker_env
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


# libfaketime moves the wall clock of the process it is preloaded into (Debian package faketime,
# which scripts/system-packages.sh installs). Monotonic time is left alone: asyncio and the
# Temporal SDK time their timers with it, and a host whose wall clock is off still counts
# seconds at the right pace. FAKETIME_NO_CACHE makes the offset hold from the first call.
FAKETIME_LIBRARIES = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
CLOCK_OFFSET = 3.0
# Longer than the offset: a worker whose clock is ahead by less than a window still sent early.
SKEWED_WINDOW = 4.0


def clock_shifted_by(offset: float) -> dict[str, str]:
    """The environment that runs a process as on a host whose clock is ``offset`` seconds off."""
    assert FAKETIME_LIBRARIES, "libfaketime is missing: apt-get install faketime (scripts/system-packages.sh)"
    return {
        "LD_PRELOAD": str(FAKETIME_LIBRARIES[0]),
        "FAKETIME": f"{offset:+}s",
        "FAKETIME_NO_CACHE": "1",
        "DONT_FAKE_MONOTONIC": "1",
    }


def test_faketime_moves_the_wall_clock_of_python() -> None:
    shifted = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        env=os.environ | clock_shifted_by(CLOCK_OFFSET),
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(shifted.stdout) - time.time() == pytest.approx(CLOCK_OFFSET, abs=1.0)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessGroup]:
    with ProcessGroup(tmp_path / "logs") as group:
        yield group


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("first_clock", "second_clock"),
    [(0.0, CLOCK_OFFSET), (-CLOCK_OFFSET, 0.0)],
    ids=["second-worker-ahead", "first-worker-behind"],
)
async def test_workers_whose_clocks_differ_keep_the_window(
    first_clock: float,
    second_clock: float,
    dev_env: WorkflowEnvironment,
    processes: ProcessGroup,
    task_queue: str,
    tmp_path: Path,
    database_url: str,
) -> None:
    """A statement on one worker, then one on the other, whose clock is ahead: never inside the window."""
    bill_date = DATES[0]
    with BankSimulator(min_interval=SKEWED_WINDOW, today=lambda: date(2026, 11, 25)) as bank:
        # A task queue each, so that each statement is fetched by the worker meant for it.
        task_queues = [task_queue, f"{task_queue}-other"]
        accounts = ACCOUNTS[:2]
        for account, queue, offset in zip(accounts, task_queues, (first_clock, second_clock), strict=True):
            bank.plan(account, bill_date, StatementPlan(lines=3))
            env = worker_env(
                temporal_address=dev_env.client.service_client.config.target_host,
                task_queue=queue,
                data_dir=tmp_path / "data",
                database_url=database_url,
                bank_url=bank.url,
                min_interval=SKEWED_WINDOW,
                request_timeout=5,
            )
            start_worker(processes, env | (clock_shifted_by(offset) if offset else {}))
        for account, queue in zip(accounts, task_queues, strict=True):
            handle = await dev_env.client.start_workflow(
                DailyStatementWorkflow.run,
                DailyStatementInput(account_no=account, bill_date=bill_date),
                # Unique: the session's dev server keeps the runs of other tests.
                id=f"{statement_workflow_id(account, bill_date)}-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
                execution_timeout=timedelta(seconds=60),
            )
            # After a 1005 the next attempt would come a retry interval (30 min) later, past the
            # run's timeout, so the run fails at once; the bank's log below tells what happened.
            with contextlib.suppress(WorkflowFailureError):
                await handle.result()
        log = bank.requests

    assert min(b.arrived_monotonic - a.arrived_monotonic for a, b in pairwise(log)) >= SKEWED_WINDOW
    assert [r.code for r in log] == ["0000", "0000"]
