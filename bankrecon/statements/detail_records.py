"""The records file of D records, one of the two forms persist loads (the other is canonical.py).

The file holds a statement's D records as the reference bank wrote them (statement-format.md),
in statement order, decoded to UTF-8, each ending with LF:
``D|trade_date|trade_time|serial_no|direction|amount|balance_after|counterparty_account|counterparty_name|memo``.
The reference bank's decode writes it as it validates, with no work per line
(bankrecon.sources.refbank.records); persist reads it back here as what the database loads, a
block at a time: COPY text for PostgreSQL (built while the server is busy with the previous
block, so it costs no time) and parameter rows for SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from operator import methodcaller
from pathlib import Path

from bankrecon.statements.canonical import line_blocks
from bankrecon.statements.common import CHINA_STANDARD_TIME, stored_utc_text

RECORD_COLUMNS = (
    "account_no",
    "bill_date",
    "serial_no",
    "seq",
    "traded_at",
    "direction",
    "amount",
    "balance_after",
    "counterparty_account",
    "counterparty_name",
    "memo",
)
# For COPY ... FROM STDIN: the format of the text that copy_text makes.
COPY_OPTIONS = "FORMAT text, DELIMITER '|', NULL ''"
# A row as SQLite gets it: the RECORD_COLUMNS' texts (seq an int), "" for None.
SqliteRow = tuple[str, str, str, int, str, str, str, str, str, str, str]


# A block's worth of clock times; a whole day's (86,400) would hold some 15 MB.
_UTC_CACHE_ENTRIES = 16_384
_FIELDS = methodcaller("split", "|")
_SERIAL_AND_TAIL = methodcaller("split", "|", 4)


class _UtcTimes(dict[str, str]):
    """HHMMSS on the bill date in China Standard Time -> its stored UTC text.

    The zone is a whole number of hours away from UTC, so minutes and seconds carry over
    and only the hours need converting, once each.
    """

    def __init__(self, bill_date: date):
        super().__init__()
        self._day = bill_date
        self._hours: dict[str, str] = {}

    def __missing__(self, hhmmss: str) -> str:
        if len(self) > _UTC_CACHE_ENTRIES:
            self.clear()
        hour = self._hours.get(hhmmss[:2])
        if hour is None:
            day = self._day
            moment = datetime(day.year, day.month, day.day, int(hhmmss[:2]), tzinfo=CHINA_STANDARD_TIME)
            hour = self._hours[hhmmss[:2]] = stored_utc_text(moment)
        # The stored form is fixed-width: "YYYY-MM-DD HH:MM:SS.ffffff+00:00".
        text = self[hhmmss] = f"{hour[:14]}{hhmmss[2:4]}:{hhmmss[4:]}{hour[19:]}"
        return text


class StatementRecords:
    """A records file read back as the transactions table's rows, numbered in statement order from 1.

    ``traded_at`` is the UTC text that SQLite stores (common.stored_utc_text), which PostgreSQL
    reads as the same instant; money is the statement's own decimal text.
    """

    def __init__(self, path: Path, account_no: str, bill_date: date, block_chars: int):
        self._path = path
        self._account_no = account_no
        self._bill_date = bill_date.isoformat()
        self._block_chars = block_chars

    def copy_text(self) -> Iterator[tuple[bytes, int]]:
        """Blocks of COPY text (COPY_OPTIONS), with the number of rows in each."""
        key = f"{self._account_no}|{self._bill_date}"
        utc = _UtcTimes(date.fromisoformat(self._bill_date))
        for seqs, lines in self._blocks():
            text = "\n".join(
                [
                    f"{key}|{serial_no}|{n}|{utc[time]}|{tail}"
                    for n, (_, _, time, serial_no, tail) in zip(
                        seqs, map(_SERIAL_AND_TAIL, lines), strict=True
                    )
                ]
            )
            # Only the free-text fields can hold one; COPY reads a doubled backslash as one.
            if "\\" in text:
                text = text.replace("\\", "\\\\")
            yield f"{text}\n".encode(), len(lines)

    def sqlite_rows(self) -> Iterator[list[SqliteRow]]:
        """Blocks of rows for SQLite's executemany."""
        account_no, bill_date = self._account_no, self._bill_date
        utc = _UtcTimes(date.fromisoformat(bill_date))
        for seqs, lines in self._blocks():
            yield [
                (account_no, bill_date, serial, n, utc[time], direction, amount, balance, account, name, memo)
                for n, (_, _, time, serial, direction, amount, balance, account, name, memo) in zip(
                    seqs, map(_FIELDS, lines), strict=True
                )
            ]

    def _blocks(self) -> Iterator[tuple[range, list[str]]]:
        for seqs, lines in line_blocks(self._path, self._block_chars):
            if not lines[0].startswith("D|"):
                raise ValueError(f"{self._path} does not hold D records: written by an older version?")
            yield seqs, lines
