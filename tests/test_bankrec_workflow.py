"""Bank reconciliation end to end on the dev server, on SQLite and PostgreSQL: a planted month run
by BankReconcileWorkflow (waiting for its statement, signalled when it is stored), alerted, shown
and re-run from the CLI, its month-end 余额调节表 printed and exported as XLSX and read back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.reconcile import ReconcileActivities
from bankrecon.bankrec.demo import (
    BANK_LINES,
    EXPECTED_OPEN_AT_MONTH_END,
    MONTH_END,
    plant_month,
    store_statement,
)
from bankrecon.bankrec.models import bank_reconcile_workflow_id
from bankrecon.models import NightlyStatementsInput, StatementKey
from bankrecon.ops.bankrec_commands import start_bank_reconciliation
from bankrecon.store.db import make_engine, statements, transactions
from bankrecon.store.schema import prepare_schema
from tests.harness import settings_for
from tests.test_recon_workflow import cli
from tests.webhook import webhook_receiver
from worker import running_worker
from workflows.nightly_statements import NightlyStatementsWorkflow


async def test_a_planted_month_run_by_its_workflows_and_its_month_end_statement(
    dev_env: WorkflowEnvironment, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    # The dev server is the session's: each database has an account of its own.
    account = "6222020000000001" if database_url.startswith("sqlite") else "6222020000000002"
    engine = make_engine(database_url)
    prepare_schema(engine)
    config = plant_month(engine, tmp_path, account)
    # The month end's statement is not stored yet: its workflow waits for it.
    with engine.begin() as conn:
        for table in (transactions, statements):
            conn.execute(delete(table).where(table.c.account_no == account, table.c.bill_date == MONTH_END))
    (tmp_path / "data").mkdir()
    client = dev_env.client
    with webhook_receiver() as receiver:
        settings = settings_for(
            tmp_path / "data", database_url, "http://127.0.0.1:9", task_queue,
            temporal_address=client.service_client.config.target_host, recon_config_file=config,
            alert_webhook_url=receiver.url, statement_retry_interval_seconds=3600,
        )  # fmt: skip
        async with running_worker(client, settings):
            for day in (date(2026, 11, 2), date(2026, 11, 5)):
                handle = await start_bank_reconciliation(client, settings, account, day)
                assert handle.id == bank_reconcile_workflow_id(account, day) == f"bankrec-{account}-{day}"
                summary = await asyncio.wait_for(handle.result(), 30)
                assert summary.difference == 0
            handle = await start_bank_reconciliation(client, settings, account, MONTH_END)
            async with asyncio.timeout(30):
                while not [
                    event
                    async for event in handle.fetch_history_events()
                    if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
                ]:
                    await asyncio.sleep(0.1)
            closing_of_the_5th = Decimal("101408.38")
            store_statement(engine, account, MONTH_END, closing_of_the_5th,
                            [line for line in BANK_LINES if line.day == MONTH_END])  # fmt: skip
            # The statement's workflow, once it stored it, signals the waiting run: it looks at once.
            reconcile = ReconcileActivities(settings)
            told = await ActivityEnvironment(client=client).run(
                reconcile.signal_reconciliations, StatementKey(account_no=account, bill_date=MONTH_END)
            )
            reconcile.close()
            assert told == [handle.id]
            month_end = await asyncio.wait_for(handle.result(), 30)
            assert month_end.rules == {"reference": 1} and month_end.difference == 0
            alert = receiver.posts[-1].body
            assert alert["event"] == "bank_reconciliation" and alert["balanced"] is True
            assert {t["state"]: (t["lines"], t["amount"]) for t in alert["open_items"]} == {
                state: (1, amount) for state, _, amount in EXPECTED_OPEN_AT_MONTH_END
            }
            assert receiver.posts[-1].headers["Idempotency-Key"].endswith("/bank_reconciliation")

            rerun = await asyncio.to_thread(cli, settings, account, str(MONTH_END), "--rerun")
            assert rerun.returncode == 0, rerun.stderr
            assert "difference of the adjusted balances: 0.00" in rerun.stdout
            export_dir = tmp_path / "export"
            shown = await asyncio.to_thread(cli, settings, "balance", account, "--month", "2026-11",
                                            "--export", str(export_dir))  # fmt: skip
            assert shown.returncode == 0, shown.stderr
            assert "difference 0.00: balanced" in shown.stdout
            assert (
                "112,978.38" in shown.stdout
                and "银行已付、企业未付 bank_debit_not_booked: 1 item(s), 15.00" in shown.stdout
            )
            not_run = await asyncio.to_thread(cli, settings, account, "2026-11-03")
            assert not_run.returncode == 2
            assert f"{account} has no bank reconciliation for 2026-11-03 yet; to run it: " in not_run.stderr
            bad_month = await asyncio.to_thread(cli, settings, "balance", account, "--month", "2026-13")
            assert bad_month.returncode == 2 and "--month is YYYY-MM, not '2026-13'" in bad_month.stderr
            store_statement(engine, "wx-1900000009", MONTH_END, Decimal("0.00"), [])
            with engine.begin() as conn:
                conn.execute(
                    statements.update()
                    .where(statements.c.account_no == "wx-1900000009")
                    .values(source_kind="wechatpay", closing_balance=None)
                )
            refused = await asyncio.to_thread(cli, settings, "balance", "wx-1900000009", str(MONTH_END))
            assert refused.returncode == 2 and refused.stderr.count("\n") == 1
            assert "wx-1900000009 is a wechatpay account: its bills carry no balance" in refused.stderr

    engine.dispose()
    workbook = load_workbook(export_dir / f"余额调节表-{account}-{MONTH_END}.xlsx")
    assert workbook.sheetnames == [
        "余额调节表", "bank_credit_not_booked", "bank_debit_not_booked", "book_credit_not_in_bank",
        "book_debit_not_in_bank",
    ]  # fmt: skip
    sheet = workbook["余额调节表"]
    assert (sheet["B6"].value, sheet["D6"].value) == (111728.38, 112673.38)
    assert (sheet["B9"].value, sheet["D9"].value) == (112978.38, 112978.38)
    assert sheet["B11"].value == 0 and sheet["B9"].number_format == "#,##0.00"
    for state, reference, amount in EXPECTED_OPEN_AT_MONTH_END:
        row = [cell.value for cell in workbook[state][3]]
        assert (row[1], row[5]) == (float(amount), reference)


async def test_a_cash_book_off_by_a_planted_amount_is_shown_unexplained(
    dev_env: WorkflowEnvironment, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    account = "6222020000000003" if database_url.startswith("sqlite") else "6222020000000004"
    engine = make_engine(database_url)
    prepare_schema(engine)
    config = plant_month(engine, tmp_path, account)
    config.write_text(
        config.read_text().replace('opening_balance = "100000.00"', 'opening_balance = "99990.00"')
    )
    (tmp_path / "data").mkdir()
    client = dev_env.client
    settings = settings_for(
        tmp_path / "data", database_url, "http://127.0.0.1:9", task_queue,
        temporal_address=client.service_client.config.target_host, recon_config_file=config,
    )  # fmt: skip
    async with running_worker(client, settings):
        for day in (date(2026, 11, 2), date(2026, 11, 5), MONTH_END):
            handle = await start_bank_reconciliation(client, settings, account, day)
            assert (await asyncio.wait_for(handle.result(), 30)).difference == Decimal("10.00")
        shown = await asyncio.to_thread(
            cli, settings, "balance", account, str(MONTH_END), "--export", str(tmp_path)
        )
    engine.dispose()
    assert shown.returncode == 1 and "difference 10.00: unexplained" in shown.stdout
    sheet = load_workbook(tmp_path / f"余额调节表-{account}-{MONTH_END}.xlsx")["余额调节表"]
    assert sheet["B11"].value == 10 and sheet["B11"].font.color.rgb == "FFC00000"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_nightly_run_starts_each_bank_accounts_day(
    dev_env: WorkflowEnvironment, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    account = "6222020000000005"
    day = date(2026, 12, 1)
    engine = make_engine(database_url)
    prepare_schema(engine)
    config = plant_month(engine, tmp_path, account)
    engine.dispose()
    (tmp_path / "data").mkdir()
    client = dev_env.client
    settings = settings_for(
        tmp_path / "data", database_url, "http://127.0.0.1:9", task_queue,
        temporal_address=client.service_client.config.target_host, recon_config_file=config,
        bank_accounts_file=None, bank_accounts=[],
    )  # fmt: skip
    async with running_worker(client, settings):
        await client.execute_workflow(
            NightlyStatementsWorkflow.run,
            NightlyStatementsInput(bill_date=day, catch_up_days=0),
            id=f"nightly-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        bankrec = client.get_workflow_handle(bank_reconcile_workflow_id(account, day))
        # It waits for the day's statement, not stored.
        assert (await bankrec.describe()).status == WorkflowExecutionStatus.RUNNING
        await bankrec.terminate("the test ended")
