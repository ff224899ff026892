"""Two hosts without a shared disk: two worker processes, each with its own DATA_DIR, one PostgreSQL,
one task queue. Whichever worker takes each activity, and whichever dies in between, every
statement is stored once with its exact rows, and no merchant's window is ever rushed."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bankrecon.models import DailyStatementInput
from bankrecon.sources.refbank.simulator.server import BankSimulator, StatementPlan
from tests.conftest import _postgres_schema_url
from tests.processes import Child, DevServer, ProcessGroup, log_tail, start_worker, worker_env
from tests.test_crashes import (
    BILL_DATE,
    REQUEST_TIMEOUT,
    WINDOW,
    Handle,
    assert_stored_exactly,
    final_start,
)
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

pytestmark = pytest.mark.slow

MERCHANTS = {f"M2000{n:02d}": f"secret-of-merchant-{n}" for n in range(1, 5)}
ACCOUNTS = {
    f"62220300000{m:02d}{a:03d}": merchant
    for m, merchant in enumerate(MERCHANTS, start=1)
    for a in range(1, 4)
}
LINES = 20_000  # decode and persist take a moment each: there is a moment to kill inside
STAGES = ("fetch_statement", "decode_statement", "persist_statement")
FINISH_WITHIN = 80.0


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    home = tmp_path_factory.mktemp("temporal")
    with ProcessGroup(home / "logs") as group:
        server = DevServer(group, home / "temporal.db")
        server.start()
        yield server
        server.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_schema_url()


@pytest.fixture
def bank() -> Iterator[BankSimulator]:
    merchants_accounts: dict[str, set[str]] = {merchant: set() for merchant in MERCHANTS}
    for account_no, merchant in ACCOUNTS.items():
        merchants_accounts[merchant].add(account_no)
    with BankSimulator(
        merchants=MERCHANTS,
        accounts=merchants_accounts,
        min_interval=WINDOW,
        today=lambda: BILL_DATE + timedelta(days=1),
    ) as sim:
        yield sim


class TwoHosts:
    """Workers on "two hosts": the same task queue and database, each host its own DATA_DIR."""

    def __init__(
        self, group: ProcessGroup, temporal: DevServer, tmp_path: Path, url: str, bank: BankSimulator
    ):
        self.group = group
        self.temporal = temporal
        self.database_url = url
        self.bank = bank
        self.task_queue = f"hosts-{uuid.uuid4()}"
        self.accounts_file = tmp_path / "accounts.toml"
        self.accounts_file.write_text(
            "".join(f'[[merchant]]\nid = "{m}"\nsecret = "{s}"\n' for m, s in MERCHANTS.items())
            + "".join(f'[[account]]\naccount_no = "{a}"\nmerchant = "{m}"\n' for a, m in ACCOUNTS.items())
        )
        self.data_dirs = {host: tmp_path / host / "data" for host in ("host-a", "host-b")}

    def start_worker(self, host: str) -> Child:
        env = worker_env(
            temporal_address=self.temporal.address,
            task_queue=self.task_queue,
            data_dir=self.data_dirs[host],
            database_url=self.database_url,
            bank_url=self.bank.url,
            min_interval=WINDOW,
            request_timeout=REQUEST_TIMEOUT,
        )
        return start_worker(self.group, env | {"BANK_ACCOUNTS_FILE": str(self.accounts_file)})

    async def start_statements(self, client: Client, plans: dict[str, StatementPlan]) -> list[Handle]:
        handles = []
        for account_no, plan in plans.items():
            self.bank.plan(account_no, BILL_DATE, plan)
            handles.append(
                await client.start_workflow(
                    DailyStatementWorkflow.run,
                    DailyStatementInput(account_no=account_no, bill_date=BILL_DATE, retry_interval_seconds=2),
                    id=f"{statement_workflow_id(account_no, BILL_DATE)}-{uuid.uuid4().hex[:8]}",
                    task_queue=self.task_queue,
                )
            )
        return handles

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name} ---\n{log_tail(log)}" for log in sorted(self.group.logs.glob("*.log"))
        )

    async def all_results(self, handles: list[Handle]) -> None:
        try:
            async with asyncio.timeout(FINISH_WITHIN):
                await asyncio.gather(*(handle.result() for handle in handles))
        except TimeoutError:
            raise AssertionError(
                f"not all statements completed within {FINISH_WITHIN}s\n{self.logs()}"
            ) from None


async def running_on(handles: list[Handle], worker: Child, stage: str, deadline: float) -> Handle | None:
    """A statement whose ``stage`` activity runs on ``worker`` right now; None if none by the deadline."""
    loop = asyncio.get_running_loop()
    while True:
        for handle in handles:
            for info in (await handle.describe()).raw_description.pending_activities:
                if (
                    info.activity_type.name == stage
                    and info.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                    and info.last_worker_identity.startswith(f"{worker.pid}@")
                ):
                    return handle
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(0.02)


# Long enough for what a worker sent just before it froze to reach the server.
IN_FLIGHT = 1.0


async def held_on(
    handles: list[Handle], workers: dict[str, Child], stage: str, within: float
) -> tuple[str, Handle]:
    """A host and a statement whose ``stage`` cannot finish: it was running on the host's worker,
    now frozen.

    What the server shows of a running worker may be a moment old; of a frozen one, once what
    it sent has arrived, it is what will stay. A stage seen running that finished before the
    freeze is let go, the worker thawed, and another looked for.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        for host, worker in workers.items():
            if await running_on(handles, worker, stage, loop.time() + 0.2) is None:
                continue
            worker.freeze()
            await asyncio.sleep(IN_FLIGHT)
            held = await running_on(handles, worker, stage, loop.time())
            if held is not None:
                return host, held
            worker.thaw()
    raise AssertionError(f"no {stage} was seen running within {within}s")


