"""bankrecon: the operator's console for the nightly statements.

    bankrecon schedule                      create or update the nightly and retention Schedules
    bankrecon backfill ACCOUNT FROM TO      collect a range of dates, with progress and a summary
    bankrecon status [--late] [--all]       what runs now: phase, attempts, last answer, next attempt
    bankrecon status --failed               dates that failed for good, with the reason
    bankrecon refetch ACCOUNT DATE          fetch a stored date again (replaces it if the bank's file changed)
    bankrecon pause MERCHANT / resume MERCHANT   hold all of a merchant's requests, and let them go
    bankrecon db upgrade                    the database's schema up to this release (created if empty)
    bankrecon db current                    the database's schema revision, and this release's
    bankrecon recon ACCOUNT DATE [--rerun] [--export DIR] / --open / explain ITEM_ID --note TEXT /
                    pair ITEM_ID ITEM_ID / write-off ITEM_ID / reopen ITEM_ID --reason TEXT
                                            a channel day reconciled against the ledger (recon_commands.py)
    bankrecon web [--host H] [--port P]     the finance team's web page (docs/web.md)
    bankrecon web add-user NAME --role viewer|accountant|operator / web remove-user NAME
    bankrecon recon balance ACCOUNT DATE | --month YYYY-MM [--export DIR]
                                            a bank account's 余额调节表 (bankrec_commands.py)

Settings come from the environment or .env, as for the worker (TEMPORAL_ADDRESS, DATABASE_URL, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, TaskID, TextColumn
from rich.progress import Progress as ProgressBar
from rich.table import Table
from sqlalchemy import Engine, Row
from sqlalchemy.exc import OperationalError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from bankrecon.accounts import Account, AccountDirectory, AccountsFileError
from bankrecon.config import Settings, settings_error
from bankrecon.models import (
    STATEMENT_NAME_FORM,
    DailyStatementInput,
    DailyStatementResult,
    DailyStatementStatus,
    StatementFailure,
    StatementKey,
    is_statement_name,
)
from bankrecon.ops.nightly_schedule import apply_nightly_schedule, apply_retention_schedule
from bankrecon.ops.recon_commands import ReconCommandError, add_recon_arguments, recon_command
from bankrecon.pacing.window import (
    merchant_pace,
    merchant_pause,
    merchant_pauses_now,
    pause_merchant,
    resume_merchant,
    statements_asking,
)
from bankrecon.store.cancellations import forget_cancellation
from bankrecon.store.catch_up import days
from bankrecon.store.db import DatabaseUnusable, database_location, make_engine
from bankrecon.store.failures import failed_dates, forget_failure
from bankrecon.store.persistence import stored_statements
from bankrecon.store.schema import (
    SchemaError,
    current_revision,
    head_revision,
    prepare_schema,
    upgrade_schema,
)
from bankrecon.temporal.client import TemporalConnectionError, connect
from bankrecon.temporal.codec import KeyRingError
from bankrecon.temporal.search_attributes import BANK_ACCOUNT, BILL_DATE
from bankrecon.web.command import add_web_arguments, serve_command
from bankrecon.web.users import UsersFileError
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id, yesterday_in_china

StatementHandle = WorkflowHandle[DailyStatementWorkflow, DailyStatementResult]


class CommandError(Exception):
    """A mistake in what was asked; the message says what to do instead."""


def _console(out: TextIO) -> Console:
    """rich on a terminal (its width, styles); elsewhere plain text, never wrapped: one line a row.

    Whether ``out`` is a terminal decides, not FORCE_COLOR: what a pipe or a log gets stays parseable.
    """
    terminal = out.isatty()
    return Console(
        file=out, force_terminal=terminal, width=None if terminal else sys.maxsize, highlight=False
    )


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Columns lined up by rich, which gives East Asian wide characters (the bank's 系统错误) two columns."""
    header, *body = rows
    table = Table(*header, box=None, pad_edge=False, highlight=False)
    for row in body:
        table.add_row(*row)
    console = _console(out)
    with console.capture() as rendered:
        console.print(table)
    # rich pads the last column to its width too.
    out.write("".join(f"{line.rstrip()}\n" for line in rendered.get().splitlines()))


