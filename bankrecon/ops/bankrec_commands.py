"""``bankrecon recon`` for bank accounts ([bank_accounts]): a day's run, re-runs, the 余额调节表.

bankrecon recon ACCOUNT DATE [--rerun]                       the run's matches per rule and its open items
bankrecon recon balance ACCOUNT DATE [--export DIR]          the 银行存款余额调节表 at the end of DATE
bankrecon recon balance ACCOUNT --month YYYY-MM [--export DIR]   ... at the end of the month
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import date
from decimal import Decimal
from typing import TextIO

from sqlalchemy import Engine
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from bankrecon.bankrec.balance import (
    BalanceStatement,
    BalanceUnavailable,
    bank_run_summary,
    day_balance,
    month_end,
)
from bankrecon.bankrec.config import bank_account, bank_accounts
from bankrecon.bankrec.export import export_balance
from bankrecon.bankrec.models import (
    STATE_HEADINGS,
    BankReconcileInput,
    BankRunSummary,
    bank_reconcile_workflow_id,
)
from bankrecon.bankrec.run import BankRecRefused, statement_balance
from bankrecon.config import Settings
from bankrecon.models import is_statement_name
from bankrecon.ops.starting import start_or_tell
from bankrecon.recon.config import ReconConfigError
from bankrecon.recon.models import ReconDay
from bankrecon.temporal.client import connect
from workflows.bank_reconcile import BankReconcileWorkflow

Table = Callable[[Sequence[Sequence[str]], TextIO], None]
Database = Callable[[Settings], AbstractContextManager[Engine]]
RUN_POLL_SECONDS = 0.5
RED, PLAIN = "\x1b[31m", "\x1b[0m"


class BankRecCommandError(Exception):
    """A mistake in what was asked; the message says what to do instead."""


def is_bank_account(settings: Settings, account_no: str) -> bool:
    """Whether RECON_CONFIG_FILE lists the account under [bank_accounts]."""
    if settings.recon_config_file is None:
        return False
    try:
        return account_no in bank_accounts(settings.recon_config_file)
    except ReconConfigError as exc:
        raise BankRecCommandError(str(exc)) from None


async def start_bank_reconciliation(
    client: Client, settings: Settings, account_no: str, day: date, *, rerun: bool = False
) -> WorkflowHandle[BankReconcileWorkflow, BankRunSummary]:
    """Start the day's bank reconciliation, or tell the one waiting for its inputs to look now;
    a day reconciled already runs again only with ``rerun``."""
    return await start_or_tell(
        client,
        BankReconcileWorkflow.run,
        BankReconcileInput(
            account_no=account_no,
            recon_date=day,
            check_interval_seconds=settings.statement_retry_interval_seconds,
        ),
        workflow_id=bank_reconcile_workflow_id(account_no, day),
        task_queue=settings.temporal_task_queue,
        rerun=rerun,
    )


async def _rerun(settings: Settings, day: ReconDay, out: TextIO) -> str:
    client = await connect(settings)
    handle = await start_bank_reconciliation(client, settings, day.account_no, day.recon_date, rerun=True)
    out.write(f"started {handle.id} (run {handle.result_run_id}); waiting for its result\n")
    try:
        summary = await handle.result()
    except WorkflowFailureError as exc:
        cause = getattr(exc.cause, "message", exc.cause)
        raise BankRecCommandError(f"{handle.id} failed: {cause}") from None
    return summary.run_id


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def show_bank_summary(summary: BankRunSummary, out: TextIO, table: Table) -> None:
    day = summary.day
    out.write(f"bank reconciliation of {day.account_no} for {day.recon_date}: run {summary.run_id}\n")
    table([["RULE", "MATCHES"], *([rule, str(count)] for rule, count in summary.rules.items())], out)
    table(
        [
            ["STATE", "SIDE", "LINES", "AMOUNT"],
            *([t.state, t.side, str(t.lines), str(t.amount)] for t in summary.totals),
        ],
        out,
    )
    out.write(f"difference of the adjusted balances: {summary.difference}\n")


async def bank_day_command(
    args: argparse.Namespace, settings: Settings, day: ReconDay, out: TextIO, table: Table, database: Database
) -> int:
    if args.rerun:
        await _rerun(settings, day, out)
    with database(settings) as engine:
        try:
            statement = day_balance(engine, day.account_no, day.recon_date)
        except BalanceUnavailable as exc:
            raise BankRecCommandError(str(exc)) from None
        show_bank_summary(bank_run_summary(engine, statement.run_id), out, table)
    return 0


def _balance_day(args: argparse.Namespace) -> tuple[str, date]:
    rest = args.target[1:]
    if args.month is not None:
        if len(rest) != 1:
            raise BankRecCommandError("balance --month YYYY-MM takes the ACCOUNT alone")
        found = re.fullmatch(r"(\d{4})-(\d{2})", args.month)
        if found is None or not 1 <= int(found.group(2)) <= 12:
            raise BankRecCommandError(f"--month is YYYY-MM, not {args.month!r}")
        return rest[0], month_end(int(found.group(1)), int(found.group(2)))
    if len(rest) != 2:
        raise BankRecCommandError("give balance ACCOUNT DATE, or balance ACCOUNT --month YYYY-MM")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", rest[1]):
        raise BankRecCommandError(f"not a date (YYYY-MM-DD): {rest[1]!r}")
    try:
        return rest[0], date.fromisoformat(rest[1])
    except ValueError:
        raise BankRecCommandError(f"not a date (YYYY-MM-DD): {rest[1]!r}") from None


def write_balance(statement: BalanceStatement, out: TextIO, table: Table) -> None:
    """The statement as accountants draw it: the bank side beside the book side, then the items."""
    out.write(
        f"银行存款余额调节表 {statement.account_no}, end of {statement.as_of} (run {statement.run_id})\n"
    )
    t = statement.total
    table(
        [
            ["BANK SIDE", "AMOUNT", "BOOK SIDE", "AMOUNT"],
            [
                f"statement closing balance ({statement.statement_date})",
                _money(statement.bank_balance),
                "book balance",
                _money(statement.book_balance),
            ],
            [
                "+ 企业已收、银行未收 book_credit_not_in_bank",
                _money(t("book_credit_not_in_bank")),
                "+ 银行已收、企业未收 bank_credit_not_booked",
                _money(t("bank_credit_not_booked")),
            ],
            [
                "- 企业已付、银行未付 book_debit_not_in_bank",
                _money(t("book_debit_not_in_bank")),
                "- 银行已付、企业未付 bank_debit_not_booked",
                _money(t("bank_debit_not_booked")),
            ],
            [
                "adjusted bank balance",
                _money(statement.adjusted_bank_balance),
                "adjusted book balance",
                _money(statement.adjusted_book_balance),
            ],
        ],
        out,
    )
    if statement.difference == 0:
        out.write("difference 0.00: balanced\n")
    else:
        red, plain = (RED, PLAIN) if out.isatty() else ("", "")
        out.write(f"{red}difference {_money(statement.difference)}: unexplained{plain}\n")
    for state, heading in STATE_HEADINGS.items():
        items = statement.items.get(state, [])
        out.write(f"\n{heading} {state}: {len(items)} item(s), {_money(t(state))}\n")
        if items:
            table(
                [
                    ["DATE", "AMOUNT", "COUNTERPARTY", "MEMO", "AGE (DAYS)", "REFERENCE", "ITEM"],
                    *(
                        [
                            str(i.booked_on),
                            _money(i.amount),
                            i.counterparty,
                            i.memo,
                            str(i.age_days),
                            i.reference,
                            str(i.item_id),
                        ]
                        for i in items
                    ),
                ],
                out,
            )


def balance_command(
    args: argparse.Namespace, settings: Settings, out: TextIO, table: Table, database: Database
) -> int:
    account_no, day = _balance_day(args)
    if not is_statement_name(account_no):
        raise BankRecCommandError(f"{account_no} is not an account number nor a statement name")
    with database(settings) as engine:
        try:
            with engine.connect() as conn:
                statement_balance(conn, account_no, day)
            try:
                bank_account(settings.recon_config_file, account_no)
            except ReconConfigError as exc:
                raise BankRecCommandError(str(exc)) from None
            statement = day_balance(engine, account_no, day)
        except (BankRecRefused, BalanceUnavailable) as exc:
            raise BankRecCommandError(str(exc)) from None
    write_balance(statement, out, table)
    if args.export is not None:
        out.write(f"\nexported {export_balance(statement, args.export)}\n")
    return 0 if statement.difference == 0 else 1
