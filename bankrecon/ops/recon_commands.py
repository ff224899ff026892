"""``bankrecon recon``: a day's reconciliation summary and exceptions, re-runs, exports, notes.

bankrecon recon ACCOUNT DATE [--rerun] [--export DIR]   the day's summary, then its exceptions
bankrecon recon --open [--from DATE] [--to DATE] [--account ACCOUNT]   exceptions nobody resolved
bankrecon recon explain ITEM_ID --note "..."           mark an exception explained
bankrecon recon pair ITEM_ID ITEM_ID --reason "..." [--allow-difference]   match two by hand
bankrecon recon write-off ITEM_ID --reason "..." [--account 6603]   accept an exception
bankrecon recon reopen ITEM_ID --reason "..."          undo a pair or a write-off
Each action is recorded with who (--by NAME, else BANKRECON_OPERATOR, else the system user) and when.
bankrecon recon balance ACCOUNT DATE | --month YYYY-MM [--export DIR]   a bank account's 余额调节表
(bank accounts, [bank_accounts] of RECON_CONFIG_FILE: bankrecon/ops/bankrec_commands.py)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine, Row
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle

from bankrecon.config import Settings
from bankrecon.models import is_statement_name
from bankrecon.ops.bankrec_commands import (
    BankRecCommandError,
    balance_command,
    bank_day_command,
    is_bank_account,
)
from bankrecon.ops.starting import start_or_tell
from bankrecon.recon.actions import ActionRefused, Actor, describe_action, explain, pair, reopen, write_off
from bankrecon.recon.config import ReconConfigError, load_recon_config
from bankrecon.recon.export import export_run
from bankrecon.recon.models import (
    AGE_BANDS,
    UNRESOLVED,
    AgedTotal,
    ReconcileInput,
    ReconDay,
    ReconRunSummary,
)
from bankrecon.recon.results import (
    age_days,
    latest_run_id,
    open_by_age,
    open_exceptions,
    run_items,
    run_summary,
)
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.temporal.client import connect
from workflows.reconcile import ReconcileWorkflow, reconcile_workflow_id

Table = Callable[[Sequence[Sequence[str]], TextIO], None]
Database = Callable[[Settings], AbstractContextManager[Engine]]
OPEN_DAYS = 30  # --open without --from looks this far back
ACTIONS = ("explain", "pair", "write-off", "reopen")
# Wide enough that an item with its status, note and last action stays on one line.
RICH_WIDTH = 280
RUN_POLL_SECONDS = 0.5


class ReconCommandError(Exception):
    """A mistake in what was asked of ``bankrecon recon``; the message says what to do instead."""


async def start_reconciliation(
    client: Client, settings: Settings, account_no: str, day: date, *, rerun: bool = False
) -> WorkflowHandle[ReconcileWorkflow, ReconRunSummary]:
    """Start the day's reconciliation, or tell the one waiting for its inputs to look now.

    What learns that a statement is stored (the statement's workflow, the nightly run) calls
    this; a day reconciled already is run again only with ``rerun``, else its last run's handle.
    """
    return await start_or_tell(
        client,
        ReconcileWorkflow.run,
        ReconcileInput(
            account_no=account_no,
            recon_date=day,
            check_interval_seconds=settings.statement_retry_interval_seconds,
        ),
        workflow_id=reconcile_workflow_id(account_no, day),
        task_queue=settings.temporal_task_queue,
        rerun=rerun,
    )


def _local(moment: datetime) -> str:
    return moment.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M:%S")


def report_day() -> date:
    """The day a report's ages count to by default: yesterday in China, the day the nightly run reconciles."""
    return datetime.now(CHINA_STANDARD_TIME).date() - timedelta(days=1)


def _item_rows(items: Sequence[Row[Any]], as_of: date, with_day: bool = False) -> Iterator[list[str]]:
    yield [*(["DATE", "ACCOUNT"] if with_day else []), "ITEM", "STATE", "SIDE", "REFERENCE", "DIR", "AMOUNT",
           "OTHER SIDE", "WHEN", "LINE", "DETAIL", "STATUS", "AGE", "NOTE", "LAST ACTION"]  # fmt: skip
    for item in items:
        carried = item.side == "ledger" and item.booked_on != item.recon_date
        detail = ", ".join(
            part for part in [item.detail, f"ledger of {item.booked_on}" if carried else None] if part
        )
        yield [
            *([str(item.recon_date), item.account_no] if with_day else []),
            str(item.item_id),
            item.state,
            item.side,
            item.reference,
            item.direction,
            str(item.amount),
            "" if item.counterpart_total is None else str(item.counterpart_total),
            _local(item.occurred_at) if item.occurred_at else "",
            item.line_ref,
            detail,
            item.status or "",
            str(age_days(item.recon_date, as_of)) if item.status in UNRESOLVED else "",
            item.note or "",
            describe_action(item, _local(item.last_at)) if item.last_action else "",
        ]


def _aged_rows(totals: Sequence[AgedTotal]) -> list[list[str]]:
    """Per account and state, count and amount in each age band."""
    rows = [["ACCOUNT", "STATE", *(band.upper() for band in AGE_BANDS), "AMOUNT"]]
    grouped: dict[tuple[str, str], dict[str, AgedTotal]] = {}
    for total in totals:
        grouped.setdefault((total.account_no, total.state), {})[total.band] = total
    for (account_no, state), bands in grouped.items():
        cells = [
            f"{bands[band].lines} ({bands[band].amount})" if band in bands else "0" for band in AGE_BANDS
        ]
        rows.append([account_no, state, *cells, str(sum(total.amount for total in bands.values()))])
    return rows


def _show_summary(summary: ReconRunSummary, engine: Engine, out: TextIO, table: Table) -> None:
    day = summary.day
    out.write(
        f"reconciliation of {day.account_no} for {day.recon_date}: run {summary.run_id}, "
        f"finished {_local(summary.finished_at)} (China Standard Time)\n"
        f"ledger fingerprint {summary.ledger_sha256}\nstatement fingerprint {summary.statement_sha256}\n\n"
    )
    rows = [["STATE", "SIDE", "LINES", "AMOUNT"]]
    rows += [[t.state, t.side, str(t.lines), str(t.amount)] for t in summary.totals]
    table(rows, out)
    exceptions = run_items(engine, summary.run_id, exceptions_only=True)
    if not exceptions:
        out.write("\nno exceptions\n")
        return
    out.write(f"\n{len(exceptions)} exception(s):\n")
    table(list(_item_rows(exceptions, report_day())), out)


async def _rerun(settings: Settings, day: ReconDay, out: TextIO, database: Database) -> None:
    try:
        load_recon_config(settings.recon_config_file).channel(day.account_no)
    except ReconConfigError as exc:
        raise ReconCommandError(str(exc)) from None
    client = await connect(settings)
    handle = await start_reconciliation(client, settings, day.account_no, day.recon_date, rerun=True)
    out.write(f"started {handle.id} (run {handle.result_run_id}); waiting for its result\n")
    with database(settings) as engine:
        await run_stored(handle, engine)


async def run_stored(handle: WorkflowHandle[ReconcileWorkflow, ReconRunSummary], engine: Engine) -> None:
    """Wait until the handle's run is stored, which may be days before its workflow ends (a pending
    settlement keeps it open); ReconCommandError if the workflow fails first."""
    run_id = handle.result_run_id
    while run_id is None or await asyncio.to_thread(run_summary, engine, run_id) is None:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            try:
                await handle.result()
            except WorkflowFailureError as exc:
                cause = getattr(exc.cause, "message", exc.cause)
                raise ReconCommandError(f"{handle.id} failed: {cause}") from None
            return
        await asyncio.sleep(RUN_POLL_SECONDS)


def _day_of(args: argparse.Namespace) -> ReconDay:
    if len(args.target) != 2:
        raise ReconCommandError(
            "give ACCOUNT DATE, or --open, or one of explain, pair, write-off, reopen with its ITEM_ID(s)"
        )
    account_no, day_text = args.target
    if not is_statement_name(account_no):
        raise ReconCommandError(f"{account_no} is not an account number nor a statement name")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day_text):
        raise ReconCommandError(f"not a date (YYYY-MM-DD): {day_text!r}")
    try:
        return ReconDay(account_no=account_no, recon_date=date.fromisoformat(day_text))
    except ValueError:
        raise ReconCommandError(f"not a date (YYYY-MM-DD): {day_text!r}") from None


