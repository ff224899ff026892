"""WeChat Pay bills end to end: the dev server, a worker, the simulator over HTTP, both databases."""

from __future__ import annotations

import asyncio
import csv
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from bankrecon.models import DailyStatementInput, DailyStatementResult
from bankrecon.sources.wechatpay.simulator.generator import BillShape, bill_lines
from bankrecon.sources.wechatpay.simulator.server import BillPlan, WeChatPaySimulator
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.store.failures import failed_dates
from bankrecon.store.schema import open_database
from tests.harness import count_rows, settings_for, stored_rows
from tests.wechatpay_setup import Keys, china_today, make_keys, merchant_entry, simulator
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

TRADE = "wx-main-trade"
FUNDS = "wx-main-funds"
# A few days back: WeChat Pay's bills are ready from 10:00 the next day, and kept three months.
BILL_DATE = china_today() - timedelta(days=3)
ROWS = 30


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path)


@pytest.fixture
def wechatpay(keys: Keys) -> Iterator[WeChatPaySimulator]:
    with simulator(keys, BillPlan(ready_after=2, rows=ROWS)) as running:
        yield running


def _accounts_file(tmp_path: Path, keys: Keys, base_url: str) -> Path:
    entry = merchant_entry(keys, base_url)
    keys_toml = "\n".join(f'{name} = "{value}"' for name, value in entry.items())
    path = tmp_path / "accounts.toml"
    path.write_text(
        f"""
[[merchant]]
id = "wx-main"
kind = "wechatpay"
min_interval_seconds = 0.2
{keys_toml}

[[account]]
account_no = "{TRADE}"
merchant = "wx-main"
bill = "tradebill"

[[account]]
account_no = "{FUNDS}"
merchant = "wx-main"
bill = "fundflowbill"
""",
        encoding="utf-8",
    )
    return path


async def _collect(
    env: WorkflowEnvironment,
    tmp_path: Path,
    keys: Keys,
    sim: WeChatPaySimulator,
    database_url: str,
    *accounts: str,
) -> list[DailyStatementResult]:
    task_queue = f"wechatpay-{uuid.uuid4()}"
    settings = settings_for(
        tmp_path / "data",
        database_url,
        "http://127.0.0.1:9",
        task_queue,
        bank_accounts_file=_accounts_file(tmp_path, keys, sim.url),
    )
    async with running_worker(env.client, settings):
        handles = [
            await env.client.start_workflow(
                DailyStatementWorkflow.run,
                DailyStatementInput(
                    account_no=account_no,
                    bill_date=BILL_DATE,
                    retry_interval_seconds=1,
                    max_damaged_downloads=2,
                    alert_when_late=False,
                ),
                id=statement_workflow_id(account_no, BILL_DATE),
                task_queue=task_queue,
            )
            for account_no in accounts
        ]
        try:
            return [await handle.result() for handle in handles]
        finally:
            # A run left waiting would hold the id that the next test on this server uses.
            for handle in handles:
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("the test ended")