def _dates(count: int) -> str:
    return f"{count} date" if count == 1 else f"{count} dates"


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


@contextmanager
def _database(settings: Settings, *, check_schema: bool = True) -> Iterator[Engine]:
    """The database, its schema at this release's revision (created if the database is empty)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url()
    engine = make_engine(url)
    try:
        if check_schema:
            prepare_schema(engine)
        yield engine
    except OperationalError as exc:
        raise CommandError(str(DatabaseUnusable(url, exc))) from None
    finally:
        engine.dispose()


def _account(settings: Settings, account_no: str) -> Account:
    account = AccountDirectory.from_settings(settings).account(account_no)
    if account is None:
        raise CommandError(f"account {account_no} is not configured in BANK_ACCOUNTS_FILE")
    return account


def _statement_input(settings: Settings, account_no: str, bill_date: date) -> DailyStatementInput:
    # An operator's backfill or re-fetch of a past date is late by definition: no alert for it.
    return DailyStatementInput(
        account_no=account_no,
        bill_date=bill_date,
        retry_interval_seconds=settings.statement_retry_interval_seconds,
        deadline=settings.statement_deadline,
        alert_when_late=False,
    )


def _forget_cancellations_and_failures(settings: Settings, started: list[tuple[StatementKey, str]]) -> None:
    """An operator started these dates (each as the run id given): a cancellation or failure recorded
    for one no longer holds, unless the run just started failed already."""
    with _database(settings) as engine:
        for key, run_id in started:
            forget_cancellation(engine, key)
            forget_failure(engine, key, started_run_id=run_id)


# --- schedule -------------------------------------------------------------------------


async def schedule_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    client = await connect(settings)
    applied = await apply_nightly_schedule(client, settings)
    out.write(
        f"schedule {applied.schedule_id} {applied.change}: every day at "
        f"{settings.nightly_time:%H:%M} {applied.time_zone} (cron {applied.cron!r}), "
        f"NightlyStatementsWorkflow on task queue {settings.temporal_task_queue!r}, "
        f"catching up {settings.nightly_catch_up_days} days\n"
    )
    description = await client.get_schedule_handle(applied.schedule_id).describe()
    upcoming = description.info.next_action_times[:3]
    if upcoming:
        out.write("next runs: " + ", ".join(_local(moment) for moment in upcoming) + "\n")
    if description.schedule.state.paused:
        out.write(
            "the schedule is paused: "
            f"temporal schedule toggle --schedule-id {applied.schedule_id} --unpause\n"
        )
    retention = await apply_retention_schedule(client, settings)
    out.write(
        f"schedule {retention.schedule_id} {retention.change}: every day at "
        f"{settings.retention_time:%H:%M} {retention.time_zone} (cron {retention.cron!r}), "
        f"RetentionWorkflow keeping {settings.retention_archives_days} days of archives, "
        f"{settings.retention_bank_requests_days} of bank requests\n"
    )
    return 0


# --- backfill -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One date's line in the summary."""

    bill_date: date
    said: str  # stored, already stored, or the failure
    transactions: str = ""
    bank_requests: str = ""
    closing_balance: str = ""
    failed: bool = False


def _stored(
    bill_date: date, said: str, figures: DailyStatementResult | Row[Any], bank_requests: str
) -> Outcome:
    """A stored statement's line, from its workflow's result or from its row in the statements table."""
    closing = figures.closing_balance
    return Outcome(
        bill_date,
        f"{said} (no transactions)" if figures.bank_code == "2001" else said,
        str(figures.transaction_count),
        bank_requests,
        f"{closing} {figures.currency}" if closing is not None else "",
    )


def _done_by(statements: int, pace: timedelta) -> str:
    """When ``statements`` of one merchant have had a request each, taking its window in turn."""
    return _local(datetime.now(UTC) + statements * pace)


