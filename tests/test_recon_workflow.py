"""Reconciliation end to end on the dev server: the workflow waits for its inputs, alerts once per run,
and the `bankrecon recon` commands show, explain, re-run and export it; on both databases."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

import activities.reconcile as reconcile_activities
from activities.reconcile import ReconcileActivities
from bankrecon.config import Settings
from bankrecon.models import NightlyStatementsInput
from bankrecon.ops.recon_commands import report_day, start_reconciliation
from bankrecon.recon.demo import (
    DEMO_CHANNEL,
    DEMO_CHANNEL_LINES,
    DEMO_LEDGER,
    DEMO_LEDGER_DAY_BEFORE,
    DEMO_LEDGER_FIXED,
    DemoLine,
    plant_demo,
    recon_file_text,
    store_channel_day,
    write_ledger,
)
from bankrecon.recon.models import ReconDay, ReconRunRequest
from bankrecon.recon.results import latest_run_id, run_items
from bankrecon.recon.settlement import channel_net
from bankrecon.store.db import make_engine
from bankrecon.store.schema import prepare_schema
from tests.harness import settings_for
from tests.test_recon import (
    BANK,
    DAY,
    EXPECTED,
    LATER_CHANNEL,
    outcome,
    plant_later_days,
    store_settlement_credit,
)
from tests.webhook import webhook_receiver
from worker import running_worker
from workflows.nightly_statements import NightlyStatementsWorkflow
from workflows.reconcile import reconcile_workflow_id


def cli(settings: Settings, *args: str, **env_more: str) -> subprocess.CompletedProcess[str]:
    env = (
        dict(os.environ)
        | env_more
        | {
            "TEMPORAL_ADDRESS": settings.temporal_address,
            "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "DATA_DIR": str(settings.data_dir),
            "DATABASE_URL": settings.resolved_database_url(),
            "RECON_CONFIG_FILE": str(settings.recon_config_file),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "bankrecon.ops.cli", "recon", *args],
        env=env, capture_output=True, text=True, timeout=90, cwd=settings.data_dir,
    )  # fmt: skip


async def test_a_day_reconciled_explained_fixed_and_exported(
    dev_env: WorkflowEnvironment, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    # The dev server is the session's: each database reconciles a day of its own.
    day = DAY if database_url.startswith("sqlite") else DAY + timedelta(days=7)
    ledger_dir = tmp_path / "ledger"
    config = tmp_path / "recon.toml"
    config.write_text(recon_file_text(ledger_dir, BANK), encoding="utf-8")
    write_ledger(
        ledger_dir / f"ledger-{day - timedelta(days=1)}.csv", day - timedelta(days=1), DEMO_LEDGER_DAY_BEFORE
    )
    write_ledger(ledger_dir / f"ledger-{day}.csv", day, DEMO_LEDGER)
    (tmp_path / "data").mkdir()
    engine = make_engine(database_url)
    prepare_schema(engine)
    client = dev_env.client
    with webhook_receiver() as receiver:
        settings = settings_for(
            tmp_path / "data", database_url, "http://127.0.0.1:9", task_queue,
            temporal_address=client.service_client.config.target_host, recon_config_file=config,
            alert_webhook_url=receiver.url, statement_retry_interval_seconds=3600,
        )  # fmt: skip
        async with running_worker(client, settings):
            # The ledger is there, the channel's statement not yet: the workflow waits for it.
            handle = await start_reconciliation(client, settings, DEMO_CHANNEL, day)
            async with asyncio.timeout(30):
                while not [
                    event
                    async for event in handle.fetch_history_events()
                    if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
                ]:
                    await asyncio.sleep(0.1)
            store_channel_day(engine, DEMO_CHANNEL, day, DEMO_CHANNEL_LINES)
            # The statement's arrival signals it (here as a statement workflow would): it runs at once.
            again = await start_reconciliation(client, settings, DEMO_CHANNEL, day)
            assert again.result_run_id == handle.result_run_id
            first = await asyncio.wait_for(handle.result(), 30)
            assert outcome(engine, first.run_id) == EXPECTED
            assert len(receiver.posts) == 1
            alert = receiver.posts[0].body
            assert alert["event"] == "reconciliation_exceptions"
            assert {(t["state"], t["side"]): (t["lines"], t["amount"]) for t in alert["exceptions"]} == {
                ("amount_differs", "channel"): (2, "192.00"),
                ("amount_differs", "ledger"): (2, "200.00"),
                ("channel_only", "channel"): (1, "90.00"),
                ("duplicate", "channel"): (1, "60.00"),
                ("ledger_only", "ledger"): (1, "70.00"),
                ("settlement_missing", "settlement"): (1, "1083.13"),
            }

            shown = await asyncio.to_thread(cli, settings, DEMO_CHANNEL, str(day))
            assert shown.returncode == 0, shown.stderr
            assert "8 exception(s)" in shown.stdout
            duplicate = next(item for item in run_items(engine, first.run_id) if item.state == "duplicate")
            explained = await asyncio.to_thread(
                cli, settings, "explain", str(duplicate.item_id), "--note", "charged twice; refund asked for"
            )
            assert explained.returncode == 0, explained.stderr
            still_open = await asyncio.to_thread(
                cli, settings, "--open", "--from", str(day), "--to", str(day)
            )
            # Explained is still open: listed with its status until someone resolves it.
            assert "8 open exception(s)" in still_open.stdout and "explained" in still_open.stdout

            # Finance fixes the ledger and the settlement arrives: a re-run clears all but the note's.
            write_ledger(ledger_dir / f"ledger-{day}.csv", day, DEMO_LEDGER_FIXED)
            with engine.connect() as conn:
                store_settlement_credit(
                    engine, channel_net(conn, DEMO_CHANNEL, day).quantize(Decimal("0.01")), day
                )
            export_dir = tmp_path / "export"
            rerun = await asyncio.to_thread(
                cli, settings, DEMO_CHANNEL, str(day), "--rerun", "--export", str(export_dir)
            )
            assert rerun.returncode == 0, rerun.stderr
            assert "1 exception(s)" in rerun.stdout and "charged twice; refund asked for" in rerun.stdout, (
                rerun.stdout
            )
            assert len(receiver.posts) == 2  # one per run
            assert (
                receiver.posts[0].headers["Idempotency-Key"] != receiver.posts[1].headers["Idempotency-Key"]
            )
            one_open = await asyncio.to_thread(cli, settings, "--open", "--from", str(day), "--to", str(day))
            assert one_open.returncode == 1 and "1 open exception(s)" in one_open.stdout

    second_run = latest_run_id(engine, ReconDay(account_no=DEMO_CHANNEL, recon_date=day))
    assert second_run is not None and second_run != first.run_id
    items = run_items(engine, second_run)
    engine.dispose()
    assert {item.state for item in items} == {"matched", "duplicate"}
    workbook = load_workbook(export_dir / f"recon-{DEMO_CHANNEL}-{day}.xlsx")
    assert workbook.sheetnames == ["summary", "duplicate", "matched"]
    summary = {
        (row[0], row[1]): (row[2], row[3])
        for row in workbook["summary"].iter_rows(min_row=9, values_only=True)
    }
    assert summary == {
        (state, side): (sum(1 for i in items if (i.state, i.side) == (state, side)),
                        float(sum(i.amount for i in items if (i.state, i.side) == (state, side))))
        for state, side in {(i.state, i.side) for i in items}
    }  # fmt: skip
    matched_sheet = workbook["matched"]
    header = [cell.value for cell in matched_sheet[1]]
    amounts = [row[header.index("amount")] for row in matched_sheet.iter_rows(min_row=2)]
    assert sum(Decimal(str(cell.value)) for cell in amounts) == sum(
        i.amount for i in items if i.state == "matched"
    )
    assert {cell.number_format for cell in amounts} == {"#,##0.00"}
    assert matched_sheet.cell(2, header.index("occurred_at") + 1).number_format == "yyyy-mm-dd hh:mm:ss"
    duplicate_row = [cell.value for cell in workbook["duplicate"][2]]
    assert duplicate_row[header.index("note")] == "charged twice; refund asked for"
    csv_lines = (export_dir / f"recon-{DEMO_CHANNEL}-{day}.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(csv_lines) == len(items) + 1


def test_a_run_heartbeats_while_it_works(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(database_url)
    prepare_schema(engine)
    config = plant_demo(engine, tmp_path, DAY, BANK)
    engine.dispose()
    # Beats as often as the run's own statements take, so that even a small day shows them.
    monkeypatch.setattr(reconcile_activities, "HEARTBEAT_EVERY", timedelta(milliseconds=1))
    settings = settings_for(
        tmp_path, database_url, "http://127.0.0.1:9", "recon-beats", recon_config_file=config
    )
    activities = ReconcileActivities(settings)
    beats: list[object] = []
    environment = ActivityEnvironment()
    environment.on_heartbeat = lambda *details: beats.append(details)
    try:
        request = ReconRunRequest(
            day=ReconDay(account_no=DEMO_CHANNEL, recon_date=DAY), workflow_id="w", run_id="r"
        )
        summary = environment.run(activities.reconcile, request)
    finally:
        activities.close()
    assert summary.exceptions
    assert beats


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_nightly_run_starts_the_days_reconciliation_of_each_configured_account(
    dev_env: WorkflowEnvironment, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    day = DAY + timedelta(days=30)  # a day of its own on the session's dev server
    config = tmp_path / "recon.toml"
    config.write_text(recon_file_text(tmp_path / "ledger", BANK), encoding="utf-8")
    (tmp_path / "data").mkdir()
    client = dev_env.client
    settings = settings_for(
        tmp_path / "data", database_url, "http://127.0.0.1:9", task_queue,
        temporal_address=client.service_client.config.target_host, recon_config_file=config,
        bank_accounts_file=None, bank_accounts=[],
    )  # fmt: skip
    async with running_worker(client, settings):
        nightly = await client.execute_workflow(
            NightlyStatementsWorkflow.run,
            NightlyStatementsInput(bill_date=day, catch_up_days=0),
            id=f"nightly-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        assert nightly.started == []  # no statement to collect: only the reconciliation
        recon = client.get_workflow_handle(reconcile_workflow_id(DEMO_CHANNEL, day))
        # It waits for its statement and ledger, which this night has neither of.
        assert (await recon.describe()).status == WorkflowExecutionStatus.RUNNING
        await recon.terminate("the test ended")


async def test_a_week_worked_across_days_with_who_and_when_kept_across_a_rerun_and_exported(
    dev_env: WorkflowEnvironment, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    # Days of their own on the session's dev server, in the past: their ages count to today.
    day = DAY - timedelta(days=40 if database_url.startswith("sqlite") else 50)
    engine = make_engine(database_url)
    prepare_schema(engine)
    config = plant_demo(engine, tmp_path, day, BANK)
    plant_later_days(engine, tmp_path, day)
    new_on_day_2 = DemoLine("O-300", "C", "25.00", 40_000, "0.15")
    store_channel_day(engine, DEMO_CHANNEL, day + timedelta(days=2), [*LATER_CHANNEL[2], new_on_day_2])
    (tmp_path / "data").mkdir()
    client = dev_env.client
    with webhook_receiver() as receiver:
        settings = settings_for(
            tmp_path / "data", database_url, "http://127.0.0.1:9", task_queue,
            temporal_address=client.service_client.config.target_host, recon_config_file=config,
            alert_webhook_url=receiver.url,
        )  # fmt: skip
        async with running_worker(client, settings):
            runs = []
            for offset in range(3):
                handle = await start_reconciliation(
                    client, settings, DEMO_CHANNEL, day + timedelta(days=offset)
                )
                runs.append(await asyncio.wait_for(handle.result(), 30))
            # The morning report of day + 2: its own new exception today, day's still open ones 2 days old,
            # day's O-007 (booked by the channel on day + 2) and O-008 (by the ledger on day + 1) gone.
            report = receiver.posts[-1].body
            assert report["day"]["recon_date"] == str(day + timedelta(days=2))
            aged = {
                (t["state"], t["band"]): (t["lines"], t["amount"])
                for t in report["open_by_age"]
                if not t["state"].startswith("settlement")
            }
            assert aged == {
                ("channel_only", "today"): (1, "25.00"),
                ("amount_differs", "1-3 days"): (4, "392.00"),
                ("duplicate", "1-3 days"): (1, "60.00"),
            }
            assert {t["account_no"] for t in report["open_by_age"]} == {DEMO_CHANNEL}

            items = {
                (i.state, i.side, i.reference): str(i.item_id) for i in run_items(engine, runs[0].run_id)
            }
            paired = await asyncio.to_thread(
                cli, settings, "pair", items[("amount_differs", "ledger", "O-009")],
                items[("amount_differs", "channel", "O-009")], "--reason", "reference mistyped in the ERP",
                "--allow-difference", BANKRECON_OPERATOR="carol",
            )  # fmt: skip
            assert paired.returncode == 0, paired.stderr
            assert "difference 8.00, by carol" in paired.stdout
            written_off = await asyncio.to_thread(
                cli, settings, "write-off", items[("duplicate", "channel", "O-006")],
                "--reason", "fee rounding, accepted", "--account", "6603", "--by", "dave",
                BANKRECON_OPERATOR="carol",
            )  # fmt: skip
            assert written_off.returncode == 0, written_off.stderr
            assert "written off to 6603, by dave" in written_off.stdout
            reopened = await asyncio.to_thread(
                cli, settings, "reopen", items[("amount_differs", "channel", "O-009")],
                "--reason", "paired by mistake", "--by", "erin",
            )  # fmt: skip
            assert reopened.returncode == 0, reopened.stderr
            assert reopened.stdout.count("O-009") == 2  # both halves
            refused = await asyncio.to_thread(
                cli, settings, "reopen", items[("duplicate", "channel", "O-006")], "--by", "erin"
            )
            assert (refused.returncode, refused.stderr) == (2, "bankrecon: reopen needs --reason TEXT: why\n")

            export_dir = tmp_path / "export"
            rerun = await asyncio.to_thread(
                cli, settings, DEMO_CHANNEL, str(day), "--rerun", "--export", str(export_dir)
            )
            assert rerun.returncode == 0, rerun.stderr
            listed = await asyncio.to_thread(
                cli, settings, "--open", "--from", str(day), "--to", str(day + timedelta(days=2))
            )
    assert listed.returncode == 1
    # Cells of rich's rows: DATE, ACCOUNT, ITEM, STATE, SIDE, REFERENCE, ..., STATUS, AGE, NOTE, LAST ACTION.
    rows = [line.split("│")[1:-1] for line in listed.stdout.splitlines() if "│" in line]
    by_ref = {
        (cells[5].strip(), cells[4].strip()): cells for cells in rows if len(cells) == 16 and cells[0].strip()
    }
    o_009 = by_ref[("O-009", "ledger")]
    assert [cell.strip() for cell in o_009[12:15]] == ["open", "2", ""]
    assert o_009[15].strip().startswith("reopen by erin")
    assert ("O-006", "channel") not in by_ref  # written off: resolved
    assert ("O-007", "ledger") not in by_ref and ("O-008", "channel") not in by_ref  # matched across days
    assert by_ref[("O-300", "channel")][13].strip() == "0"
    bands = next(cells for cells in rows if len(cells) == 6 and cells[1].strip() == "amount_differs")
    assert [cell.strip() for cell in bands[2:6]] == ["0", "4 (392.00)", "0", "392.00"]

    latest = latest_run_id(engine, ReconDay(account_no=DEMO_CHANNEL, recon_date=day))
    assert latest is not None and latest != runs[0].run_id
    engine.dispose()
    with (export_dir / f"recon-{DEMO_CHANNEL}-{day}.csv").open(encoding="utf-8-sig") as file:
        exported = {(row["state"], row["side"], row["reference"]): row for row in csv.DictReader(file)}
    age = str((report_day() - day).days)
    o_006 = exported[("duplicate", "channel", "O-006")]
    assert (o_006["status"], o_006["age_days"]) == ("resolved", "")
    assert o_006["actions"].endswith("write_off to 6603 by dave: fee rounding, accepted")
    o_009_channel = exported[("amount_differs", "channel", "O-009")]
    assert (o_009_channel["status"], o_009_channel["age_days"]) == ("open", age)
    actions = o_009_channel["actions"].split("; ")
    assert [action.split(" ", 2)[2] for action in actions] == [
        "pair, difference 8.00 by carol: reference mistyped in the ERP",
        "reopen by erin: paired by mistake",
    ]
    assert exported[("matched", "ledger", "O-001")]["status"] == ""
    workbook = load_workbook(export_dir / f"recon-{DEMO_CHANNEL}-{day}.xlsx")
    sheet = workbook["amount_differs"]
    header_row = [cell.value for cell in sheet[1]]
    assert header_row[-3:] == ["status", "age_days", "actions"]
    assert {row[header_row.index("age_days")] for row in sheet.iter_rows(min_row=2, values_only=True)} == {
        int(age)
    }
