"""The reference bank (../shared/specs): bank-api.md's download API, statement-format.md's archives.

Its ``[[merchant]]`` keys: ``secret`` or ``secret_env`` (the HMAC secret, or the variable
holding it) and ``base_url`` (default BANK_BASE_URL). Its accounts are bank account
numbers, 10 to 32 digits, and take no keys of their own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, model_validator

from bankrecon.models import ACCOUNT_NO_PATTERN, ArchiveRef, DecodedStatement, StatementKey
from bankrecon.sources.base import (
    Account,
    Defaults,
    Merchant,
    SourceKind,
    SourceSettings,
    StatementClient,
    one_line,
)
from bankrecon.sources.refbank.client import BankClient
from bankrecon.sources.refbank.decoding import decode_archive
from bankrecon.statements.common import ArchiveLimits


class RefBankMerchant(SourceSettings):
    secret: SecretStr
    base_url: str = Field(min_length=1)


class _MerchantEntry(SourceSettings):
    secret: SecretStr | None = None
    secret_env: str | None = None
    base_url: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> _MerchantEntry:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of secret and secret_env")
        return self


class RefBankAccount(SourceSettings):
    pass


class RefBank(SourceKind):
    name = "refbank"
    label = "bank"

    def merchant_settings(self, entry: Mapping[str, Any], defaults: Defaults) -> RefBankMerchant:
        try:
            given = _MerchantEntry.model_validate(entry)
        except ValidationError as exc:
            raise ValueError(one_line(exc)) from None
        secret = given.secret
        if secret is not None and not secret.get_secret_value():
            raise ValueError("secret is empty")
        if secret is None:
            assert given.secret_env is not None
            value = os.environ.get(given.secret_env)
            if not value:
                raise ValueError(f"secret_env {given.secret_env} is not set")
            secret = SecretStr(value)
        return RefBankMerchant(secret=secret, base_url=given.base_url or defaults.bank_base_url)

    def account_settings(self, entry: Mapping[str, Any]) -> RefBankAccount:
        try:
            return RefBankAccount.model_validate(entry)
        except ValidationError as exc:
            raise ValueError(one_line(exc)) from None

    def account_no_error(self, account_no: str) -> str | None:
        if re.fullmatch(ACCOUNT_NO_PATTERN, account_no):
            return None
        return f"account_no {account_no!r} is not a bank account number (10 to 32 digits)"

    def client(self, merchant: Merchant, defaults: Defaults) -> StatementClient:
        settings = merchant.settings
        assert isinstance(settings, RefBankMerchant)
        return BankClient(
            settings.base_url,
            merchant.id,
            settings.secret,
            connect_timeout=defaults.connect_timeout_seconds,
            request_timeout=defaults.request_timeout_seconds,
        )

    def decode(
        self,
        data_dir: Path,
        key: StatementKey,
        archive: ArchiveRef,
        account: Account,
        limits: ArchiveLimits,
        on_progress: Callable[[int], None],
    ) -> DecodedStatement:
        return decode_archive(data_dir, key, archive, limits, account.currency, on_progress)


REFBANK = RefBank()
