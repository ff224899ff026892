"""Alipay bill zips as Alipay writes them: GBK CSV members with GBK names, '#' lines, trailing tabs.

The rows are made from a seed, so the same shape and seed always give the same zip. A trade
bill has a payment (交易) in most rows and a refund (退款, negative) in every tenth, and ends
with both trailers in Alipay's words (``#交易合计：N笔，商家实收共X元，商家优惠共0.00元``,
``#退款合计：N笔，商家实收退款共-X元，...``, even without refunds); an account bill alternates
income and expense rows with a running balance, 0.00 on the side a row does not use, and ends
``#支出合计`` before ``#收入合计``. The summary member (汇总) comes first, as in Alipay's zips
(docs/sources/alipay.md).
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import IO, Literal

TRADE_COLUMNS = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
]
ACCOUNT_COLUMNS = [
    "账务流水号",
    "业务流水号",
    "商户订单号",
    "商品名称",
    "发生时间",
    "对方账号",
    "收入金额（+元）",
    "支出金额（-元）",
    "账户余额（元）",
    "交易渠道",
    "业务类型",
    "备注",
]
EXTRA_COLUMN = "新增字段"
TRADE_SUMMARY_COLUMNS = [
    "门店编号",
    "门店名称",
    "交易订单总笔数",
    "退款订单总笔数",
    "订单金额（元）",
    "商家实收（元）",
    "服务费（元）",
    "实收净额（元）",
]
ACCOUNT_SUMMARY_COLUMNS = [
    "类型",
    "收入笔数",
    "收入金额（+元）",
    "支出笔数",
    "支出金额（-元）",
    "总金额（元）",
]
# The trailers' words: today's, and the older ones quoted from merchants' bills.
WORDINGS = {
    "current": ("商家实收共{paid}元，商家优惠共0.00元", "商家实收退款共{refunded}元，商家优惠退款共0.00元"),
    "older": ("交易金额共{paid}元，优惠金额共0.00元", "交易退款金额共{refunded}元，优惠退款金额共0.00元"),
}
_DASHES = "-" * 41


def rule(title: str, *, end: bool = False) -> str:
    """A ``#-----...-----`` line around a table, as long as Alipay's own."""
    return f"#{_DASHES}{title}{'-' * (36 if end else 40)}"


@dataclass(frozen=True)
class BillShape:
    bill_type: Literal["trade", "signcustomer"]
    rows: int
    pid: str = "2088000000000156"
    extra_column: bool = False  # a column this code does not know, before the last
    bad_totals: bool = False  # the trailer's first total counts one row more
    member_names: Literal["gbk", "utf8"] = "gbk"
    wording: Literal["current", "older"] = "current"  # the trade trailers' words


class _GbkName(zipfile.ZipInfo):
    """A member whose name is written in GBK without the UTF-8 flag, as Alipay's are."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("gbk"), self.flag_bits


def member_names(account: str, bill_date: date, bill_type: str) -> tuple[str, str]:
    """The detail and the summary member's names of an account's bill of ``bill_date``."""
    kind = "业务明细" if bill_type == "trade" else "账务明细"
    stem = f"{account}_{bill_date:%Y%m%d}"
    return f"{stem}_{kind}.csv", f"{stem}_{kind}(汇总).csv"


def write_members(
    out: IO[bytes],
    members: Sequence[tuple[str, bytes]],
    made_at: datetime,
    names: Literal["gbk", "utf8"] = "gbk",
) -> None:
    """Members zipped as Alipay zips them, in the order given: deflated, stamped ``made_at``."""
    make = _GbkName if names == "gbk" else zipfile.ZipInfo
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            info = make(name, date_time=made_at.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)


def write_bill(out: IO[bytes], bill_date: date, shape: BillShape, seed: int) -> None:
    """The bill zip of ``bill_date`` into ``out``: the summary member (汇总) first, as Alipay's, then
    the detail member, streamed (a bill of a million rows takes little memory)."""
    account = f"{shape.pid}0156"
    detail_name, summary_name = member_names(account, bill_date, shape.bill_type)
    make = _GbkName if shape.member_names == "gbk" else zipfile.ZipInfo
    exported = datetime.combine(bill_date + timedelta(days=1), datetime.min.time()) + timedelta(
        hours=5, minutes=46, seconds=49
    )
    writer = _trade_rows if shape.bill_type == "trade" else _account_rows
    # The summary comes first but holds the detail's totals: a first pass counts them.
    sums = writer(_Uncounted(), bill_date, shape, random.Random(seed), exported)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        summary = make(summary_name, date_time=exported.timetuple()[:6])
        summary.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(summary, _summary_text(bill_date, shape, sums, exported).encode("gbk"))
        detail = make(detail_name, date_time=exported.timetuple()[:6])
        detail.compress_type = zipfile.ZIP_DEFLATED
        with (
            archive.open(detail, "w", force_zip64=True) as member,
            io.TextIOWrapper(member, encoding="gbk", newline="") as text,
        ):
            writer(text, bill_date, shape, random.Random(seed), exported)


class _Uncounted(io.StringIO):
    """Text that is only counted: the first pass over a bill's rows keeps none of them."""

    def write(self, text: str) -> int:
        return len(text)