def _bill(shape: BillShape) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The bill the simulator serves, read here on its own: its rows and its summary, by column name."""
    lines = list(csv.reader(line.lstrip("\ufeff") for line in bill_lines(BILL_DATE, shape)))
    header, *body = lines
    rows = [dict(zip(header, (value[1:] for value in values), strict=True)) for values in body[:-2]]
    summary = dict(zip(body[-2], (value[1:] for value in body[-1]), strict=True))
    return rows, summary


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CHINA_STANDARD_TIME)


def _expected_trade(rows: list[dict[str, str]]) -> list[tuple[Any, ...]]:
    expected = []
    for row in rows:
        refund = row["交易状态"] == "REFUND"
        expected.append(
            (
                row["微信退款单号"] if refund else row["微信订单号"],
                _moment(row["交易时间"]),
                "D" if refund else "C",
                Decimal(row["退款金额"] if refund else row["应结订单金额"]),
                Decimal(row["手续费"]),
                None,
                row["商户订单号"],
                row,
            )
        )
    return expected


def _stored(database_url: str, account_no: str) -> tuple[Any, list[tuple[Any, ...]]]:
    statement, rows = stored_rows(database_url, account_no, BILL_DATE)
    return statement, [
        (r.serial_no, r.traded_at, r.direction, r.amount, r.fee, r.balance_after, r.reference, r.details)
        for r in rows
    ]


async def test_a_trade_bill_and_a_fund_flow_bill_are_stored_exactly_after_two_refusals(
    dev_env: WorkflowEnvironment, tmp_path: Path, keys: Keys, wechatpay: WeChatPaySimulator, database_url: str
) -> None:
    trade, funds = await _collect(dev_env, tmp_path, keys, wechatpay, database_url, TRADE, FUNDS)

    for result, bill in ((trade, "tradebill"), (funds, "fundflowbill")):
        assert (result.status, result.fetch_attempts, result.bank_code) == ("persisted", 3, "SUCCESS")
        answered = [record.status for record in wechatpay.requests_for(bill, BILL_DATE)]
        assert answered[:3] == [400, 400, 200], answered

    rows, summary = _bill(BillShape(bill="tradebill", rows=ROWS))
    statement, stored = _stored(database_url, TRADE)
    assert stored == _expected_trade(rows)
    assert (statement.source_kind, statement.bank_code, statement.transaction_count) == (
        "wechatpay",
        "SUCCESS",
        ROWS,
    )
    assert statement.credit_total == Decimal(summary["应结订单总金额"])
    assert statement.debit_total == Decimal(summary["退款总金额"])
    assert statement.fee_total == Decimal(summary["手续费总金额"])
    assert str(statement.fee_total) == summary["手续费总金额"]  # every decimal the bill writes
    assert statement.summary == summary
    assert (statement.opening_balance, statement.closing_balance) == (None, None)

    rows, summary = _bill(BillShape(bill="fundflowbill", rows=ROWS))
    statement, stored = _stored(database_url, FUNDS)
    assert stored == [
        (
            row["资金流水单号"],
            _moment(row["记账时间"]),
            "C" if row["收支类型"] == "收入" else "D",
            Decimal(row["收支金额(元)"]),
            None,
            Decimal(row["账户结余(元)"]),
            row["业务凭证号"] or None,
            row,
        )
        for row in rows
    ]
    assert (statement.credit_total, statement.debit_total) == (
        Decimal(summary["收入金额"]),
        Decimal(summary["支出金额"]),
    )
    assert statement.credit_count + statement.debit_count == int(float(summary["资金流水总笔数"]))


async def test_no_statement_exist_stores_an_empty_statement_after_one_request(
    dev_env: WorkflowEnvironment, tmp_path: Path, keys: Keys, wechatpay: WeChatPaySimulator, database_url: str
) -> None:
    wechatpay.plan("tradebill", BILL_DATE, BillPlan(outcome="empty"))

    (result,) = await _collect(dev_env, tmp_path, keys, wechatpay, database_url, TRADE)

    assert (result.fetch_attempts, result.transaction_count, result.bank_code) == (1, 0, "NO_STATEMENT_EXIST")
    statement, stored = _stored(database_url, TRADE)
    assert stored == []
    assert (statement.bank_code, statement.source_kind) == ("NO_STATEMENT_EXIST", "wechatpay")
    assert len(wechatpay.requests_for("tradebill", BILL_DATE)) == 1


async def test_a_download_whose_hash_is_wrong_is_fetched_again_and_stored_once(
    dev_env: WorkflowEnvironment, tmp_path: Path, keys: Keys, wechatpay: WeChatPaySimulator, database_url: str
) -> None:
    wechatpay.plan("tradebill", BILL_DATE, BillPlan(rows=ROWS, faults=["wrong_hash", "truncated"]))

    (result,) = await _collect(dev_env, tmp_path, keys, wechatpay, database_url, TRADE)

    assert (result.fetch_attempts, result.transaction_count) == (3, ROWS)
    _, stored = _stored(database_url, TRADE)
    assert stored == _expected_trade(_bill(BillShape(bill="tradebill", rows=ROWS))[0])


async def test_a_bill_whose_summary_does_not_add_up_stores_nothing(
    dev_env: WorkflowEnvironment, tmp_path: Path, keys: Keys, wechatpay: WeChatPaySimulator, database_url: str
) -> None:
    wechatpay.plan("tradebill", BILL_DATE, BillPlan(rows=ROWS, bad_summary=True))

    with pytest.raises(WorkflowFailureError) as failure:
        await _collect(dev_env, tmp_path, keys, wechatpay, database_url, TRADE)

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "StatementDamaged"
    assert "总交易单数" in cause.message and "quarantined" in cause.message
    assert count_rows(database_url) == 0


async def test_answers_signed_wrongly_three_times_in_a_row_fail_for_good_naming_the_key(
    dev_env: WorkflowEnvironment, tmp_path: Path, keys: Keys, wechatpay: WeChatPaySimulator, database_url: str
) -> None:
    wechatpay.plan("tradebill", BILL_DATE, BillPlan(rows=ROWS, faults=["bad_signature"] * 100))

    # Bounded: before, the fetch asked for ever.
    with pytest.raises(WorkflowFailureError) as failure:
        async with asyncio.timeout(60):
            await _collect(dev_env, tmp_path, keys, wechatpay, database_url, TRADE)

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "AnswerNotBelieved"
    assert cause.message.startswith("3 unbelieved answer(s) in a row, giving up")
    assert "wechatpay_public_key_file" in cause.message
    # Three answers were asked for and none was taken; the date is recorded as failed.
    assert len(wechatpay.requests_for("tradebill", BILL_DATE)) == 3
    assert count_rows(database_url) == 0
    (failed,) = failed_dates(open_database(database_url), TRADE)
    assert failed.error_type == "AnswerNotBelieved" and "wechatpay_public_key_file" in failed.reason


async def test_an_answer_between_unbelieved_ones_starts_the_count_again(
    dev_env: WorkflowEnvironment, tmp_path: Path, keys: Keys, wechatpay: WeChatPaySimulator, database_url: str
) -> None:
    # Two bad signatures, a believed answer (the gateway busy), two more bad ones, then the bill:
    # never three in a row, so the bill is stored.
    faults = ["bad_signature", "bad_signature", "500", "bad_signature", "bad_signature"]
    wechatpay.plan("tradebill", BILL_DATE, BillPlan(rows=ROWS, faults=faults))

    (result,) = await _collect(dev_env, tmp_path, keys, wechatpay, database_url, TRADE)

    assert result.status == "persisted" and result.transaction_count == ROWS
    assert len(wechatpay.requests_for("tradebill", BILL_DATE)) == 6