def _rich_or(plain: Table) -> Table:
    """rich's tables when it is installed, else the plain aligned ones."""
    try:
        console_module = importlib.import_module("rich.console")
        table_module = importlib.import_module("rich.table")
    except ImportError:
        return plain

    def rich_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
        shown = table_module.Table(*rows[0])
        for row in rows[1:]:
            shown.add_row(*row)
        console_module.Console(file=out, width=RICH_WIDTH).print(shown)

    return rich_table


async def recon_command(
    args: argparse.Namespace, settings: Settings, out: TextIO, plain_table: Table, database: Database
) -> int:
    table = _rich_or(plain_table)
    if args.target[:1] and args.target[0] in ACTIONS:
        return _action_command(args, settings, out, database)
    if args.target[:1] == ["balance"]:
        return _bank(balance_command, args, settings, out, table, database)
    if args.open:
        return _open_command(args, settings, out, table, database)
    day = _day_of(args)
    if is_bank_account(settings, day.account_no):
        try:
            return await bank_day_command(args, settings, day, out, table, database)
        except BankRecCommandError as exc:
            raise ReconCommandError(str(exc)) from None
    if args.rerun:
        await _rerun(settings, day, out, database)
    with database(settings) as engine:
        run_id = latest_run_id(engine, day)
        summary = run_summary(engine, run_id) if run_id is not None else None
        if summary is None:
            raise ReconCommandError(
                f"{day.account_no} has no reconciliation for {day.recon_date} yet; to run it: "
                f"bankrecon recon {day.account_no} {day.recon_date} --rerun"
            )
        _show_summary(summary, engine, out, table)
        if args.export is not None:
            csv_path, xlsx_path = export_run(engine, summary, args.export, report_day())
            out.write(f"\nexported {csv_path} and {xlsx_path}\n")
    return 0