@dataclass
class _Sums:
    """What a bill's rows add up to, by side (交易/退款, 收入/支出)."""

    counts: dict[str, int]
    amounts: dict[str, Decimal]
    fees: Decimal = Decimal("0.00")

    @classmethod
    def of(cls, *sides: str) -> _Sums:
        return cls({side: 0 for side in sides}, {side: Decimal("0.00") for side in sides})

    def add(self, side: str, amount: Decimal, fee: Decimal = Decimal("0.00")) -> None:
        self.counts[side] += 1
        self.amounts[side] += amount
        self.fees += fee


def _head(text: IO[str], title: str, bill_date: date, shape: BillShape, listing: str) -> None:
    text.write(f"{title}\r\n#账号：[{shape.pid}0156]\r\n")
    text.write(
        f"#起始日期：[{bill_date:%Y年%m月%d日} 00:00:00]   "
        f"终止日期：[{bill_date + timedelta(days=1):%Y年%m月%d日} 00:00:00]\r\n"
    )
    text.write(f"{rule(listing)}\r\n")


def _columns(columns: list[str], shape: BillShape) -> list[str]:
    return [*columns[:-1], EXTRA_COLUMN, columns[-1]] if shape.extra_column else columns


def _summary_text(bill_date: date, shape: BillShape, sums: _Sums, exported: datetime) -> str:
    """The 汇总 member: one line per kind of movement (account bill) or the store (trade bill)."""
    text = io.StringIO()
    if shape.bill_type == "trade":
        _head(text, "#支付宝业务汇总查询", bill_date, shape, "业务汇总列表")
        net = sums.amounts["交易"] + sums.amounts["退款"]
        text.write(",".join(TRADE_SUMMARY_COLUMNS) + "\r\n")
        counts = f"{sums.counts['交易']},{sums.counts['退款']}"
        for store in ("store1\t,旗舰店\t", "合计\t,\t"):
            text.write(f"{store},{counts},{net},{net},{sums.fees},{net - sums.fees}\r\n")
        text.write(f"{rule('业务汇总列表结束', end=True)}\r\n")
    else:
        _head(text, "#支付宝账务汇总查询", bill_date, shape, "账务汇总列表")
        income, expense = sums.amounts["收入"], sums.amounts["支出"]
        text.write(",".join(ACCOUNT_SUMMARY_COLUMNS) + "\r\n")
        text.write(
            f"合计\t,{sums.counts['收入']}\t,{income}\t,{sums.counts['支出']}\t,-{expense}\t,"
            f"{income - expense}\t\r\n"
        )
        text.write(f"{rule('账务汇总列表结束', end=True)}\r\n")
    text.write(f"#导出时间：[{exported:%Y年%m月%d日 %H:%M:%S}]\r\n")
    return text.getvalue()