class Progress:
    """A bar redrawn in place on a terminal (rich); a line per change elsewhere (logs, CI)."""

    def __init__(self, out: TextIO, total: int, pace: timedelta, others: int):
        self._out = out
        self._total = total
        self._pace = pace
        self._others = others  # the merchant's other statements, which take their turns too
        self._live: tuple[ProgressBar, TaskID] | None = None
        if out.isatty():
            bar = ProgressBar(
                BarColumn(), TextColumn("{task.description}"), console=_console(out), auto_refresh=False
            )
            self._live = (bar, bar.add_task("", total=total))
        self.stored = 0
        self.failed = 0

    def show(self) -> None:
        done = self.stored + self.failed
        remaining = self._total - done
        eta = f"  expected done by {_done_by(self._others + remaining, self._pace)}" if remaining else ""
        line = f"{done}/{self._total}  stored {self.stored}  failed {self.failed}{eta}"
        if self._live is None:
            self._out.write(f"{line}\n")
            self._out.flush()
            return
        bar, task = self._live
        bar.start()
        bar.update(task, completed=done, description=line, refresh=True)

    def close(self) -> None:
        if self._live is not None:
            self._live[0].stop()


async def _outcome(handle: StatementHandle, bill_date: date) -> Outcome:
    try:
        result = await handle.result()
    except WorkflowFailureError as err:
        cause = err.cause
        return Outcome(bill_date, f"failed: {getattr(cause, 'message', cause)}", failed=True)
    said = {"persisted": "stored", "already_persisted": "already stored"}[result.status]
    return _stored(bill_date, said, result, str(result.fetch_attempts))


async def _start_statement(
    client: Client, settings: Settings, account_no: str, bill_date: date
) -> StatementHandle:
    """Start the date's workflow, whatever its earlier runs did; WorkflowAlreadyStartedError if one runs."""
    return await client.start_workflow(
        DailyStatementWorkflow.run,
        _statement_input(settings, account_no, bill_date),
        id=statement_workflow_id(account_no, bill_date),
        task_queue=settings.temporal_task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )


def _require_past_day(day: date) -> None:
    """Refuse a date the bank has no statement for yet: a workflow for it would poll all day."""
    latest = yesterday_in_china(datetime.now(UTC))
    if day > latest:
        raise CommandError(
            f"the bank has no statement for {day} before that day ends in China; latest: {latest}"
        )


async def backfill_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    first, last = args.first, args.last
    if first > last:
        raise CommandError(f"FROM ({first}) is after TO ({last})")
    _require_past_day(last)
    account = _account(settings, args.account)
    dates = days(first, last)
    # The database says what is stored: Temporal forgets completed runs after the retention.
    window = timedelta(seconds=account.merchant.min_interval_seconds)
    with _database(settings) as engine:
        stored = {} if args.refetch else stored_statements(engine, account.account_no, first, last)
        asking = statements_asking(engine, account.merchant.id, window, datetime.now(UTC))
    client = await connect(settings)
    handles: dict[date, StatementHandle] = {}
    started: list[tuple[StatementKey, str]] = []
    for day in dates:
        if day in stored:
            continue
        try:
            handle = await _start_statement(client, settings, account.account_no, day)
            handles[day] = handle
            assert handle.result_run_id is not None  # a started workflow's run
            started.append((StatementKey(account_no=account.account_no, bill_date=day), handle.result_run_id))
        except WorkflowAlreadyStartedError:
            handles[day] = client.get_workflow_handle_for(
                DailyStatementWorkflow.run, statement_workflow_id(account.account_no, day)
            )
    _forget_cancellations_and_failures(settings, started)
    new = len(started)
    pace = merchant_pace(window)
    out.write(
        f"{_dates(len(dates))} of {account.account_no} ({first} to {last}): {new} started, "
        f"{len(stored)} already stored, {len(handles) - new} running already\n"
    )
    if new:
        # The merchant's statements take its window in turn: those asking already, and these.
        others = f", {asking} other statement(s) of it asking already" if asking else ""
        out.write(
            f"merchant {account.merchant.id} allows one request every {window}{others}: with the bank "
            f"ready, all done by about {_done_by(asking + new, pace)}\n"
        )
    if args.no_wait:
        out.write("the workflows go on without this command: `bankrecon status` shows them\n")
        return 0
    # Their bank requests were not this command's, and the database does not count them per run.
    outcomes = [_stored(day, "already stored", row, "") for day, row in stored.items()]
    progress = Progress(out, len(dates), pace, asking)
    progress.stored = len(outcomes)
    progress.show()
    try:
        for finished in asyncio.as_completed([_outcome(handle, day) for day, handle in handles.items()]):
            outcome = await finished
            outcomes.append(outcome)
            if outcome.failed:
                progress.failed += 1
            else:
                progress.stored += 1
            progress.show()
    finally:
        progress.close()
    _backfill_summary(sorted(outcomes, key=lambda o: o.bill_date), out)
    return 1 if progress.failed else 0


