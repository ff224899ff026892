"""Which merchant (credentials at a channel) each statement belongs to, and its source kind's settings.

Without ``BANK_ACCOUNTS_FILE`` there is one merchant of the reference bank, from
``BANK_MERCHANT_ID`` and ``BANK_MERCHANT_SECRET``, and every account belongs to it. With it, a
TOML file lists the merchants and their accounts (docs/configuration.md, docs/sources/)::

    [[merchant]]
    id = "M100001"
    # kind = "refbank"                         the default; or "wechatpay", ...: docs/sources/<kind>.md
    secret_env = "BANK_SECRET_M100001"         # refbank: the variable holding the secret (or secret = "...")
    base_url = "https://bank.example.com/api"  # refbank: optional, default BANK_BASE_URL
    min_interval_seconds = 1800                # optional, default BANK_MIN_INTERVAL_SECONDS
    # earliest = "10:00"                       first request for a day: this time (China) the next day

    [[account]]
    account_no = "6222020000000001"
    merchant = "M100001"
    currency = "CNY"    # optional: the statement must then be in this currency

Keys other than these common ones belong to the merchant's source kind, which checks them.
"""

from __future__ import annotations

import tomllib
from datetime import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bankrecon.config import Settings
from bankrecon.models import STATEMENT_NAME_FORM, is_statement_name
from bankrecon.sources.base import Account, Defaults, Merchant, SourceKind, one_line
from bankrecon.sources.refbank.kind import RefBankAccount, RefBankMerchant
from bankrecon.sources.registry import DEFAULT_KIND, KIND_NAMES, source_kind

__all__ = ["Account", "AccountDirectory", "AccountsFileError", "Merchant"]


class AccountsFileError(ValueError):
    """The merchants and accounts cannot be used: BANK_ACCOUNTS_FILE's, or BANK_MERCHANT_ID and its secret."""


class _MerchantCommon(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=64)
    kind: str = DEFAULT_KIND
    min_interval_seconds: float | None = Field(default=None, ge=0)
    earliest: time | None = None


class _AccountCommon(BaseModel):
    model_config = ConfigDict(extra="allow")

    account_no: str
    merchant: str
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")


class _AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merchant: list[dict[str, Any]] = Field(min_length=1)
    account: list[dict[str, Any]] = Field(default_factory=list)


def defaults_of(settings: Settings) -> Defaults:
    return Defaults(
        bank_base_url=settings.bank_base_url,
        request_timeout_seconds=settings.bank_request_timeout_seconds,
        connect_timeout_seconds=settings.bank_connect_timeout_seconds,
    )


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
                    kind=DEFAULT_KIND,
                    min_interval_seconds=settings.bank_min_interval_seconds,
                    earliest=None,
                    settings=RefBankMerchant(secret=secret, base_url=settings.bank_base_url),
                ),
                settings.bank_accounts,
            )
        return cls(_read_accounts_file(settings.bank_accounts_file, settings), None)

    @property
    def source(self) -> str:
        return "BANK_ACCOUNTS_FILE" if self._accounts is not None else "BANK_MERCHANT_ID"

    def account(self, account_no: str) -> Account | None:
        """The account's merchant and settings; None if it is not configured."""
        if self._accounts is None:
            assert self._default is not None
            return Account(account_no, self._default, None, RefBankAccount())
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


def kind_of(merchant: Merchant) -> SourceKind:
    return source_kind(merchant.kind)


def _read_accounts_file(path: Path, settings: Settings) -> dict[str, Account]:
    where = f"BANK_ACCOUNTS_FILE {path}"
    try:
        parsed = _AccountsFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise AccountsFileError(f"{where}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountsFileError(f"{where}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise AccountsFileError(f"{where}: {one_line(exc)}") from None
    defaults = defaults_of(settings)
    merchants: dict[str, Merchant] = {}
    for number, raw in enumerate(parsed.merchant, 1):
        merchant = _merchant(raw, defaults, settings, f"{where}: merchant {raw.get('id', f'#{number}')}")
        if merchant.id in merchants:
            raise AccountsFileError(f"{where}: merchant {merchant.id} appears twice")
        merchants[merchant.id] = merchant
    accounts: dict[str, Account] = {}
    for number, raw in enumerate(parsed.account, 1):
        account = _account(raw, merchants, f"{where}: account {raw.get('account_no', f'#{number}')}")
        if account.account_no in accounts:
            raise AccountsFileError(f"{where}: account {account.account_no} appears twice")
        accounts[account.account_no] = account
    return accounts


def _merchant(raw: dict[str, Any], defaults: Defaults, settings: Settings, where: str) -> Merchant:
    try:
        common = _MerchantCommon.model_validate(raw)
    except ValidationError as exc:
        raise AccountsFileError(f"{where}: {one_line(exc)}") from None
    if common.kind not in KIND_NAMES:
        raise AccountsFileError(f"{where}: kind {common.kind!r} is not one of {', '.join(KIND_NAMES)}")
    kind = source_kind(common.kind)
    try:
        own = kind.merchant_settings(common.model_extra or {}, defaults)
    except ValueError as exc:
        raise AccountsFileError(f"{where}: {exc}") from None
    return Merchant(
        id=common.id,
        kind=kind.name,
        min_interval_seconds=(
            settings.bank_min_interval_seconds
            if common.min_interval_seconds is None
            else common.min_interval_seconds
        ),
        earliest=common.earliest if common.earliest is not None else kind.default_earliest,
        settings=own,
    )


def _account(raw: dict[str, Any], merchants: dict[str, Merchant], where: str) -> Account:
    try:
        common = _AccountCommon.model_validate(raw)
    except ValidationError as exc:
        raise AccountsFileError(f"{where}: {one_line(exc)}") from None
    merchant = merchants.get(common.merchant)
    if merchant is None:
        raise AccountsFileError(
            f"{where} names merchant {common.merchant}, "
            f"which is not among the merchants ({', '.join(merchants)})"
        )
    kind = kind_of(merchant)
    problem = (
        None
        if is_statement_name(common.account_no)
        else f"account_no {common.account_no!r} does not name a statement ({STATEMENT_NAME_FORM})"
    ) or kind.account_no_error(common.account_no)
    if problem:
        raise AccountsFileError(f"{where}: {problem}")
    try:
        own = kind.account_settings(common.model_extra or {})
    except ValueError as exc:
        raise AccountsFileError(f"{where}: {exc}") from None
    return Account(common.account_no, merchant, common.currency, own)
