"""Each variant real Alipay and WeChat Pay bills were seen in, as a fixture of ours (tests/data/), served
by the channel's simulator, fetched, decoded and stored: exact rows and totals, without the corpus.

Where each variant was seen: docs/sources/alipay.md and docs/sources/wechatpay.md.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest

from bankrecon.sources.alipay import ALIPAY
from bankrecon.sources.alipay.simulator.server import BillPlan as AlipayPlan
from bankrecon.sources.wechatpay import WECHATPAY
from bankrecon.sources.wechatpay.simulator.server import BillPlan as WeChatPayPlan
from bankrecon.statements.common import CHINA_STANDARD_TIME, StatementDamaged
from bankrecon.store.archive import archive_path
from tests import alipay_setup, wechatpay_setup
from tests.channel_bills import (
    SERVED_ON,
    Stored,
    alipay_members,
    alipay_stored,
    as_written,
    served_yesterday,
    wechatpay_stored,
)

DATA = Path(__file__).resolve().parent / "data"
FIXTURE_DAY = date(2026, 3, 1)
ALIPAY_ACCOUNT = "20881234567890120156"
MOVED = (SERVED_ON - FIXTURE_DAY).days
REFUND_TIMES = ["交易时间", "退款申请时间", "退款成功时间"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CHINA_STANDARD_TIME)


def seen(rows: list[Any]) -> list[tuple[Any, ...]]:
    """What each stored row says: key, time (China Standard Time), direction, amount, fee, reference."""
    return [
        (row.serial_no, row.traded_at.astimezone(CHINA_STANDARD_TIME), row.direction, row.amount, row.fee,
         row.reference)
        for row in rows
    ]  # fmt: skip


def totals_of(statement: Any) -> tuple[Any, ...]:
    return (
        statement.credit_count, statement.credit_total, statement.debit_count, statement.debit_total,
        statement.fee_total,
    )  # fmt: skip


async def wechatpay_fixture_stored(
    keys: wechatpay_setup.Keys,
    name: str,
    bill_type: str,
    data_dir: Path,
    database_url: str,
    columns: Sequence[str] = ("交易时间",),
) -> Stored:
    """A fixture of tests/data/wechatpay served as yesterday's bill, fetched, decoded and stored."""
    bill, _ = served_yesterday((DATA / "wechatpay" / name).read_bytes(), FIXTURE_DAY, columns)
    return await wechatpay_stored(
        keys, WeChatPayPlan(served=bill), bill_type, SERVED_ON, data_dir, database_url
    )


def alipay_fixture(detail: str, summary: str, bill_type: str) -> list[tuple[str, bytes]]:
    return alipay_members(
        ALIPAY_ACCOUNT,
        FIXTURE_DAY,
        bill_type,
        (DATA / "alipay" / detail).read_bytes(),
        (DATA / "alipay" / summary).read_bytes(),
    )


async def test_an_alipay_trade_bill_in_alipays_words_with_partial_refunds_is_stored_exactly(
    alipay_keys: alipay_setup.Keys, tmp_path: Path, database_url: str
) -> None:
    """CRLF, trailing tabs, negative refunds, one payment refunded twice, a discount, a refund trailer
    saying 商家实收退款共."""
    members = alipay_fixture("trade_detail.csv", "trade_summary.csv", "trade")
    stored = await alipay_stored(
        alipay_keys, AlipayPlan(members=members), "trade", FIXTURE_DAY, tmp_path, database_url
    )
    trade = "2026030122001411110000000102"
    assert seen(stored.rows) == [
        ("2026030122001411110000000101", at("2026-03-01 09:12:47"), "C", Decimal("128.00"), Decimal("0.77"),
         "SHOP-20260301-0001"),
        (trade, at("2026-03-01 10:30:09"), "C", Decimal("35.50"), Decimal("0.21"), "SHOP-20260301-0002"),
        (f"{trade}/RF202603010002A", at("2026-03-01 14:02:33"), "D", Decimal("10.00"), Decimal("-0.06"),
         "SHOP-20260301-0002"),
        (f"{trade}/RF202603010002B", at("2026-03-01 16:45:10"), "D", Decimal("5.50"), Decimal("-0.03"),
         "SHOP-20260301-0002"),
        ("2026030122001422220000000103", at("2026-03-01 16:58:58"), "C", Decimal("0.01"), Decimal("0.00"),
         "20260301165856SHOPB0103"),
        ("2026030122001422220000000103/re_20260301172004871", at("2026-03-01 17:20:05"), "D", Decimal("0.01"),
         Decimal("0.00"), "20260301165856SHOPB0103"),
    ]  # fmt: skip
    assert totals_of(stored.statement) == (3, Decimal("163.51"), 3, Decimal("15.51"), Decimal("0.89"))
    summary = stored.statement.summary
    assert summary["交易合计"] == "3笔，商家实收共163.51元，商家优惠共4.50元"
    assert summary["退款合计"] == "3笔，商家实收退款共-15.51元，商家优惠退款共0.00元"
    # The trailing tabs are gone from every field; the empty store fields stay empty.
    assert stored.rows[4].details["门店编号"] == "" and stored.rows[1].details["商家优惠（元）"] == "4.50"


