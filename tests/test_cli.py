"""The `bankrecon` console commands, run as processes against the dev server, a worker and the simulator."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import groupby, pairwise
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from bankrecon.config import Settings
from bankrecon.models import DailyStatementInput, PersistRequest, StatementKey, StatementTotals
from bankrecon.ops.binaries import find_binary
from bankrecon.sources.refbank.simulator.server import (
    DEMO_MERCHANT_ID,
    DEMO_MERCHANT_SECRET,
    BankSimulator,
    StatementPlan,
)
from bankrecon.store.db import cancelled_statements, make_engine
from bankrecon.store.persistence import save_statement
from bankrecon.store.schema import prepare_schema
from bankrecon.temporal.search_attributes import STATEMENT_PHASE
from tests.harness import settings_for, stored_rows
from tests.test_nightly import new_accounts, run_nightly
from tests.webhook import webhook_receiver
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id, yesterday_in_china

WINDOW = 1.0
TODAY = date(2026, 11, 25)
BANKRECON = [sys.executable, "-m", "bankrecon.ops.cli"]


@dataclass
class Console:
    """Runs `bankrecon` as an operator would, configured like the test's worker."""

    settings: Settings
    cwd: Path

    def environment(self, env: dict[str, str] | None = None) -> dict[str, str]:
        settings = self.settings
        return (
            dict(os.environ)
            | {
                "TEMPORAL_ADDRESS": settings.temporal_address,
                "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
                "DATA_DIR": str(settings.data_dir),
                "DATABASE_URL": settings.resolved_database_url(),
                "BANK_BASE_URL": settings.bank_base_url,
                "BANK_MERCHANT_SECRET": DEMO_MERCHANT_SECRET,
                "BANK_MIN_INTERVAL_SECONDS": str(settings.bank_min_interval_seconds),
                "STATEMENT_RETRY_INTERVAL_SECONDS": str(settings.statement_retry_interval_seconds),
            }
            | (env or {})
        )

    async def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        # A thread, so that the test's event loop (and the worker on it) keeps running.
        return await asyncio.to_thread(
            subprocess.run,
            [*BANKRECON, *args],
            env=self.environment(env),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=90,
        )


@pytest.fixture
def bank() -> Iterator[BankSimulator]:
    with BankSimulator(min_interval=WINDOW, today=lambda: TODAY) as sim:
        yield sim


@pytest.fixture
def settings(dev_env: WorkflowEnvironment, bank: BankSimulator, task_queue: str, tmp_path: Path) -> Settings:
    return settings_for(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'bankrecon.db'}",
        bank.url,
        task_queue,
        temporal_address=dev_env.client.service_client.config.target_host,
        bank_min_interval_seconds=WINDOW,
        statement_retry_interval_seconds=1,
    )


@pytest.fixture
def console(settings: Settings, tmp_path: Path) -> Console:
    return Console(settings, tmp_path)


