"""A channel day with every kind of exception, for the demo and the tests.

``plant_demo`` stores a WeChat-Pay-like channel statement (canonical rows with order
references and fees), writes the company's ledger as one CSV per day and a
reconciliation file whose settlement rule looks for the net on a bank account. The
expected outcome of each order is in ``DEMO_ORDERS``'s comments and in the tests.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert

from bankrecon.recon.ledger import day_start
from bankrecon.store.db import statements, transactions

DEMO_CHANNEL = "wx-demo-1900000001"
SETTLEMENT_COUNTERPARTY = "财付通支付科技有限公司"
LEDGER_COLUMNS = ("reference", "amount", "direction", "occurred_at", "channel", "fee")


@dataclass(frozen=True)
class DemoLine:
    reference: str
    direction: str
    amount: str
    seconds: int  # after the day's midnight in China Standard Time
    fee: str | None = None


# The company's ledger for the day, and the channel's bill of the same day.
DEMO_LEDGER = [
    DemoLine("O-001", "C", "100.00", 3_600, "0.60"),  # matched
    DemoLine("O-002", "C", "200.00", 7_200),  # matched
    DemoLine("O-002", "D", "50.00", 36_000),  # matched: the channel refunds it in two lines
    DemoLine("O-003", "C", "300.00", 10_800),  # matched: paid in two lines
    DemoLine("O-004", "C", "50.00", 14_400, "0.30"),  # matched: fee within tolerance
    DemoLine("O-005", "C", "80.00", 18_000, "0.48"),  # amount_differs: fee beyond tolerance
    DemoLine("O-006", "C", "60.00", 21_600),  # matched; the channel charged it twice
    DemoLine("O-007", "C", "70.00", 25_200),  # ledger_only
    DemoLine("O-009", "C", "120.00", 28_800),  # amount_differs
    DemoLine("O-010", "C", "40.00", 86_370),  # 23:59:30, booked by the channel the next day
]
# Ordered the day before at 23:59:58, booked by the channel on the day: matched in its run.
DEMO_LEDGER_DAY_BEFORE = [DemoLine("O-900", "C", "88.00", 86_398, "0.53")]
DEMO_CHANNEL_LINES = [
    DemoLine("O-900", "C", "88.00", 3, "0.53"),
    DemoLine("O-001", "C", "100.00", 3_601, "0.60"),
    DemoLine("O-002", "C", "200.00", 7_201, "1.20"),
    DemoLine("O-002", "D", "20.00", 36_001, "-0.12"),
    DemoLine("O-002", "D", "30.00", 36_002, "-0.18"),
    DemoLine("O-003", "C", "100.00", 10_801, "0.60"),
    DemoLine("O-003", "C", "200.00", 10_802, "1.20"),
    DemoLine("O-004", "C", "50.00", 14_401, "0.31"),
    DemoLine("O-005", "C", "80.00", 18_001, "0.80"),
    DemoLine("O-006", "C", "60.00", 21_601, "0.36"),
    DemoLine("O-006", "C", "60.00", 21_660, "0.36"),  # duplicate
    DemoLine("O-008", "C", "90.00", 32_400, "0.54"),  # channel_only
    DemoLine("O-009", "C", "112.00", 28_801, "0.67"),
]
# The ledger once finance fixed it: only the channel's double charge stays an exception.
DEMO_LEDGER_FIXED = [
    *(line for line in DEMO_LEDGER if line.reference not in ("O-005", "O-007", "O-009")),
    DemoLine("O-005", "C", "80.00", 18_000, "0.80"),
    DemoLine("O-008", "C", "90.00", 32_400),
    DemoLine("O-009", "C", "112.00", 28_800),
]


def _moment(day: date, seconds: int) -> datetime:
    return day_start(day) + timedelta(seconds=seconds)


def write_ledger(path: Path, day: date, lines: list[DemoLine]) -> None:
    """The ledger as a finance system exports it: a CSV with times in China Standard Time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as file:
        out = csv.writer(file)
        out.writerow(LEDGER_COLUMNS)
        for line in lines:
            moment = _moment(day, line.seconds).strftime("%Y-%m-%d %H:%M:%S")
            out.writerow([line.reference, line.amount, line.direction, moment, "wechatpay", line.fee or ""])