async def test_an_alipay_trade_bill_in_the_older_words_is_stored(
    alipay_keys: alipay_setup.Keys, tmp_path: Path, sqlite_url: str
) -> None:
    """LF line ends, 交易金额共 and 交易退款金额共, a refund trailer of no refunds."""
    members = alipay_fixture("trade_older_detail.csv", "trade_summary.csv", "trade")
    stored = await alipay_stored(
        alipay_keys, AlipayPlan(members=members), "trade", FIXTURE_DAY, tmp_path, sqlite_url
    )
    assert [(row.direction, row.amount) for row in stored.rows] == [
        ("C", Decimal("0.03")),
        ("C", Decimal("0.05")),
    ]
    assert totals_of(stored.statement) == (2, Decimal("0.08"), 0, Decimal("0.00"), Decimal("0.00"))
    assert stored.statement.summary["退款合计"] == "0笔，交易退款金额共0.00元，优惠退款金额共0.00元"


async def test_an_alipay_account_bill_is_stored_exactly(
    alipay_keys: alipay_setup.Keys, tmp_path: Path, database_url: str
) -> None:
    """0.00 on the side a row does not use, expenses negative, #支出合计 first, a memo with full-width
    commas, a withdrawal without 商户订单号."""
    members = alipay_fixture("signcustomer_detail.csv", "signcustomer_summary.csv", "signcustomer")
    stored = await alipay_stored(
        alipay_keys, AlipayPlan(members=members), "signcustomer", FIXTURE_DAY, tmp_path, database_url
    )
    assert [(r.serial_no, r.direction, r.amount, r.balance_after, r.reference) for r in stored.rows] == [
        ("1080020300000115011", "C", Decimal("97.00"), Decimal("97.00"), "2026030122001415010000000301"),
        ("1080020300000215010", "D", Decimal("97.00"), Decimal("0.00"), "26030119200312345670001"),
        ("60120034400105", "C", Decimal("1358.00"), Decimal("1358.00"), "T200P300120045000001"),
        ("60120034400217", "D", Decimal("9.78"), Decimal("1348.22"),
         "HJCOM=31007702=208810023450301=300120045000001"),
        ("60120034400329", "D", Decimal("1000.00"), Decimal("348.22"), None),
    ]  # fmt: skip
    assert totals_of(stored.statement) == (2, Decimal("1455.00"), 3, Decimal("1106.78"), None)
    assert stored.statement.summary["支出合计"] == "3笔，共-1106.78元"
    assert (
        stored.rows[3].details["备注"]
        == "代扣款（扣款用途：新online佣金服务，{300120045000001}扣款，2026-03-01 21:49:34）"
    )


@pytest.mark.parametrize("wording", ["current", "older"])
async def test_the_alipay_simulators_bill_is_alipays_and_stored(
    alipay_keys: alipay_setup.Keys, tmp_path: Path, sqlite_url: str, wording: Literal["current", "older"]
) -> None:
    """The summary member first, both trailers in Alipay's words, the refund one even without refunds
    (9 rows: the generator's first refund is the tenth)."""
    plan = AlipayPlan(rows=9, wording=wording)
    stored = await alipay_stored(alipay_keys, plan, "trade", SERVED_ON, tmp_path, sqlite_url)
    with zipfile.ZipFile(stored.archive, metadata_encoding="gbk") as archive:
        summary, detail = archive.namelist()
        text = archive.read(detail).decode("gbk")
    assert summary.endswith("_业务明细(汇总).csv") and detail.endswith("_业务明细.csv")
    refund_words = {
        "current": "商家实收退款共0.00元，商家优惠退款共0.00元",
        "older": "交易退款金额共0.00元，优惠退款金额共0.00元",
    }
    assert f"#退款合计：0笔，{refund_words[wording]}\r\n" in text
    assert (stored.statement.credit_count, stored.statement.debit_count) == (9, 0)