async def test_backfill_paces_by_the_merchants_window_with_progress_and_a_summary(
    dev_env: WorkflowEnvironment, bank: BankSimulator, settings: Settings, console: Console
) -> None:
    account = new_accounts(1)[0]
    dates = [date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)]
    bank.plan(account, dates[1], StatementPlan(outcome="2001"))
    async with running_worker(dev_env.client, settings):
        done = await console.run("backfill", account, "2026-11-20", "2026-11-22")
        again = await console.run("backfill", account, "2026-11-20", "2026-11-22")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"3 dates of {account} (2026-11-20 to 2026-11-22): 3 started, 0 already stored, 0 running already"
    )
    assert lines[1].startswith(f"merchant {DEMO_MERCHANT_ID} allows one request every 0:00:01: ")
    assert "all done by about" in lines[1]
    # Not a terminal: a plain line per change, no bar.
    progress = [line for line in lines if re.match(r"\d/3  stored", line)]
    assert progress[0].startswith("0/3  stored 0  failed 0  expected done by")
    assert progress[-1] == "3/3  stored 3  failed 0"
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["DATE", "OUTCOME", "TRANSACTIONS", "BANK", "REQUESTS", "CLOSING", "BALANCE"]
    assert [row.split()[:2] for row in table[1:]] == [[str(day), "stored"] for day in dates]
    assert "(no transactions)" in table[2]

    # Paced by the window: arrivals at least one window apart, and the bank never said 1005.
    arrivals = sorted(r.arrived_monotonic for r in bank.requests)
    assert len(arrivals) == 3
    assert all(later - earlier >= WINDOW for earlier, later in pairwise(arrivals))
    assert {r.code for r in bank.requests} == {"0000", "2001"}
    for day in (dates[0], dates[2]):
        statement, rows = stored_rows(settings.resolved_database_url(), account, day)
        assert statement is not None and len(rows) == statement.transaction_count > 0

    # A second backfill starts nothing, so it expects no finishing time, and reports what is stored.
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0].endswith("0 started, 3 already stored, 0 running already")
    assert "all done by" not in again.stdout and "expected done by" not in again.stdout
    assert [row.split()[:3] for row in again.stdout.splitlines()[-3:]] == [
        [str(day), "already", "stored"] for day in dates
    ]
    assert len(bank.requests) == 3


async def test_backfill_takes_what_is_stored_from_the_database_not_from_temporal(
    dev_env: WorkflowEnvironment, bank: BankSimulator, settings: Settings, console: Console
) -> None:
    """As after the namespace's retention: the statement is stored, Temporal has no run of it."""
    account = new_accounts(1)[0]
    stored, missing = date(2026, 11, 20), date(2026, 11, 21)
    engine = make_engine(settings.resolved_database_url())
    try:
        prepare_schema(engine)
        save_statement(
            engine,
            settings.data_dir,
            PersistRequest(
                statement=StatementKey(account_no=account, bill_date=stored),
                bank_code="0000",
                totals=StatementTotals.empty().model_copy(
                    update={"currency": "CNY", "closing_balance": Decimal("1234.56")}
                ),
                records_file=None,
                source_sha256="ab" * 32,
                fetched_at=datetime(2026, 11, 21, 8, tzinfo=UTC),
            ),
        )
    finally:
        engine.dispose()
    async with running_worker(dev_env.client, settings):
        done = await console.run("backfill", account, str(stored), str(missing))
        asked_before_refetch = bank.requests_for(account, stored)
        refetched = await console.run("backfill", account, str(stored), str(stored), "--refetch")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith(": 1 started, 1 already stored, 0 running already")
    assert lines[-2].split() == [str(stored), "already", "stored", "0", "1234.56", "CNY"]
    assert lines[-1].split()[:2] == [str(missing), "stored"]
    assert asked_before_refetch == []
    # --refetch asks the bank again.
    assert refetched.returncode == 0, refetched.stderr
    assert refetched.stdout.splitlines()[0] == (
        f"1 date of {account} ({stored} to {stored}): 1 started, 0 already stored, 0 running already"
    )
    assert len(bank.requests_for(account, stored)) == 1


async def test_bad_arguments_are_refused_with_a_reason_and_no_traceback(console: Console) -> None:
    account = "6222020000000001"
    backwards = await console.run("backfill", account, "2026-11-22", "2026-11-20")
    assert backwards.returncode == 2
    assert backwards.stderr.strip() == "bankrecon: FROM (2026-11-22) is after TO (2026-11-20)"
    today_in_china = yesterday_in_china(datetime.now(UTC)) + timedelta(days=1)
    for command in (
        ("backfill", account, "2026-11-20", "2099-01-01"),
        ("refetch", account, str(today_in_china)),
    ):
        future = await console.run(*command)
        assert future.returncode == 2 and "before that day ends in China" in future.stderr, command
    for day in ("2026-13-01", "20261101"):  # the basic form is not YYYY-MM-DD, though Python takes it
        not_a_date = await console.run("backfill", account, "2026-11-20", day)
        assert not_a_date.returncode == 2 and f"not a date (YYYY-MM-DD): '{day}'" in not_a_date.stderr
    for command in ("backfill", "9999", "2026-11-20", "2026-11-21"), ("refetch", "9999", "2026-11-20"):
        not_an_account = await console.run(*command)
        assert not_an_account.returncode == 2, command
        assert "9999 is not an account number (10 to 32 digits)" in not_an_account.stderr
        assert "configuration error" not in not_an_account.stderr
    # It would go into the visibility query.
    quoted = await console.run("status", "--account", "x'y")
    assert quoted.returncode == 2 and "x'y is not an account number" in quoted.stderr
    assert "Traceback" not in quoted.stderr


