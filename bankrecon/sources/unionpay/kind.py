"""UnionPay ACP file transfer (docs/sources/unionpay.md): one merchant's daily settlement file.

Its ``[[merchant]]`` keys: ``mer_id``, ``base_url`` (default UnionPay's file host),
``signing_pfx_file`` and ``signing_pfx_password_env`` (the merchant's signing certificate and
the environment variable holding its password), ``root_cert_file`` and ``middle_cert_file``
(UnionPay's root and middle certificates, which the answers' certificate must chain to).
Its ``[[account]]`` entries take no keys of their own: one account is the merchant's day.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

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
from bankrecon.sources.unionpay.client import DEFAULT_BASE_URL, UnionPayClient
from bankrecon.sources.unionpay.records import decode_settlement
from bankrecon.sources.unionpay.signing import (
    AnswerCertificates,
    SigningKey,
    load_certificate,
    load_signing_pfx,
)

# settleDate is MMDD: a day a year back or more would name a later one.
OLDEST_DAYS = 364


class _MerchantEntry(SourceSettings):
    mer_id: str = Field(pattern=r"^[0-9A-Za-z]{15}$")
    base_url: str = Field(default=DEFAULT_BASE_URL, pattern=r"^https?://[^\s]+$")
    signing_pfx_file: Path
    signing_pfx_password_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    root_cert_file: Path
    middle_cert_file: Path


class UnionPayMerchant(_MerchantEntry):
    """The merchant's keys, loaded and checked; never shown nor dumped."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    signing_key: SigningKey = Field(repr=False, exclude=True)
    certificates: AnswerCertificates = Field(repr=False, exclude=True)


class UnionPayAccount(SourceSettings):
    pass


class UnionPay(SourceKind):
    name = "unionpay"
    label = "UnionPay"
    # Production files come out at about 09:00 the day after the settlement day.
    default_earliest = time(9, 30)
    account_entry = UnionPayAccount
    account_no_rule = CHANNEL_NAMES

    def merchant_settings(self, entry: Mapping[str, Any], defaults: Defaults) -> UnionPayMerchant:
        given = validated(_MerchantEntry, entry)
        password = os.environ.get(given.signing_pfx_password_env)
        if password is None:
            raise ValueError(
                f"signing_pfx_password_env: the environment variable {given.signing_pfx_password_env} "
                "is not set"
            )
        return UnionPayMerchant(
            **given.model_dump(),
            signing_key=load_signing_pfx(given.signing_pfx_file, password),
            certificates=AnswerCertificates(
                root=load_certificate(given.root_cert_file, "root_cert_file"),
                middle=load_certificate(given.middle_cert_file, "middle_cert_file"),
            ),
        )

    def refusal(self, bill_date: date, today: date) -> str | None:
        if bill_date >= today:
            return f"the settlement file of {bill_date} does not exist yet: UnionPay makes it the next day"
        if bill_date < today - timedelta(days=OLDEST_DAYS):
            return (
                f"the settlement file of {bill_date} cannot be asked for: settleDate is MMDD, "
                f"so only the last {OLDEST_DAYS} days can be named"
            )
        return None

    def client(self, merchant: Merchant, defaults: Defaults) -> StatementClient:
        settings = merchant.settings
        assert isinstance(settings, UnionPayMerchant)
        return UnionPayClient(
            settings.base_url,
            settings.mer_id,
            settings.signing_key,
            settings.certificates,
            connect_timeout=defaults.connect_timeout_seconds,
            request_timeout=defaults.request_timeout_seconds,
        )

    def decode(self, job: DecodeJob) -> DecodedStatement:
        settings = job.account.merchant.settings
        assert isinstance(settings, UnionPayMerchant)
        return decode_settlement(
            job.data_dir, job.key, job.archive, settings.mer_id, job.limits, job.on_progress
        )


UNIONPAY = UnionPay()
