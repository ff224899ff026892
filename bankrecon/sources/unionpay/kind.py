"""UnionPay ACP file transfer (docs/sources/unionpay.md): one merchant's daily settlement file.

Its ``[[merchant]]`` keys: ``mer_id``, ``base_url`` (default UnionPay's file host),
``signing_pfx_file`` and ``signing_pfx_password_env`` (the merchant's signing certificate and
the environment variable holding its password), ``root_cert_file`` and ``middle_cert_file``
(UnionPay's root and middle certificates, which the answers' certificate must chain to).
Its ``[[account]]`` entries take no keys of their own: one account is the merchant's day.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey
from bankrecon.sources.base import (
    Account,
    Defaults,
    Merchant,
    SourceKind,
    SourceSettings,
    StatementClient,
    one_line,
)
from bankrecon.sources.unionpay.client import DEFAULT_BASE_URL, UnionPayClient
from bankrecon.sources.unionpay.records import decode_settlement
from bankrecon.sources.unionpay.signing import (
    AnswerCertificates,
    SigningKey,
    load_certificate,
    load_signing_pfx,
)
from bankrecon.statements.common import ArchiveLimits

_ACCOUNT_NO = re.compile(r"[A-Za-z0-9._-]{1,64}")
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

    def merchant_settings(self, entry: Mapping[str, Any], defaults: Defaults) -> UnionPayMerchant:
        try:
            given = _MerchantEntry.model_validate(entry)
        except ValidationError as exc:
            raise ValueError(one_line(exc)) from None
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

    def account_settings(self, entry: Mapping[str, Any]) -> UnionPayAccount:
        try:
            return UnionPayAccount.model_validate(entry)
        except ValidationError as exc:
            raise ValueError(one_line(exc)) from None

    def account_no_error(self, account_no: str) -> str | None:
        if _ACCOUNT_NO.fullmatch(account_no):
            return None
        return f"account_no {account_no!r} is not a name of 1 to 64 letters, digits, '.', '_' or '-'"

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

    def decode(
        self,
        data_dir: Path,
        key: StatementKey,
        archive: ArchiveRef,
        account: Account,
        limits: ArchiveLimits,
        on_progress: Callable[[int], None],
    ) -> DecodedStatement:
        settings = account.merchant.settings
        assert isinstance(settings, UnionPayMerchant)
        return decode_settlement(data_dir, key, archive, settings.mer_id, limits, on_progress)


UNIONPAY = UnionPay()