async def test_the_readme_query_by_account_and_date_finds_the_statement(
    dev_env: WorkflowEnvironment, settings: Settings, console: Console
) -> None:
    account = new_accounts(1)[0]
    bill_date = date(2026, 11, 23)
    workflow_id = statement_workflow_id(account, bill_date)
    async with asyncio.timeout(120), running_worker(dev_env.client, settings):
        stored = await console.run("refetch", account, str(bill_date), "--wait")
        assert stored.returncode == 0, stored.stderr

    async def listed(since: str) -> str:
        query = f"BankAccount = '{account}' AND BillDate >= '{since}'"  # docs/operations.md's recipe
        command = [find_binary("temporal"), "workflow", "list", "--address", settings.temporal_address]
        shown = await asyncio.to_thread(
            subprocess.run, [*command, "--query", query], capture_output=True, text=True, timeout=30
        )
        assert shown.returncode == 0, shown.stderr
        return shown.stdout

    for _ in range(50):  # the visibility store lags a moment
        if workflow_id in await listed("2026-11-01"):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"{workflow_id} never listed")
    assert workflow_id not in await listed("2026-11-24")


async def test_status_options_say_what_they_do(console: Console) -> None:
    helped = await console.run("status", "--help")
    assert helped.returncode == 0, helped.stderr
    said = " ".join(helped.stdout.split())
    for option in (
        "--account ACCOUNT only this account's statements",
        "--date DATE only statements of this date (YYYY-MM-DD)",
        "--limit LIMIT show at most this many workflows (default: 100)",
    ):
        assert option in said


async def test_an_error_from_temporal_is_one_line_not_a_traceback(console: Console) -> None:
    refused = await console.run("status", env={"TEMPORAL_NAMESPACE": "no-such-namespace"})
    assert refused.returncode == 2
    assert refused.stderr.startswith("bankrecon: Temporal refused the request (NOT_FOUND): ")
    assert "no-such-namespace" in refused.stderr and refused.stderr.count("\n") == 1


async def test_pause_status_resume_and_refetch(
    dev_env: WorkflowEnvironment, bank: BankSimulator, settings: Settings, console: Console
) -> None:
    client = dev_env.client
    account = new_accounts(1)[0]
    bill_date = date(2026, 11, 23)
    workflow_id = statement_workflow_id(account, bill_date)
    paused = await console.run("pause", DEMO_MERCHANT_ID, "--reason", "bank maintenance")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith(f"merchant {DEMO_MERCHANT_ID} paused")
    again = await console.run("pause", DEMO_MERCHANT_ID, "--reason", "another")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"merchant {DEMO_MERCHANT_ID} was paused already since ")
    assert again.stdout.endswith(": bank maintenance\n")
    async with asyncio.timeout(240), running_worker(client, settings):
        handle = await client.start_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(account_no=account, bill_date=bill_date, retry_interval_seconds=1),
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
        )
        while True:
            status = await handle.query(DailyStatementWorkflow.status)
            if status is not None and status.holdup is not None:
                break
            await asyncio.sleep(0.2)
        assert "is paused since" in status.holdup and "bank maintenance" in status.holdup
        assert bank.requests_for(account, bill_date) == []

        shown = await _listed(console, "status", "--account", account)
        assert f"merchant {DEMO_MERCHANT_ID} PAUSED since" in shown.stdout
        assert "bank maintenance" in shown.stdout
        row = next(line for line in shown.stdout.splitlines() if line.startswith(str(bill_date)))
        assert row.split()[:4] == [str(bill_date), account, "waiting_for_bank", "0"]
        assert "is paused since" in row

        running = await console.run("refetch", account, str(bill_date))
        assert running.returncode == 2
        assert f"{workflow_id} is running already" in running.stderr

        resumed = await console.run("resume", DEMO_MERCHANT_ID)
        assert resumed.stdout.startswith(f"merchant {DEMO_MERCHANT_ID} resumed")
        result = await handle.result()
        assert result.status == "persisted" and result.fetch_attempts == 1

        refetched = await console.run("refetch", account, str(bill_date), "--wait")
        assert refetched.returncode == 0, refetched.stderr
        assert refetched.stdout.startswith(f"started {workflow_id}")
        assert f"{bill_date}  already stored" in refetched.stdout
        finished = await _listed(console, "status", "--all", "--account", account)
        # Finished runs answer no query: their date and account come from the search attributes.
        rows = [line.split() for line in finished.stdout.splitlines()[1:]]
        assert rows == [[str(bill_date), account, "completed"]] * 2
    assert len(bank.requests_for(account, bill_date)) == 2


