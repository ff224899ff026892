"""A run's items for finance people: a CSV, and an XLSX with a summary sheet and a sheet per state."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy import Engine, Row

from bankrecon.recon.actions import ITEM_IDENTITY, identity_actions
from bankrecon.recon.models import UNRESOLVED, ReconRunSummary
from bankrecon.recon.results import age_days, streamed_items
from bankrecon.statements.common import CHINA_STANDARD_TIME

COLUMNS = (
    "item_id", "state", "side", "reference", "direction", "amount", "fee", "occurred_at",
    "line_ref", "booked_on", "counterpart_total", "detail", "note", "status", "age_days", "actions",
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


def _local(moment: datetime) -> datetime:
    # Spreadsheets know no time zones: China Standard Time, as the channels' bills.
    return moment.astimezone(CHINA_STANDARD_TIME).replace(tzinfo=None)


def _action_text(action: Row[Any]) -> str:
    booked = f" to {action.ledger_account}" if action.ledger_account else ""
    difference = f", difference {action.difference}" if action.difference else ""
    return (
        f"{_local(action.acted_at):%Y-%m-%d %H:%M:%S} {action.action}{booked}{difference} "
        f"by {action.acted_by}: {action.reason}"
    )


class _Rows:
    """Items as export rows, with their status, age on ``as_of`` and every action on them."""

    def __init__(self, engine: Engine, summary: ReconRunSummary, as_of: date):
        self._as_of = as_of
        self._actions = identity_actions(engine, summary.day.account_no, summary.day.recon_date)

    def values(self, item: Row[Any]) -> dict[str, Any]:
        values = {name: getattr(item, name) for name in COLUMNS[:-2]}
        if values["fee"] is not None:
            values["fee"] = Decimal(str(values["fee"]))
        if values["occurred_at"] is not None:
            values["occurred_at"] = _local(values["occurred_at"])
        values["age_days"] = age_days(item.recon_date, self._as_of) if item.status in UNRESOLVED else None
        actions = self._actions.get(tuple(getattr(item, name) for name in ITEM_IDENTITY), [])
        values["actions"] = "; ".join(_action_text(action) for action in actions) or None
        return values


def export_run(engine: Engine, summary: ReconRunSummary, directory: Path, as_of: date) -> tuple[Path, Path]:
    """Write ``recon-ACCOUNT-DATE.csv`` and ``.xlsx`` into ``directory``, ages counted to ``as_of``."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"recon-{summary.day.account_no}-{summary.day.recon_date}"
    csv_path, xlsx_path = stem.with_suffix(".csv"), stem.with_suffix(".xlsx")
    rows = _Rows(engine, summary, as_of)
    with csv_path.open("w", encoding="utf-8-sig", newline="") as file:
        out = csv.writer(file)
        out.writerow(COLUMNS)
        for item in streamed_items(engine, summary.run_id):
            values = rows.values(item)
            out.writerow(["" if values[name] is None else values[name] for name in COLUMNS])
    _write_xlsx(xlsx_path, summary, rows, streamed_items(engine, summary.run_id))
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
    yield [("finished (China Standard Time)", None), (_local(summary.finished_at), TIME_FORMAT)]
    yield [("ledger fingerprint", None), (summary.ledger_sha256, None)]
    yield [("statement fingerprint", None), (summary.statement_sha256, None)]
    yield []


def _write_xlsx(path: Path, summary: ReconRunSummary, rows: _Rows, items: Iterator[Row[Any]]) -> None:
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
        values = rows.values(item)
        _styled(state_sheet, [(values[name], FORMATS.get(name)) for name in COLUMNS])
    workbook.save(path)
