"""The company's ledger, read (never written) from its database or from a file per day.

Every source yields the same ``LedgerLine``: a reference (the order number the channel
knows too), a positive amount, a direction (C: the customer paid, D: a refund), when it
happened, the channel, and the fee when the ledger records one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bankrecon.recon.config import ChannelRecon, FileLedger, SqlLedger
from bankrecon.statements.common import CHINA_STANDARD_TIME

REQUIRED_COLUMNS = ("reference", "amount", "direction", "occurred_at", "channel")
DIRECTIONS = {"c": "C", "payment": "C", "pay": "C", "in": "C", "d": "D", "refund": "D", "out": "D"}
CENT = Decimal("0.01")
FEE_QUANTUM = Decimal("0.00001")
SQL_BATCH = 10_000


class LedgerError(Exception):
    """The ledger cannot be read, or a line of it is wrong; the message says which."""


class LedgerMissing(LedgerError):
    """The day's ledger file is not there (yet)."""


@dataclass(frozen=True, slots=True)
class LedgerLine:
    reference: str
    direction: str  # C or D
    amount: Decimal
    fee: Decimal | None
    occurred_at: datetime
    channel: str


def day_start(day: date) -> datetime:
    """Midnight at the start of ``day`` in China Standard Time, where the channels close their days."""
    return datetime(day.year, day.month, day.day, tzinfo=CHINA_STANDARD_TIME)


def ledger_lines(
    channel: ChannelRecon, account_no: str, day: date, since: datetime | None = None
) -> Iterator[LedgerLine]:
    """The ledger's lines of ``day`` for the channel account; with ``since``, only its last ones:
    from ``since`` to the day's end."""
    source = channel.ledger
    raw = sql_rows(source, account_no, day) if isinstance(source, SqlLedger) else file_rows(source, day)
    for where, row in raw:
        line = _line(row, where)
        if since is not None and not since <= line.occurred_at < day_start(day + timedelta(days=1)):
            continue
        if channel.ledger_channel is not None and line.channel != channel.ledger_channel:
            continue
        yield line


def ledger_available(channel: ChannelRecon, day: date) -> bool:
    """Whether the day's ledger can be read: its file exists; a database is always there."""
    source = channel.ledger
    return isinstance(source, SqlLedger) or source.file_for(day).is_file()


def sql_rows(
    source: SqlLedger,
    account_no: str,
    day: date,
    required: tuple[str, ...] = REQUIRED_COLUMNS,
    book: str = "ledger",
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The query's rows for the day, each with where it came from; ``book`` names the book in errors."""
    engine = create_engine(source.url, hide_parameters=True)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=SQL_BATCH).execute(
                text(source.query), {"account_no": account_no, "day": day}
            )
            _require_columns(list(result.keys()), f"the {book} query", required)
            for number, row in enumerate(result.mappings(), start=1):
                yield f"the {book} query's row {number}", dict(row)
    except DBAPIError as exc:
        raise LedgerError(
            f"the {book} query failed: {type(exc.orig).__name__}: {str(exc.orig).splitlines()[0]}"
        ) from None
    except SQLAlchemyError as exc:
        raise LedgerError(f"the {book} database: {exc}") from None
    finally:
        engine.dispose()


def file_rows(
    source: FileLedger, day: date, required: tuple[str, ...] = REQUIRED_COLUMNS, book: str = "ledger"
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The day's file's rows, each with its file and line; ``book`` names the book in errors."""
    path = source.file_for(day)
    if not path.is_file():
        raise LedgerMissing(f"no {book} file for {day}: {path}")
    rows = _csv_rows(path, required) if source.kind == "csv" else _xlsx_rows(path, required)
    for number, row in rows:
        yield f"{path.name} line {number}", row


def _csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.DictReader(file)
        _require_columns(list(reader.fieldnames or []), path.name, required)
        yield from enumerate(reader, start=2)


def _xlsx_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    # Here, not at the top: openpyxl is some 10 MB of every worker's memory, and only a ledger
    # kept in spreadsheets needs it.
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        header = [str(cell).strip() if cell is not None else "" for cell in next(rows, ())]
        _require_columns(header, path.name, required)
        for number, values in enumerate(rows, start=2):
            if all(value is None for value in values):
                continue
            yield number, dict(zip(header, values, strict=False))
    finally:
        workbook.close()


def _require_columns(columns: list[str], where: str, required: tuple[str, ...]) -> None:
    missing = [name for name in required if name not in columns]
    if missing:
        raise LedgerError(f"{where} has no column {', '.join(missing)} (needs {', '.join(required)})")


def _line(row: Mapping[str, Any], where: str) -> LedgerLine:
    reference = text_of(row["reference"])
    if not reference:
        raise LedgerError(f"{where}: no reference")
    direction = DIRECTIONS.get(text_of(row["direction"]).lower())
    if direction is None:
        raise LedgerError(f"{where}: direction {row['direction']!r} is none of C, D, payment, refund")
    amount = decimal_of(row["amount"], CENT, f"{where}: amount")
    if amount <= 0:
        raise LedgerError(f"{where}: amount {amount} is not positive (a refund says so in its direction)")
    fee_value = row.get("fee")
    fee = None if fee_value in (None, "") else decimal_of(fee_value, FEE_QUANTUM, f"{where}: fee")
    return LedgerLine(
        reference, direction, amount, fee, _moment(row["occurred_at"], where), text_of(row["channel"])
    )


def text_of(value: Any) -> str:
    return "" if value is None else str(value).strip()


def decimal_of(value: Any, quantum: Decimal, what: str) -> Decimal:
    # A spreadsheet's number cell arrives as a float: its shortest text is the number typed in.
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise LedgerError(f"{what} {value!r} is not a number") from None
    if not number.is_finite() or number != number.quantize(quantum):
        raise LedgerError(f"{what} {value!r} has more than {-quantum.as_tuple().exponent} decimals")  # type: ignore[operator]
    return number.quantize(quantum)


def _moment(value: Any, where: str) -> datetime:
    """A time with its zone; a time without one is China Standard Time, the channels' own."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(text_of(value))
        except ValueError:
            raise LedgerError(f"{where}: occurred_at {value!r} is not a time (YYYY-MM-DD HH:MM:SS)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=CHINA_STANDARD_TIME)


def previous_day_tail_start(day: date, cutoff_seconds: int) -> datetime:
    """Where the previous day's lines that may be booked on ``day`` begin."""
    return day_start(day) - timedelta(seconds=cutoff_seconds)
