"""The WeChat Pay bill reader on generated bills: exact rows and totals, by header name, and each damage."""

from __future__ import annotations

import gzip
import io
import json
import random
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bankrecon.models import ArchiveRef, StatementKey
from bankrecon.sources.wechatpay.bill import decode_bill, read_bill
from bankrecon.sources.wechatpay.gunzip import GunzipStream
from bankrecon.sources.wechatpay.simulator.generator import EXTRA_COLUMN, BillShape, bill_bytes
from bankrecon.statements.canonical import CanonicalRecords, CanonicalRecordWriter, CanonicalRow
from bankrecon.statements.common import CHINA_STANDARD_TIME, ArchiveLimits, StatementDamaged
from bankrecon.store.archive import archive_path

BILL_DATE = date(2026, 11, 20)
TRADE_SAMPLE = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注\n"
    "`2022-03-21 13:51:31,`wxfdc955f7104ad557,`180023671,`176531292,`,`420000612032130748613220688,"
    "`2021WERUN1647840687637,`oZWaCKXip5njeEiloC4oeOV1TTsk,`JSAPI,`SUCCESS,`OTHERS,`CNY,`0.01,`0.00,`0,`0,"
    "`0.00,`0.00,`,`,`微信云托管支付测试,`,`0.00006,`0.60%,`0.01,`0.00,`\n"
    "`2022-03-21 14:00:00,`wxfdc955f7104ad557,`180023671,`176531292,`,`420000612032130748613220688,"
    "`2021WERUN1647840687637,`oZWaCKXip5njeEiloC4oeOV1TTsk,`JSAPI,`REFUND,`OTHERS,`CNY,`0.01,`0.00,"
    "`50300001,`R1,`0.01,`0.00,`ORIGINAL,`SUCCESS,`微信云托管支付测试,`,`-0.00006,`0.60%,`0.01,`0.01,`\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n"
    "`2,`0.01,`0.01,`0.00,`0.00000,`0.01,`0.01\n"
)
FUND_SAMPLE = (
    "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),资金变更提交申请人,备注,业务凭证号\n"
    "`2018-02-01 04:21:23,`50000305742018020103387128253,`1900009231201802015884652186,`退款,`退款,`支出,"
    "`0.02,`0.17,`system,`缺货,`REF4200000068201801293084726067\n"
    "`2018-02-01 05:00:00,`4200000068201801293084726068,`1900009231201802015884652187,`交易,`交易,`收入,"
    "`0.35,`0.52,`system,`,`ORD1\n"
    "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额\n"
    "`2.0,`1.0,`0.35,`1.0,`0.02\n"
)


