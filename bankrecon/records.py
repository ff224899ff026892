"""The validated detail lines of one statement, as a UTF-8 file between decode and persist.

One line per transaction, fields separated by ``|`` (statement fields never hold
``|``, CR or LF): serial_no, traded_at (ISO 8601 with offset), direction, amount,
balance_after, counterparty_account, counterparty_name, memo; an empty field is None.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from bankrecon.statement import Transaction


def records_path(data_dir: Path, source_sha256: str, account_no: str, bill_date: str) -> Path:
    return data_dir / "records" / f"{source_sha256}-{account_no}-{bill_date}.txt"


def write_record(out: IO[bytes], txn: Transaction) -> None:
    out.write(
        "|".join(
            (
                txn.serial_no,
                txn.traded_at.isoformat(),
                txn.direction,
                str(txn.amount),
                str(txn.balance_after),
                txn.counterparty_account or "",
                txn.counterparty_name or "",
                txn.memo or "",
            )
        ).encode("utf-8")
        + b"\n"
    )


def read_record_batches(
    path: Path, account_no: str, bill_date: date, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Rows for the transactions table, ``batch_size`` at a time, in statement order."""
    batch: list[dict[str, Any]] = []
    with path.open("r", encoding="utf-8", newline="\n") as lines:
        for seq, line in enumerate(lines, start=1):
            serial_no, traded_at, direction, amount, balance, cp_account, cp_name, memo = line.rstrip(
                "\n"
            ).split("|")
            batch.append(
                {
                    "account_no": account_no,
                    "bill_date": bill_date,
                    "serial_no": serial_no,
                    "seq": seq,
                    "traded_at": datetime.fromisoformat(traded_at),
                    "direction": direction,
                    "amount": Decimal(amount),
                    "balance_after": Decimal(balance),
                    "counterparty_account": cp_account or None,
                    "counterparty_name": cp_name or None,
                    "memo": memo or None,
                }
            )
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch
