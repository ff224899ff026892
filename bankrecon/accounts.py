"""Which merchant (credential) each account belongs to, and the account's currency.

Without ``BANK_ACCOUNTS_FILE`` there is one merchant, from ``BANK_MERCHANT_ID`` and
``BANK_MERCHANT_SECRET``, and every account belongs to it. With it, a TOML file lists
the merchants and their accounts::

    [[merchant]]
    id = "M100001"
    secret_env = "BANK_SECRET_M100001"   # the secret's environment variable (or: secret = "...")
    base_url = "https://bank.example.com/api"   # optional, default BANK_BASE_URL
    min_interval_seconds = 1800                 # optional, default BANK_MIN_INTERVAL_SECONDS

    [[account]]
    account_no = "6222020000000001"
    merchant = "M100001"
    currency = "CNY"    # optional: the statement's header must then say this currency
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from bankrecon.config import Settings
from bankrecon.models import ACCOUNT_NO_PATTERN


@dataclass(frozen=True)
class Merchant:
    id: str
    secret: SecretStr
    base_url: str
    min_interval_seconds: float


@dataclass(frozen=True)
class Account:
    account_no: str
    merchant: Merchant
    currency: str | None


class AccountsFileError(ValueError):
    """The merchants and accounts cannot be used: BANK_ACCOUNTS_FILE's, or BANK_MERCHANT_ID and its secret."""


class _MerchantEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    secret: SecretStr | None = None
    secret_env: str | None = None
    base_url: str | None = None
    min_interval_seconds: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_secret(self) -> _MerchantEntry:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError(f"merchant {self.id}: give exactly one of secret and secret_env")
        if self.secret is not None and not self.secret.get_secret_value():
            raise ValueError(f"merchant {self.id}: secret is empty")
        return self


class _AccountEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_no: str = Field(pattern=ACCOUNT_NO_PATTERN)
    merchant: str
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")


class _AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merchant: list[_MerchantEntry] = Field(min_length=1)
    account: list[_AccountEntry] = Field(default_factory=list)


class AccountDirectory:
    def __init__(
        self,
        accounts: dict[str, Account] | None,
        default_merchant: Merchant | None,
        nightly: list[str] | None = None,
    ):
        self._accounts = accounts
        self._default = default_merchant
        self._nightly = nightly or []

    @classmethod
    def from_settings(cls, settings: Settings) -> AccountDirectory:
        if settings.bank_accounts_file is None:
            secret = settings.bank_merchant_secret
            if secret is None or not secret.get_secret_value():
                raise AccountsFileError(
                    f"BANK_MERCHANT_SECRET is not set: merchant {settings.bank_merchant_id}'s secret, "
                    "which signs every request to the bank"
                )
            return cls(
                None,
                Merchant(
                    id=settings.bank_merchant_id,
                    secret=secret,
                    base_url=settings.bank_base_url,
                    min_interval_seconds=settings.bank_min_interval_seconds,
                ),
                settings.bank_accounts,
            )
        return cls(_read_accounts_file(settings.bank_accounts_file, settings), None)

    @property
    def source(self) -> str:
        return "BANK_ACCOUNTS_FILE" if self._accounts is not None else "BANK_MERCHANT_ID"

    def account(self, account_no: str) -> Account | None:
        """The account's merchant and currency; None if it is not configured."""
        if self._accounts is None:
            assert self._default is not None
            return Account(account_no, self._default, None)
        return self._accounts.get(account_no)

    def nightly_accounts(self) -> list[str]:
        """The accounts collected every night: the file's accounts, or else BANK_ACCOUNTS."""
        if self._accounts is not None:
            return sorted(self._accounts)
        return sorted(set(self._nightly))

    def merchants(self) -> list[Merchant]:
        if self._accounts is None:
            assert self._default is not None
            return [self._default]
        return list({a.merchant.id: a.merchant for a in self._accounts.values()}.values())


def _read_accounts_file(path: Path, settings: Settings) -> dict[str, Account]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        parsed = _AccountsFile.model_validate(raw)
    except OSError as exc:
        raise AccountsFileError(f"BANK_ACCOUNTS_FILE {path}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountsFileError(f"BANK_ACCOUNTS_FILE {path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise AccountsFileError(f"BANK_ACCOUNTS_FILE {path}: {exc}") from None
    merchants: dict[str, Merchant] = {}
    for entry in parsed.merchant:
        if entry.id in merchants:
            raise AccountsFileError(f"BANK_ACCOUNTS_FILE {path}: merchant {entry.id} appears twice")
        merchants[entry.id] = Merchant(
            id=entry.id,
            secret=entry.secret or _secret_from_env(path, entry),
            base_url=entry.base_url or settings.bank_base_url,
            min_interval_seconds=(
                settings.bank_min_interval_seconds
                if entry.min_interval_seconds is None
                else entry.min_interval_seconds
            ),
        )
    accounts: dict[str, Account] = {}
    for item in parsed.account:
        if item.account_no in accounts:
            raise AccountsFileError(f"BANK_ACCOUNTS_FILE {path}: account {item.account_no} appears twice")
        if item.merchant not in merchants:
            raise AccountsFileError(
                f"BANK_ACCOUNTS_FILE {path}: account {item.account_no} names merchant {item.merchant}, "
                f"which is not among the merchants ({', '.join(merchants)})"
            )
        accounts[item.account_no] = Account(item.account_no, merchants[item.merchant], item.currency)
    return accounts


def _secret_from_env(path: Path, entry: _MerchantEntry) -> SecretStr:
    assert entry.secret_env is not None
    value = os.environ.get(entry.secret_env)
    if not value:
        raise AccountsFileError(
            f"BANK_ACCOUNTS_FILE {path}: merchant {entry.id}'s secret_env {entry.secret_env} is not set"
        )
    return SecretStr(value)
