"""What bank reconciliation matches: the cash book's entries (银行存款日记账) and the statement's lines
(银行对账单), one shape for both sides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

BOOK, BANK = "book", "bank"


@dataclass(frozen=True, slots=True)
class Entry:
    side: str  # BOOK or BANK
    booked_on: date  # the cash book's date; the statement's day for a bank line
    seq: int  # order within its day and side: the earlier line wins a tie
    direction: str  # C: money in (收), D: money out (付), on both sides
    amount: Decimal  # positive
    # The book's voucher number, or the bank's serial number: what names the line on its side.
    key: str
    line_ref: str  # where it was read: the cash book's file and line, the statement's serial_no
    counterparty_name: str | None = None
    counterparty_account: str | None = None
    memo: str | None = None
    # A reference both sides may carry: the bank's EndToEndId / reference, the book's reference column.
    reference: str | None = None

    @property
    def order(self) -> tuple[date, int]:
        return (self.booked_on, self.seq)

    @property
    def signed(self) -> Decimal:
        return self.amount if self.direction == "C" else -self.amount