async def test_a_wechatpay_bill_with_a_bom_partial_refunds_and_no_last_line_end_is_stored_exactly(
    wechatpay_keys: wechatpay_setup.Keys, tmp_path: Path, database_url: str
) -> None:
    stored = await wechatpay_fixture_stored(
        wechatpay_keys, "tradebill_all.csv", "ALL", tmp_path, database_url
    )
    statement, rows = as_written(stored, MOVED, ["交易时间"])
    assert seen(rows) == [
        ("4200002086202603010000000001", at("2026-03-01 09:15:02"),
         "C", Decimal("50.00"), Decimal("0.30000"), "ORD20260301000001"),
        ("50300108562026030100000000011", at("2026-03-01 11:02:40"),
         "D", Decimal("20.00"), Decimal("-0.12000"), "ORD20260301000001"),
        ("50300108562026030100000000012", at("2026-03-01 15:47:09"),
         "D", Decimal("10.00"), Decimal("-0.06000"), "ORD20260301000001"),
        ("4200002086202603010000000002", at("2026-03-01 22:43:59"),
         "C", Decimal("0.01"), Decimal("0.00000"), "ORD20260301000002"),
    ]  # fmt: skip
    assert totals_of(statement) == (2, Decimal("50.01"), 2, Decimal("30.00"), Decimal("0.12000"))
    assert rows[0].details["交易时间"] == "2026-03-01 09:15:02"  # no BOM in the first column's name


async def test_a_wechatpay_bill_with_crlf_line_ends_is_stored(
    wechatpay_keys: wechatpay_setup.Keys, tmp_path: Path, sqlite_url: str
) -> None:
    stored = await wechatpay_fixture_stored(
        wechatpay_keys, "tradebill_all_crlf.csv", "ALL", tmp_path, sqlite_url
    )
    assert [(row.reference, row.amount, row.fee) for row in stored.rows] == [
        ("RX-20260301-0601", Decimal("0.01"), Decimal("0.00000")),
        ("RX-20260301-0457", Decimal("199.00"), Decimal("1.19000")),
    ]
    assert all("\r" not in value for row in stored.rows for value in row.details.values())
    assert totals_of(stored.statement) == (2, Decimal("199.01"), 0, Decimal("0.00"), Decimal("1.19000"))


async def test_a_wechatpay_refund_bill_stores_each_refund_at_its_refund_time(
    wechatpay_keys: wechatpay_setup.Keys, tmp_path: Path, database_url: str
) -> None:
    """A REFUND bill's 交易时间 is the refunded payment's, days before; the refund is 退款成功时间."""
    stored = await wechatpay_fixture_stored(
        wechatpay_keys, "tradebill_refund.csv", "REFUND", tmp_path, database_url, REFUND_TIMES
    )
    statement, rows = as_written(stored, MOVED, REFUND_TIMES)
    assert seen(rows) == [
        ("50300807172026030100000000051", at("2026-03-01 14:33:24"),
         "D", Decimal("3.50"), Decimal("-0.02100"), "S20260222161502AX7Q"),
        ("50300907032026030100000000061", at("2026-03-01 14:00:50"),
         "D", Decimal("12.00"), Decimal("-0.07200"), "S20260214163105MB3T"),
    ]  # fmt: skip
    assert [row.details["交易时间"] for row in rows] == ["2026-02-22 16:16:25", "2026-02-14 16:31:18"]
    assert totals_of(statement) == (0, Decimal("0.00"), 2, Decimal("15.50"), Decimal("-0.09300"))


async def test_a_wechatpay_success_bill_with_the_seven_summary_columns_is_stored(
    wechatpay_keys: wechatpay_setup.Keys, tmp_path: Path, sqlite_url: str
) -> None:
    stored = await wechatpay_fixture_stored(
        wechatpay_keys, "tradebill_success.csv", "SUCCESS", tmp_path, sqlite_url
    )
    assert [(row.direction, row.amount, row.fee) for row in stored.rows] == [
        ("C", Decimal("88.80"), Decimal("0.53300"))
    ]
    assert stored.statement.summary["退款总金额"] == "0.00" and len(stored.statement.summary) == 7