def store_day(
    engine: Engine,
    account_no: str,
    day: date,
    rows: list[dict[str, Any]],
    *,
    opening: Decimal | None = None,
    source_kind: str | None = None,
) -> None:
    """A statement of canonical ``rows`` (their totals counted here), in place of any stored for the day."""
    credits = [row["amount"] for row in rows if row["direction"] == "C"]
    debits = [row["amount"] for row in rows if row["direction"] == "D"]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            delete(transactions).where(
                transactions.c.account_no == account_no, transactions.c.bill_date == day
            )
        )
        conn.execute(
            delete(statements).where(statements.c.account_no == account_no, statements.c.bill_date == day)
        )
        conn.execute(
            insert(statements).values(
                account_no=account_no,
                bill_date=day,
                bank_code="0000",
                currency="CNY",
                opening_balance=opening,
                closing_balance=rows[-1]["balance_after"] if opening is not None and rows else opening,
                credit_count=len(credits),
                debit_count=len(debits),
                credit_total=sum(credits, Decimal("0.00")),
                debit_total=sum(debits, Decimal("0.00")),
                transaction_count=len(rows),
                fetched_at=now,
                persisted_at=now,
                **({"source_kind": source_kind} if source_kind else {}),
            )
        )
        if rows:
            conn.execute(insert(transactions), rows)


def store_channel_day(engine: Engine, account_no: str, day: date, lines: list[DemoLine]) -> None:
    """A channel's statement of canonical rows, as a statement source would have stored it."""
    balance = Decimal("0.00")
    rows = []
    for seq, line in enumerate(lines, start=1):
        amount = Decimal(line.amount)
        balance += amount if line.direction == "C" else -amount
        rows.append(
            {
                "account_no": account_no,
                "bill_date": day,
                "serial_no": f"{day:%Y%m%d}{seq:06d}",
                "seq": seq,
                "traded_at": _moment(day, line.seconds),
                "direction": line.direction,
                "amount": amount,
                "balance_after": balance,
                "reference": line.reference,
                "fee": None if line.fee is None else Decimal(line.fee),
            }
        )
    store_day(engine, account_no, day, rows)


def recon_file_text(ledger_dir: Path, bank_account: str) -> str:
    return f"""\
[accounts."{DEMO_CHANNEL}"]
cutoff_seconds = 300
fee_tolerance = "0.01"

[accounts."{DEMO_CHANNEL}".ledger]
kind = "csv"
path = "{ledger_dir}/ledger-{{date}}.csv"

[accounts."{DEMO_CHANNEL}".settlement]
bank_account = "{bank_account}"
lag_days = 1
counterparty_name = "{SETTLEMENT_COUNTERPARTY}"
memo_pattern = "结算.*{{date:%Y%m%d}}"
tolerance = "0.00"
"""


def plant_demo(engine: Engine, data_dir: Path, day: date, bank_account: str) -> Path:
    """Plant the demo's channel day and its ledger; the reconciliation file to point RECON_CONFIG_FILE at."""
    ledger_dir = (data_dir / "ledger").resolve()
    write_ledger(
        ledger_dir / f"ledger-{day - timedelta(days=1)}.csv", day - timedelta(days=1), DEMO_LEDGER_DAY_BEFORE
    )
    write_ledger(ledger_dir / f"ledger-{day}.csv", day, DEMO_LEDGER)
    store_channel_day(engine, DEMO_CHANNEL, day, DEMO_CHANNEL_LINES)
    config = data_dir / "recon.toml"
    config.write_text(recon_file_text(ledger_dir, bank_account), encoding="utf-8")
    return config