def _bank(
    command: Callable[[argparse.Namespace, Settings, TextIO, Table, Database], int],
    args: argparse.Namespace,
    settings: Settings,
    out: TextIO,
    table: Table,
    database: Database,
) -> int:
    try:
        return command(args, settings, out, table, database)
    except BankRecCommandError as exc:
        raise ReconCommandError(str(exc)) from None


def _open_command(
    args: argparse.Namespace, settings: Settings, out: TextIO, table: Table, database: Database
) -> int:
    last = args.last or datetime.now(CHINA_STANDARD_TIME).date()
    as_of = args.last or report_day()
    first = args.first or last - timedelta(days=OPEN_DAYS)
    if first > last:
        raise ReconCommandError(f"--from ({first}) is after --to ({last})")
    with database(settings) as engine:
        items = open_exceptions(engine, first, last, args.account)
        aged = open_by_age(engine, as_of, first, args.account, last)
    if not items:
        out.write(f"no open exceptions from {first} to {last}\n")
        return 0
    out.write(f"{len(items)} open exception(s) from {first} to {last}, aged to {as_of}:\n")
    table(_aged_rows(aged), out)
    out.write("\n")
    table(list(_item_rows(items, as_of, with_day=True)), out)
    return 1


def _operator(args: argparse.Namespace, settings: Settings) -> str:
    """Who acts: --by, else BANKRECON_OPERATOR, else the system user's name."""
    by = (args.by or "").strip() or (settings.bankrecon_operator or "").strip()
    if by:
        return by
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise ReconCommandError("no user name: say who acts with --by NAME or BANKRECON_OPERATOR") from None


