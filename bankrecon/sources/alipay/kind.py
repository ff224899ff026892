"""Alipay bills (docs/sources/alipay.md): the trade (业务明细) and the account (账务明细) bill of an app.

Its ``[[merchant]]`` keys: ``app_id``, ``gateway`` (default Alipay's own), ``app_private_key_file``
(signs the requests), ``alipay_public_key_file`` (verifies the answers) and ``give_up_after``
(how long after the day ends "no bill" starts being believed). Its ``[[account]]`` key:
``bill_type`` (trade or signcustomer).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from pydantic import ConfigDict, Field, ValidationError, field_validator

from bankrecon.durations import parse_duration
from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey
from bankrecon.sources.alipay.bill import decode_bill
from bankrecon.sources.alipay.client import DEFAULT_GATEWAY, AlipayClient
from bankrecon.sources.alipay.signing import load_private_key, load_public_key
from bankrecon.sources.base import (
    Account,
    Defaults,
    Merchant,
    SourceKind,
    SourceSettings,
    StatementClient,
    one_line,
)
from bankrecon.statements.common import ArchiveLimits

_ACCOUNT_NO = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Alipay serves daily bills from this date on.
FIRST_BILL_DATE = date(2016, 1, 1)


class _MerchantEntry(SourceSettings):
    app_id: str = Field(pattern=r"^[0-9]{16}$")
    gateway: str = Field(default=DEFAULT_GATEWAY, pattern=r"^https?://[^\s]+$")
    app_private_key_file: Path
    alipay_public_key_file: Path
    give_up_after: timedelta = timedelta(days=2)

    @field_validator("give_up_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value


class AlipayMerchant(_MerchantEntry):
    """The app's keys, loaded and checked; never shown nor dumped."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    app_private_key: RSAPrivateKey = Field(repr=False, exclude=True)
    alipay_public_key: RSAPublicKey = Field(repr=False, exclude=True)


class AlipayAccount(SourceSettings):
    bill_type: Literal["trade", "signcustomer"]


class Alipay(SourceKind):
    name = "alipay"
    label = "Alipay"
    # Alipay makes the day's bills "usually before 09:00" the next day, sometimes later.
    default_earliest = time(10, 0)

    def merchant_settings(self, entry: Mapping[str, Any], defaults: Defaults) -> AlipayMerchant:
        try:
            given = _MerchantEntry.model_validate(entry)
        except ValidationError as exc:
            raise ValueError(one_line(exc)) from None
        return AlipayMerchant(
            **given.model_dump(),
            app_private_key=load_private_key(given.app_private_key_file, "app_private_key_file"),
            alipay_public_key=load_public_key(given.alipay_public_key_file, "alipay_public_key_file"),
        )

    def account_settings(self, entry: Mapping[str, Any]) -> AlipayAccount:
        try:
            return AlipayAccount.model_validate(entry)
        except ValidationError as exc:
            raise ValueError(one_line(exc)) from None

    def account_no_error(self, account_no: str) -> str | None:
        if _ACCOUNT_NO.fullmatch(account_no):
            return None
        return f"account_no {account_no!r} is not a name of 1 to 64 letters, digits, '.', '_' or '-'"

    def refusal(self, bill_date: date, today: date) -> str | None:
        if bill_date >= today:
            return f"the bill of {bill_date} does not exist yet: Alipay makes it the next day"
        if bill_date < FIRST_BILL_DATE:
            return f"Alipay has no daily bills before {FIRST_BILL_DATE}"
        return None

    def client(self, merchant: Merchant, defaults: Defaults) -> StatementClient:
        settings = merchant.settings
        assert isinstance(settings, AlipayMerchant)
        return AlipayClient(
            settings.gateway,
            settings.app_id,
            settings.app_private_key,
            settings.alipay_public_key,
            give_up_after=settings.give_up_after,
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
        settings = account.settings
        assert isinstance(settings, AlipayAccount)
        return decode_bill(data_dir, key, archive, settings.bill_type, limits, on_progress)


ALIPAY = Alipay()
