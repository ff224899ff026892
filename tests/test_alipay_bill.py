"""The Alipay bill reader: exact rows and totals, and each kind of damage; no Temporal, no network."""

from __future__ import annotations

import re
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bankrecon.sources.alipay.bill import read_bill
from bankrecon.sources.alipay.simulator.generator import (
    ACCOUNT_COLUMNS,
    EXTRA_COLUMN,
    TRADE_COLUMNS,
    BillShape,
    write_bill,
)
from bankrecon.statements.canonical import CanonicalRow
from bankrecon.statements.common import CHINA_STANDARD_TIME, ArchiveLimits, StatementDamaged

DAY = date(2026, 11, 28)
HEAD = "#支付宝业务明细查询\r\n#账号：[20880000000001560156]\r\n#----业务明细列表----\r\n"
TRADE_HEADER = ",".join(TRADE_COLUMNS) + "\r\n"


def trade_row(trade_no: str, business: str, received: str, refund_no: str = "", fee: str = "0.06") -> str:
    return (
        f"{trade_no}\t,ORD-{trade_no}\t,{business}\t,商品,2026-11-28 10:55:16,2026-11-28 10:55:23,s\t,店\t,op\t,\t,"  # noqa: E501
        f"*津水(602***@qq.com)\t,{received},{received},0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,{refund_no}\t,{fee},"
        "0.00,下单测试\r\n"
    )


PAYMENT = trade_row("2019091622001458860515315453", "交易", "10.01")
REFUND = trade_row("2019091622001458860515315453", "退款", "-0.01", "re_1568602607356", "-0.00")
TRAILER = "#----业务明细列表结束----\r\n#交易合计：1笔，商家实收共10.01元，商家优惠共0.00元\r\n#退款合计：1笔，商家实收退款共-0.01元，商家优惠退款共0.00元\r\n#导出时间：[2026年11月29日 05:46:49]\r\n"  # noqa: E501


