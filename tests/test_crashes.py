"""Crashes and outages against the real system: dev server, worker processes, simulator, databases.

Workers are killed with SIGKILL at chosen moments, the Temporal server is restarted, the
database is cut off; every statement must still land exactly once, with its exact rows,
and the bank must never see two requests closer than its window.

A killed worker's attempt is retried by the server once its heartbeat timeout (30 s)
expires, so the tests that kill a running activity take half a minute each.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from sqlalchemy.engine import make_url
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from bankrecon.models import DailyStatementInput, DailyStatementResult, Phase
from bankrecon.sources.refbank.simulator.generator import generate_statement
from bankrecon.sources.refbank.simulator.server import BankSimulator, StatementPlan
from tests.harness import count_rows, stored_rows
from tests.processes import (
    Child,
    DevServer,
    ProcessGroup,
    TcpProxy,
    log_tail,
    start_worker,
    worker_env,
)
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

pytestmark = pytest.mark.slow

ACCOUNT = "6222020000000001"
OTHER_ACCOUNT = "6222020000000002"
BILL_DATE = date(2026, 11, 24)
WINDOW = 1.0
# Short, so that the window a dead request leaves closed (timeout + window) fits in a test.
REQUEST_TIMEOUT = 5.0
RETRY_INTERVAL = 2.0
# Decode and persist of this many lines take a second or more each: long enough to kill inside.
BIG = 150_000
BIG_PARTS = 3
# The heartbeat timeout is 30 s; a killed attempt must be running again well within this.
RERUN_WITHIN = timedelta(seconds=60)
FINISH_WITHIN = 120.0

T = TypeVar("T")
Handle = WorkflowHandle[DailyStatementWorkflow, DailyStatementResult]


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    home = tmp_path_factory.mktemp("temporal")
    with ProcessGroup(home / "logs") as group:
        server = DevServer(group, home / "temporal.db")
        server.start()
        yield server
        server.stop()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessGroup]:
    with ProcessGroup(tmp_path / "logs") as group:
        yield group


@pytest.fixture
def bank() -> Iterator[BankSimulator]:
    with BankSimulator(min_interval=WINDOW, today=lambda: BILL_DATE + timedelta(days=1)) as sim:
        yield sim


@dataclass
class Deployment:
    """One test's system: its task queue, data directory, database and bank, with worker processes."""

    processes: ProcessGroup
    client: Client
    temporal_address: str
    task_queue: str
    data_dir: Path
    database_url: str
    bank: BankSimulator

    def start_worker(self, database_url: str | None = None) -> Child:
        return start_worker(
            self.processes,
            worker_env(
                temporal_address=self.temporal_address,
                task_queue=self.task_queue,
                data_dir=self.data_dir,
                database_url=database_url or self.database_url,
                bank_url=self.bank.url,
                min_interval=WINDOW,
                request_timeout=REQUEST_TIMEOUT,
            ),
        )

    async def start_statement(
        self, account_no: str, plan: StatementPlan, retry_interval: float = RETRY_INTERVAL
    ) -> Handle:
        self.bank.plan(account_no, BILL_DATE, plan)
        return await self.client.start_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(
                account_no=account_no, bill_date=BILL_DATE, retry_interval_seconds=retry_interval
            ),
            # Unique, so that a run left behind by an earlier failed test cannot collide.
            id=f"{statement_workflow_id(account_no, BILL_DATE)}-{uuid.uuid4().hex[:8]}",
            task_queue=self.task_queue,
        )

    async def eventually(self, probe: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
        """Poll ``probe`` until it returns something truthy: a protection that broke fails, never hangs."""
        try:
            async with asyncio.timeout(timeout):
                while not (value := await probe()):
                    await asyncio.sleep(0.05)
                return value
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.logs()}") from None

    async def result(self, handle: Handle, timeout: float = FINISH_WITHIN) -> DailyStatementResult:
        try:
            async with asyncio.timeout(timeout):
                return await handle.result()
        except TimeoutError:
            raise AssertionError(f"{handle.id} did not complete within {timeout}s\n{self.logs()}") from None

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name} ---\n{log_tail(log)}" for log in sorted(self.processes.logs.glob("*.log"))
        )


async def deploy(
    processes: ProcessGroup, temporal_address: str, tmp_path: Path, database_url: str, bank: BankSimulator
) -> Deployment:
    return Deployment(
        processes=processes,
        client=await Client.connect(temporal_address, data_converter=pydantic_data_converter),
        temporal_address=temporal_address,
        task_queue=f"crash-{uuid.uuid4()}",
        data_dir=tmp_path / "data",
        database_url=database_url,
        bank=bank,
    )