def _backfill_summary(outcomes: list[Outcome], out: TextIO) -> None:
    rows = [["DATE", "OUTCOME", "TRANSACTIONS", "BANK REQUESTS", "CLOSING BALANCE"]]
    rows += [[str(o.bill_date), o.said, o.transactions, o.bank_requests, o.closing_balance] for o in outcomes]
    out.write("\n")
    _table(rows, out)


# --- status ---------------------------------------------------------------------------


async def _live_status(client: Client, workflow_id: str) -> DailyStatementStatus | str:
    handle = client.get_workflow_handle_for(DailyStatementWorkflow.run, workflow_id)
    try:
        status = await handle.query(DailyStatementWorkflow.status, rpc_timeout=timedelta(seconds=5))
    except RPCError as exc:
        return f"no answer from a worker ({exc.message})"
    return status if status is not None else "starting"


def _failed_dates_table(failures: list[StatementFailure], out: TextIO) -> None:
    out.write(
        f"{_dates(len(failures))} failed for good, not started again by the nightly run until "
        "`bankrecon refetch` or `backfill`:\n"
    )
    rows = [["BILL DATE", "ACCOUNT", "FAILED AT", "ERROR", "REASON"]]
    rows += [
        [str(f.statement.bill_date), f.statement.account_no, _local(f.failed_at), f.error_type, f.reason]
        for f in failures
    ]
    _table(rows, out)


async def status_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    with _database(settings) as engine:
        for pause in merchant_pauses_now(engine):
            since = _local(pause.paused_at)
            out.write(f"merchant {pause.merchant_id} PAUSED since {since}: {pause.reason}\n")
        failures = failed_dates(engine, args.account, args.date)
    if failures:
        _failed_dates_table(failures, out)
    if args.failed:
        if not failures:
            out.write("no failed dates\n")
        return 0
    clauses = ["WorkflowType = 'DailyStatementWorkflow'"]
    if not args.all:
        clauses.append("ExecutionStatus = 'Running'")
    if args.late:
        clauses.append("StatementLate = true")
    if args.account:
        clauses.append(f"BankAccount = '{args.account}'")
    if args.date:
        clauses.append(f"BillDate = '{args.date.isoformat()}'")
    client = await connect(settings)
    rows = [["BILL DATE", "ACCOUNT", "STATE", "ATTEMPTS", "LAST ANSWER", "NEXT ATTEMPT", "DEADLINE", "LATE"]]
    async for execution in client.list_workflows(" AND ".join(clauses), limit=args.limit):
        attributes = execution.typed_search_attributes
        # A run that failed on its input never set them: its workflow id says what it was.
        bill_date = attributes.get(BILL_DATE) or ""
        account_no = attributes.get(BANK_ACCOUNT) or execution.id
        state = execution.status.name.lower() if execution.status else "unknown"
        if execution.status != WorkflowExecutionStatus.RUNNING:
            rows.append([bill_date, account_no, state, "", "", "", "", ""])
            continue
        status = await _live_status(client, execution.id)
        if isinstance(status, str):
            rows.append([bill_date, account_no, status, "", "", "", "", ""])
            continue
        answer = status.last_answer
        rows.append(
            [
                str(status.statement.bill_date),
                status.statement.account_no,
                status.phase,
                str(status.fetch_attempts),
                status.holdup or (f"{answer.code} {answer.message} ({_local(answer.at)})" if answer else ""),
                _local(status.next_attempt_at) if status.next_attempt_at else "",
                _local(status.deadline),
                "LATE" if status.late else "",
            ]
        )
    if len(rows) == 1:
        out.write("no statement workflows match\n")
    else:
        _table(rows, out)
    return 0


