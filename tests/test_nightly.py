"""The nightly trigger: catch-up, per-date isolation, cron and Schedule, against real servers.

Statements run concurrently here, so most tests use the dev server in real time with
one-second intervals: the time-skipping server jumps its clock while an activity is
really running, which times out heartbeats of concurrent workflows.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowContinuedAsNewError, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.bank_reconcile import BankReconcileActivities
from activities.nightly import NightlyActivities
from activities.reconcile import ReconcileActivities
from bankrecon.config import Settings
from bankrecon.models import (
    DailyStatementInput,
    DailyStatementResult,
    NightlyPlan,
    NightlyStatementsInput,
    NightlyStatementsResult,
    StatementKey,
)
from bankrecon.ops.binaries import find_binary
from bankrecon.ops.nightly_schedule import apply_nightly_schedule
from bankrecon.sources.refbank.simulator.server import BankSimulator, StatementPlan
from bankrecon.statements.common import CHINA_STANDARD_TIME
from tests.harness import settings_for, stored_rows
from tests.temporal_fixtures import time_skipping_server
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id, yesterday_in_china
from workflows.nightly_statements import NightlyStatementsWorkflow

NEVER = StatementPlan(ready_after=1_000_000)
TODAY = date(2026, 11, 25)


def new_accounts(count: int) -> list[str]:
    """Account numbers no other test used: workflow ids outlive a test on the shared dev server."""
    return [f"62{random.randrange(10**14, 10**15)}{n}" for n in range(count)]


@pytest.fixture
def bank() -> Iterator[BankSimulator]:
    with BankSimulator(min_interval=0.2, today=lambda: TODAY) as sim:
        yield sim


def nightly_settings(tmp_path: Path, bank: BankSimulator, task_queue: str, accounts: list[str]) -> Settings:
    return settings_for(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'bankrecon.db'}",
        bank.url,
        task_queue,
        bank_accounts=accounts,
        bank_min_interval_seconds=0.2,
    )


async def run_nightly(client: Client, task_queue: str, **given: Any) -> NightlyStatementsResult:
    return await client.execute_workflow(
        NightlyStatementsWorkflow.run,
        NightlyStatementsInput(retry_interval_seconds=1, **given),
        id=f"nightly-test-{random.getrandbits(64):x}",
        task_queue=task_queue,
    )


async def statement_result(client: Client, account: str, bill_date: date) -> DailyStatementResult:
    handle = client.get_workflow_handle_for(
        DailyStatementWorkflow.run, statement_workflow_id(account, bill_date)
    )
    return await handle.result()


async def test_after_an_outage_the_next_night_starts_each_missing_date_once(
    dev_env: WorkflowEnvironment, bank: BankSimulator, tmp_path: Path, task_queue: str
) -> None:
    client = dev_env.client
    accounts = sorted(new_accounts(2))
    night = date(2026, 11, 24)
    stuck = (accounts[0], night - timedelta(days=1))
    bank.plan(*stuck, NEVER)
    settings = nightly_settings(tmp_path, bank, task_queue, accounts)
    async with asyncio.timeout(240), running_worker(client, settings):
        # Before the outage: the night of the 22nd ran and stored its statements.
        before = await run_nightly(client, task_queue, bill_date=night - timedelta(days=2), catch_up_days=0)
        assert len(before.started) == 2
        for account in accounts:
            await statement_result(client, account, night - timedelta(days=2))

        # Down for days; the first night back catches up the last 3 days.
        back = await run_nightly(client, task_queue, bill_date=night, catch_up_days=3)
        expected = [
            statement_workflow_id(account, night - timedelta(days=back_by))
            for back_by in range(3, -1, -1)
            if back_by != 2
            for account in accounts
        ]
        assert back.started == expected
        assert back.already_started == []
        for workflow_id in expected:
            _, account, day = workflow_id.split("-", 2)
            bill_date = date.fromisoformat(day)
            if (account, bill_date) != stuck:
                result = await statement_result(client, account, bill_date)
                assert result.status == "persisted" and result.fetch_attempts == 1

        # A night run again: only the stuck date lacks a statement, and its workflow runs.
        again = await run_nightly(client, task_queue, bill_date=night, catch_up_days=3)
        assert again.started == []
        assert again.already_started == [statement_workflow_id(*stuck)]
        stuck_handle = client.get_workflow_handle(statement_workflow_id(*stuck))
        assert (await stuck_handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await stuck_handle.terminate("test over")

    per_statement: dict[tuple[str, str], int] = {}
    for request in bank.requests:
        per_statement[(request.account_no, request.bill_date)] = (
            per_statement.get((request.account_no, request.bill_date), 0) + 1
        )
    stuck_key = (stuck[0], f"{stuck[1]:%Y%m%d}")
    per_statement.pop(stuck_key, None)  # it may have lost every race for the window by then
    assert len(per_statement) == 7 and set(per_statement.values()) == {1}
    statement, rows = stored_rows(settings.resolved_database_url(), accounts[1], night - timedelta(days=2))
    assert statement is not None and len(rows) == statement.transaction_count


async def test_a_date_that_never_comes_delays_no_other_date_or_account(
    dev_env: WorkflowEnvironment, bank: BankSimulator, tmp_path: Path, task_queue: str
) -> None:
    client = dev_env.client
    accounts = sorted(new_accounts(2))
    day1, day2, day3 = date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24)
    bank.plan(accounts[0], day1, NEVER)
    for account in accounts:
        for day in (day2, day3):
            bank.plan(account, day, StatementPlan(ready_after=1, lines=5))
    settings = nightly_settings(tmp_path, bank, task_queue, accounts)
    async with asyncio.timeout(240), running_worker(client, settings):
        first = await run_nightly(client, task_queue, bill_date=day1, catch_up_days=0)
        assert len(first.started) == 2
        # Each later night finds day 1 missing and its workflow running: no second start.
        for day in (day2, day3):
            night = await run_nightly(client, task_queue, bill_date=day)
            assert statement_workflow_id(accounts[0], day1) in night.already_started
            results = await asyncio.gather(*(statement_result(client, account, day) for account in accounts))
            # On time: one refusal, then the statement, whatever day 1 is doing.
            assert [r.fetch_attempts for r in results] == [2, 2]
        stuck = client.get_workflow_handle_for(
            DailyStatementWorkflow.run, statement_workflow_id(accounts[0], day1)
        )
        status = await stuck.query(DailyStatementWorkflow.status)
        assert status is not None and status.phase == "waiting_for_bank" and status.fetch_attempts >= 2
        assert status.last_answer is not None and status.last_answer.code == "9999"
        await stuck.terminate("test over")
    assert (await statement_result(client, accounts[1], day1)).status == "persisted"


async def test_a_date_that_never_comes_takes_no_turns_from_its_merchants_other_dates(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str
) -> None:
    """As in production, the retry interval is the bank's window (both 1800 s by default), here 1 s.

    The stuck date's retry then always comes first, at the window's opening; only the queue
    of the merchant's waiting statements gives the other dates their turns.
    """
    client = dev_env.client
    window = 1.0
    account = new_accounts(1)[0]
    stuck, others = date(2026, 11, 22), [date(2026, 11, 23), date(2026, 11, 24)]

    async def start(day: date) -> WorkflowHandle[DailyStatementWorkflow, DailyStatementResult]:
        return await client.start_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(account_no=account, bill_date=day, retry_interval_seconds=window),
            id=statement_workflow_id(account, day),
            task_queue=task_queue,
        )

    with BankSimulator(min_interval=window, today=lambda: TODAY) as bank:
        bank.plan(account, stuck, NEVER)
        for day in others:
            bank.plan(account, day, StatementPlan(ready_after=1, lines=5))
        settings = nightly_settings(tmp_path, bank, task_queue, [account]).model_copy(
            update={"bank_min_interval_seconds": window}
        )
        async with asyncio.timeout(120), running_worker(client, settings):
            stuck_handle = await start(stuck)
            while len(bank.requests_for(account, stuck)) < 2:  # it has the window's rhythm
                await asyncio.sleep(0.1)
            handles = [await start(day) for day in others]
            results = [await handle.result() for handle in handles]
            await stuck_handle.terminate("test over")
        requests = sorted(bank.requests, key=lambda r: r.arrived_monotonic)

    assert [r.fetch_attempts for r in results] == [2, 2]
    # Their turns came in a round: the stuck date had one turn between theirs, not every turn.
    wanted = {f"{day:%Y%m%d}" for day in others}
    theirs = [n for n, r in enumerate(requests) if r.bill_date in wanted]
    between = [r.bill_date for r in requests[theirs[0] : theirs[-1]]]
    assert between.count(f"{stuck:%Y%m%d}") <= 2, between
    arrivals = [r.arrived_monotonic for r in requests]
    assert all(later - earlier >= window for earlier, later in pairwise(arrivals))
    assert {r.code for r in requests} <= {"9999", "0000"}


async def test_the_schedule_is_created_and_updated_from_the_settings_and_its_run_starts_yesterday(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str
) -> None:
    client = dev_env.client
    accounts = new_accounts(1)
    yesterday = yesterday_in_china(datetime.now(UTC))
    with BankSimulator(min_interval=0.2) as bank:
        settings = nightly_settings(tmp_path, bank, task_queue, accounts).model_copy(
            update={"schedule_id": f"nightly-{task_queue}", "statement_retry_interval_seconds": 1}
        )
        first = await apply_nightly_schedule(client, settings)
        again = await apply_nightly_schedule(client, settings)
        assert (first.change, again.change) == ("created", "updated")
        handle = client.get_schedule_handle(settings.schedule_id)
        try:
            spec = (await handle.describe()).schedule.spec
            assert spec.time_zone_name == "Asia/Shanghai"
            assert [(c.hour[0].start, c.minute[0].start) for c in spec.calendars] == [(0, 30)]

            # An operator paused it; new settings move it to 01:15 and leave it paused.
            await handle.pause(note="bank maintenance")
            moved = settings.model_copy(update={"nightly_time": datetime.strptime("01:15", "%H:%M").time()})
            await apply_nightly_schedule(client, moved)
            described = await handle.describe()
            assert [(c.hour[0].start, c.minute[0].start) for c in described.schedule.spec.calendars] == [
                (1, 15)
            ]
            assert described.schedule.state.paused
            next_run = described.info.next_action_times[0].astimezone(CHINA_STANDARD_TIME)
            assert (next_run.hour, next_run.minute) == (1, 15)

            await handle.unpause()
            async with asyncio.timeout(240), running_worker(client, settings):
                await handle.trigger()
                result = await statement_result_when_started(client, accounts[0], yesterday)
            assert result.status == "persisted" and result.bill_date == yesterday
            runs = (await handle.describe()).info.recent_actions
            assert len(runs) == 1
        finally:
            await handle.delete()


async def statement_result_when_started(
    client: Client, account: str, bill_date: date
) -> DailyStatementResult:
    """The statement's result, once the nightly run (started elsewhere) has started its workflow."""
    while True:
        try:
            return await statement_result(client, account, bill_date)
        except Exception as exc:  # not started yet
            if "not found" not in str(exc).lower():
                raise
            await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    ("account_count", "max_starts_per_run"),
    [(1, 500), (2, 1)],
    ids=["one-run-a-night", "a-follow-up-run-starts-the-rest"],
)
async def test_as_a_cron_workflow_each_night_starts_yesterdays_statements(
    tmp_path: Path, task_queue: str, account_count: int, max_starts_per_run: int
) -> None:
    # A server of its own: a cron workflow, even terminated, keeps the Java test server
    # from skipping time for the tests after it.
    async with time_skipping_server() as env:
        accounts = new_accounts(account_count)
        await run_the_cron_workflow(env, tmp_path, task_queue, accounts, max_starts_per_run)


