"""A day's statement as pages (MT940 messages, camt.053 ``Stmt``s), checked whole and written as rows.

Both formats come down to pages: each names the account and currency, opens and closes with a
balance, and carries booked rows. The pages must follow one another (numbered from 1 when the
format numbers them, none after the one marked last, none missing after it; each opening at
the closing before it), the first opens with a final balance, the last closes with one on the
bill date, and every page's opening plus its credits minus its debits is its closing. Any
failure is damage: nothing of the statement is kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Literal

from bankrecon.models import StatementKey, StatementTotals
from bankrecon.statements.canonical import CanonicalRow
from bankrecon.statements.common import CHINA_STANDARD_TIME, StatementDamaged

# ISO 4217 currencies of three decimals: their amounts do not fit the two-decimal amount columns.
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
_PROGRESS_EVERY = 8192
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Balance:
    amount: Decimal  # signed: a debit balance is negative
    on: date
    final: bool  # :60F:/:62F:, OPBD/PRCD/CLBD; an intermediate balance (:60M:/:62M:, ITBD) is not


@dataclass
class Page:
    where: str  # how damage names the page: "message 2", "Stmt 1"
    sequence: int | None  # its number within the statement, where the format gives one
    account: str
    currency: str
    opening: Balance
    closing: Balance
    rows: list[CanonicalRow] = field(default_factory=list)
    last: bool | None = None  # whether it says it is the statement's last page, where the format says
    # The statement's own numbers, as written (camt.053 ElctrncSeqNb, MT940 :28C:), for its summary.
    summary: dict[str, str] = field(default_factory=dict)


def booking_time(day: date) -> datetime:
    """A booking date without a time: the start of that day on the project's clock."""
    return datetime.combine(day, time(0), CHINA_STANDARD_TIME)


def signed(direction: Literal["C", "D"], amount: Decimal) -> Decimal:
    return amount if direction == "C" else -amount


def stored_text(text: str) -> str:
    """Text as a column stores it: control characters (a wrapped field's line break) become a space."""
    return _CONTROL.sub(" ", text)


def same_account(written: str, configured: str) -> bool:
    return written.replace(" ", "").upper() == configured.replace(" ", "").upper()


def write_pages(
    pages: Iterable[Page],
    key: StatementKey,
    write: Callable[[CanonicalRow], None],
    on_progress: Callable[[int], None],
) -> StatementTotals:
    first: Page | None = None
    previous: Page | None = None
    keys: set[str] = set()
    counts = {"C": 0, "D": 0}
    sums = {"C": Decimal("0.00"), "D": Decimal("0.00")}
    pages_read = 0
    summary: dict[str, list[str]] = {}
    for page in pages:
        pages_read += 1
        number = pages_read
        where = page.where
        if not same_account(page.account, key.account_no):
            raise StatementDamaged("account", f"{where} is for account {page.account}, not {key.account_no}")
        if page.currency in THREE_DECIMAL_CURRENCIES:
            raise StatementDamaged(
                "currency",
                f"{page.currency} has three decimals; bankrecon's amounts hold two (not supported)",
            )
        if page.sequence is not None and page.sequence != number:
            raise StatementDamaged(
                "pages", f"{where} is numbered {page.sequence} where page {number} belongs"
            )
        if previous is not None and previous.last:
            raise StatementDamaged(
                "pages", f"{where} follows {previous.where}, which says it is the last page"
            )
        if previous is None:
            first = page
            if not page.opening.final:
                raise StatementDamaged(
                    "pages", f"{where} opens with an intermediate balance: pages are missing"
                )
        else:
            if previous.closing.final:
                raise StatementDamaged("pages", f"{where} follows a final closing balance")
            if page.currency != previous.currency:
                raise StatementDamaged(
                    "currency", f"{where} is in {page.currency}, the page before in {previous.currency}"
                )
            if page.opening.amount != previous.closing.amount:
                raise StatementDamaged(
                    "balance",
                    f"{where} opens at {page.opening.amount}, "
                    f"the page before closed at {previous.closing.amount}",
                )
        booked = sum((signed(row.direction, row.amount) for row in page.rows), Decimal("0.00"))
        if page.opening.amount + booked != page.closing.amount:
            raise StatementDamaged(
                "balance",
                f"{where}: opening {page.opening.amount} and entries {booked:+} make "
                f"{page.opening.amount + booked}, not the closing {page.closing.amount}",
            )
        for row in page.rows:
            if row.serial_no in keys:
                raise StatementDamaged("duplicate key", f"{where}: the key {row.serial_no} appears twice")
            keys.add(row.serial_no)
            write(row)
            counts[row.direction] += 1
            sums[row.direction] += row.amount
            if len(keys) % _PROGRESS_EVERY == 0:
                on_progress(len(keys))
        for name, value in page.summary.items():
            if value not in summary.setdefault(name, []):
                summary[name].append(value)
        previous = page
    if first is None or previous is None:
        raise StatementDamaged("statement", "the file holds no statement")
    if previous.last is False:
        raise StatementDamaged("pages", f"{previous.where} says more pages follow: pages are missing")
    if not previous.closing.final:
        raise StatementDamaged(
            "pages", f"{previous.where} closes with an intermediate balance: pages are missing"
        )
    if previous.closing.on != key.bill_date:
        raise StatementDamaged("date", f"the statement closes on {previous.closing.on}, not {key.bill_date}")
    return StatementTotals(
        currency=first.currency,
        opening_balance=first.opening.amount,
        closing_balance=previous.closing.amount,
        credit_count=counts["C"],
        debit_count=counts["D"],
        credit_total=sums["C"],
        debit_total=sums["D"],
        transaction_count=counts["C"] + counts["D"],
        summary={"pages": str(pages_read)} | {name: ",".join(values) for name, values in summary.items()},
    )
