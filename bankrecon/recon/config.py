"""The reconciliation file (RECON_CONFIG_FILE): per channel account, its ledger and its rules.

[accounts."wx-1900000001"]          # the channel's statement name (transactions.account_no)
cutoff_seconds = 300
fee_tolerance = "0.01"
carry_days = 7                       # later days whose runs match an open one-sided line
[accounts."wx-1900000001".ledger]
kind = "sql"                         # or "csv" / "xlsx" with path = "/ledger/{date}.csv"
url = "postgresql+psycopg://reader@erp/erp"
query = "SELECT ... WHERE channel_account = :account_no AND business_day = :day"
[accounts."wx-1900000001".settlement]
bank_account = "6222020000000001"
lag_days = 1
counterparty_name = "财付通支付科技有限公司"
memo_pattern = "结算.*{date:%Y%m%d}"
tolerance = "0.00"
deadline = "2d"                      # missing if that bank statement is not stored 2 days after D + lag_days
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bankrecon.durations import parse_duration
from bankrecon.models import STATEMENT_NAME_MAX_CHARS, STATEMENT_NAME_PATTERN
from bankrecon.statements.common import CHINA_STANDARD_TIME


class ReconConfigError(Exception):
    """The reconciliation file is missing, unreadable or wrong; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqlLedger(_Strict):
    """A table or view in the company's own database, read with ``query`` (never written)."""

    kind: Literal["sql"]
    url: str
    # Returns reference, amount, direction, occurred_at, channel and optionally fee; it gets
    # :account_no (the channel account) and :day (the date, a DATE) as parameters.
    query: str

    @field_validator("query")
    @classmethod
    def _takes_the_day(cls, value: str) -> str:
        if ":day" not in value:
            raise ValueError("the query must select one day's orders with the :day parameter")
        return value


class FileLedger(_Strict):
    """A CSV or XLSX file per day; ``{date}`` in the path is the day (``{date:%Y%m%d}`` works too)."""

    kind: Literal["csv", "xlsx"]
    path: str

    @field_validator("path")
    @classmethod
    def _names_the_day(cls, value: str) -> str:
        if "{date" not in value:
            raise ValueError("the path must name the day with {date} (one file per day)")
        return value

    def file_for(self, day: object) -> Path:
        return Path(self.path.format(date=day))


LedgerSource = Annotated[SqlLedger | FileLedger, Field(discriminator="kind")]


class SettlementRule(_Strict):
    """Where a channel day's net arrives: a credit on ``bank_account``, ``lag_days`` later."""

    bank_account: str = Field(pattern=STATEMENT_NAME_PATTERN, max_length=STATEMENT_NAME_MAX_CHARS)
    lag_days: int = Field(default=1, ge=0, le=31)
    counterparty_name: str | None = None
    counterparty_account: str | None = None
    # A regular expression searched in the credit's memo; {date} is the channel day.
    memo_pattern: str | None = None
    tolerance: Decimal = Field(default=Decimal("0.00"), ge=0)
    # Until the bank statement of D + lag_days is stored, the settlement is pending; once it is
    # this long after that day's end (China Standard Time) and still not stored, it is missing.
    deadline: timedelta = timedelta(days=2)

    @field_validator("deadline", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    def arrives_on(self, day: date) -> date:
        return day + timedelta(days=self.lag_days)

    def deadline_for(self, day: date) -> datetime:
        """When the settlement of channel day ``day`` is missing if its bank statement is not stored."""
        return (
            datetime.combine(self.arrives_on(day) + timedelta(days=1), time(0), CHINA_STANDARD_TIME)
            + self.deadline
        )

    @field_validator("memo_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value.format(date=date(2026, 1, 1)))
            except (re.error, ValueError, KeyError, IndexError) as exc:
                raise ValueError(f"not a regular expression with {{date}}: {exc}") from None
        return value


class ChannelRecon(_Strict):
    ledger: LedgerSource
    # Lines of the ledger filtered on their channel column; unset: every line the source gives.
    ledger_channel: str | None = None
    # A ledger order this close before midnight that the channel books the next day is
    # matched in the next day's run (docs/reconciliation.md, "Across midnight").
    cutoff_seconds: int = Field(default=300, ge=0, le=86_400)
    # Fees the ledger records may differ from the channel's by this much, per order.
    fee_tolerance: Decimal = Field(default=Decimal("0.00"), ge=0)
    settlement: SettlementRule | None = None
    # A ledger_only or channel_only line nobody resolved is matched by the runs of this many
    # later days (docs/reconciliation.md, "Open items across days"); 0: never.
    carry_days: int = Field(default=7, ge=0, le=366)

    def fingerprint(self) -> str:
        """SHA-256 of the settings a run used, stored with it."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class ReconConfig(_Strict):
    accounts: dict[str, ChannelRecon] = Field(default_factory=dict)
    # Bank reconciliation's accounts, read and checked by bankrecon.bankrec.config.
    bank_accounts: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def channel(self, account_no: str) -> ChannelRecon:
        found = self.accounts.get(account_no)
        if found is None:
            raise ReconConfigError(
                f"account {account_no} has no reconciliation configured (RECON_CONFIG_FILE)"
            )
        return found


def read_recon_file(path: Path | None) -> dict[str, Any]:
    """RECON_CONFIG_FILE's TOML, not checked yet; ReconConfigError if it cannot be read."""
    if path is None:
        raise ReconConfigError("RECON_CONFIG_FILE is not set: reconciliation needs its configuration file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReconConfigError(f"cannot read RECON_CONFIG_FILE {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ReconConfigError(f"RECON_CONFIG_FILE {path} is not TOML: {exc}") from None


def config_error(path: Path | None, exc: ValidationError, *within: str) -> ReconConfigError:
    """The first of a validation's errors, saying where in the file it is."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in (*within, *first["loc"]))
    return ReconConfigError(f"RECON_CONFIG_FILE {path}: {where}: {first['msg']}")


def load_recon_config(path: Path | None) -> ReconConfig:
    raw = read_recon_file(path)
    try:
        return ReconConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(path, exc) from None