class _GbkName(zipfile.ZipInfo):
    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("gbk"), self.flag_bits


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = _GbkName(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def trade_zip(path: Path, text: str, extra: dict[str, bytes] | None = None) -> Path:
    members = {"2088_20261128_业务明细(汇总).csv": "#支付宝业务汇总查询\r\n".encode("gbk")}
    members["2088_20261128_业务明细.csv"] = text.encode("gbk")
    return make_zip(path / "bill.zip", members | (extra or {}))


def read(
    path: Path, bill_type: str = "trade", limits: ArchiveLimits | None = None
) -> tuple[list[CanonicalRow], object]:
    rows: list[CanonicalRow] = []
    totals = read_bill(path, bill_type, limits or ArchiveLimits(), rows.append)  # type: ignore[arg-type]
    return rows, totals


def test_trade_rows_exact_refunds_debit_and_keyed_with_their_batch(tmp_path: Path) -> None:
    rows, totals = read(trade_zip(tmp_path, HEAD + TRADE_HEADER + PAYMENT + REFUND + TRAILER))
    payment, refund = rows
    assert payment == CanonicalRow(
        serial_no="2019091622001458860515315453",
        traded_at=datetime(2026, 11, 28, 10, 55, 23, tzinfo=CHINA_STANDARD_TIME),
        direction="C",
        amount=Decimal("10.01"),
        fee=Decimal("0.06"),
        reference="ORD-2019091622001458860515315453",
        details=payment.details,
    )
    assert payment.details is not None and list(payment.details) == TRADE_COLUMNS
    assert payment.details["对方账户"] == "*津水(602***@qq.com)"  # the trailing tab is gone
    assert (refund.serial_no, refund.direction, refund.amount) == (
        "2019091622001458860515315453/re_1568602607356",
        "D",
        Decimal("0.01"),
    )
    assert totals.credit_count == totals.debit_count == 1  # type: ignore[attr-defined]
    assert (totals.credit_total, totals.debit_total, totals.fee_total) == (  # type: ignore[attr-defined]
        Decimal("10.01"),
        Decimal("0.01"),
        Decimal("0.06"),
    )
    assert totals.summary["交易合计"] == "1笔，商家实收共10.01元，商家优惠共0.00元"  # type: ignore[attr-defined]


@pytest.mark.parametrize("bill_type", ["trade", "signcustomer"])
@pytest.mark.parametrize("names", ["gbk", "utf8"])
def test_generated_bills_read_whole_by_first_line_whatever_the_member_names(
    tmp_path: Path, bill_type: str, names: str
) -> None:
    path = tmp_path / "bill.zip"
    with path.open("wb") as out:
        write_bill(out, DAY, BillShape(bill_type, 30, member_names=names), seed=3)  # type: ignore[arg-type]
    rows, totals = read(path, bill_type)
    assert len(rows) == totals.transaction_count == 30  # type: ignore[attr-defined]
    assert totals.credit_total == sum(r.amount for r in rows if r.direction == "C")  # type: ignore[attr-defined]
    if bill_type == "signcustomer":
        assert all(r.balance_after is not None for r in rows)


def test_an_unknown_extra_column_is_kept_in_details(tmp_path: Path) -> None:
    path = tmp_path / "bill.zip"
    with path.open("wb") as out:
        write_bill(out, DAY, BillShape("trade", 5, extra_column=True), seed=3)
    rows, _ = read(path)
    assert rows[0].details is not None and rows[0].details[EXTRA_COLUMN] == "x"


def damage(tmp_path: Path, text: str, **options: object) -> StatementDamaged:
    with pytest.raises(StatementDamaged) as caught:
        read(trade_zip(tmp_path, text), **options)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (
            HEAD + TRADE_HEADER + PAYMENT + TRAILER.replace("交易合计：1笔", "交易合计：2笔"),
            "#交易合计 says 2 rows",
        ),
        (
            HEAD + TRADE_HEADER + PAYMENT + REFUND + TRAILER.replace("共-0.01元", "共-0.02元"),
            "#退款合计 says 1 rows of 0.02",
        ),
        (HEAD + TRADE_HEADER + PAYMENT + REFUND, "ends without its # totals"),
        (HEAD + TRADE_HEADER + PAYMENT + TRAILER + PAYMENT, "a row after the table's end"),
        (
            HEAD
            + TRADE_HEADER
            + PAYMENT
            + PAYMENT
            + TRAILER.replace("1笔，商家实收共10.01", "2笔，商家实收共20.02"),
            "repeats",
        ),
        (HEAD + TRADE_HEADER + trade_row("1", "交易", "-1.00") + TRAILER, "neither 交易"),
        (HEAD + TRADE_HEADER + trade_row("1", "退款", "-1.00") + TRAILER, "without 退款批次号"),
        (HEAD + TRADE_HEADER + trade_row("1", "交易", "1.001") + TRAILER, "more than 2 decimals"),
        (HEAD + TRADE_HEADER + PAYMENT.replace(",下单测试", "") + TRAILER, "values under a header"),
        (HEAD + TRADE_HEADER.replace("服务费（元）", "手续费") + PAYMENT + TRAILER, "no column 服务费（元）"),
        (HEAD + TRADE_HEADER + PAYMENT.replace("2026-11-28 10:55:23", "2026/11/28") + TRAILER, "完成时间"),
        (HEAD, "no header row"),
    ],
)
def test_each_damage_is_named(tmp_path: Path, text: str, found: str) -> None:
    assert found in str(damage(tmp_path, text))


def test_a_member_that_is_not_gbk_is_damage(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "bill.zip", {"a.csv": HEAD.encode("gbk") + b"\xff\xff\xff\r\n"})
    with pytest.raises(StatementDamaged, match="encoding"):
        read(path)


@pytest.mark.parametrize(
    ("members", "found"),
    [
        ({"2088_业务明细(汇总).csv": "#支付宝业务汇总查询\r\n".encode("gbk")}, "0 members starting"),
        (
            {"a.csv": (HEAD + TRADE_HEADER + PAYMENT + TRAILER).encode("gbk"), "b.csv": HEAD.encode("gbk")},
            "2 members",
        ),
        ({"../业务明细.csv": HEAD.encode("gbk")}, "'..' segment"),
        ({"/etc/业务明细.csv": HEAD.encode("gbk")}, "absolute path"),
    ],
)
def test_members_are_picked_by_first_line_and_names_defended(
    tmp_path: Path, members: dict[str, bytes], found: str
) -> None:
    with pytest.raises(StatementDamaged, match=found.replace("(", r"\(")):
        read(make_zip(tmp_path / "bill.zip", members))


