"""A bank account's planted November, for the demo and the tests: every rule and every kind of
未达账项, items carried across days, and a 余额调节表 at the month's end that balances.

``plant_month`` stores refbank-like statements of the days the bank has lines (closing balances
running from ``OPENING_BALANCE``), writes the cash book as one CSV per day of the month (a
header alone on a day without entries) and a RECON_CONFIG_FILE for the account.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine

from bankrecon.bankrec.cashbook import REQUIRED_COLUMNS
from bankrecon.recon.demo import store_day
from bankrecon.statements.common import CHINA_STANDARD_TIME

DEMO_BANK_ACCOUNT = "6222020000000001"
OPENING_DATE = date(2026, 10, 31)
OPENING_BALANCE = Decimal("100000.00")
MONTH_END = date(2026, 11, 30)
CASHBOOK_COLUMNS = (*REQUIRED_COLUMNS, "reference")
VOUCHER_PATTERN = r"(?:发票|INV)[- ]?(\d{6,})"


@dataclass(frozen=True)
class Line:
    day: date
    direction: str
    amount: str
    key: str  # the book's voucher number, the bank's serial number
    name: str = ""
    account: str = ""
    memo: str = ""
    reference: str = ""


def _nov(day: int) -> date:
    return date(2026, 11, day)


# The bank's lines, by statement day.
BANK_LINES = [
    Line(_nov(2), "C", "5000.00", "B1102001", "甲实业有限公司", "6222000000000011", "货款", "E2E-1001"),
    Line(_nov(2), "C", "1200.00", "B1102002", "乙贸易有限公司", "", "货款 发票 202611001"),
    Line(_nov(2), "D", "3000.00", "B1102003", "丙科技有限公司", "6222000000000022", "采购款"),
    Line(_nov(2), "C", "800.00", "B1102004", "ＡＢＣ　Co., Ltd.", "", "服务费"),
    Line(_nov(2), "C", "456.78", "B1102005", "", "", "汇入"),
    Line(_nov(2), "C", "900.00", "B1102006", "己商贸有限公司", "6222000000000033", "合并付款"),
    Line(_nov(2), "D", "600.00", "B1102007", "庚物流有限公司", "6222000000000055", "运费一"),
    Line(_nov(2), "D", "400.00", "B1102008", "庚物流有限公司", "6222000000000055", "运费二"),
    Line(_nov(2), "C", "66.60", "B1102009", "", "", "结息"),
    Line(_nov(2), "D", "15.00", "B1102010", "", "", "手续费"),
    Line(_nov(5), "D", "3000.00", "B1105001", "丁商行", "6222000000000044", "支票 0001"),
    Line(_nov(30), "C", "10000.00", "B1130001", "壬集团", "6222000000000066", "预收款", "E2E-2001"),
    Line(_nov(30), "C", "320.00", "B1130002", "癸有限公司", "6222000000000077", "托收"),
]
# The company's cash book for the account, by day.
BOOK_LINES = [
    Line(_nov(1), "D", "3000.00", "记-001", "丙科技", "6222 0000 0000 0022", "付采购款"),
    Line(_nov(2), "C", "5000.00", "记-002", "甲实业", "", "收货款", "E2E-1001"),
    Line(_nov(2), "C", "1200.00", "202611001", "乙贸易", "", "收货款"),
    Line(_nov(2), "C", "800.00", "记-003", "abc", "6222000000000999", "服务费"),
    Line(_nov(2), "C", "456.78", "记-004", "戊工作室", "", "收款"),
    Line(_nov(2), "C", "300.00", "记-005", "己商贸", "6222000000000033", "发票一"),
    Line(_nov(2), "C", "250.00", "记-006", "己商贸", "6222000000000033", "发票二"),
    Line(_nov(2), "C", "350.00", "记-007", "己商贸", "6222000000000033", "发票三"),
    Line(_nov(2), "D", "1000.00", "记-008", "庚物流", "6222000000000055", "运费"),
    Line(_nov(2), "D", "3000.00", "记-009", "丁商行", "6222000000000044", "开出支票 0001"),
    Line(_nov(4), "C", "66.60", "记-010", "", "", "利息收入"),
    Line(_nov(29), "D", "750.00", "记-011", "辛公司", "6222000000000088", "开出支票 0002"),
    Line(_nov(30), "C", "2000.00", "记-012", "子公司", "6222000000000099", "存入支票"),
    Line(_nov(30), "C", "10000.00", "记-013", "壬集团", "6222000000000066", "预收款", "E2E-2001"),
]
# (run day, rule, book voucher numbers, bank serial numbers) of every match the month must give.
EXPECTED_MATCHES = [
    (_nov(2), "reference", ("记-002",), ("B1102001",)),
    (_nov(2), "reference", ("202611001",), ("B1102002",)),
    (_nov(2), "counterparty", ("记-001",), ("B1102003",)),
    (_nov(2), "counterparty", ("记-003",), ("B1102004",)),
    (_nov(2), "amount_date", ("记-004",), ("B1102005",)),
    (_nov(2), "group", ("记-005", "记-006", "记-007"), ("B1102006",)),
    (_nov(2), "group", ("记-008",), ("B1102007", "B1102008")),
    (_nov(5), "counterparty", ("记-009",), ("B1105001",)),
    (_nov(5), "amount_date", ("记-010",), ("B1102009",)),
    (_nov(30), "reference", ("记-013",), ("B1130001",)),
]
# (state, key, amount) of the items open at the month's end.
EXPECTED_OPEN_AT_MONTH_END = [
    ("bank_credit_not_booked", "B1130002", "320.00"),
    ("bank_debit_not_booked", "B1102010", "15.00"),
    ("book_credit_not_in_bank", "记-012", "2000.00"),
    ("book_debit_not_in_bank", "记-011", "750.00"),
]
STATEMENT_DAYS = sorted({line.day for line in BANK_LINES})


def write_cashbook(directory: Path, first: date, last: date, lines: list[Line]) -> None:
    """One CSV per day from ``first`` to ``last`` (UTF-8 with a BOM, as spreadsheets save it)."""
    directory.mkdir(parents=True, exist_ok=True)
    day = first
    while day <= last:
        with (directory / f"{day:%Y%m%d}.csv").open("w", encoding="utf-8-sig", newline="") as file:
            out = csv.writer(file)
            out.writerow(CASHBOOK_COLUMNS)
            for line in (line for line in lines if line.day == day):
                out.writerow([day, line.amount, "receipt" if line.direction == "C" else "payment",
                              line.name, line.account, line.memo, line.key, line.reference])  # fmt: skip
        day += timedelta(days=1)


def store_statement(
    engine: Engine, account_no: str, day: date, opening: Decimal, lines: list[Line]
) -> Decimal:
    """A refbank-like statement of ``day`` with ``lines``, its balances from ``opening``; its closing."""
    balance, rows = opening, []
    for seq, line in enumerate(lines, start=1):
        amount = Decimal(line.amount)
        balance += amount if line.direction == "C" else -amount
        rows.append({
            "account_no": account_no, "bill_date": day, "serial_no": line.key, "seq": seq,
            "traded_at": datetime.combine(day, time(9, seq % 60), CHINA_STANDARD_TIME),
            "direction": line.direction, "amount": amount, "balance_after": balance,
            "counterparty_name": line.name or None, "counterparty_account": line.account or None,
            "memo": line.memo or None, "reference": line.reference or None,
        })  # fmt: skip
    store_day(engine, account_no, day, rows, opening=opening, source_kind="refbank")
    return balance


def recon_file_text(cashbook_dir: Path, account_no: str, opening_balance: Decimal = OPENING_BALANCE) -> str:
    return f"""[bank_accounts."{account_no}"]
date_window_days = 3
group_max = 5
carry_days = 62
voucher_pattern = '{VOUCHER_PATTERN}'

[bank_accounts."{account_no}".cashbook]
kind = "csv"
path = "{cashbook_dir}/{{date:%Y%m%d}}.csv"
opening_balance = "{opening_balance}"
opening_date = {OPENING_DATE}
"""


def plant_month(
    engine: Engine, data_dir: Path, account_no: str = DEMO_BANK_ACCOUNT, config_name: str = "recon.toml"
) -> Path:
    """Store the month's statements, write its cash book and a RECON_CONFIG_FILE; the file's path."""
    balance = OPENING_BALANCE
    for day in STATEMENT_DAYS:
        balance = store_statement(
            engine, account_no, day, balance, [line for line in BANK_LINES if line.day == day]
        )
    cashbook_dir = data_dir / "cashbook"
    write_cashbook(cashbook_dir, OPENING_DATE + timedelta(days=1), MONTH_END, BOOK_LINES)
    config = data_dir / config_name
    config.write_text(recon_file_text(cashbook_dir.resolve(), account_no), encoding="utf-8")
    return config
