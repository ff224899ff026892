"""Reconciliation on time: it runs as soon as its statement is stored, and a settlement whose bank
statement is not stored yet is pending, checked when that statement arrives, missing after its
deadline; end to end with the statement workflows, the dev server and both databases."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from bankrecon.config import Settings
from bankrecon.models import DailyStatementInput
from bankrecon.ops.recon_commands import start_reconciliation
from bankrecon.recon.demo import DEMO_CHANNEL, DEMO_CHANNEL_LINES, DemoLine, store_channel_day, write_ledger
from bankrecon.recon.models import ReconcileInput, ReconDay, ReconRunSummary
from bankrecon.recon.results import latest_run_id, run_items, run_summary
from bankrecon.sources.refbank.simulator.generator import generate_statement
from bankrecon.sources.refbank.simulator.server import DEMO_MERCHANT_ID, BankSimulator, StatementPlan
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.store.db import make_engine
from bankrecon.store.schema import prepare_schema
from tests.harness import settings_for
from tests.webhook import WebhookReceiver, webhook_receiver
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id
from workflows.reconcile import ReconcileWorkflow, reconcile_workflow_id

# Reconciled as channel accounts, one per database (the dev server is the session's): their own
# statements are the bills.
CHANNELS = {"sqlite": "6222020000000091", "postgresql": "6222020000000093"}
BANK = "6222020000000092"  # where the channel's net arrives, the same day (lag_days = 0)
# What the acceptance asks: a run within seconds of its input, with the default interval.
PROMPTLY = 10.0


def _yesterday() -> date:
    return datetime.now(CHINA_STANDARD_TIME).date() - timedelta(days=1)


# No credit of the simulated bank is from it.
NOBODY = "不付款的清算机构"


def _recon_file(tmp_path: Path, channel: str, payer: str = NOBODY) -> Path:
    ledger_dir = tmp_path / "ledger"
    config = tmp_path / "recon.toml"
    config.write_text(
        f"""
[accounts."{channel}"]
[accounts."{channel}".ledger]
kind = "csv"
path = "{ledger_dir}/ledger-{{date}}.csv"
[accounts."{channel}".settlement]
bank_account = "{BANK}"
lag_days = 0
counterparty_name = "{payer}"
deadline = "2d"
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def bank() -> Iterator[BankSimulator]:
    with BankSimulator(
        min_interval=0,
        accounts={DEMO_MERCHANT_ID: {*CHANNELS.values(), BANK}},
        today=lambda: _yesterday() + timedelta(days=1),
    ) as sim:
        yield sim


