"""The reference bank (../shared/specs): bank-api.md's download API, statement-format.md's archives.

Its ``[[merchant]]`` keys: ``secret`` or ``secret_env`` (the HMAC secret, or the variable
holding it) and ``base_url`` (default BANK_BASE_URL). Its accounts are bank account
numbers, 10 to 32 digits, and take no keys of their own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field, SecretStr, model_validator

from bankrecon.models import ACCOUNT_NO_PATTERN, DecodedStatement
from bankrecon.sources.base import (
    DecodeJob,
    Defaults,
    Merchant,
    SourceKind,
    SourceSettings,
    StatementClient,
    validated,
)
from bankrecon.sources.refbank.client import BankClient
from bankrecon.sources.refbank.decoding import decode_archive


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
    account_entry = RefBankAccount
    account_no_rule = (re.compile(ACCOUNT_NO_PATTERN), "a bank account number (10 to 32 digits)")

    def merchant_settings(self, entry: Mapping[str, Any], defaults: Defaults) -> RefBankMerchant:
        given = validated(_MerchantEntry, entry)
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

    def decode(self, job: DecodeJob) -> DecodedStatement:
        return decode_archive(
            job.data_dir, job.key, job.archive, job.limits, job.account.currency, job.on_progress
        )


REFBANK = RefBank()
