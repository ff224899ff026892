"""Alipay collected end to end on the dev server: refused as not ready, then stored; faults store nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from bankrecon.models import DailyStatementInput, DailyStatementResult
from bankrecon.sources.alipay.bill import read_bill
from bankrecon.sources.alipay.simulator.generator import BillShape, write_bill
from bankrecon.sources.alipay.simulator.server import AlipaySimulator, BillPlan
from bankrecon.statements.canonical import CanonicalRow
from bankrecon.statements.common import CHINA_STANDARD_TIME, ArchiveLimits
from tests.alipay_setup import APP_ID, Keys, make_keys, simulator
from tests.channel_bills import alipay_members
from tests.corpus import corpus_path, expected_of
from tests.harness import count_rows, fails_with, settings_for, stored_rows
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

ACCOUNT = "ali-main-trade"
# A few days back: the merchant's earliest (10:00 the next day) has passed, give_up_after not.
BILL_DATE = datetime.now(CHINA_STANDARD_TIME).date() - timedelta(days=1)
LONG_AGO = BILL_DATE - timedelta(days=5)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def sim(keys: Keys) -> Iterator[AlipaySimulator]:
    with simulator(keys, BillPlan(ready_after=2, rows=40)) as running:
        yield running


def accounts_toml(path: Path, keys: Keys, gateway: str) -> Path:
    path.write_text(
        f'[[merchant]]\nid = "ali-main"\nkind = "alipay"\napp_id = "{APP_ID}"\ngateway = "{gateway}"\n'
        f'app_private_key_file = "{keys.app.private_file}"\n'
        f'alipay_public_key_file = "{keys.alipay.public_file}"\n'
        'earliest = "00:00"\nmin_interval_seconds = 0.5\n'
        f'[[account]]\naccount_no = "{ACCOUNT}"\nmerchant = "ali-main"\nbill_type = "trade"\n'
    )
    return path


async def run_statement(
    env: WorkflowEnvironment, tmp_path: Path, database_url: str, task_queue: str, gateway: str, keys: Keys,
    bill_date: date = BILL_DATE, **inputs: Any,
) -> DailyStatementResult:  # fmt: skip
    settings = settings_for(
        tmp_path / "data", database_url, "http://unused.invalid", task_queue,
        bank_accounts_file=accounts_toml(tmp_path / "accounts.toml", keys, gateway),
    )  # fmt: skip
    async with running_worker(env.client, settings):
        handle = await env.client.start_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(
                account_no=ACCOUNT,
                bill_date=bill_date,
                retry_interval_seconds=0.5,
                alert_when_late=False,
                **inputs,
            ),
            id=statement_workflow_id(ACCOUNT, bill_date) + task_queue,
            task_queue=task_queue,
        )
        try:
            async with asyncio.timeout(90):
                return await handle.result()
        finally:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("the test ended")


def expected_rows(tmp_path: Path, rows: int) -> list[CanonicalRow]:
    path = tmp_path / "expected.zip"
    with path.open("wb") as out:
        write_bill(out, BILL_DATE, BillShape("trade", rows), seed=1)
    found: list[CanonicalRow] = []
    read_bill(path, "trade", ArchiveLimits(), found.append)
    return found


async def test_refused_as_not_ready_twice_then_stored_exactly(
    dev_env: WorkflowEnvironment,
    sim: AlipaySimulator,
    keys: Keys,
    tmp_path: Path,
    database_url: str,
    task_queue: str,
) -> None:
    result = await run_statement(dev_env, tmp_path, database_url, task_queue, sim.gateway, keys)
    assert result.status == "persisted" and result.fetch_attempts == 3 and result.bank_code == "10000"
    assert [r.code for r in sim.requests if r.path == "/gateway.do"] == [
        "40004 isp.bill_not_exist",
        "40004 isp.bill_not_exist",
        "10000",
    ]
    statement, rows = stored_rows(database_url, ACCOUNT, BILL_DATE)
    expected = expected_rows(tmp_path, 40)
    assert statement.transaction_count == len(rows) == 40
    assert statement.credit_total == sum(r.amount for r in expected if r.direction == "C")
    assert statement.debit_total == sum(r.amount for r in expected if r.direction == "D")
    assert statement.fee_total == sum((r.fee for r in expected if r.fee is not None), Decimal(0))
    assert statement.source_kind == "alipay"
    assert [(r.serial_no, r.direction, r.amount, r.reference) for r in rows] == [
        (r.serial_no, r.direction, r.amount, r.reference) for r in expected
    ]


async def test_a_real_trade_bill_is_stored_from_its_first_download_not_quarantined(
    dev_env: WorkflowEnvironment, keys: Keys, tmp_path: Path, sqlite_url: str, task_queue: str
) -> None:
    """A merchant's real 业务明细 (../shared/corpus): its refund trailer says 商家实收退款共, which once
    made every real trade bill damage, quarantined and fetched again until the statement failed."""
    sample = corpus_path("channels", "alipay", "qding_trade_20190916")
    day = date(2019, 9, 16)
    detail, summary = (sample / "detail.csv").read_bytes(), (sample / "summary.csv").read_bytes()
    members = alipay_members("20880211096256330156", day, "trade", detail, summary)
    with simulator(keys, BillPlan(members=members)) as sim:
        result = await run_statement(dev_env, tmp_path, sqlite_url, task_queue, sim.gateway, keys, day)
    assert result.status == "persisted" and result.fetch_attempts == 1
    assert not list((tmp_path / "data" / "quarantine").glob("*"))
    statement, rows = stored_rows(sqlite_url, ACCOUNT, day)
    expected = expected_of(sample)
    assert statement.transaction_count == len(rows) == expected["rows"]
    assert (statement.credit_total, statement.debit_total) == (Decimal("0.06"), Decimal("0.04"))


async def test_no_bill_after_give_up_after_is_stored_empty_with_the_reason(
    dev_env: WorkflowEnvironment,
    sim: AlipaySimulator,
    keys: Keys,
    tmp_path: Path,
    database_url: str,
    task_queue: str,
) -> None:
    sim.plan("trade", LONG_AGO, BillPlan(outcome="none"))
    result = await run_statement(dev_env, tmp_path, database_url, task_queue, sim.gateway, keys, LONG_AGO)
    assert result.transaction_count == 0
    statement, rows = stored_rows(database_url, ACCOUNT, LONG_AGO)
    assert statement.bank_code == "isp.bill_not_exist after give_up_after" and rows == []


async def test_totals_that_disagree_store_nothing(
    dev_env: WorkflowEnvironment,
    sim: AlipaySimulator,
    keys: Keys,
    tmp_path: Path,
    database_url: str,
    task_queue: str,
) -> None:
    sim.plan("trade", BILL_DATE, BillPlan(bad_totals=True))
    message = await fails_with(
        run_statement(
            dev_env, tmp_path, database_url, task_queue, sim.gateway, keys, max_damaged_downloads=2
        ),
        "StatementDamaged",
    )
    assert "#交易合计 says" in message
    assert count_rows(database_url) == 0


@pytest.mark.parametrize("fault", ["corrupt_zip", "expired_url", "bad_signature", "500"])
async def test_a_passing_fault_stores_nothing_of_it_and_the_next_answer_whole(
    dev_env: WorkflowEnvironment,
    keys: Keys,
    tmp_path: Path,
    sqlite_url: str,
    task_queue: str,
    fault: str,
) -> None:
    with simulator(keys, BillPlan(rows=40, faults=[fault])) as sim:
        result = await run_statement(dev_env, tmp_path, sqlite_url, task_queue, sim.gateway, keys)
        gateway_calls = [r for r in sim.requests if r.path == "/gateway.do"]
    assert result.status == "persisted" and len(gateway_calls) == 2
    statement, rows = stored_rows(sqlite_url, ACCOUNT, BILL_DATE)
    expected = expected_rows(tmp_path, 40)
    assert [(r.serial_no, r.amount) for r in rows] == [(r.serial_no, r.amount) for r in expected]
    assert statement.source_sha256 == result.source_sha256