# --- refetch, pause, resume -----------------------------------------------------------


async def refetch_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    _require_past_day(args.date)
    account = _account(settings, args.account)
    client = await connect(settings)
    workflow_id = statement_workflow_id(account.account_no, args.date)
    try:
        handle = await _start_statement(client, settings, account.account_no, args.date)
    except WorkflowAlreadyStartedError:
        raise CommandError(
            f"{workflow_id} is running already; to start over: "
            f"temporal workflow cancel --workflow-id {workflow_id}"
        ) from None
    assert handle.result_run_id is not None  # a started workflow's run
    _forget_cancellations_and_failures(
        settings, [(StatementKey(account_no=account.account_no, bill_date=args.date), handle.result_run_id)]
    )
    out.write(f"started {workflow_id} (run {handle.result_run_id})\n")
    if args.wait:
        outcome = await _outcome(handle, args.date)
        _backfill_summary([outcome], out)
        return 1 if outcome.failed else 0
    return 0


def _known_merchant(settings: Settings, merchant_id: str) -> None:
    known = [merchant.id for merchant in AccountDirectory.from_settings(settings).merchants()]
    if merchant_id not in known:
        raise CommandError(f"unknown merchant {merchant_id}; configured: {', '.join(known)}")


async def pause_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    _known_merchant(settings, args.merchant)
    with _database(settings) as engine:
        if args.resume:
            changed = resume_merchant(engine, args.merchant)
            earlier = None
        else:
            changed = pause_merchant(engine, args.merchant, args.reason, datetime.now(UTC))
            earlier = None if changed else merchant_pause(engine, args.merchant)
    if args.resume:
        out.write(
            f"merchant {args.merchant} resumed: each statement asks the bank at its next attempt\n"
            if changed
            else f"merchant {args.merchant} was not paused\n"
        )
    elif changed:
        out.write(
            f"merchant {args.merchant} paused: no request goes to its bank until `bankrecon resume "
            f"{args.merchant}`; its workflows keep waiting\n"
        )
    else:
        # None only if someone resumed it in the meantime.
        since = f" since {_local(earlier.paused_at)}: {earlier.reason}" if earlier else ""
        out.write(f"merchant {args.merchant} was paused already{since}\n")
    return 0


# --- db ------------------------------------------------------------------------------


async def db_upgrade_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    with _database(settings, check_schema=False) as engine:
        upgrade = upgrade_schema(engine)
    out.write(f"{database_location(settings.resolved_database_url())}: {upgrade}\n")
    return 0


async def db_current_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    with _database(settings, check_schema=False) as engine:
        revision = current_revision(engine)
    head = head_revision()
    if revision is None:
        said = "empty"
    elif revision == head:
        said = f"revision {revision}, this release's"
    else:
        said = f"revision {revision}; this release needs {head}"
    out.write(f"{database_location(settings.resolved_database_url())}: {said}\n")
    return 0