async def _listed(console: Console, *args: str) -> subprocess.CompletedProcess[str]:
    """`bankrecon status` once the visibility store lists what it should (it lags a moment)."""
    for _ in range(50):
        shown = await console.run(*args)
        assert shown.returncode == 0, shown.stderr
        if "no statement workflows match" not in shown.stdout:
            return shown
        await asyncio.sleep(timedelta(milliseconds=200).total_seconds())
    raise AssertionError(f"bankrecon {' '.join(args)} never listed anything: {shown.stdout}")


async def test_a_cancelled_date_is_remembered_skipped_by_catch_up_and_started_again_by_an_operator(
    dev_env: WorkflowEnvironment, bank: BankSimulator, settings: Settings, console: Console
) -> None:
    client = dev_env.client
    account = new_accounts(1)[0]
    days = [date(2026, 11, 22), date(2026, 11, 23)]
    workflow_ids = [statement_workflow_id(account, day) for day in days]
    for day in days:
        bank.plan(account, day, StatementPlan(ready_after=1_000_000))
    nightly = settings.model_copy(update={"bank_accounts": [account]})
    async with asyncio.timeout(240), running_worker(client, nightly):
        first = await run_nightly(client, settings.temporal_task_queue, bill_date=days[1], catch_up_days=1)
        assert first.started == workflow_ids
        for workflow_id in workflow_ids:
            handle = client.get_workflow_handle_for(DailyStatementWorkflow.run, workflow_id)
            while await handle.query(DailyStatementWorkflow.status) is None:
                await asyncio.sleep(0.2)  # not started yet
            # The recipe of docs/operations.md.
            cancel = await asyncio.to_thread(
                subprocess.run,
                [find_binary("temporal"), "workflow", "cancel", "--address", settings.temporal_address,
                 "--workflow-id", workflow_id],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert cancel.returncode == 0, cancel.stderr
            with pytest.raises(WorkflowFailureError) as ended:
                await handle.result()
            assert isinstance(ended.value.cause, CancelledError)
            status = await handle.query(DailyStatementWorkflow.status)
            assert status is not None and (status.phase, status.next_attempt_at) == ("cancelled", None)
            assert (await handle.describe()).typed_search_attributes.get(STATEMENT_PHASE) == "cancelled"
        assert _cancellations(settings) == {(account, day) for day in days}

        # The next night's catch-up leaves both dates alone.
        again = await run_nightly(client, settings.temporal_task_queue, bill_date=days[1], catch_up_days=1)
        assert (again.started, again.already_started) == ([], [])

        # An operator's refetch or backfill starts them again, and forgets the cancellation.
        for day in days:
            bank.plan(account, day, StatementPlan(lines=3))
        refetched = await console.run("refetch", account, str(days[0]), "--wait")
        assert refetched.returncode == 0, refetched.stderr
        backfilled = await console.run("backfill", account, str(days[1]), str(days[1]))
        assert backfilled.returncode == 0, backfilled.stderr
        assert "1 started" in backfilled.stdout.splitlines()[0]
    for day in days:
        statement, rows = stored_rows(settings.resolved_database_url(), account, day)
        assert statement is not None and len(rows) == 3
    assert _cancellations(settings) == set()


def _cancellations(settings: Settings) -> set[tuple[str, date]]:
    engine = make_engine(settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(cancelled_statements.c.account_no, cancelled_statements.c.bill_date))
            return {(row.account_no, row.bill_date) for row in rows}
    finally:
        engine.dispose()


async def test_commands_serve_no_metrics_even_with_the_workers_metrics_address(console: Console) -> None:
    """In the compose stack the commands run in the worker's container, with its METRICS_ADDRESS."""
    with socket.socket() as workers_endpoint:
        workers_endpoint.bind(("127.0.0.1", 0))
        workers_endpoint.listen()
        host, port = workers_endpoint.getsockname()
        shown = await console.run(
            "status", "--account", new_accounts(1)[0], env={"METRICS_ADDRESS": f"{host}:{port}"}
        )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "no statement workflows match\n"


async def test_status_columns_line_up_with_the_banks_chinese_and_a_closed_pipe_ends_it_quietly(
    dev_env: WorkflowEnvironment, bank: BankSimulator, settings: Settings, console: Console
) -> None:
    client = dev_env.client
    account = new_accounts(1)[0]
    bill_date = date(2026, 11, 23)
    bank.plan(account, bill_date, StatementPlan(ready_after=1_000_000))
    async with asyncio.timeout(120), running_worker(client, settings):
        handle = await client.start_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(account_no=account, bill_date=bill_date, retry_interval_seconds=60),
            id=statement_workflow_id(account, bill_date),
            task_queue=settings.temporal_task_queue,
        )
        try:
            while not ((status := await handle.query(DailyStatementWorkflow.status)) and status.last_answer):
                await asyncio.sleep(0.2)  # until the bank said 9999 系统错误
            shown = await _listed(console, "status", "--account", account)
            # The reader is gone before the command writes: `bankrecon status --all | head -0`.
            reader_gone = subprocess.Popen(
                [*BANKRECON, "status", "--all"],
                env=console.environment(),
                cwd=console.cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert reader_gone.stdout is not None
            reader_gone.stdout.close()
            _, errors = await asyncio.to_thread(reader_gone.communicate, timeout=90)
        finally:
            await handle.terminate("test over")

    header, row = shown.stdout.splitlines()
    assert "9999 系统错误" in row
    for column in ("NEXT ATTEMPT", "DEADLINE"):
        at = _display_width(header[: header.index(column)])
        assert _from_display_column(row, at - 2).startswith("  20"), (column, shown.stdout)
    assert errors == "" and reader_gone.returncode == 128 + signal.SIGPIPE


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def _from_display_column(line: str, column: int) -> str:
    """What of ``line`` a terminal shows from ``column`` on."""
    for end in range(len(line) + 1):
        if _display_width(line[:end]) >= column:
            return line[end:]
    return ""


async def test_backfill_on_a_terminal_redraws_its_progress_line_in_place(
    dev_env: WorkflowEnvironment, settings: Settings, console: Console
) -> None:
    account = new_accounts(1)[0]
    terminal, command_side = pty.openpty()
    async with asyncio.timeout(120), running_worker(dev_env.client, settings):
        backfill = subprocess.Popen(
            [*BANKRECON, "backfill", account, "2026-11-20", "2026-11-21"],
            env=console.environment(),
            cwd=console.cwd,
            stdout=command_side,
            stderr=subprocess.PIPE,
        )
        os.close(command_side)
        shown = await asyncio.to_thread(_read_until_closed, terminal)
        assert backfill.wait(timeout=30) == 0
    # The terminal turns each newline into CR LF; rich redraws the bar on one line: a lone CR,
    # then erase the line (the last draw is shorter than the ones before it, no time left to expect).
    redrawn = [line for line in shown.decode().split("\r\n") if ERASE_LINE in line]
    assert len(redrawn) == 1, shown
    draws = [STYLE.sub("", draw) for draw in redrawn[0].split(f"\r{ERASE_LINE}")[1:]]
    # rich draws when it starts and stops, as well as on each change.
    assert [count for count, _ in groupby(draw.split()[1] for draw in draws)] == ["0/2", "1/2", "2/2"]
    assert "expected done by" in draws[0] and "expected done by" not in draws[-1]


ERASE_LINE = "\x1b[2K"
STYLE = re.compile(r"\x1b\[[0-9;]*m")


def _read_until_closed(terminal: int) -> bytes:
    read = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: the command closed its side
            break
        if not chunk:
            break
        read += chunk
    os.close(terminal)
    return read


async def test_a_date_that_failed_for_good_is_told_once_skipped_by_catch_up_and_started_again_by_an_operator(
    dev_env: WorkflowEnvironment, bank: BankSimulator, settings: Settings, console: Console
) -> None:
    client = dev_env.client
    unknown, stuck = sorted(new_accounts(2))
    night = date(2026, 11, 24)
    failing, terminated = statement_workflow_id(unknown, night), statement_workflow_id(stuck, night)
    bank.accounts = {DEMO_MERCHANT_ID: {stuck}}  # the bank answers 1002 for the other
    bank.plan(stuck, night, StatementPlan(ready_after=1_000_000))
    with webhook_receiver() as hook:
        nightly = settings.model_copy(
            update={"bank_accounts": [unknown, stuck], "alert_webhook_url": SecretStr(hook.url)}
        )
        async with asyncio.timeout(240), running_worker(client, nightly):
            first = await run_nightly(client, settings.temporal_task_queue, bill_date=night, catch_up_days=0)
            assert first.started == [failing, terminated]
            with pytest.raises(WorkflowFailureError):
                await client.get_workflow_handle(failing).result()
            # A failure that may heal (here: terminated) is started again by the next nights.
            await client.get_workflow_handle(terminated).terminate("test: as an operator might")
            nights = [
                await run_nightly(client, settings.temporal_task_queue, bill_date=night, catch_up_days=0)
                for _ in range(2)
            ]
            assert [(n.started, n.already_started) for n in nights] == [
                ([terminated], []),
                ([], [terminated]),
            ]
            # Cancelled, not terminated: its place in the merchant's queue goes at once, where a
            # terminated run's would hold up the refetch below for two windows and a minute.
            restarted = client.get_workflow_handle(terminated)
            await restarted.cancel()
            with pytest.raises(WorkflowFailureError):
                await restarted.result()

            listed = await console.run("status", "--failed")
            assert listed.returncode == 0, listed.stderr
            assert "1 date failed for good" in listed.stdout
            [row] = [line for line in listed.stdout.splitlines() if line.startswith(str(night))]
            assert unknown in row and "BankRejected" in row and "1002" in row
            assert f"bankrecon refetch {unknown} {night}" in row
            everything = await console.run("status", "--all")
            assert row in everything.stdout.splitlines()

            # The operator fixed it at the bank, and starts it again: the record goes.
            bank.accounts = None
            bank.plan(unknown, night, StatementPlan(lines=3))
            refetched = await console.run("refetch", unknown, str(night), "--wait")
            assert refetched.returncode == 0, refetched.stderr
            cleared = await console.run("status", "--failed")
            assert cleared.stdout == "no failed dates\n"
        failed_notices = [post.body for post in hook.posts if post.body["event"] == "statement_failed"]
    # Told once, with the reason and what to do, however many nights ran.
    [notice] = failed_notices
    assert notice["workflow_id"] == failing and "1002" in notice["reason"]
    assert f"bankrecon refetch {unknown} {night}" in notice["reason"]
    assert len([r for r in bank.requests if r.account_no == unknown]) == 2  # the first night's, the refetch's
    statement, rows = stored_rows(settings.resolved_database_url(), unknown, night)
    assert statement is not None and len(rows) == 3