def write_gzip(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bill.csv.gz"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    return path


def read(path: Path, bill: str = "tradebill") -> tuple[list[CanonicalRow], object]:
    """The bill's rows as they land in the records file, read back; its totals."""
    records = path.with_suffix(".lines")
    with records.open("wb") as out:
        writer = CanonicalRecordWriter(out)
        totals = read_bill(path, bill, ArchiveLimits(), writer.write_texts)  # type: ignore[arg-type]
        writer.flush()
    return list(CanonicalRecords(records, 1 << 16).canonical_rows()), totals


def test_trade_sample_rows_are_exact(tmp_path: Path) -> None:
    rows, totals = read(write_gzip(tmp_path, TRADE_SAMPLE))

    payment, refund = rows
    assert (payment.serial_no, payment.direction, payment.amount, payment.fee, payment.reference) == (
        "420000612032130748613220688",
        "C",
        Decimal("0.01"),
        Decimal("0.00006"),
        "2021WERUN1647840687637",
    )
    assert payment.traded_at == datetime(2022, 3, 21, 13, 51, 31, tzinfo=CHINA_STANDARD_TIME)
    assert (refund.serial_no, refund.direction, refund.amount, refund.fee) == (
        "50300001",
        "D",
        Decimal("0.01"),
        Decimal("-0.00006"),
    )
    assert payment.details is not None and payment.details["商品名称"] == "微信云托管支付测试"
    assert payment.details["设备号"] == "" and len(payment.details) == 27
    assert (totals.credit_count, totals.debit_count, totals.credit_total, totals.debit_total) == (  # type: ignore[attr-defined]
        1,
        1,
        Decimal("0.01"),
        Decimal("0.01"),
    )
    assert totals.fee_total == Decimal("0.00000")  # type: ignore[attr-defined]
    assert totals.summary["总交易单数"] == "2"  # type: ignore[attr-defined]


def test_fund_flow_sample_rows_are_exact(tmp_path: Path) -> None:
    rows, totals = read(write_gzip(tmp_path, FUND_SAMPLE), "fundflowbill")

    spent, earned = rows
    assert (
        spent.serial_no,
        spent.direction,
        spent.amount,
        spent.balance_after,
        spent.reference,
        spent.fee,
    ) == (
        "1900009231201802015884652186",
        "D",
        Decimal("0.02"),
        Decimal("0.17"),
        "REF4200000068201801293084726067",
        None,
    )
    assert (earned.direction, earned.amount, earned.balance_after) == ("C", Decimal("0.35"), Decimal("0.52"))
    assert (totals.credit_total, totals.debit_total, totals.closing_balance, totals.fee_total) == (  # type: ignore[attr-defined]
        Decimal("0.35"),
        Decimal("0.02"),
        None,
        None,
    )


@pytest.mark.parametrize(
    "shape",
    [
        BillShape(rows=200),
        BillShape(rows=50, bill_type="SUCCESS"),
        BillShape(rows=50, bill_type="REFUND"),
        BillShape(rows=200, bill="fundflowbill"),
    ],
)
def test_generated_bills_add_up(tmp_path: Path, shape: BillShape) -> None:
    path = tmp_path / "bill.csv.gz"
    path.write_bytes(bill_bytes(BILL_DATE, shape))
    rows, totals = read(path, shape.bill)

    assert len(rows) == shape.rows == totals.transaction_count  # type: ignore[attr-defined]
    credits = [row.amount for row in rows if row.direction == "C"]
    assert sum(credits, Decimal("0.00")) == totals.credit_total  # type: ignore[attr-defined]
    if shape.bill == "tradebill":
        assert sum((row.fee for row in rows if row.fee is not None), Decimal(0)) == totals.fee_total  # type: ignore[attr-defined]


def test_columns_in_another_order_with_an_unknown_one_and_a_bom_read_the_same(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv.gz"
    plain.write_bytes(bill_bytes(BILL_DATE, BillShape(rows=30)))
    odd = tmp_path / "odd.csv.gz"
    odd.write_bytes(
        bill_bytes(BILL_DATE, BillShape(rows=30, shuffled_columns=True, extra_column=True, bom=True))
    )
    assert gzip.decompress(odd.read_bytes()).startswith("\ufeff".encode())

    expected, expected_totals = read(plain)
    rows, totals = read(odd)

    assert [(r.serial_no, r.amount, r.fee, r.traded_at) for r in rows] == [
        (r.serial_no, r.amount, r.fee, r.traded_at) for r in expected
    ]
    assert all(row.details is not None and row.details[EXTRA_COLUMN] == "无" for row in rows)
    assert totals == expected_totals


def test_decode_writes_canonical_records_and_totals(tmp_path: Path) -> None:
    data = bill_bytes(BILL_DATE, BillShape(rows=10))
    archive = ArchiveRef(sha256="ab" * 32, size=len(data), file_name="bill.csv.gz")
    archive_path(tmp_path, archive.sha256).parent.mkdir(parents=True)
    archive_path(tmp_path, archive.sha256).write_bytes(data)
    progress: list[int] = []

    decoded = decode_bill(
        tmp_path,
        StatementKey(account_no="wx-main-trade", bill_date=BILL_DATE),
        archive,
        "tradebill",
        ArchiveLimits(),
        progress.append,
    )

    assert (decoded.records_format, decoded.part_count, decoded.source_sha256) == (
        "canonical",
        1,
        archive.sha256,
    )
    records = [
        row for block in CanonicalRecords(tmp_path / decoded.records_file, 1 << 16).rows() for row in block
    ]
    assert len(records) == 10 == decoded.totals.transaction_count
    first = records[0][1]
    assert first[0] == "4200020261120000000000000000"
    assert json.loads(first[-1] or "")["交易状态"] == "SUCCESS"
    assert progress[-1] == 10
    assert not list((tmp_path / "records").glob(".incoming-*"))


def damaged(tmp_path: Path, text: str, bill: str = "tradebill") -> StatementDamaged:
    with pytest.raises(StatementDamaged) as caught:
        read(write_gzip(tmp_path, text), bill)
    return caught.value


@pytest.mark.parametrize(
    ("change", "rule", "line"),
    [
        (("`2,`0.01,`0.01", "`3,`0.01,`0.01"), "summary", None),
        (("`0.00000,`0.01,`0.01\n", "`0.00001,`0.01,`0.01\n"), "summary", None),
        (("`2,`0.01,`0.01", "`2,`0.02,`0.01"), "summary", None),
        (("`2,`0.01,`0.01", "`2,`0.01,`0.02"), "summary", None),
        (("应结订单金额,", "应结金额,"), "columns", 1),
        (("`CNY,`0.01,", "`CNY,`0.0x,"), "amount", 2),
        (("`CNY,`0.01,", "`CNY,`0.011,"), "amount", 2),
        (("`0.00006,`0.60%", "`0.000061,`0.60%"), "amount", 2),
        (("`50300001,", "`420000612032130748613220688,"), "duplicate key", 3),
        (("`2022-03-21 14:00:00,", "`2022-03-21T14:00,"), "time", 3),
        (("`2022-03-21 14:00:00,", "2022-03-21 14:00:00,"), "header", 3),
        (("`JSAPI,`REFUND,", "`JSAPI,`CLOSED,"), "交易状态", 3),
        (("`ORIGINAL,", "`ORIGINAL,`more,"), "row width", 3),
        (("`0.00,`ORIGINAL", "0.00,`ORIGINAL"), "backtick", 3),
        (("`2,`0.01,`0.01,`0.00,`0.00000,`0.01,`0.01\n", ""), "summary", None),
        (("`0.01,`0.01\n", "`0.01,`0.01\n`1\n"), "summary", None),
    ],
)
def test_each_damage_names_its_rule_and_line(
    tmp_path: Path, change: tuple[str, str], rule: str, line: int | None
) -> None:
    assert change[0] in TRADE_SAMPLE
    error = damaged(tmp_path, TRADE_SAMPLE.replace(change[0], change[1], 1))
    assert error.rule == rule
    if line is not None:
        assert error.line == line


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (("`2.0,`1.0,`0.35", "`2.5,`1.0,`0.35"), "summary"),
        (("`1.0,`0.35,`1.0,`0.02", "`1.0,`0.35,`1.0,`0.03"), "summary"),
        (("`支出,", "`转出,"), "收支类型"),
        (("收支金额(元),", "金额,"), "columns"),
    ],
)
def test_fund_flow_damage(tmp_path: Path, change: tuple[str, str], rule: str) -> None:
    assert change[0] in FUND_SAMPLE
    assert damaged(tmp_path, FUND_SAMPLE.replace(change[0], change[1], 1), "fundflowbill").rule == rule


def test_a_generated_bad_summary_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "bill.csv.gz"
    path.write_bytes(bill_bytes(BILL_DATE, BillShape(rows=20, bad_summary=True)))
    with pytest.raises(StatementDamaged, match="总交易单数 says 21, the rows give 20"):
        read(path)


def test_truncated_gzip_not_utf8_and_a_gzip_bomb_are_damage(tmp_path: Path) -> None:
    whole = gzip.compress(TRADE_SAMPLE.encode())
    path = tmp_path / "bill.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(StatementDamaged, match="truncated"):
        read(path)
    path.write_bytes(gzip.compress(TRADE_SAMPLE.encode("gb18030")))
    with pytest.raises(StatementDamaged, match="not UTF-8"):
        read(path)
    bomb = gzip.compress(b"0" * 10_000_000)
    with pytest.raises(StatementDamaged, match="decompresses past"):
        GunzipStream(io.BytesIO(bomb), len(bomb), ArchiveLimits()).read()
    path.write_bytes(gzip.compress(random.Random(1).randbytes(35_000).hex().encode() + b"\n"))
    with pytest.raises(StatementDamaged, match="longer than 65536"):
        read(path)
