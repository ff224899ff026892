"""Canonical transactions: one row shape for every source, and the records file between decode and persist.

A source's decode writes its checked rows with ``CanonicalRecordWriter``, one line per row
in PostgreSQL's COPY text format (tab-separated, ``\\N`` for NULL, backslash escapes), in
statement order. Persist loads the lines as they are into PostgreSQL, behind the
statement's key and the row's position, and turns them into parameter rows for SQLite.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Literal

from bankrecon.statements.common import CHINA_STANDARD_TIME, StatementDamaged, stored_utc_text

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
_SPECIAL = ("\\", "\t", "\n", "\r")
_BLOCK_LINES = 2048
_NEEDS_JSON_ESCAPE = re.compile(r'[\x00-\x1f"\\]').search
_CHINA_TIMESTAMP = re.compile(r"[0-9]{4}-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]").fullmatch
# A month of hours and more: past this the cache starts again, whatever a file holds.
_HOURS_KEPT = 1024
# One encoder for every row: json.dumps with options builds a new one each call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
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


def _money(value: Decimal | None, what: str) -> str:
    if value is None:
        return _NULL
    if value != value.quantize(_CENT):
        raise StatementDamaged("amount", f"{what} {value} has more than two decimals")
    return f"{value:.2f}"


class CanonicalRecordWriter:
    """Appends canonical rows to a records file, checking what the tables cannot hold.

    Lines are written in blocks: ``flush`` once the last row is in.
    """

    def __init__(self, out: IO[bytes]):
        self._out = out
        self._pending: list[str] = []
        self.count = 0

    def write(self, row: CanonicalRow) -> None:
        if row.amount < 0:
            # A zero amount is real: an order paid whole with a channel's voucher settles nothing.
            raise StatementDamaged("amount", f"amount {row.amount} is negative (direction says the sign)")
        if row.traded_at.tzinfo is None:
            raise ValueError("traded_at must be aware")
        self.write_texts(
            row.serial_no,
            stored_utc_text(row.traded_at),
            row.direction,
            _money(row.amount, "amount"),
            None if row.fee is None else str(row.fee),
            None if row.balance_after is None else _money(row.balance_after, "balance"),
            row.reference,
            row.counterparty_account,
            row.counterparty_name,
            row.memo,
            None if row.details is None else _JSON(row.details),
        )

    def write_texts(
        self,
        serial_no: str,
        traded_at: str,
        direction: str,
        amount: str,
        fee: str | None,
        balance_after: str | None,
        reference: str | None,
        counterparty_account: str | None,
        counterparty_name: str | None,
        memo: str | None,
        details: str | None,
    ) -> None:
        """A row as texts its format has already checked: ``traded_at`` as ``stored_utc_text`` makes
        it, money as plain decimals (amounts and balances with two decimals), details as JSON."""
        if not serial_no or len(serial_no) > MAX_SERIAL_NO_CHARS:
            raise StatementDamaged("serial", f"row key of {len(serial_no)} characters (1 to 128)")
        free = (serial_no, reference, counterparty_account, counterparty_name, memo, details)
        present = "".join([text for text in free if text])
        if "\x00" in present:
            # PostgreSQL's text cannot hold it; no channel's identifier or name needs one.
            raise StatementDamaged("text", "a field contains a NUL character")
        # Most rows need no escape: one look at all their text decides it.
        if any(special in present for special in _SPECIAL):
            serial_no = serial_no.translate(_ESCAPES)
            reference, counterparty_account, counterparty_name, memo, details = (
                None if text is None else text.translate(_ESCAPES) for text in free[1:]
            )
        self._pending.append(
            "\t".join(
                (
                    serial_no,
                    traded_at,
                    direction,
                    amount,
                    fee or _NULL,
                    balance_after or _NULL,
                    reference or _NULL,
                    counterparty_account or _NULL,
                    counterparty_name or _NULL,
                    memo or _NULL,
                    details or _NULL,
                )
            )
        )
        self.count += 1
        if len(self._pending) >= _BLOCK_LINES:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._out.write(("\n".join(self._pending) + "\n").encode("utf-8"))
            self._pending.clear()


class JsonObject:
    """A JSON object of fixed names, rendered from its values' texts in one format call.

    A value that JSON must escape (a quote, a backslash, a control character) sends the row
    through the JSON encoder instead.
    """

    def __init__(self, names: Sequence[str]):
        self._names = list(names)
        self._template = "{" + ",".join(_JSON(name).replace("%", "%%") + ':"%s"' for name in names) + "}"

    def render(self, values: Sequence[str]) -> str:
        if _NEEDS_JSON_ESCAPE("".join(values)):
            return _JSON(dict(zip(self._names, values, strict=True)))
        return self._template % tuple(values)


class ChinaTimestamps:
    """``YYYY-MM-DD HH:MM:SS`` in China Standard Time to the UTC text the tables store.

    The zone is whole hours from UTC: each hour is converted once, minutes and seconds carry over.
    """

    def __init__(self) -> None:
        self._hours: dict[str, str] = {}

    def utc_text(self, text: str) -> str | None:
        """None when ``text`` is no such time."""
        if not _CHINA_TIMESTAMP(text):
            return None
        hour = self._hours.get(text[:13])
        if hour is None:
            try:
                moment = datetime.strptime(text[:13], "%Y-%m-%d %H").replace(tzinfo=CHINA_STANDARD_TIME)
            except ValueError:
                return None
            if len(self._hours) > _HOURS_KEPT:
                self._hours.clear()
            hour = self._hours[text[:13]] = stored_utc_text(moment)
        # The stored form is fixed-width: "YYYY-MM-DD HH:MM:SS.ffffff+00:00".
        return f"{hour[:14]}{text[14:16]}:{text[17:19]}{hour[19:]}"


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

    def canonical_rows(self) -> Iterator[CanonicalRow]:
        """The rows as a source wrote them (for tools and tests; persist loads the text as it is)."""
        for block in self.rows():
            for _, fields in block:
                serial_no, traded_at, direction, amount, fee, balance = fields[:6]
                reference, account, name, memo, details = fields[6:]
                assert serial_no is not None and traded_at is not None and amount is not None
                yield CanonicalRow(
                    serial_no=serial_no,
                    traded_at=datetime.fromisoformat(traded_at),
                    direction="C" if direction == "C" else "D",
                    amount=Decimal(amount),
                    fee=None if fee is None else Decimal(fee),
                    balance_after=None if balance is None else Decimal(balance),
                    reference=reference,
                    counterparty_account=account,
                    counterparty_name=name,
                    memo=memo,
                    details=None if details is None else json.loads(details),
                )

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