def test_archive_limits_hold(tmp_path: Path) -> None:
    many = {f"{n}.csv": b"#x\r\n" for n in range(5)}
    with pytest.raises(StatementDamaged, match="at most 3 allowed"):
        read(make_zip(tmp_path / "many.zip", many), limits=ArchiveLimits(max_members=3))
    bomb = trade_zip(tmp_path, HEAD + TRADE_HEADER + PAYMENT * 20000 + TRAILER)
    with pytest.raises(StatementDamaged, match="inflates to more than"):
        read(bomb, limits=ArchiveLimits(max_total_uncompressed_bytes=100_000))


def test_a_zip_with_a_damaged_member_is_damage(tmp_path: Path) -> None:
    path = trade_zip(tmp_path, HEAD + TRADE_HEADER + PAYMENT * 200 + TRAILER)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StatementDamaged):
        read(path)


def account_text(income: str, expense: str, trailer: str) -> str:
    header = ",".join(ACCOUNT_COLUMNS) + "\r\n"
    row = (
        "546324\t,2012122923922029\t,3226563\t,海航机票\t,2012-12-29 21:02:06,陈* (k***@126.com)\t,"
        f"{income},{expense},14533.03,支付宝,在线支付,\r\n"
    )
    return "#支付宝账务明细查询\r\n" + header + row + trailer


@pytest.mark.parametrize(
    ("income", "expense", "direction"), [("2274.00", "0.00", "C"), ("0.00", "-2274.00", "D")]
)
def test_account_rows_take_their_direction_from_the_column_set(
    tmp_path: Path, income: str, expense: str, direction: str
) -> None:
    side = "收入" if direction == "C" else "支出"
    other = "支出" if direction == "C" else "收入"
    text = account_text(
        income,
        expense,
        f"#{side}合计：1笔，共{'-' if side == '支出' else ''}2274.00元\r\n#{other}合计：0笔，共0.00元\r\n",
    )
    path = make_zip(tmp_path / "bill.zip", {"账务明细.csv": text.encode("gbk")})
    (row,), _ = read(path, "signcustomer")
    assert (row.serial_no, row.direction, row.amount, row.balance_after, row.reference) == (
        "546324",
        direction,
        Decimal("2274.00"),
        Decimal("14533.03"),
        "3226563",
    )


@pytest.mark.parametrize(
    ("income", "expense", "trailer", "found"),
    [
        ("1.00", "-1.00", "#收入合计：1笔，共1.00元\r\n#支出合计：1笔，共1.00元\r\n", "exactly one"),
        ("0.00", "0.00", "#收入合计：0笔，共0.00元\r\n#支出合计：0笔，共0.00元\r\n", "exactly one"),
        ("1.00", "0.00", "#收入合计：1笔，共1.00元\r\n", "no #支出合计"),
        ("1.00", "0.00", "#收入合计：1笔，共1.01元\r\n#支出合计：0笔，共0.00元\r\n", "#收入合计 says"),
    ],
)
def test_account_damage(tmp_path: Path, income: str, expense: str, trailer: str, found: str) -> None:
    path = make_zip(
        tmp_path / "bill.zip", {"账务明细.csv": account_text(income, expense, trailer).encode("gbk")}
    )
    with pytest.raises(StatementDamaged, match=found):
        read(path, "signcustomer")


def test_bad_totals_from_the_generator_are_damage(tmp_path: Path) -> None:
    for bill_type in ("trade", "signcustomer"):
        path = tmp_path / f"{bill_type}.zip"
        with path.open("wb") as out:
            write_bill(out, DAY, BillShape(bill_type, 12, bad_totals=True), seed=1)
        with pytest.raises(StatementDamaged, match="合计 says"):
            read(path, bill_type)


