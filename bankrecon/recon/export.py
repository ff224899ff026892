"""A run's items for finance people: a CSV, and an XLSX with a summary sheet and a sheet per state."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy import Engine, Row

from bankrecon.recon.models import ReconRunSummary
from bankrecon.recon.results import streamed_items
from bankrecon.statements.common import CHINA_STANDARD_TIME

COLUMNS = (
    "item_id", "state", "side", "reference", "direction", "amount", "fee", "occurred_at",
    "line_ref", "booked_on", "counterpart_total", "detail", "note",
)  # fmt: skip
MONEY_FORMAT = "#,##0.00"
FEE_FORMAT = "#,##0.00000"
DATE_FORMAT = "yyyy-mm-dd"
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
FORMATS = {
    "amount": MONEY_FORMAT,
    "counterpart_total": MONEY_FORMAT,
    "fee": FEE_FORMAT,
    "booked_on": DATE_FORMAT,
    "occurred_at": TIME_FORMAT,
}


def _values(item: Row[Any]) -> dict[str, Any]:
    values = {name: getattr(item, name) for name in COLUMNS}
    if values["fee"] is not None:
        values["fee"] = Decimal(str(values["fee"]))
    if values["occurred_at"] is not None:
        # Spreadsheets know no time zones: China Standard Time, as the channels' bills.
        values["occurred_at"] = values["occurred_at"].astimezone(CHINA_STANDARD_TIME).replace(tzinfo=None)
    return values


def export_run(engine: Engine, summary: ReconRunSummary, directory: Path) -> tuple[Path, Path]:
    """Write ``recon-ACCOUNT-DATE.csv`` and ``.xlsx`` into ``directory``; both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"recon-{summary.day.account_no}-{summary.day.recon_date}"
    csv_path, xlsx_path = stem.with_suffix(".csv"), stem.with_suffix(".xlsx")
    with csv_path.open("w", encoding="utf-8-sig", newline="") as file:
        out = csv.writer(file)
        out.writerow(COLUMNS)
        for item in streamed_items(engine, summary.run_id):
            values = _values(item)
            out.writerow(["" if values[name] is None else values[name] for name in COLUMNS])
    _write_xlsx(xlsx_path, summary, streamed_items(engine, summary.run_id))
    return csv_path, xlsx_path


def _styled(sheet: WriteOnlyWorksheet, values: Iterable[tuple[Any, str | None]], bold: bool = False) -> None:
    cells = []
    for value, number_format in values:
        cell = WriteOnlyCell(sheet, value=value)
        if number_format:
            cell.number_format = number_format
        if bold:
            cell.font = Font(bold=True)
        cells.append(cell)
    sheet.append(cells)


def _summary_rows(summary: ReconRunSummary) -> Iterator[list[tuple[Any, str | None]]]:
    yield [("account", None), (summary.day.account_no, None)]
    yield [("date", None), (datetime.combine(summary.day.recon_date, datetime.min.time()), DATE_FORMAT)]
    yield [("run", None), (summary.run_id, None)]
    finished = summary.finished_at.astimezone(CHINA_STANDARD_TIME).replace(tzinfo=None)
    yield [("finished (China Standard Time)", None), (finished, TIME_FORMAT)]
    yield [("ledger fingerprint", None), (summary.ledger_sha256, None)]
    yield [("statement fingerprint", None), (summary.statement_sha256, None)]
    yield []


def _write_xlsx(path: Path, summary: ReconRunSummary, items: Iterator[Row[Any]]) -> None:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("summary")
    for row in _summary_rows(summary):
        _styled(sheet, row)
    _styled(sheet, [(name, None) for name in ("state", "side", "lines", "amount")], bold=True)
    for total in summary.totals:
        _styled(
            sheet,
            [(total.state, None), (total.side, None), (total.lines, None), (total.amount, MONEY_FORMAT)],
        )
    state_sheet: WriteOnlyWorksheet | None = None
    for item in items:
        if state_sheet is None or state_sheet.title != item.state:
            state_sheet = workbook.create_sheet(item.state)
            _styled(state_sheet, [(name, None) for name in COLUMNS], bold=True)
        values = _values(item)
        _styled(state_sheet, [(values[name], FORMATS.get(name)) for name in COLUMNS])
    workbook.save(path)