def _item_ids(args: argparse.Namespace, count: int) -> list[int]:
    action, *ids = args.target
    if len(ids) != count or not all(item_id.isdigit() for item_id in ids):
        raise ReconCommandError(
            f"{action} takes {'two ITEM_IDs' if count == 2 else 'one ITEM_ID'} "
            "(numbers from `bankrecon recon ACCOUNT DATE` or `--open`)"
        )
    return [int(item_id) for item_id in ids]


def _named(item: Row[Any]) -> str:
    return (
        f"item {item.item_id} ({item.state} {item.side} {item.reference or '(no reference)'} {item.amount} "
        f"of {item.account_no} {item.recon_date})"
    )


def _action_command(args: argparse.Namespace, settings: Settings, out: TextIO, database: Database) -> int:
    action = args.target[0]
    ids = _item_ids(args, 2 if action == "pair" else 1)
    text = args.note if action == "explain" else args.reason
    if not text:
        flag = "--note" if action == "explain" else "--reason"
        raise ReconCommandError(f"{action} needs {flag} TEXT: why")
    with database(settings) as engine:
        try:
            actor = Actor(by=_operator(args, settings), at=datetime.now(UTC))
            if action == "explain":
                item = explain(engine, ids[0], text, actor)
                said = f"{_named(item)} explained; the note holds in later runs of the day"
            elif action == "pair":
                ledger, channel, difference = pair(
                    engine, (ids[0], ids[1]), text, actor, args.allow_difference
                )
                said = f"{_named(ledger)} paired with {_named(channel)}" + (
                    f", difference {difference}" if difference else ""
                )
            elif action == "write-off":
                item = write_off(engine, ids[0], text, actor, args.account)
                said = f"{_named(item)} written off" + (f" to {args.account}" if args.account else "")
            else:
                said = (
                    " and ".join(_named(item) for item in reopen(engine, ids[0], text, actor)) + " reopened"
                )
        except ActionRefused as exc:
            raise ReconCommandError(str(exc)) from None
    out.write(f"{said}, by {actor.by} at {_local(actor.at)}\n")
    return 0


def add_recon_arguments(recon: argparse.ArgumentParser, date_type: Callable[[str], date]) -> None:
    recon.add_argument(
        "target",
        nargs="*",
        metavar="ACCOUNT DATE | explain|pair|write-off|reopen ITEM_ID [ITEM_ID] | balance ACCOUNT [DATE]",
    )
    recon.add_argument("--rerun", action="store_true", help="reconcile the day again now, then show it")
    recon.add_argument("--export", type=Path, metavar="DIR", help="write the day's items as CSV and XLSX")
    recon.add_argument("--open", action="store_true", help="exceptions not explained yet, over a range")
    recon.add_argument(
        "--from", dest="first", type=date_type, help=f"with --open (default: {OPEN_DAYS} days back)"
    )
    recon.add_argument("--to", dest="last", type=date_type, help="with --open (default: today in China)")
    recon.add_argument(
        "--account",
        help="with --open: only this channel account; with write-off: the ledger account it goes to",
    )
    recon.add_argument("--note", help="with explain: why the exception is what it is")
    recon.add_argument("--reason", help="with pair, write-off, reopen: why")
    recon.add_argument(
        "--allow-difference", action="store_true", help="with pair: the two amounts may differ (shown)"
    )
    recon.add_argument("--by", help="who acts (default: BANKRECON_OPERATOR, else the system user's name)")
    recon.add_argument("--month", metavar="YYYY-MM", help="with balance: the 余额调节表 at the month's end")