async def _within(seconds: float, probe: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not await probe():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within {seconds}s: {what}") from None


async def _collect(client: Client, settings: Settings, account_no: str, day: date) -> None:
    await client.execute_workflow(
        DailyStatementWorkflow.run,
        DailyStatementInput(
            account_no=account_no, bill_date=day, retry_interval_seconds=1, alert_when_late=False
        ),
        id=statement_workflow_id(account_no, day),
        task_queue=settings.temporal_task_queue,
    )


def _settlement_state(database_url: str, run_id: str) -> str:
    engine = make_engine(database_url)
    try:
        (item,) = [item for item in run_items(engine, run_id) if item.side == "settlement"]
        return str(item.state)
    finally:
        engine.dispose()


def _alerted(receiver: WebhookReceiver) -> list[tuple[str, dict[tuple[str, str], int]]]:
    return [
        (post.headers["Idempotency-Key"].rsplit("/", 1)[1],
         {(t["state"], t["side"]): t["lines"] for t in post.body["exceptions"]})
        for post in receiver.posts
    ]  # fmt: skip


async def test_the_days_run_follows_its_statement_and_its_settlement_the_bank_statement(
    dev_env: WorkflowEnvironment, database_url: str, task_queue: str, tmp_path: Path, bank: BankSimulator
) -> None:
    day = _yesterday()
    channel = CHANNELS["sqlite" if database_url.startswith("sqlite") else "postgresql"]
    for account_no in (channel, BANK):
        bank.plan(account_no, day, StatementPlan(lines=12))
    write_ledger(tmp_path / "ledger" / f"ledger-{day}.csv", day, [])
    client = dev_env.client
    with webhook_receiver() as receiver:
        settings = settings_for(
            tmp_path / "data", database_url, bank.url, task_queue,
            temporal_address=client.service_client.config.target_host,
            recon_config_file=_recon_file(tmp_path, channel), alert_webhook_url=receiver.url,
            statement_retry_interval_seconds=1800, bank_accounts=[channel, BANK],
        )  # fmt: skip
        async with running_worker(client, settings):
            recon: WorkflowHandle[ReconcileWorkflow, ReconRunSummary] = await start_reconciliation(
                client, settings, channel, day
            )
            assert (await recon.describe()).status == WorkflowExecutionStatus.RUNNING
            engine = make_engine(database_url)
            recon_day = ReconDay(account_no=channel, recon_date=day)

            async def run_stored() -> bool:
                return await asyncio.to_thread(latest_run_id, engine, recon_day) is not None

            # Its statement is stored by its workflow, which tells the waiting run: it runs at once,
            # not after the half hour it would otherwise sleep.
            await _collect(client, settings, channel, day)
            await _within(PROMPTLY, run_stored, "the reconciliation run after its statement was stored")
            run_id = await asyncio.to_thread(latest_run_id, engine, recon_day)
            assert run_id is not None
            # The bank statement of the day is not stored yet: pending, no exception, no alert for it.
            assert _settlement_state(database_url, run_id) == "settlement_pending"
            summary = await asyncio.to_thread(run_summary, engine, run_id)
            assert summary is not None and summary.settlement_exceptions == []

            async def alerted() -> bool:
                return len(receiver.posts) == 1

            await _within(PROMPTLY, alerted, "the run's alert")
            assert _alerted(receiver) == [("reconciliation", {("channel_only", "channel"): 12})]
            assert (await recon.describe()).status == WorkflowExecutionStatus.RUNNING

            # The bank statement is stored: the settlement is checked at once, and alerted then.
            await _collect(client, settings, BANK, day)
            done = await asyncio.wait_for(recon.result(), PROMPTLY)
            engine.dispose()

    assert done.run_id == run_id and done.settlement_deadline is None
    assert _settlement_state(database_url, run_id) == "settlement_missing"
    assert _alerted(receiver) == [
        ("reconciliation", {("channel_only", "channel"): 12}),
        ("settlement", {("settlement_missing", "settlement"): 1}),
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_settlement_whose_bank_statement_never_comes_is_missing_at_its_deadline(
    time_skipping_env: WorkflowEnvironment, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    day = _yesterday()
    engine = make_engine(database_url)
    prepare_schema(engine)
    store_channel_day(engine, DEMO_CHANNEL, day, DEMO_CHANNEL_LINES)
    write_ledger(tmp_path / "ledger" / f"ledger-{day}.csv", day, [])
    client = time_skipping_env.client
    with webhook_receiver() as receiver:
        settings = settings_for(
            tmp_path / "data", database_url, "http://127.0.0.1:9", task_queue,
            recon_config_file=_recon_file(tmp_path, DEMO_CHANNEL), alert_webhook_url=receiver.url,
        )  # fmt: skip
        async with running_worker(client, settings):
            handle = await client.start_workflow(
                ReconcileWorkflow.run,
                ReconcileInput(account_no=DEMO_CHANNEL, recon_date=day, check_interval_seconds=6 * 3600),
                id=reconcile_workflow_id(DEMO_CHANNEL, day),
                task_queue=task_queue,
            )
            done = await handle.result()
    run_id = done.run_id
    engine.dispose()

    # Waited until two days after the end of the day its credit was due, then missing, alerted once.
    deadline = datetime.combine(day + timedelta(days=3), datetime.min.time(), CHINA_STANDARD_TIME)
    assert _settlement_state(database_url, run_id) == "settlement_missing"
    (settlement,) = [t for t in done.totals if t.side == "settlement"]
    assert settlement.state == "settlement_missing"
    kinds = [key for key, _ in _alerted(receiver)]
    assert kinds == ["reconciliation", "settlement"]
    assert datetime.fromisoformat(receiver.posts[1].body["at"]) >= deadline


async def test_a_pending_settlement_is_matched_on_its_own_once_its_bank_statement_is_stored(
    dev_env: WorkflowEnvironment, database_url: str, task_queue: str, tmp_path: Path, bank: BankSimulator
) -> None:
    day = _yesterday()
    channel = {"sqlite": "wx-planted-1", "postgresql": "wx-planted-2"}[
        database_url.split(":")[0].split("+")[0]
    ]
    bank.plan(BANK, day, StatementPlan(lines=12))
    # The channel's day is one payment, which the bank's statement of the day pays out: a credit
    # from a payer who sends nothing else that day.
    credits = [
        t for t in generate_statement(BANK, day, seed=bank.seed, lines=12).transactions()
        if t.direction == "C" and t.counterparty_name
    ]  # fmt: skip
    payers = Counter(t.counterparty_name for t in credits)
    payout = next(t for t in credits if payers[t.counterparty_name] == 1)
    engine = make_engine(database_url)
    prepare_schema(engine)
    order = DemoLine("O-1", "C", str(payout.amount), 3_600)
    store_channel_day(engine, channel, day, [order])
    write_ledger(tmp_path / "ledger" / f"ledger-{day}.csv", day, [order])
    client = dev_env.client
    with webhook_receiver() as receiver:
        settings = settings_for(
            tmp_path / "data", database_url, bank.url, task_queue,
            temporal_address=client.service_client.config.target_host,
            recon_config_file=_recon_file(tmp_path, channel, payout.counterparty_name),
            alert_webhook_url=receiver.url, statement_retry_interval_seconds=1800, bank_accounts=[BANK],
        )  # fmt: skip
        async with running_worker(client, settings):
            recon = await start_reconciliation(client, settings, channel, day)
            recon_day = ReconDay(account_no=channel, recon_date=day)

            async def run_stored() -> bool:
                return await asyncio.to_thread(latest_run_id, engine, recon_day) is not None

            await _within(PROMPTLY, run_stored, "the reconciliation run")
            run_id = await asyncio.to_thread(latest_run_id, engine, recon_day)
            assert run_id is not None and _settlement_state(database_url, run_id) == "settlement_pending"

            await _collect(client, settings, BANK, day)
            done = await asyncio.wait_for(recon.result(), PROMPTLY)
    engine.dispose()

    assert _settlement_state(database_url, run_id) == "matched"
    assert {(t.state, t.side) for t in done.totals} == {("matched", "ledger"), ("matched", "channel"),
                                                         ("matched", "settlement")}  # fmt: skip
    assert receiver.posts == []  # nothing to tell anyone
