"""The 余额调节表 as XLSX, for printing and signing: the two-sided statement on a sheet
``余额调节表``, and each kind of open item on a sheet of its own; numbers as numbers."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet.worksheet import Worksheet

from bankrecon.bankrec.balance import BalanceStatement
from bankrecon.bankrec.models import STATE_HEADINGS

MONEY_FORMAT = "#,##0.00"
DATE_FORMAT = "yyyy-mm-dd"
ITEM_COLUMNS = ("日期 date", "金额 amount", "对方 counterparty", "摘要 memo", "账龄(天) age in days",
                "凭证号/流水号 reference", "item")  # fmt: skip
RED = "FFC00000"


def _day(value: date) -> datetime:
    return datetime.combine(value, datetime.min.time())


def _money(sheet: Worksheet, row: int, column: int, value: Any) -> None:
    cell = sheet.cell(row=row, column=column, value=value)
    cell.number_format = MONEY_FORMAT


def export_balance(statement: BalanceStatement, directory: Path) -> Path:
    """Write ``余额调节表-ACCOUNT-DATE.xlsx`` into ``directory``; its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"余额调节表-{statement.account_no}-{statement.as_of}.xlsx"
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "余额调节表"
    sheet["A1"] = "银行存款余额调节表"
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A2"] = f"账号 account {statement.account_no}"
    sheet["C2"] = "日期 as of"
    sheet["D2"] = _day(statement.as_of)
    sheet["D2"].number_format = DATE_FORMAT
    sheet["A3"] = f"run {statement.run_id}"
    headings = [("银行对账单余额 bank statement balance", statement.bank_balance),
                ("企业银行存款日记账余额 book balance", statement.book_balance)]  # fmt: skip
    bank_side = [
        ("加：企业已收、银行未收", statement.total("book_credit_not_in_bank")),
        ("减：企业已付、银行未付", statement.total("book_debit_not_in_bank")),
        ("调节后的存款余额 adjusted bank balance", statement.adjusted_bank_balance),
    ]
    book_side = [
        ("加：银行已收、企业未收", statement.total("bank_credit_not_booked")),
        ("减：银行已付、企业未付", statement.total("bank_debit_not_booked")),
        ("调节后的存款余额 adjusted book balance", statement.adjusted_book_balance),
    ]
    sheet.cell(row=5, column=1, value="项目 (bank side)").font = Font(bold=True)
    sheet.cell(row=5, column=2, value="金额").font = Font(bold=True)
    sheet.cell(row=5, column=3, value="项目 (book side)").font = Font(bold=True)
    sheet.cell(row=5, column=4, value="金额").font = Font(bold=True)
    rows = [(headings[0], headings[1]), *zip(bank_side, book_side, strict=True)]
    for offset, ((bank_label, bank_value), (book_label, book_value)) in enumerate(rows):
        row = 6 + offset
        sheet.cell(row=row, column=1, value=bank_label)
        _money(sheet, row, 2, bank_value)
        sheet.cell(row=row, column=3, value=book_label)
        _money(sheet, row, 4, book_value)
    sheet.cell(row=11, column=1, value="差额 difference (unexplained unless 0.00)")
    _money(sheet, 11, 2, statement.difference)
    if statement.difference:
        sheet.cell(row=11, column=2).font = Font(bold=True, color=RED)
        sheet.cell(row=11, column=1).font = Font(color=RED)
    sheet.cell(row=13, column=1, value="编制 prepared by")
    sheet.cell(row=13, column=3, value="审核 reviewed by")
    for column, width in zip("ABCD", (40, 16, 40, 16), strict=True):
        sheet.column_dimensions[column].width = width
    sheet["A1"].alignment = Alignment(horizontal="left")
    for state, heading in STATE_HEADINGS.items():
        items_sheet = workbook.create_sheet(state)
        items_sheet.append([f"{heading} {state}"])
        items_sheet.append(list(ITEM_COLUMNS))
        for number, item in enumerate(statement.items.get(state, []), start=3):
            items_sheet.append([_day(item.booked_on), item.amount, item.counterparty, item.memo,
                                item.age_days, item.reference, item.item_id])  # fmt: skip
            items_sheet.cell(row=number, column=1).number_format = DATE_FORMAT
            items_sheet.cell(row=number, column=2).number_format = MONEY_FORMAT
        total_row = items_sheet.max_row + 1
        items_sheet.cell(row=total_row, column=1, value="合计 total")
        _money(items_sheet, total_row, 2, statement.total(state))
    workbook.save(path)
    return path