@pytest.fixture
async def on_sqlite(
    processes: ProcessGroup, temporal: DevServer, tmp_path: Path, sqlite_url: str, bank: BankSimulator
) -> Deployment:
    return await deploy(processes, temporal.address, tmp_path, sqlite_url, bank)


@pytest.fixture
async def on_database(
    processes: ProcessGroup, temporal: DevServer, tmp_path: Path, database_url: str, bank: BankSimulator
) -> Deployment:
    return await deploy(processes, temporal.address, tmp_path, database_url, bank)


# --- where a workflow is, from outside -------------------------------------------------------


async def phase(handle: Handle) -> Phase | None:
    status = await handle.query(DailyStatementWorkflow.status)
    return status.phase if status is not None else None


async def pending(handle: Handle, activity: str) -> PendingActivityInfo | None:
    for info in (await handle.describe()).raw_description.pending_activities:
        if info.activity_type.name == activity:
            return info
    return None


def waiting_for_attempt(handle: Handle, attempt: int) -> Callable[[], Awaitable[bool]]:
    """The fetch failed ``attempt - 1`` times and its next attempt waits on the server, not in a worker."""

    async def probe() -> bool:
        info = await pending(handle, "fetch_statement")
        return (
            info is not None
            and info.attempt == attempt
            and info.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
        )

    return probe