async def run_the_cron_workflow(
    env: WorkflowEnvironment, tmp_path: Path, task_queue: str, accounts: list[str], max_starts_per_run: int
) -> None:
    client = env.client
    first_night = next_half_past_midnight_in_china(await env.get_current_time())
    yesterday = first_night.date() - timedelta(days=1)
    with BankSimulator(min_interval=0, today=lambda: first_night.date()) as bank:
        settings = nightly_settings(tmp_path, bank, task_queue, accounts).model_copy(
            update={"bank_min_interval_seconds": 0}
        )
        async with asyncio.timeout(240), running_worker(client, settings):
            # The Java test server has no CRON_TZ: 16:30 UTC is 00:30 in China (no daylight saving there).
            handle = await client.start_workflow(
                NightlyStatementsWorkflow.run,
                NightlyStatementsInput(
                    catch_up_days=0, retry_interval_seconds=60, max_starts_per_run=max_starts_per_run
                ),
                id=f"nightly-cron-{task_queue}",
                task_queue=task_queue,
                cron_schedule="30 16 * * *",
            )
            try:
                with pytest.raises(WorkflowContinuedAsNewError):
                    await handle.result(follow_runs=False)  # a cron run ends by scheduling the next
                # With one start a run, a follow-up run starts the second account's statement.
                for account in accounts:
                    result = await statement_result_when_started(client, account, yesterday)
                    assert result.status == "persisted" and result.bill_date == yesterday
                # The newest run of the cron workflow is the next night's, waiting for its time.
                handle = client.get_workflow_handle(handle.id)
                described = await handle.describe()
                assert described.status == WorkflowExecutionStatus.RUNNING
                assert described.execution_time is not None
                second_night = first_night + timedelta(days=1)
                assert abs(described.execution_time - second_night) < timedelta(seconds=1)
            finally:
                await handle.terminate("test over")