def _trade_rows(
    text: IO[str], bill_date: date, shape: BillShape, rng: random.Random, exported: datetime
) -> _Sums:
    _head(text, "#支付宝业务明细查询", bill_date, shape, "业务明细列表")
    text.write(",".join(_columns(TRADE_COLUMNS, shape)) + "\r\n")
    start = datetime.combine(bill_date, datetime.min.time())
    sums = _Sums.of("交易", "退款")
    extra = "x\t," if shape.extra_column else ""
    for n in range(shape.rows):
        at = start + timedelta(seconds=n * 86399 // max(shape.rows, 1))
        trade_no = f"{bill_date:%Y%m%d}2200{n:014d}"
        order_no = f"ORDER{n:010d}"
        refund = n % 10 == 9
        amount = Decimal(rng.randint(1, 99999)).scaleb(-2)
        fee = (amount * Decimal("0.006")).quantize(Decimal("0.01"))
        if refund:
            amount, fee = -amount, -fee
        sums.add("退款" if refund else "交易", amount, fee)
        created = f"{at:%Y-%m-%d %H:%M:%S}"
        text.write(
            f"{trade_no}\t,{order_no}\t,{'退款' if refund else '交易'}\t,商品{n % 7},{created},{created},"
            f"store1\t,旗舰店\t,op\t,\t,*三(a***@example.com)\t,{amount},{amount},0.00,0.00,0.00,0.00,0.00,,"
            f"0.00\t,0.00,{f'RF{n:010d}' if refund else ''}\t,{fee},0.00,{extra}备注{n % 3}\r\n"
        )
    paid_words, refund_words = WORDINGS[shape.wording]
    paid = paid_words.format(paid=sums.amounts["交易"])
    refunded = refund_words.format(refunded=sums.amounts["退款"])
    text.write(f"{rule('业务明细列表结束', end=True)}\r\n")
    text.write(f"#交易合计：{sums.counts['交易'] + (1 if shape.bad_totals else 0)}笔，{paid}\r\n")
    # Alipay writes the refund trailer even for a day without refunds.
    text.write(f"#退款合计：{sums.counts['退款']}笔，{refunded}\r\n")
    text.write(f"#导出时间：[{exported:%Y年%m月%d日 %H:%M:%S}]\r\n")
    return sums


def _account_rows(
    text: IO[str], bill_date: date, shape: BillShape, rng: random.Random, exported: datetime
) -> _Sums:
    _head(text, "#支付宝账务明细查询", bill_date, shape, "账务明细列表")
    text.write(",".join(_columns(ACCOUNT_COLUMNS, shape)) + "\r\n")
    start = datetime.combine(bill_date, datetime.min.time())
    balance = Decimal("10000.00")
    sums = _Sums.of("收入", "支出")
    extra = "x\t," if shape.extra_column else ""
    for n in range(shape.rows):
        at = start + timedelta(seconds=n * 86399 // max(shape.rows, 1))
        amount = Decimal(rng.randint(1, 99999)).scaleb(-2)
        income = n % 3 != 2
        balance += amount if income else -amount
        sums.add("收入" if income else "支出", amount)
        # Every row has 0.00 on the side it does not use; 备注 ends in a tab like the rest.
        text.write(
            f"{bill_date:%Y%m%d}{n:012d}\t,{bill_date:%Y%m%d}2200{n:014d}\t,ORDER{n:010d}\t,商品{n % 7}\t,"
            f"{at:%Y-%m-%d %H:%M:%S},*三(a***@example.com)\t,{amount if income else '0.00'},"
            f"{'0.00' if income else -amount},{balance},支付宝,{'在线支付' if income else '提现'},"
            f"{extra}\t\r\n"
        )
    text.write(f"{rule('账务明细列表结束', end=True)}\r\n")
    # Alipay writes the expense trailer first, its total negative.
    text.write(f"#支出合计：{sums.counts['支出']}笔，共-{sums.amounts['支出']}元\r\n")
    text.write(
        f"#收入合计：{sums.counts['收入'] + (1 if shape.bad_totals else 0)}笔，共{sums.amounts['收入']}元\r\n"
    )
    text.write(f"#导出时间：[{exported:%Y年%m月%d日 %H:%M:%S}]\r\n")
    return sums
