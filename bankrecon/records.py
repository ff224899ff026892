"""The validated detail lines of one statement, as a file between decode and persist.

The file is in PostgreSQL's COPY text format, so that persisting on PostgreSQL streams it
to the server unchanged: UTF-8, one line per transaction, the ``RECORD_COLUMNS`` of the
transactions table separated by ``|`` (statement fields never hold ``|``, CR or LF), an
empty field for None, and every backslash doubled. ``traded_at`` is the UTC text that
SQLite stores (db.stored_utc_text), which PostgreSQL reads as the same instant; money is
the statement's own decimal text.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from itertools import repeat
from operator import methodcaller
from pathlib import Path
from typing import IO

from bankrecon.db import stored_utc_text
from bankrecon.statement import CHINA_STANDARD_TIME, DetailLines

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
# For COPY ... FROM STDIN: what makes the records file's format.
COPY_OPTIONS = "FORMAT text, DELIMITER '|', NULL ''"


def records_path(data_dir: Path, source_sha256: str, account_no: str, bill_date: str) -> Path:
    return data_dir / "records" / f"{source_sha256}-{account_no}-{bill_date}.txt"


# A block's worth of clock times; a whole day's (86,400) would hold some 15 MB.
_UTC_CACHE_ENTRIES = 16_384


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
        hour = self._hours.get(hhmmss[:2])
        if hour is None:
            day = self._day
            moment = datetime(day.year, day.month, day.day, int(hhmmss[:2]), tzinfo=CHINA_STANDARD_TIME)
            hour = self._hours[hhmmss[:2]] = stored_utc_text(moment)
        # The stored form is fixed-width: "YYYY-MM-DD HH:MM:SS.ffffff+00:00".
        text = self[hhmmss] = f"{hour[:14]}{hhmmss[2:4]}:{hhmmss[4:]}{hour[19:]}"
        return text


class RecordWriter:
    """Appends detail lines to a records file, numbering them in statement order from 1."""

    def __init__(self, out: IO[bytes], account_no: str, bill_date: date):
        self._out = out
        self._key = f"{account_no}|{bill_date.isoformat()}"
        self._utc = _UtcTimes(bill_date)
        self.count = 0

    def write(self, details: DetailLines) -> None:
        if not details.serial_nos:
            return
        if len(self._utc) > _UTC_CACHE_ENTRIES:
            self._utc.clear()
        first = self.count + 1
        self.count += len(details.serial_nos)
        # Built by C loops (map, join): this runs for every line of every statement.
        fields = zip(
            repeat(self._key),
            details.serial_nos,
            map(str, range(first, self.count + 1)),
            map(self._utc.__getitem__, details.trade_times),
            details.tails,
        )
        text = "\n".join(map("|".join, fields)) + "\n"
        # Only the free-text fields can hold one; COPY reads a doubled backslash as one.
        if "\\" in text:
            text = text.replace("\\", "\\\\")
        self._out.write(text.encode("utf-8"))


def read_record_fields(path: Path, block_chars: int) -> Iterator[list[tuple[str, ...]]]:
    """Each record as its ``RECORD_COLUMNS`` texts (backslashes undoubled, "" for None), a block at a time."""
    split_fields = methodcaller("split", "|")
    with path.open("r", encoding="utf-8", newline="\n") as records:
        pending = ""
        while chunk := records.read(block_chars):
            text = pending + chunk
            cut = text.rfind("\n")
            pending = text[cut + 1 :]
            if cut < 0:
                continue
            block = text[:cut]
            if "\\" in block:
                block = block.replace("\\\\", "\\")
            yield list(map(tuple, map(split_fields, block.split("\n"))))
    if pending:
        raise ValueError("the records file ends inside a record")
