"""WeChat Pay API v3 bills (docs/sources/wechatpay.md): trade bills and fund-flow bills of one merchant.

Its ``[[merchant]]`` keys: ``mchid``, ``base_url`` (default the API's own host),
``private_key_file`` and ``certificate_serial`` (the merchant API key and its certificate's
serial), ``wechatpay_public_key_file`` and ``wechatpay_public_key_id`` (WeChat Pay's key
that signs its answers). Its ``[[account]]`` keys: ``bill`` (tradebill or fundflowbill),
``bill_type`` (tradebill only) and ``account_type`` (fundflowbill only).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from pydantic import ConfigDict, Field, model_validator

from bankrecon.models import DecodedStatement
from bankrecon.sources.base import (
    CHANNEL_NAMES,
    DecodeJob,
    Defaults,
    Merchant,
    SourceKind,
    SourceSettings,
    StatementClient,
    validated,
)
from bankrecon.sources.wechatpay.bill import decode_bill
from bankrecon.sources.wechatpay.client import DEFAULT_BASE_URL, WeChatPayClient
from bankrecon.sources.wechatpay.signing import RequestSigner, load_private_key, load_public_key

# WeChat Pay keeps a bill this many months.
RETENTION_MONTHS = 3


class _MerchantEntry(SourceSettings):
    mchid: str = Field(pattern=r"^[0-9]{1,32}$")
    base_url: str = Field(default=DEFAULT_BASE_URL, pattern=r"^https?://[^\s]+$")
    private_key_file: Path
    certificate_serial: str = Field(pattern=r"^[0-9A-Fa-f]{1,64}$")
    wechatpay_public_key_file: Path
    wechatpay_public_key_id: str = Field(pattern=r"^[A-Za-z0-9_]{1,128}$")


class WeChatPayMerchant(_MerchantEntry):
    """The merchant's keys, loaded and checked; never shown nor dumped."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    private_key: RSAPrivateKey = Field(repr=False, exclude=True)
    wechatpay_public_key: RSAPublicKey = Field(repr=False, exclude=True)


class WeChatPayAccount(SourceSettings):
    bill: Literal["tradebill", "fundflowbill"]
    bill_type: Literal["ALL", "SUCCESS", "REFUND"] | None = None
    account_type: Literal["BASIC", "OPERATION", "FEES"] | None = None

    @model_validator(mode="after")
    def _keys_of_the_bill(self) -> WeChatPayAccount:
        if self.bill == "tradebill":
            if self.account_type is not None:
                raise ValueError("account_type is for bill = fundflowbill; a tradebill takes bill_type")
            return self.model_copy(update={"bill_type": self.bill_type or "ALL"})
        if self.bill_type is not None:
            raise ValueError("bill_type is for bill = tradebill; a fundflowbill takes account_type")
        return self.model_copy(update={"account_type": self.account_type or "BASIC"})


class WeChatPay(SourceKind):
    name = "wechatpay"
    label = "WeChat Pay"
    # WeChat Pay starts making the previous day's bills at 09:00 and asks for them after 10:00.
    default_earliest = time(10, 0)
    account_entry = WeChatPayAccount
    account_no_rule = CHANNEL_NAMES

    def merchant_settings(self, entry: Mapping[str, Any], defaults: Defaults) -> WeChatPayMerchant:
        given = validated(_MerchantEntry, entry)
        return WeChatPayMerchant(
            **given.model_dump(),
            private_key=load_private_key(given.private_key_file, "private_key_file"),
            wechatpay_public_key=load_public_key(
                given.wechatpay_public_key_file, "wechatpay_public_key_file"
            ),
        )

    def refusal(self, bill_date: date, today: date) -> str | None:
        if bill_date >= today:
            return f"the bill of {bill_date} does not exist yet: WeChat Pay makes it the next day"
        if bill_date < oldest_kept(today):
            return f"the bill of {bill_date} is gone: WeChat Pay keeps bills {RETENTION_MONTHS} months"
        return None

    def client(self, merchant: Merchant, defaults: Defaults) -> StatementClient:
        settings = merchant.settings
        assert isinstance(settings, WeChatPayMerchant)
        return WeChatPayClient(
            settings.base_url,
            RequestSigner(settings.mchid, settings.certificate_serial, settings.private_key),
            settings.wechatpay_public_key,
            settings.wechatpay_public_key_id,
            connect_timeout=defaults.connect_timeout_seconds,
            request_timeout=defaults.request_timeout_seconds,
        )

    def decode(self, job: DecodeJob) -> DecodedStatement:
        settings = job.account.settings
        assert isinstance(settings, WeChatPayAccount)
        return decode_bill(job.data_dir, job.key, job.archive, settings.bill, job.limits, job.on_progress)


def oldest_kept(today: date) -> date:
    """The oldest bill date WeChat Pay still serves: the same day three months back (the month's last
    day when that month is shorter)."""
    months = today.year * 12 + today.month - 1 - RETENTION_MONTHS
    year, month = divmod(months, 12)
    for day in range(today.day, 0, -1):
        try:
            return date(year, month + 1, day)
        except ValueError:
            continue
    raise AssertionError("every month has a first day")


WECHATPAY = WeChatPay()