def assert_no_merchant_rushed(bank: BankSimulator) -> None:
    """No 1005, and no two requests of one merchant closer than its window."""
    assert "1005" not in [r.code for r in bank.requests]
    for merchant in MERCHANTS:
        arrivals = sorted(r.arrived_monotonic for r in bank.requests if r.merchant_id == merchant)
        gaps = [b - a for a, b in pairwise(arrivals)]
        assert all(gap >= WINDOW for gap in gaps), (merchant, gaps)


@pytest.fixture
def hosts(temporal: DevServer, tmp_path: Path, postgres_url: str, bank: BankSimulator) -> Iterator[TwoHosts]:
    with ProcessGroup(tmp_path / "logs") as group:
        yield TwoHosts(group, temporal, tmp_path, postgres_url, bank)


async def test_each_host_killed_once_at_a_random_point_and_restarted(hosts: TwoHosts) -> None:
    client = await Client.connect(hosts.temporal.address, data_converter=pydantic_data_converter)
    workers = {host: hosts.start_worker(host) for host in hosts.data_dirs}
    plans = {account_no: StatementPlan(lines=LINES, parts=2) for account_no in ACCOUNTS}
    handles = await hosts.start_statements(client, plans)
    rng = random.Random()
    loop = asyncio.get_running_loop()
    killed = []
    for host in rng.sample(sorted(workers), 2):
        await asyncio.sleep(rng.uniform(0, 1))
        # Wanted: a random stage; the statements may all be past it by then, so any stage will do.
        stages = [rng.choice(STAGES), *STAGES]
        for stage in stages:
            victim = await running_on(handles, workers[host], stage, loop.time() + 8)
            if victim is not None:
                break
        assert victim is not None, f"nothing ran on {host}\n{hosts.logs()}"
        workers[host].kill()
        killed.append((host, stage, victim.id))
        workers[host] = hosts.start_worker(host)

    await hosts.all_results(handles)
    assert len(killed) == 2, killed
    assert_stored_exactly(hosts.database_url, hosts.bank, plans)
    assert_no_merchant_rushed(hosts.bank)


async def test_a_host_lost_for_good_mid_decode_leaves_its_statements_to_the_other(hosts: TwoHosts) -> None:
    client = await Client.connect(hosts.temporal.address, data_converter=pydantic_data_converter)
    workers = {host: hosts.start_worker(host) for host in hosts.data_dirs}
    plans = {account_no: StatementPlan(lines=LINES, parts=2) for account_no in ACCOUNTS}
    handles = await hosts.start_statements(client, plans)
    # One host's decode is held, frozen mid-way, then the host is lost with it.
    lost, victim = await held_on(handles, workers, "decode_statement", within=30)
    workers.pop(lost).reap()

    await hosts.all_results(handles)
    (survivor,) = workers.values()
    # The survivor had no copy of the archive the lost host fetched (or decoded): the store's did.
    start = await final_start(victim, "decode_statement")
    assert start.identity.startswith(f"{survivor.pid}@"), start
    assert start.attempt >= 2
    assert_stored_exactly(hosts.database_url, hosts.bank, plans)
    assert_no_merchant_rushed(hosts.bank)
