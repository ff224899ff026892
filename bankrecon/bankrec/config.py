"""Bank reconciliation's part of RECON_CONFIG_FILE: per bank account, its cash book and its rules.

[bank_accounts."6222020000000001"]   # a statement stored by bankrecon: refbank, MT940, camt.053
date_window_days = 3
group_max = 5
carry_days = 62
voucher_pattern = "(?:发票|INV)[- ]?(\\d{6,})"
[bank_accounts."6222020000000001".cashbook]
kind = "sql"                          # or "csv" / "xlsx" with path = "/cashbook/{date}.csv"
url = "postgresql+psycopg://reader@erp/erp"
query = "SELECT ... WHERE bank_account = :account_no AND booked_on = :day"
opening_balance = "100000.00"         # the book balance at the end of opening_date
opening_date = 2026-10-31
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bankrecon.recon.config import FileLedger, ReconConfigError, SqlLedger, config_error, read_recon_file


class _Opening(BaseModel):
    # The book balance at the end of opening_date; the first run reads the cash book from the day after.
    opening_balance: Decimal = Field(decimal_places=2)
    opening_date: date


class SqlCashbook(SqlLedger, _Opening):
    """The cash book (银行存款日记账) in the company's database, read with ``query`` (never written)."""


class FileCashbook(FileLedger, _Opening):
    """The cash book as a CSV or XLSX file per day."""


Cashbook = Annotated[SqlCashbook | FileCashbook, Field(discriminator="kind")]


class BankAccountRecon(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cashbook: Cashbook
    # A book entry and a bank line may be this many days apart and still match.
    date_window_days: int = Field(default=3, ge=0, le=31)
    # One bank line may pay up to this many book entries, and one entry this many bank lines.
    group_max: int = Field(default=5, ge=2, le=10)
    # An unmatched item is matched against later days' lines for this many days after its own.
    carry_days: int = Field(default=62, ge=0, le=366)
    # Finds an invoice or voucher number in a bank line's memo: its first group if it has one.
    voucher_pattern: str | None = None

    @field_validator("voucher_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def bank_accounts(path: Path | None) -> dict[str, BankAccountRecon]:
    """The ``[bank_accounts]`` of RECON_CONFIG_FILE, read afresh; ReconConfigError says what is wrong."""
    accounts = {}
    for account_no, section in read_recon_file(path).get("bank_accounts", {}).items():
        try:
            accounts[account_no] = BankAccountRecon.model_validate(section)
        except ValidationError as exc:
            raise config_error(path, exc, "bank_accounts", account_no) from None
    return accounts


def bank_account(path: Path | None, account_no: str) -> BankAccountRecon:
    found = bank_accounts(path).get(account_no)
    if found is None:
        raise ReconConfigError(f"bank account {account_no} is not in [bank_accounts] of RECON_CONFIG_FILE")
    return found
