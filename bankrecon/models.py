"""Inputs and outputs of the workflow and its activities.

Everything here travels through Temporal history, so it holds references and
summaries only: never statement lines, never credentials.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AccountNo = str  # digits, 10 to 32 (statement-format.md)
ACCOUNT_NO_PATTERN = r"^[0-9]{10,32}$"


class DailyStatementInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_no: AccountNo = Field(pattern=ACCOUNT_NO_PATTERN)
    bill_date: date | None = None  # default: yesterday in China Standard Time
    retry_interval_seconds: float = Field(default=1800.0, gt=0)
    # A damaged download is fetched again after the interval (the bank may regenerate it),
    # until this many in a row were damaged.
    max_damaged_downloads: int = Field(default=3, ge=1)


class StatementKey(BaseModel):
    account_no: AccountNo
    bill_date: date


class ArchiveRef(BaseModel):
    """A downloaded zip kept in DATA_DIR, named by the SHA-256 of its bytes."""

    sha256: str
    size: int
    file_name: str


class FetchResult(BaseModel):
    code: Literal["0000", "2001"]
    archive: ArchiveRef | None  # None for 2001, "no transactions that day"
    fetched_at: datetime
    bank_requests: int  # requests this workflow run sent for the statement, this one included


class DecodeRequest(BaseModel):
    statement: StatementKey
    archive: ArchiveRef


class StatementTotals(BaseModel):
    """What a statement's header and trailers say; balances are unknown for a 2001 answer."""

    currency: str | None
    opening_balance: Decimal | None
    closing_balance: Decimal | None
    credit_count: int
    debit_count: int
    credit_total: Decimal
    debit_total: Decimal
    transaction_count: int

    @classmethod
    def empty(cls) -> StatementTotals:
        return cls(
            currency=None,
            opening_balance=None,
            closing_balance=None,
            credit_count=0,
            debit_count=0,
            credit_total=Decimal("0.00"),
            debit_total=Decimal("0.00"),
            transaction_count=0,
        )


class DecodedStatement(BaseModel):
    totals: StatementTotals
    source_sha256: str
    records_file: str  # validated detail lines, relative to DATA_DIR
    part_count: int


class PersistRequest(BaseModel):
    statement: StatementKey
    bank_code: Literal["0000", "2001"]
    totals: StatementTotals
    records_file: str | None  # None: no transactions
    source_sha256: str | None
    fetched_at: datetime


class PersistResult(BaseModel):
    written: bool  # False when this very statement was already in the database
    transaction_count: int


Phase = Literal["waiting_for_bank", "decoding", "persisting", "done", "failed"]


class DailyStatementStatus(BaseModel):
    statement: StatementKey
    phase: Phase


class DailyStatementResult(BaseModel):
    account_no: AccountNo
    bill_date: date
    status: Literal["persisted", "already_persisted"]
    transaction_count: int
    fetch_attempts: int
    bank_code: Literal["0000", "2001"]
    currency: str | None
    opening_balance: Decimal | None
    closing_balance: Decimal | None
    source_sha256: str | None
