"""An Alipay app, its accounts and the simulator for the domain tests; imports no Temporal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

from bankrecon.sources.alipay import ALIPAY
from bankrecon.sources.alipay.simulator.server import AlipaySimulator, BillPlan
from bankrecon.sources.base import Account, Defaults, Merchant
from tests.wechatpay_keys import KeyPair, make_key_pair

APP_ID = "2021000000000000"
DEFAULTS = Defaults(
    bank_base_url="http://unused.invalid", request_timeout_seconds=10, connect_timeout_seconds=5
)


@dataclass(frozen=True)
class Keys:
    app: KeyPair  # the app's key pair: its private key signs requests
    alipay: KeyPair  # Alipay's key pair: its private key signs answers


def make_keys(directory: Path) -> Keys:
    return Keys(make_key_pair(directory, "app"), make_key_pair(directory, "alipay"))


def merchant_entry(keys: Keys, gateway: str, **overrides: Any) -> dict[str, Any]:
    return {
        "app_id": APP_ID,
        "gateway": gateway,
        "app_private_key_file": str(keys.app.private_file),
        "alipay_public_key_file": str(keys.alipay.public_file),
    } | overrides


def merchant(keys: Keys, gateway: str, **overrides: Any) -> Merchant:
    settings = ALIPAY.merchant_settings(merchant_entry(keys, gateway, **overrides), DEFAULTS)
    return Merchant(
        id="ali-main", kind="alipay", min_interval_seconds=1800, earliest=time(10), settings=settings
    )


def account(owner: Merchant, bill_type: str = "trade") -> Account:
    settings = ALIPAY.account_settings({"bill_type": bill_type})
    return Account(account_no=f"ali-main-{bill_type}", merchant=owner, currency="CNY", settings=settings)


@contextmanager
def simulator(keys: Keys, plan: BillPlan | None = None, **options: Any) -> Iterator[AlipaySimulator]:
    given: dict[str, Any] = {
        "app_id": APP_ID,
        "app_public_key": keys.app.public_key,
        "alipay_private_key": keys.alipay.private_key,
        "default_plan": plan,
    }
    with AlipaySimulator(**(given | options)) as running:
        yield running
