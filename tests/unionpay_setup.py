"""A UnionPay merchant, its PKI files and the simulator for the domain tests; imports no Temporal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from bankrecon.sources.base import Account, Defaults, Merchant
from bankrecon.sources.unionpay import UNIONPAY
from bankrecon.sources.unionpay.simulator.pki import Pki, PkiFiles, make_pki
from bankrecon.sources.unionpay.simulator.server import FilePlan, UnionPaySimulator
from bankrecon.statements.common import CHINA_STANDARD_TIME

MER_ID = "802310048993424"
PASSWORD_ENV = "BANKRECON_TEST_UNIONPAY_PFX_PASSWORD"
PASSWORD = "000000"
DEFAULTS = Defaults(
    bank_base_url="http://unused.invalid", request_timeout_seconds=10, connect_timeout_seconds=5
)


def yesterday() -> date:
    return datetime.now(CHINA_STANDARD_TIME).date() - timedelta(days=1)


@dataclass(frozen=True)
class Keys:
    pki: Pki
    files: PkiFiles


def make_keys(directory: Path) -> Keys:
    pki = make_pki()
    return Keys(pki, pki.write(directory, PASSWORD))


def merchant_entry(keys: Keys, base_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "mer_id": MER_ID,
        "base_url": base_url,
        "signing_pfx_file": str(keys.files.pfx),
        "signing_pfx_password_env": PASSWORD_ENV,
        "root_cert_file": str(keys.files.root),
        "middle_cert_file": str(keys.files.middle),
    } | overrides


def merchant(keys: Keys, base_url: str, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> Merchant:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    settings = UNIONPAY.merchant_settings(merchant_entry(keys, base_url, **overrides), DEFAULTS)
    return Merchant(
        id="up-main", kind="unionpay", min_interval_seconds=1800, earliest=time(9, 30), settings=settings
    )


def account(owner: Merchant) -> Account:
    return Account(
        account_no="up-main", merchant=owner, currency="CNY", settings=UNIONPAY.account_settings({})
    )


@contextmanager
def simulator(keys: Keys, plan: FilePlan | None = None, **options: Any) -> Iterator[UnionPaySimulator]:
    given: dict[str, Any] = {
        "mer_id": MER_ID,
        "merchant_certificate": keys.pki.merchant.certificate,
        "unionpay": keys.pki.unionpay,
        "default_plan": plan,
    }
    with UnionPaySimulator(**(given | options)) as running:
        yield running