async def recon_cli(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    return await recon_command(args, settings, out, _table, _database)


async def web_cli(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    action = getattr(args, "web_action", None)
    if action is not None:
        code: int = action(args, settings, out)
        return code
    return await serve_command(args, settings, out, _database)


# --- the command line -----------------------------------------------------------------


def _date(text: str) -> date:
    # Only YYYY-MM-DD: date.fromisoformat also takes the basic form (20261101) and week dates.
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        with suppress(ValueError):
            return date.fromisoformat(text)
    raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}")


def _account_no(text: str) -> str:
    # Checked before anything else: it goes into workflow inputs and into visibility queries.
    if not is_statement_name(text):
        raise argparse.ArgumentTypeError(
            f"{text} is not an account number (10 to 32 digits) nor a statement name ({STATEMENT_NAME_FORM})"
        )
    return text


Command = Callable[[argparse.Namespace, Settings, TextIO], Awaitable[int]]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="bankrecon", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = root.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run: Command, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    command("schedule", schedule_command, "create or update the nightly and retention Schedules")
    backfill = command("backfill", backfill_command, "collect an account's statements for a range of dates")
    backfill.add_argument("account", metavar="ACCOUNT", type=_account_no)
    backfill.add_argument("first", metavar="FROM", type=_date)
    backfill.add_argument("last", metavar="TO", type=_date)
    backfill.add_argument("--refetch", action="store_true", help="fetch dates collected already again")
    backfill.add_argument("--no-wait", action="store_true", help="start the workflows and return")
    status = command("status", status_command, "the statements being collected, and paused merchants")
    status.add_argument("--late", action="store_true", help="only statements past their deadline")
    status.add_argument(
        "--failed", action="store_true", help="only dates that failed for good, with the reason"
    )
    status.add_argument("--all", action="store_true", help="finished ones too")
    status.add_argument("--account", type=_account_no, help="only this account's statements")
    status.add_argument("--date", type=_date, help="only statements of this date (YYYY-MM-DD)")
    status.add_argument(
        "--limit", type=int, default=100, help="show at most this many workflows (default: %(default)s)"
    )
    refetch = command("refetch", refetch_command, "fetch one stored date again")
    refetch.add_argument("account", metavar="ACCOUNT", type=_account_no)
    refetch.add_argument("date", type=_date)
    refetch.add_argument("--wait", action="store_true", help="wait for the outcome")
    pause = command("pause", pause_command, "send nothing to a merchant's bank until resumed")
    pause.add_argument("merchant")
    pause.add_argument("--reason", default="paused by an operator")
    pause.set_defaults(resume=False)
    resume = command("resume", pause_command, "let a paused merchant's requests go again")
    resume.add_argument("merchant")
    resume.set_defaults(resume=True)
    db = commands.add_parser("db", help="the database's schema", description="the database's schema")
    db_actions = db.add_subparsers(required=True, metavar="ACTION")
    for name, run, help in (
        ("upgrade", db_upgrade_command, "bring the schema to this release's revision (creates it if empty)"),
        ("current", db_current_command, "the schema's revision, and the one this release needs"),
    ):
        db_actions.add_parser(name, help=help, description=help).set_defaults(run=run)
    recon = command(
        "recon", recon_cli, "a channel day against the ledger, a bank account against its cash book"
    )
    add_recon_arguments(recon, _date)
    add_web_arguments(command("web", web_cli, "the finance team's web page, and its users"))
    return root


async def run(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parser().parse_args(argv)
    try:
        # Only the worker serves metrics: a command often runs beside it (in its container,
        # with its METRICS_ADDRESS), and has nothing to report there.
        settings = Settings().model_copy(update={"metrics_address": None})
        command: Command = args.run
        return await command(args, settings, out)
    except ValidationError as exc:
        sys.stderr.write(f"configuration error: {settings_error(exc)}\n")
    except (AccountsFileError, KeyRingError) as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
    except (CommandError, ReconCommandError, TemporalConnectionError, SchemaError, UsersFileError) as exc:
        sys.stderr.write(f"bankrecon: {exc}\n")
    except RPCError as exc:
        sys.stderr.write(f"bankrecon: Temporal refused the request ({exc.status.name}): {exc.message}\n")
    return 2


def main() -> None:
    try:
        try:
            code = asyncio.run(run())
        except KeyboardInterrupt:
            sys.stderr.write("\ninterrupted; the workflows go on in Temporal (`bankrecon status`)\n")
            code = 130
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped reading (`bankrecon status | head`): stop too, quietly, with the
        # status of a tool ended by SIGPIPE. What is left unwritten stays so: os._exit below.
        code = 128 + signal.SIGPIPE
    sys.stderr.flush()
    # The SDK's core threads can call into Python while the interpreter finalizes, which
    # aborts the process (SIGABRT) after an RPC error; everything is done and flushed here.
    os._exit(code)


if __name__ == "__main__":
    main()