DATA = Path(__file__).resolve().parent / "data" / "alipay"


def fixture_zip(path: Path, detail: str, summary: str, kind: str = "业务明细") -> Path:
    """A fixture of tests/data/alipay zipped as Alipay zips it: the 汇总 member first, GBK names."""
    stem = "20881234567890120156_20260301"
    members = {f"{stem}_{kind}(汇总).csv": (DATA / summary).read_bytes()}
    members[f"{stem}_{kind}.csv"] = (DATA / detail).read_bytes()
    return make_zip(path / "bill.zip", members)


def test_the_real_trailers_are_read_by_count_and_first_amount_and_kept_whole(tmp_path: Path) -> None:
    """Alipay's own wording: the refund trailer says 商家实收退款共, the discount comes second."""
    rows, totals = read(fixture_zip(tmp_path, "trade_detail.csv", "trade_summary.csv"))
    assert [(r.direction, r.amount, r.fee) for r in rows] == [
        ("C", Decimal("128.00"), Decimal("0.77")),
        ("C", Decimal("35.50"), Decimal("0.21")),
        ("D", Decimal("10.00"), Decimal("-0.06")),
        ("D", Decimal("5.50"), Decimal("-0.03")),
        ("C", Decimal("0.01"), Decimal("0.00")),
        ("D", Decimal("0.01"), Decimal("0.00")),
    ]
    # One payment refunded twice: each refund is its own row, keyed by its batch.
    assert [r.serial_no for r in rows[1:4]] == [
        "2026030122001411110000000102",
        "2026030122001411110000000102/RF202603010002A",
        "2026030122001411110000000102/RF202603010002B",
    ]
    assert (totals.credit_count, totals.credit_total, totals.debit_count, totals.debit_total) == (  # type: ignore[attr-defined]
        3, Decimal("163.51"), 3, Decimal("15.51"),
    )  # fmt: skip
    assert totals.fee_total == Decimal("0.89")  # type: ignore[attr-defined]
    assert totals.summary["交易合计"] == "3笔，商家实收共163.51元，商家优惠共4.50元"  # type: ignore[attr-defined]
    assert totals.summary["退款合计"] == "3笔，商家实收退款共-15.51元，商家优惠退款共0.00元"  # type: ignore[attr-defined]


def test_the_older_trailer_wording_and_a_refund_trailer_of_no_refunds_are_read(tmp_path: Path) -> None:
    rows, totals = read(fixture_zip(tmp_path, "trade_older_detail.csv", "trade_summary.csv"))
    assert [(r.direction, r.amount) for r in rows] == [("C", Decimal("0.03")), ("C", Decimal("0.05"))]
    assert (totals.credit_count, totals.credit_total, totals.debit_count) == (2, Decimal("0.08"), 0)  # type: ignore[attr-defined]
    assert totals.summary["退款合计"] == "0笔，交易退款金额共0.00元，优惠退款金额共0.00元"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("wording", "found"),
    [
        ("#交易合计：4笔，商家实收共163.51元", "#交易合计 says 4 rows of 163.51"),
        ("#交易合计：3笔，商家实收共168.01元，商家优惠共0.00元", "#交易合计 says 3 rows of 168.01"),
        # The discount is the second amount: a trailer whose first amount is it is damage.
        ("#交易合计：3笔，商家优惠共4.50元，商家实收共163.51元", "#交易合计 says 3 rows of 4.50"),
        ("#交易合计：三笔，共163.51元", "#交易合计 is not 'N笔，...共X元"),
        ("#交易合计：3笔，商家实收163.51元", "#交易合计 is not 'N笔，...共X元"),
    ],
)
def test_a_trailer_that_disagrees_or_gives_no_count_and_amount_is_damage(
    tmp_path: Path, wording: str, found: str
) -> None:
    text = (DATA / "trade_detail.csv").read_bytes().decode("gbk")
    text = text.replace("#交易合计：3笔，商家实收共163.51元，商家优惠共4.50元", wording)
    with pytest.raises(StatementDamaged, match=re.escape(found)):
        read(trade_zip(tmp_path, text))
