"""Every real Alipay and WeChat Pay bill of ../shared/corpus/channels, served as the channel serves it,
fetched, decoded and stored on SQLite and PostgreSQL: rows and totals exactly as ``expected.json``
says, the stored rows as their golden text in tests/golden/, the legacy layouts refused by name.

Skipped, saying why, where the corpus is absent (tests/corpus.py).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bankrecon.sources.alipay.simulator.server import BillPlan as AlipayPlan
from bankrecon.sources.wechatpay.simulator.server import BillPlan as WeChatPayPlan
from bankrecon.statements.common import StatementDamaged
from tests import alipay_setup, wechatpay_setup
from tests.channel_bills import (
    SERVED_ON,
    Stored,
    alipay_members,
    alipay_stored,
    as_written,
    lines_of,
    moved_dates,
    served_yesterday,
    wechatpay_stored,
)
from tests.corpus import check_golden, corpus_path, corpus_samples, expected_of, golden_text

# Why each legacy WeChat Pay bill (the v2 era's layout, docs/sources/wechatpay.md) is refused.
LEGACY_REFUSALS = {
    "wechat_legacy_aposoft_2015_all": "columns: the bill has no column 应结订单金额",
    "wechat_legacy_aposoft_2018_all": "summary: the summary has no 退款总金额",
    "wechat_legacy_aposoft_2018_refund": "summary: the summary has no 退款总金额",
}


def meta_of(sample: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((sample / "meta.json").read_text(encoding="utf-8"))
    return loaded


def wechatpay_sample(sample: Path) -> tuple[dict[str, Any], WeChatPayPlan, int]:
    """A WeChat Pay sample's meta.json, a plan serving it as yesterday's bill, and the days it moved."""
    meta = meta_of(sample)
    bill, days = served_yesterday(
        (sample / "bill.csv").read_bytes(),
        date.fromisoformat(meta["original_bill_date"]),
        meta["date_columns"],
    )
    return meta, WeChatPayPlan(served=bill), days


def assert_as_expected(stored: Stored, expected: dict[str, Any]) -> None:
    statement = stored.statement
    assert statement is not None
    assert statement.transaction_count == len(stored.rows) == expected["rows"]
    assert (statement.credit_count, statement.credit_total) == (
        expected["credits"]["count"],
        Decimal(expected["credits"]["total"]),
    )
    assert (statement.debit_count, statement.debit_total) == (
        expected["debits"]["count"],
        Decimal(expected["debits"]["total"]),
    )
    fee_total = expected["fee_total"]
    assert statement.fee_total == (None if fee_total is None else Decimal(fee_total))
    assert lines_of(stored.rows) == sorted(expected["lines"], key=lambda line: [str(value) for value in line])


@pytest.mark.parametrize("name", corpus_samples("channels", "alipay"))
async def test_every_real_alipay_bill_is_stored_exactly(
    name: str,
    alipay_keys: alipay_setup.Keys,
    tmp_path: Path,
    database_url: str,
    request: pytest.FixtureRequest,
) -> None:
    sample = corpus_path("channels", "alipay", name)
    meta = meta_of(sample)
    bill_date = date.fromisoformat(meta["bill_date"])
    members = alipay_members(
        meta["pid"],
        bill_date,
        meta["bill_type"],
        (sample / "detail.csv").read_bytes(),
        (sample / "summary.csv").read_bytes(),
    )
    plan = AlipayPlan(members=members)
    stored = await alipay_stored(alipay_keys, plan, meta["bill_type"], bill_date, tmp_path, database_url)
    assert_as_expected(stored, expected_of(sample))
    # Every # line of the detail member is kept whole: the trailers as Alipay wrote them.
    detail = (sample / "detail.csv").read_bytes().decode("gb18030")
    for name_and_value in (line[1:] for line in detail.splitlines() if "合计：" in line):
        trailer, _, value = name_and_value.partition("：")
        assert stored.statement.summary[trailer] == value
    check_golden(request, f"channels/alipay/{name}.txt", golden_text(*as_written(stored)))


@pytest.mark.parametrize("name", corpus_samples("channels", "wechat"))
async def test_every_real_wechatpay_bill_is_stored_exactly(
    name: str,
    wechatpay_keys: wechatpay_setup.Keys,
    tmp_path: Path,
    database_url: str,
    request: pytest.FixtureRequest,
) -> None:
    sample = corpus_path("channels", "wechat", name)
    meta, plan, days = wechatpay_sample(sample)
    stored = await wechatpay_stored(
        wechatpay_keys, plan, meta["bill_type"], SERVED_ON, tmp_path, database_url
    )
    assert_as_expected(stored, expected_of(sample))
    check_golden(
        request, f"channels/wechat/{name}.txt", golden_text(*as_written(stored, days, meta["date_columns"]))
    )


@pytest.mark.parametrize("name", corpus_samples("channels", "excluded"))
async def test_the_legacy_wechatpay_bills_are_refused_naming_the_rule_and_store_nothing(
    name: str, wechatpay_keys: wechatpay_setup.Keys, tmp_path: Path, sqlite_url: str
) -> None:
    meta, plan, _ = wechatpay_sample(corpus_path("channels", "excluded", name))
    with pytest.raises(StatementDamaged) as refused:
        await wechatpay_stored(wechatpay_keys, plan, meta["bill_type"], SERVED_ON, tmp_path, sqlite_url)
    assert LEGACY_REFUSALS[name] in str(refused.value)
    assert not list((tmp_path / "records").glob("*"))


def test_moving_a_bills_dates_touches_only_the_named_columns() -> None:
    bill = (
        "\ufeff交易时间,微信订单号,退款成功时间\r\n`2021-01-28 17:07:11,`4200000925202101284997714292,`\r\n"
        "总交易单数\r\n`1"
    ).encode()
    assert moved_dates(bill, ["交易时间", "退款成功时间"], 3) == bill.replace(
        b"2021-01-28 17", b"2021-01-31 17"
    )
    assert moved_dates(bill, ["交易时间"], -28) == bill.replace(b"2021-01-28 17", b"2020-12-31 17")