async def test_a_legacy_wechatpay_bill_is_refused_naming_the_missing_column(
    wechatpay_keys: wechatpay_setup.Keys, tmp_path: Path, sqlite_url: str
) -> None:
    with pytest.raises(StatementDamaged, match="no column 应结订单金额"):
        await wechatpay_fixture_stored(wechatpay_keys, "tradebill_legacy.csv", "ALL", tmp_path, sqlite_url)
    assert not list((tmp_path / "records").glob("*"))


@pytest.mark.parametrize("bill_type", ["ALL", "SUCCESS", "REFUND"])
async def test_the_wechatpay_simulators_bills_are_wechatpays_and_stored(
    wechatpay_keys: wechatpay_setup.Keys, tmp_path: Path, sqlite_url: str, bill_type: str
) -> None:
    """Refund rows with 应结订单金额 0.00, a REFUND bill's 交易时间 before the bill date, seven summary
    columns in every layout."""
    stored = await wechatpay_stored(
        wechatpay_keys, WeChatPayPlan(), bill_type, SERVED_ON, tmp_path, sqlite_url
    )
    assert len(stored.statement.summary) == 7
    refunds = [row for row in stored.rows if row.direction == "D"]
    assert all(row.details["应结订单金额"] == "0.00" for row in refunds)
    assert bool(refunds) == (bill_type != "SUCCESS")
    if bill_type == "REFUND":
        assert all(row.details["交易时间"] < f"{SERVED_ON}" for row in refunds)
        assert all(row.traded_at.astimezone(CHINA_STANDARD_TIME).date() == SERVED_ON for row in refunds)


def started(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    """A simulator started from its command line, and the first line it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", *argv, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline()


async def test_the_simulators_command_lines_serve_a_given_bill_as_the_channel_would(
    alipay_keys: alipay_setup.Keys, wechatpay_keys: wechatpay_setup.Keys, tmp_path: Path
) -> None:
    detail, summary = DATA / "alipay" / "trade_detail.csv", DATA / "alipay" / "trade_summary.csv"
    alipay, said = started([
        "bankrecon.sources.alipay.simulator", "--ready-after", "0",
        "--app-public-key-file", str(alipay_keys.app.public_file),
        "--alipay-private-key-file", str(alipay_keys.alipay.private_file),
        "--member", str(summary), "--member", str(detail),
    ])  # fmt: skip
    try:
        owner = alipay_setup.merchant(alipay_keys, said.split("gateway ")[1].split()[0])
        client = ALIPAY.client(owner, alipay_setup.DEFAULTS)
        answer = await client.ask(alipay_setup.account(owner), SERVED_ON, "cli", tmp_path / "alipay")
        await client.aclose()
    finally:
        alipay.terminate()
        assert alipay.wait(timeout=30) == 0
    assert answer.archive is not None
    with zipfile.ZipFile(
        archive_path(tmp_path / "alipay", answer.archive.sha256), metadata_encoding="gbk"
    ) as kept:
        assert [(info.filename, kept.read(info)) for info in kept.infolist()] == [
            (summary.name, summary.read_bytes()),
            (detail.name, detail.read_bytes()),
        ]
    bill = DATA / "wechatpay" / "tradebill_all.csv"
    wechatpay, said = started([
        "bankrecon.sources.wechatpay.simulator", "--ready-after", "0",
        "--merchant-public-key-file", str(wechatpay_keys.merchant.public_file),
        "--wechatpay-private-key-file", str(wechatpay_keys.wechatpay.private_file),
        "--bill-file", str(bill),
    ])  # fmt: skip
    try:
        owner = wechatpay_setup.merchant(wechatpay_keys, said.split(" on ")[1].split()[0])
        client = WECHATPAY.client(owner, wechatpay_setup.DEFAULTS)
        answer = await client.ask(wechatpay_setup.account(owner), SERVED_ON, "cli", tmp_path / "wechatpay")
        await client.aclose()
    finally:
        wechatpay.terminate()
        assert wechatpay.wait(timeout=30) == 0
    assert answer.archive is not None
    kept_gzip = archive_path(tmp_path / "wechatpay", answer.archive.sha256)
    assert gzip.decompress(kept_gzip.read_bytes()) == bill.read_bytes()
