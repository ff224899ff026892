"""Canonical transactions: one row shape for every source, and the records file between decode and persist.

A source's decode writes its checked rows with ``CanonicalRecordWriter``, one line per row
in PostgreSQL's COPY text format (tab-separated, ``\\N`` for NULL, backslash escapes), in
statement order. Persist loads the lines as they are into PostgreSQL, behind the
statement's key and the row's position, and turns them into parameter rows for SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Literal

from bankrecon.statements.common import StatementDamaged, stored_utc_text

# In the order of a records line, which is the order of the transactions table's columns after
# account_no, bill_date and seq.
CANONICAL_COLUMNS = (
    "serial_no",
    "traded_at",
    "direction",
    "amount",
    "fee",
    "balance_after",
    "reference",
    "counterparty_account",
    "counterparty_name",
    "memo",
    "details",
)
CANONICAL_COPY_OPTIONS = "FORMAT text"
_NULL = "\\N"
_CENT = Decimal("0.01")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}
# Serial numbers key a statement's rows; longer than this is not an identifier.
MAX_SERIAL_NO_CHARS = 128


@dataclass(frozen=True, slots=True)
class CanonicalRow:
    serial_no: str  # the channel's key for the row, unique within the statement
    traded_at: datetime  # aware
    direction: Literal["C", "D"]
    amount: Decimal  # not negative, at most two decimals
    fee: Decimal | None = None  # every decimal the source writes
    balance_after: Decimal | None = None
    reference: str | None = None  # the merchant's own order or reference number
    counterparty_account: str | None = None
    counterparty_name: str | None = None
    memo: str | None = None
    # Every field of the source's line by its header name, as written.
    details: Mapping[str, str] | None = None


def _text(value: str | None) -> str:
    if value is None:
        return _NULL
    if "\x00" in value:
        # PostgreSQL's text cannot hold it; no channel's identifier or name needs one.
        raise StatementDamaged("text", "a field contains a NUL character")
    # str.translate looks every character up in a dict: some 100 µs for a row's details in
    # Chinese, against well under 1 µs for these scans, and most values need no escape.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value


def _money(value: Decimal | None, what: str) -> str:
    if value is None:
        return _NULL
    if value != value.quantize(_CENT):
        raise StatementDamaged("amount", f"{what} {value} has more than two decimals")
    return f"{value:.2f}"


class CanonicalRecordWriter:
    """Appends canonical rows to a records file, checking what the tables cannot hold."""

    def __init__(self, out: IO[bytes]):
        self._out = out
        self.count = 0

    def write(self, row: CanonicalRow) -> None:
        if not row.serial_no or len(row.serial_no) > MAX_SERIAL_NO_CHARS:
            raise StatementDamaged("serial", f"row key of {len(row.serial_no)} characters (1 to 128)")
        if row.amount < 0:
            # A zero amount is real: an order paid whole with a channel's voucher settles nothing.
            raise StatementDamaged("amount", f"amount {row.amount} is negative (direction says the sign)")
        if row.traded_at.tzinfo is None:
            raise ValueError("traded_at must be aware")
        details = None if row.details is None else json.dumps(row.details, ensure_ascii=False)
        fields = (
            _text(row.serial_no),
            stored_utc_text(row.traded_at),
            row.direction,
            _money(row.amount, "amount"),
            _NULL if row.fee is None else str(row.fee),
            _money(row.balance_after, "balance"),
            _text(row.reference),
            _text(row.counterparty_account),
            _text(row.counterparty_name),
            _text(row.memo),
            _text(details),
        )
        self._out.write(("\t".join(fields) + "\n").encode("utf-8"))
        self.count += 1


def _unescape(field: str) -> str | None:
    if field == _NULL:
        return None
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        pair = field[i : i + 2]
        if pair in _UNESCAPES:
            out.append(_UNESCAPES[pair])
            i += 2
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


class CanonicalRecords:
    """A canonical records file read back in blocks of whole lines, numbered in statement order from 1."""

    def __init__(self, path: Path, block_chars: int):
        self._path = path
        self._block_chars = block_chars

    def copy_text(self, account_no: str, bill_date: str) -> Iterator[tuple[bytes, int]]:
        """Blocks of COPY text for the transactions table's columns, with the number of rows in each."""
        key = f"{account_no}\t{bill_date}"
        for seqs, lines in line_blocks(self._path, self._block_chars):
            text = "\n".join([f"{key}\t{n}\t{line}" for n, line in zip(seqs, lines, strict=True)])
            yield f"{text}\n".encode(), len(lines)

    def rows(self) -> Iterator[list[tuple[int, list[str | None]]]]:
        """Blocks of (seq, fields) with the fields unescaped, None for NULL."""
        for seqs, lines in line_blocks(self._path, self._block_chars):
            yield [
                (n, [_unescape(field) for field in line.split("\t")])
                for n, line in zip(seqs, lines, strict=True)
            ]


def line_blocks(path: Path, block_chars: int) -> Iterator[tuple[range, list[str]]]:
    """A records file's lines, about ``block_chars`` of whole lines at a time, each with its seq numbers."""
    first = 1
    with path.open("r", encoding="utf-8", newline="\n") as records:
        pending = ""
        while chunk := records.read(block_chars):
            text = pending + chunk
            cut = text.rfind("\n")
            pending = text[cut + 1 :]
            if cut < 0:
                continue
            lines = text[:cut].split("\n")
            yield range(first, first + len(lines)), lines
            first += len(lines)
    if pending:
        raise ValueError(f"{path} ends inside a record")
