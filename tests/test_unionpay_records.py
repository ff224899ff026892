"""The UnionPay settlement reader: the official sample's record exact, generated days, and each damage."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bankrecon.models import StatementTotals
from bankrecon.sources.unionpay.records import ZM_FIELDS, ZM_RECORD_BYTES, ZME_RECORD_BYTES, read_settlement
from bankrecon.sources.unionpay.simulator.generator import (
    GBK_MEMBER,
    SettlementShape,
    detail_member,
    settlement_zip,
)
from bankrecon.statements.canonical import CanonicalRow
from bankrecon.statements.common import CHINA_STANDARD_TIME, ArchiveLimits, StatementDamaged

MER_ID = "802310048993424"
DAY = date(2015, 9, 5)


def sample_record(**changes: str) -> bytes:
    """The official sample's first record (channels.md §3), the fields it does not show left blank."""
    values = {
        "交易代码": "S56",
        "代理机构标识码": "88022900",
        "发送机构标识码": "00049993",
        "系统跟踪号": "190624",
        "交易传输时间": "0906112203",
        "账号": "622609******0048",
        "交易金额": "000000476800",
        "商户类别": "4899",
        "终端类型": "07",
        "查询流水号": "201509061122031906248",
        "支付方式(旧)": "01",
        "商户订单号": "10078087",
        "支付卡类型": "01",
        "商户手续费": "D000000002861",
        "结算金额": "C000000473939",
        "支付方式": "0001",
        "交易类型": "01",
        "商户代码": MER_ID,
        "二级商户简称": "测试二级商户",
    } | changes
    return b" ".join(values.get(name, "").encode("gbk").ljust(width, b" ") for name, width in ZM_FIELDS)


def write_zip(tmp_path: Path, records: list[bytes], members: dict[str, bytes] | None = None) -> Path:
    path = tmp_path / "day.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(detail_member(DAY, MER_ID), b"".join(r + b"\r\n" for r in records))
        for name, data in (members or {}).items():
            archive.writestr(name, data)
    return path


def read(path: Path, day: date = DAY) -> tuple[list[CanonicalRow], StatementTotals]:
    rows: list[CanonicalRow] = []
    return rows, read_settlement(path, day, MER_ID, ArchiveLimits(), rows.append)


def test_the_official_samples_record_reads_exactly(tmp_path: Path) -> None:
    assert len(sample_record()) == ZM_RECORD_BYTES == 607
    refund = sample_record(
        查询流水号="201509061530001906249",
        交易类型="04",
        交易金额="000000100000",
        商户手续费="C000000000600",
        结算金额="D000000099400",
        商户订单号="",
    )
    rows, totals = read(write_zip(tmp_path, [sample_record(), refund]))

    purchase, refunded = rows
    assert (purchase.serial_no, purchase.direction, purchase.amount, purchase.fee, purchase.reference) == (
        "201509061122031906248",
        "C",
        Decimal("4768.00"),
        Decimal("28.61"),
        "10078087",
    )
    # 交易传输时间 0906 11:22:03 has no year: the one nearest settlement day 2015-09-05.
    assert purchase.traded_at == datetime(2015, 9, 6, 11, 22, 3, tzinfo=CHINA_STANDARD_TIME)
    assert purchase.details is not None and len(purchase.details) == 42
    assert (
        purchase.details["二级商户简称"] == "测试二级商户" and purchase.details["结算金额"] == "C000000473939"
    )
    assert (refunded.direction, refunded.amount, refunded.fee, refunded.reference) == (
        "D",
        Decimal("1000.00"),
        Decimal("-6.00"),
        None,
    )
    assert (totals.credit_count, totals.credit_total, totals.debit_count, totals.debit_total) == (
        1,
        Decimal("4768.00"),
        1,
        Decimal("1000.00"),
    )
    assert totals.fee_total == Decimal("22.61")
    assert totals.summary is not None and totals.summary["settled_total"] == "3745.39"


def test_records_in_the_form_of_a_production_file_read_exactly(tmp_path: Path) -> None:
    # As a production merchant's file of 2017 has them (docs/sources/unionpay.md, "Real files"):
    # 交易代码 S22, 交易子类 and the original transaction's fields blank, 支付方式 0201, 清算净额
    # repeating 结算金额, 二级商户代码 all zeros, 交易介质 7, a GBK memo in 商户自定义域.
    production = {
        "交易代码": "S22",
        "代理机构标识码": "48022901",
        "发送机构标识码": "00040000",
        "支付方式(旧)": "05",
        "支付方式": "0201",
        "业务类型": "000201",
        "二级商户代码": "000000000000000",
        "二级商户简称": "",
        "二级商户分账入账金额": "000000000000",
        "终端号": "01080209",
        "优惠金额": "000000000000",
        "发票金额": "000000000000",
        "分期付款附加手续费": "00000000000",
        "交易介质": "7",
    }
    records = [
        sample_record(
            **production,
            查询流水号=f"20150906112203190624{n}",
            交易金额=f"{fen:012d}",
            商户手续费="D000000000024",
            结算金额=f"C{fen - 24:012d}",
            清算净额=f"C{fen - 24:012d}",
            商户自定义域=memo,
        )
        for n, (fen, memo) in enumerate([(2_500_000, "test"), (1_443_600, "账户充值"), (246_240, "deposit")])
    ]
    rows, totals = read(write_zip(tmp_path, records))

    assert [(row.direction, row.amount, row.fee) for row in rows] == [
        ("C", Decimal("25000.00"), Decimal("0.24")),
        ("C", Decimal("14436.00"), Decimal("0.24")),
        ("C", Decimal("2462.40"), Decimal("0.24")),
    ]
    assert rows[1].details is not None and rows[1].details["商户自定义域"] == "账户充值"
    assert rows[0].details is not None and rows[0].details["交易子类"] == ""
    assert (totals.credit_count, totals.credit_total, totals.fee_total) == (
        3,
        Decimal("41898.40"),
        Decimal("0.72"),
    )
    assert totals.summary is not None and totals.summary["settled_total"] == "41897.68"


