"""A WeChat Pay merchant, its accounts and the simulator for the domain tests; imports no Temporal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from bankrecon.sources.base import Account, Defaults, Merchant
from bankrecon.sources.wechatpay import WECHATPAY
from bankrecon.sources.wechatpay.simulator.server import BillPlan, WeChatPaySimulator
from bankrecon.statements.common import CHINA_STANDARD_TIME
from tests.wechatpay_keys import KeyPair, make_key_pair

MCHID = "1900009191"
CERTIFICATE_SERIAL = "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"
PUBLIC_KEY_ID = "PUB_KEY_ID_0119000091912025010100000000000000"
DEFAULTS = Defaults(
    bank_base_url="http://unused.invalid", request_timeout_seconds=10, connect_timeout_seconds=5
)


def china_today() -> date:
    return datetime.now(CHINA_STANDARD_TIME).date()


def yesterday() -> date:
    return china_today() - timedelta(days=1)


@dataclass(frozen=True)
class Keys:
    merchant: KeyPair  # the merchant API key pair
    wechatpay: KeyPair  # WeChat Pay's public key pair


def make_keys(directory: Path) -> Keys:
    return Keys(make_key_pair(directory, "apiclient"), make_key_pair(directory, "wechatpay"))


def merchant_entry(keys: Keys, base_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "mchid": MCHID,
        "base_url": base_url,
        "private_key_file": str(keys.merchant.private_file),
        "certificate_serial": CERTIFICATE_SERIAL,
        "wechatpay_public_key_file": str(keys.wechatpay.public_file),
        "wechatpay_public_key_id": PUBLIC_KEY_ID,
    } | overrides


def merchant(keys: Keys, base_url: str, **overrides: Any) -> Merchant:
    settings = WECHATPAY.merchant_settings(merchant_entry(keys, base_url, **overrides), DEFAULTS)
    return Merchant(
        id="wx-main", kind="wechatpay", min_interval_seconds=1800, earliest=time(10), settings=settings
    )


def account(owner: Merchant, bill: str = "tradebill", **keys: str) -> Account:
    settings = WECHATPAY.account_settings({"bill": bill, **keys})
    return Account(account_no=f"wx-main-{bill}", merchant=owner, currency="CNY", settings=settings)


@contextmanager
def simulator(keys: Keys, plan: BillPlan | None = None, **options: Any) -> Iterator[WeChatPaySimulator]:
    given: dict[str, Any] = {
        "mchid": MCHID,
        "certificate_serial": CERTIFICATE_SERIAL,
        "merchant_public_key": keys.merchant.public_key,
        "wechatpay_private_key": keys.wechatpay.private_key,
        "wechatpay_public_key_id": PUBLIC_KEY_ID,
        "default_plan": plan,
    }
    with WeChatPaySimulator(**(given | options)) as running:
        yield running