def next_half_past_midnight_in_china(now: datetime) -> datetime:
    china = now.astimezone(CHINA_STANDARD_TIME)
    today_at = datetime.combine(china.date(), time(0, 30), CHINA_STANDARD_TIME)
    return today_at if china < today_at else today_at + timedelta(days=1)


async def test_the_readme_cron_command_runs_first_at_half_past_midnight_in_china(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    workflow_id = f"nightly-cron-{task_queue}"
    address = dev_env.client.service_client.config.target_host
    command = [
        find_binary("temporal"), "workflow", "start", "--address", address,
        "--type", "NightlyStatementsWorkflow", "--task-queue", task_queue, "--workflow-id", workflow_id,
        "--cron", "CRON_TZ=Asia/Shanghai 30 0 * * *", "--input", "{}",
    ]  # fmt: skip
    started = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    handle = dev_env.client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
        assert described.execution_time is not None
        first_run = next_half_past_midnight_in_china(described.start_time)
        assert abs(described.execution_time - first_run) < timedelta(seconds=1)
    finally:
        await handle.terminate("test over")


async def test_a_night_with_more_to_start_than_one_run_may_hands_the_rest_to_a_follow_up_run(
    dev_env: WorkflowEnvironment, bank: BankSimulator, tmp_path: Path, task_queue: str
) -> None:
    client = dev_env.client
    accounts = sorted(new_accounts(2))
    night = date(2026, 11, 24)
    expected = [
        statement_workflow_id(account, night - timedelta(days=back_by))
        for back_by in range(2, -1, -1)
        for account in accounts
    ]
    settings = nightly_settings(tmp_path, bank, task_queue, accounts)
    async with asyncio.timeout(240), running_worker(client, settings):
        first = await run_nightly(client, task_queue, bill_date=night, catch_up_days=2, max_starts_per_run=4)
        assert first.started == expected[:4]
        last_started = f"{accounts[1]}-{night - timedelta(days=1)}"
        assert first.follow_up == f"nightly-statements-{night}-after-{last_started}"
        rest = client.get_workflow_handle_for(NightlyStatementsWorkflow.run, first.follow_up)
        follow_up = await rest.result()
        # The follow-up run started what the first left, and left nothing.
        assert (follow_up.bill_date, follow_up.started, follow_up.follow_up) == (night, expected[4:], None)
        for back_by in range(3):
            for account in accounts:
                result = await statement_result(client, account, night - timedelta(days=back_by))
                assert result.status == "persisted"
    assert len(bank.requests) == 6


async def test_a_cron_night_with_a_follow_up_run_is_still_followed_by_the_next_night(
    dev_env: WorkflowEnvironment, bank: BankSimulator, tmp_path: Path, task_queue: str
) -> None:
    """Real cron on the real server, which drops a cron schedule on continue-as-new (the Java
    test server keeps it): nights two seconds apart, each starting one statement at most."""
    client = dev_env.client
    accounts = new_accounts(2)
    settings = nightly_settings(tmp_path, bank, task_queue, accounts)
    cron_id = f"nightly-cron-{task_queue}"
    night = date(2026, 11, 24)
    async with asyncio.timeout(240), running_worker(client, settings):
        handle = await client.start_workflow(
            NightlyStatementsWorkflow.run,
            NightlyStatementsInput(bill_date=night, catch_up_days=0, max_starts_per_run=1),
            id=cron_id,
            task_queue=task_queue,
            cron_schedule="@every 2s",
        )
        try:
            results = [await statement_result_when_started(client, account, night) for account in accounts]
            assert [result.status for result in results] == ["persisted", "persisted"]
            # More nights come: the first run's follow-up did not end the cron.
            async with asyncio.timeout(30):
                while len([run async for run in client.list_workflows(f"WorkflowId = '{cron_id}'")]) < 4:
                    await asyncio.sleep(0.5)
        finally:
            await handle.terminate("test over")


# The server refuses a payload over this many bytes; its default, 2 MB, is about 40,000 statements'
# plan. A twentieth of it gives the same refusal at a twentieth of the starts.
PAYLOAD_LIMIT = 2 * 1024 * 1024 // 20


@pytest.mark.slow
async def test_a_night_of_2500_missing_statements_starts_each_once_a_page_at_a_time(
    tmp_path: Path, task_queue: str
) -> None:
    """313 accounts after a week's outage, on a server whose payload limit is a twentieth of the default.
    The plan of them all was one activity result over that limit (at the default limit: 50,000
    statements, 3 MB): the run failed and started nothing.

    What is tested is the starting: no worker runs the statements' workflows (their task queue
    has none), so the nightly runs have the worker and the server to themselves.
    """
    accounts = new_accounts(313)
    night = date(2026, 11, 24)
    expected = [
        StatementKey(account_no=account, bill_date=night - timedelta(days=back_by))
        for back_by in range(8)
        for account in accounts
    ]
    whole_plan = NightlyPlan(accounts=len(accounts), missing=expected)
    assert len(pydantic_data_converter.payload_converter.to_payloads([whole_plan])[0].data) > PAYLOAD_LIMIT
    statements_queue = f"{task_queue}-statements"
    settings = settings_for(
        tmp_path / "data", f"sqlite:///{tmp_path / 'bankrecon.db'}", "http://127.0.0.1:9", task_queue,
        bank_accounts=accounts,
    )  # fmt: skip
    nightly = NightlyActivities(settings)
    reconcile = ReconcileActivities(settings)  # no RECON_CONFIG_FILE: nothing to reconcile
    bank_reconcile = BankReconcileActivities(settings)
    # A server of its own, for its payload limit and because 2,500 workflows would slow the
    # shared server's visibility queries.
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        ui=False,
        dev_server_extra_args=[
            *("--dynamic-config-value", f"limit.blobSize.error={PAYLOAD_LIMIT}"),
            *("--dynamic-config-value", f"limit.blobSize.warn={PAYLOAD_LIMIT // 2}"),
        ],
    )
    started: list[str] = []
    already: list[str] = []
    runs = 0
    try:
        client = env.client
        with ThreadPoolExecutor(max_workers=2) as executor:
            worker = Worker(
                client,
                task_queue=task_queue,
                workflows=[NightlyStatementsWorkflow],
                activities=[
                    nightly.plan_nightly_statements,
                    reconcile.reconciled_accounts,
                    bank_reconcile.bank_reconciled_accounts,
                ],
                activity_executor=executor,
            )
            # A bound against a hang, not a speed check: the dev server's own work for 50,000 starts
            # took over 900 s on a busy 2-core machine; 2,500 take a twentieth of that.
            async with asyncio.timeout(900), worker:
                # The first page is started within seconds; the plan of them all never completed.
                async with asyncio.timeout(60):
                    result = await run_nightly(
                        client,
                        task_queue,
                        bill_date=night,
                        catch_up_days=7,
                        statement_task_queue=statements_queue,
                    )
                while True:
                    runs += 1
                    started += result.started
                    already += result.already_started
                    if result.follow_up is None:
                        break
                    follow_up = client.get_workflow_handle_for(
                        NightlyStatementsWorkflow.run, result.follow_up
                    )
                    result = await follow_up.result()
                # Each once: a second start of a date would be a second execution of its id.
                query = f"TaskQueue = '{statements_queue}'"
                while (executions := (await client.count_workflows(query)).count) < len(started):
                    await asyncio.sleep(0.5)
    finally:
        await env.shutdown()
        nightly.close()
        reconcile.close()
        bank_reconcile.close()
    expected_ids = {statement_workflow_id(key.account_no, key.bill_date) for key in expected}
    assert len(expected_ids) == 2_504
    assert (len(started), set(started), already) == (2_504, expected_ids, [])
    assert executions == 2_504
    assert runs == 6  # 500 starts a run (max_starts_per_run)