def test_a_generated_day_with_error_records_and_gbk_member_names(tmp_path: Path) -> None:
    path = tmp_path / "day.zip"
    path.write_bytes(
        settlement_zip(DAY, SettlementShape(rows=35, gbk_member_names=True, error_records=3), MER_ID)
    )
    with zipfile.ZipFile(path, metadata_encoding="gbk") as archive:
        assert GBK_MEMBER.format(mer_id=MER_ID) in archive.namelist()

    rows, totals = read(path)

    assert len(rows) == 35 == totals.transaction_count
    assert totals.credit_total == sum((r.amount for r in rows if r.direction == "C"), Decimal("0.00"))
    assert {r.details["交易类型"] for r in rows if r.direction == "D"} == {"04", "31"}  # type: ignore[index]
    assert totals.summary is not None and totals.summary["error_records"] == "3"
    assert ZME_RECORD_BYTES == 339


@pytest.mark.parametrize(
    ("shape", "rule"),
    [
        (SettlementShape(net_mismatch=True), "net"),
        (SettlementShape(wrong_length=True), "record length"),
        (SettlementShape(extra_field=True), "record length"),
    ],
)
def test_each_damaged_generated_day_is_refused(tmp_path: Path, shape: SettlementShape, rule: str) -> None:
    path = tmp_path / "day.zip"
    path.write_bytes(settlement_zip(DAY, shape, MER_ID))
    with pytest.raises(StatementDamaged) as raised:
        read(path)
    assert raised.value.rule == rule and raised.value.line == 11


@pytest.mark.parametrize(
    ("records", "rule", "detail"),
    [
        ([sample_record(结算金额="C000000473940")], "net", "结算金额 C000000473940 is not 交易金额"),
        ([sample_record(交易类型="02")], "交易类型", "'02' is unknown"),
        ([sample_record(交易金额="00000047680X")], "amount", "交易金额 is not twelve digits"),
        ([sample_record(商户手续费="X000000002861")], "amount", "商户手续费 is not C or D"),
        ([sample_record(), sample_record()], "duplicate key", "repeats the one of record 1"),
        ([sample_record(查询流水号="")], "key", "查询流水号 is empty"),
        ([sample_record(交易传输时间="1399112203")], "time", "not a time of day"),
        ([sample_record()[:3] + b"|" + sample_record()[4:]], "record layout", "separator"),
    ],
)
def test_each_broken_record_is_damage(tmp_path: Path, records: list[bytes], rule: str, detail: str) -> None:
    with pytest.raises(StatementDamaged, match=detail) as raised:
        read(write_zip(tmp_path, records))
    assert raised.value.rule == rule


def test_a_record_with_lf_only_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "day.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(detail_member(DAY, MER_ID), sample_record() + b"\n" + sample_record() + b"\r\n")
    with pytest.raises(StatementDamaged, match="a record of 607 bytes, not 607 bytes and CRLF"):
        read(path)


def test_a_wrong_error_record_is_damage(tmp_path: Path) -> None:
    error = f"INN{DAY:%y%m%d}88ZME_{MER_ID}"
    with pytest.raises(StatementDamaged, match="record of 10 bytes") as raised:
        read(write_zip(tmp_path, [sample_record()], {error: b"0123456789\r\n"}))
    assert raised.value.part == error


@pytest.mark.parametrize(
    ("members", "detail"),
    [
        ({}, "holds 0 INN15090588ZM_802310048993424 members"),
        ({f"INN15090688ZM_{MER_ID}": b""}, "is not of 150905"),
        ({"../INN": b""}, "'..' segment"),
    ],
)
def test_the_zip_must_hold_the_days_detail_member(
    tmp_path: Path, members: dict[str, bytes], detail: str
) -> None:
    path = tmp_path / "day.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(StatementDamaged, match=detail):
        read(path)


def test_a_corrupt_member_is_damage(tmp_path: Path) -> None:
    data = bytearray(settlement_zip(DAY, SettlementShape(rows=50), MER_ID))
    data[200] ^= 0xFF
    path = tmp_path / "day.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(StatementDamaged) as raised:
        read(path)
    assert raised.value.rule in ("archive", "record length")


def test_a_zip_bomb_is_stopped_by_the_limits(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(detail_member(DAY, MER_ID), (sample_record() + b"\r\n") * 20_000)
    path = tmp_path / "day.zip"
    path.write_bytes(buffer.getvalue())
    # Repeated records deflate about 145 times; real days far less.
    with pytest.raises(StatementDamaged, match="inflates to more than 100 times"):
        read_settlement(path, DAY, MER_ID, ArchiveLimits(max_compression_ratio=100), lambda _row: None)