def in_phase(handle: Handle, wanted: Phase, evidence: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """The workflow says it is in ``wanted``, and the data directory or database shows the work."""

    async def probe() -> bool:
        return await phase(handle) == wanted and evidence()

    return probe


def decoding_in_progress(data_dir: Path) -> bool:
    """Decode writes its records to a staged file first; a non-empty one means it is under way."""
    return any(staged.stat().st_size > 0 for staged in (data_dir / "records").glob(".incoming-*"))


def _schema(database_url: str) -> str:
    options = str(make_url(database_url).query["options"])
    return options.removeprefix("-csearch_path=")


def _plain_postgres(database_url: str) -> str:
    url = make_url(database_url).set(drivername="postgresql").difference_update_query(["options"])
    return url.render_as_string(hide_password=False)


def rows_being_written(database_url: str) -> bool:
    """Persist's open transaction has written a few batches of rows, none of them committed yet.

    Both databases write uncommitted rows ahead of the commit: PostgreSQL into the table's
    heap, SQLite into its write-ahead log. Two megabytes take two batches or more; all that
    comes before persist (the schema, the bank's window and request log) takes kilobytes.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        wal = Path(f"{url.database}-wal")
        written = wal.stat().st_size if wal.exists() else 0
    else:
        with psycopg.connect(_plain_postgres(database_url), autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_relation_size(format('%%I.transactions', %s::text))", (_schema(database_url),)
            ).fetchone()
        written = row[0] if row is not None else 0
    return written > 2_000_000


@dataclass(frozen=True)
class Start:
    attempt: int
    at: datetime
    identity: str


async def final_start(handle: Handle, activity: str) -> Start:
    """When the attempt that completed ``activity`` started, which attempt it was, and on which worker."""
    names: dict[int, str] = {}
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if names[started.scheduled_event_id] == activity:
                return Start(started.attempt, event.event_time.ToDatetime(tzinfo=UTC), started.identity)
    raise AssertionError(f"no {activity} in the history of {handle.id}")


# --- what must hold afterwards ---------------------------------------------------------------


async def assert_ran_again(handle: Handle, activity: str, killed_at: datetime) -> Start:
    start = await final_start(handle, activity)
    assert start.attempt >= 2, f"{activity} completed on attempt {start.attempt}: the kill missed it"
    assert timedelta(0) < start.at - killed_at <= RERUN_WITHIN, (killed_at, start)
    return start


def _first_difference(stored: list[tuple[Any, ...]], sent: list[tuple[Any, ...]]) -> str | None:
    # A plain == on 150,000 rows would make pytest render a diff of all of them.
    if len(stored) != len(sent):
        return f"{len(stored)} rows stored, the statement has {len(sent)}"
    for n, (mine, theirs) in enumerate(zip(stored, sent, strict=True), start=1):
        if mine != theirs:
            return f"row {n}: stored {mine}, the bank sent {theirs}"
    return None


def assert_stored_exactly(database_url: str, bank: BankSimulator, plans: dict[str, StatementPlan]) -> None:
    """Each account's statement once, with exactly the bank's rows in order, and nothing else."""
    for account_no, plan in plans.items():
        sent = [
            (t.serial_no, t.direction, t.amount, t.balance_after)
            for t in generate_statement(
                account_no, BILL_DATE, seed=bank.seed, lines=plan.lines, parts=plan.parts
            ).transactions()
        ]
        statement, rows = stored_rows(database_url, account_no, BILL_DATE)
        assert statement is not None, f"no statement row for {account_no}"
        assert statement.transaction_count == plan.lines
        difference = _first_difference(
            [(r.serial_no, r.direction, r.amount, r.balance_after) for r in rows], sent
        )
        assert difference is None, difference
    # One statement row each and no stray transactions, of these or any other statement.
    assert count_rows(database_url) == sum(plan.lines for plan in plans.values()) + len(plans)


def assert_bank_never_rushed(bank: BankSimulator) -> list[float]:
    """No 1005, and no two arrivals closer than the window; returns the gaps between arrivals."""
    log = sorted(bank.requests, key=lambda r: r.arrived_monotonic)
    codes = [r.code for r in log]
    assert "1005" not in codes, codes
    gaps = [b.arrived_monotonic - a.arrived_monotonic for a, b in pairwise(log)]
    assert all(gap >= WINDOW for gap in gaps), gaps
    return gaps


def assert_nothing_stored(database_url: str) -> None:
    statement, rows = stored_rows(database_url, ACCOUNT, BILL_DATE)
    assert statement is None and not rows, "the killed transaction was committed: the kill came too late"


# --- the scenarios ---------------------------------------------------------------------------


async def test_worker_killed_while_the_fetch_waits_for_its_next_attempt(on_sqlite: Deployment) -> None:
    system = on_sqlite
    worker = system.start_worker()
    plan = StatementPlan(ready_after=3, lines=20)
    handle = await system.start_statement(ACCOUNT, plan)
    await system.eventually(waiting_for_attempt(handle, 3), 60, "two refusals and a third attempt due")

    worker.kill()
    # Longer than the retry interval: the third attempt falls due while no worker runs.
    await asyncio.sleep(2 * RETRY_INTERVAL)
    system.start_worker()
    result = await system.result(handle)

    assert result.fetch_attempts == 4
    assert [r.code for r in system.bank.requests] == ["9999", "9999", "9999", "0000"]
    assert_bank_never_rushed(system.bank)
    assert_stored_exactly(system.database_url, system.bank, {ACCOUNT: plan})


async def test_worker_killed_while_its_request_is_in_flight(on_sqlite: Deployment) -> None:
    system = on_sqlite
    worker = system.start_worker()
    # The bank sits on the first request longer than the worker lives.
    plan, other_plan = StatementPlan(lines=20, faults=["stall:8"]), StatementPlan(lines=20)
    handle = await system.start_statement(ACCOUNT, plan)

    async def arrived() -> bool:
        return bool(system.bank.requests)

    await system.eventually(arrived, 60, "the request to reach the bank")

    worker.kill()
    killed_at = datetime.now(UTC)
    system.start_worker()
    # Another statement of the merchant is due at once: the dead request's window must hold it back.
    other = await system.start_statement(OTHER_ACCOUNT, other_plan)
    other_result = await system.result(other)
    result = await system.result(handle)

    assert result.fetch_attempts == 2 and other_result.fetch_attempts == 1
    await assert_ran_again(handle, "fetch_statement", killed_at)
    log = sorted(system.bank.requests, key=lambda r: r.arrived_monotonic)
    assert [r.account_no for r in log] == [ACCOUNT, OTHER_ACCOUNT, ACCOUNT]
    gaps = assert_bank_never_rushed(system.bank)
    assert gaps[0] >= REQUEST_TIMEOUT + WINDOW, gaps
    assert_stored_exactly(system.database_url, system.bank, {ACCOUNT: plan, OTHER_ACCOUNT: other_plan})


async def test_worker_killed_during_decode(on_sqlite: Deployment) -> None:
    system = on_sqlite
    worker = system.start_worker()
    plan = StatementPlan(lines=BIG, parts=BIG_PARTS)
    handle = await system.start_statement(ACCOUNT, plan)
    decoding = in_phase(handle, "decoding", lambda: decoding_in_progress(system.data_dir))
    await system.eventually(decoding, 90, "decode to be under way")

    worker.kill()
    killed_at = datetime.now(UTC)
    system.start_worker()
    result = await system.result(handle)

    assert result.transaction_count == BIG and result.fetch_attempts == 1
    await assert_ran_again(handle, "decode_statement", killed_at)
    assert_bank_never_rushed(system.bank)
    assert_stored_exactly(system.database_url, system.bank, {ACCOUNT: plan})


# SQLite's persist is killed in the two-worker test below; both here would cost another 40 s.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_worker_killed_during_persist_with_rows_written(on_database: Deployment) -> None:
    system = on_database
    worker = system.start_worker()
    plan = StatementPlan(lines=BIG, parts=BIG_PARTS)
    handle = await system.start_statement(ACCOUNT, plan)
    persisting = in_phase(handle, "persisting", lambda: rows_being_written(system.database_url))
    await system.eventually(persisting, 90, "persist to be writing rows")

    worker.kill()
    killed_at = datetime.now(UTC)
    assert_nothing_stored(system.database_url)
    system.start_worker()
    result = await system.result(handle)

    assert result.transaction_count == BIG and result.status == "persisted"
    await assert_ran_again(handle, "persist_statement", killed_at)
    assert_bank_never_rushed(system.bank)
    assert_stored_exactly(system.database_url, system.bank, {ACCOUNT: plan})


async def test_the_other_worker_of_the_task_queue_finishes_the_statement(on_sqlite: Deployment) -> None:
    system = on_sqlite
    workers = {w.pid: w for w in (system.start_worker(), system.start_worker())}
    plan = StatementPlan(lines=BIG, parts=BIG_PARTS)
    handle = await system.start_statement(ACCOUNT, plan)
    persisting = in_phase(handle, "persisting", lambda: rows_being_written(system.database_url))
    await system.eventually(persisting, 90, "persist to be writing rows")
    running = await pending(handle, "persist_statement")
    assert running is not None and running.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    # The SDK's default identity is "pid@host".
    doomed = workers.pop(int(running.last_worker_identity.split("@")[0]))

    doomed.kill()
    killed_at = datetime.now(UTC)
    assert_nothing_stored(system.database_url)
    result = await system.result(handle)

    (survivor,) = workers.values()
    start = await assert_ran_again(handle, "persist_statement", killed_at)
    assert start.identity.startswith(f"{survivor.pid}@"), start
    assert result.transaction_count == BIG and result.status == "persisted"
    assert_bank_never_rushed(system.bank)
    assert_stored_exactly(system.database_url, system.bank, {ACCOUNT: plan})


async def test_temporal_restarted_while_the_fetch_waits(
    processes: ProcessGroup, tmp_path: Path, sqlite_url: str, bank: BankSimulator
) -> None:
    server = DevServer(processes, tmp_path / "temporal.db")
    server.start()
    system = await deploy(processes, server.address, tmp_path, sqlite_url, bank)
    worker = system.start_worker()
    plan = StatementPlan(ready_after=2, lines=20)
    handle = await system.start_statement(ACCOUNT, plan, retry_interval=3)
    await system.eventually(waiting_for_attempt(handle, 2), 60, "a refusal and a second attempt due")

    server.stop()
    # The second attempt falls due while the server is down.
    await asyncio.sleep(5)
    server.start()
    result = await system.result(handle)

    assert worker.alive(), "the worker gave up while Temporal was down"
    assert result.fetch_attempts == 3
    assert [r.code for r in bank.requests] == ["9999", "9999", "0000"]
    assert_bank_never_rushed(bank)
    assert_stored_exactly(sqlite_url, bank, {ACCOUNT: plan})


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_database_cut_off_during_persist(on_database: Deployment) -> None:
    system = on_database
    real = make_url(system.database_url)
    plan = StatementPlan(lines=BIG, parts=BIG_PARTS)
    with TcpProxy(real.host or "127.0.0.1", real.port or 5432) as proxy:
        proxied = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        worker = system.start_worker(database_url=proxied)
        handle = await system.start_statement(ACCOUNT, plan)
        persisting = in_phase(handle, "persisting", lambda: rows_being_written(system.database_url))
        await system.eventually(persisting, 90, "persist to be writing rows")

        proxy.cut()
        cut_at = datetime.now(UTC)
        outage = time.monotonic()

        async def cut_attempt_failed() -> PendingActivityInfo | None:
            info = await pending(handle, "persist_statement")
            scheduled = PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
            return info if info is not None and info.attempt == 2 and info.state == scheduled else None

        # Before the retry 1 s later, which fails on connecting and would replace the failure.
        waiting = await system.eventually(cut_attempt_failed, 10, "the cut to fail persist's first attempt")
        assert_nothing_stored(system.database_url)
        await asyncio.sleep(5 - (time.monotonic() - outage))
        proxy.start()
        result = await system.result(handle)

    assert worker.alive()
    assert result.transaction_count == BIG and result.status == "persisted"
    start = await final_start(handle, "persist_statement")
    assert start.attempt >= 2 and start.at > cut_at, start
    assert_bank_never_rushed(system.bank)
    assert_stored_exactly(system.database_url, system.bank, {ACCOUNT: plan})
    # What `temporal workflow describe` showed during the outage: the cause, and no statement data.
    failure = str(waiting.last_failure)
    assert not re.search(rf"{BILL_DATE:%Y%m%d}[0-9]{{6}}", failure), f"serial numbers in Temporal: {failure}"
    assert waiting.last_failure.message != "Failure exceeds size limit.", failure
