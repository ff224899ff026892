"""Alipay bill zips as Alipay writes them: GBK CSV members with GBK names, '#' lines, trailing tabs.

The rows are made from a seed, so the same shape and seed always give the same zip. A trade
bill has a payment (交易) in most rows and a refund (退款, negative) in every tenth; an account
bill alternates income and expense rows with a running balance.
"""

from __future__ import annotations

import io
import random
import zipfile
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
_RULE = "#-----------------------------------------"


@dataclass(frozen=True)
class BillShape:
    bill_type: Literal["trade", "signcustomer"]
    rows: int
    pid: str = "2088000000000156"
    extra_column: bool = False  # a column this code does not know, before the last
    bad_totals: bool = False  # the trailer's first total counts one row more
    member_names: Literal["gbk", "utf8"] = "gbk"


class _GbkName(zipfile.ZipInfo):
    """A member whose name is written in GBK without the UTF-8 flag, as Alipay's are."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("gbk"), self.flag_bits


def write_bill(out: IO[bytes], bill_date: date, shape: BillShape, seed: int) -> None:
    """The bill zip of ``bill_date`` into ``out``: the detail member, then its summary member."""
    stem = f"{shape.pid}0156_{bill_date:%Y%m%d}"
    kind = "业务明细" if shape.bill_type == "trade" else "账务明细"
    make = _GbkName if shape.member_names == "gbk" else zipfile.ZipInfo
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        detail = make(
            f"{stem}_{kind}.csv", date_time=(bill_date.year, bill_date.month, bill_date.day, 5, 46, 49)
        )
        detail.compress_type = zipfile.ZIP_DEFLATED
        with (
            archive.open(detail, "w", force_zip64=True) as member,
            io.TextIOWrapper(member, encoding="gbk", newline="") as text,
        ):
            writer = _trade_rows if shape.bill_type == "trade" else _account_rows
            writer(text, bill_date, shape, random.Random(seed))
        summary = make(f"{stem}_{kind}(汇总).csv", date_time=detail.date_time)
        summary.compress_type = zipfile.ZIP_DEFLATED
        title = "#支付宝业务汇总查询" if shape.bill_type == "trade" else "#支付宝账务汇总查询"
        archive.writestr(summary, f"{title}\r\n#账号：[{shape.pid}0156]\r\n".encode("gbk"))


def _head(text: IO[str], title: str, bill_date: date, shape: BillShape, columns: list[str]) -> list[str]:
    day = f"{bill_date:%Y年%m月%d日}"
    text.write(f"{title}\r\n#账号：[{shape.pid}0156]\r\n")
    text.write(f"#起始日期：[{day} 00:00:00]   终止日期：[{day} 23:59:59]\r\n")
    text.write(f"{_RULE}{'业务明细列表' if 'trade' in shape.bill_type else '账务明细列表'}{_RULE[1:]}\r\n")
    if shape.extra_column:
        columns = [*columns[:-1], EXTRA_COLUMN, columns[-1]]
    text.write(",".join(columns) + "\r\n")
    return columns


def _trade_rows(text: IO[str], bill_date: date, shape: BillShape, rng: random.Random) -> None:
    _head(text, "#支付宝业务明细查询", bill_date, shape, TRADE_COLUMNS)
    start = datetime.combine(bill_date, datetime.min.time())
    paid = refunded = Decimal("0.00")
    paid_count = refund_count = 0
    extra = "x\t," if shape.extra_column else ""
    for n in range(shape.rows):
        at = start + timedelta(seconds=n * 86399 // max(shape.rows, 1))
        trade_no = f"{bill_date:%Y%m%d}2200{n:014d}"
        order_no = f"ORDER{n:010d}"
        refund = n % 10 == 9
        amount = Decimal(rng.randint(1, 99999)) / 100
        fee = (amount * Decimal("0.006")).quantize(Decimal("0.01"))
        if refund:
            amount, fee = -amount, -fee
            refunded += amount
            refund_count += 1
        else:
            paid += amount
            paid_count += 1
        created = f"{at:%Y-%m-%d %H:%M:%S}"
        text.write(
            f"{trade_no}\t,{order_no}\t,{'退款' if refund else '交易'}\t,商品{n % 7},{created},{created},"
            f"store1\t,旗舰店\t,op\t,\t,*三(a***@example.com)\t,{amount},{amount},0.00,0.00,0.00,0.00,0.00,,"
            f"0.00\t,0.00,{f'RF{n:010d}' if refund else ''}\t,{fee},0.00,{extra}备注{n % 3}\r\n"
        )
    if shape.bad_totals:
        paid_count += 1
    text.write(f"{_RULE}业务明细列表结束{_RULE[1:]}\r\n")
    text.write(f"#交易合计：{paid_count}笔，商家实收共{paid}元，商家优惠共0.00元\r\n")
    text.write(f"#退款合计：{refund_count}笔，商家实收共{refunded}元，商家优惠共0.00元\r\n")
    text.write(f"#导出时间：[{bill_date + timedelta(days=1):%Y年%m月%d日} 05:46:49]\r\n")


def _account_rows(text: IO[str], bill_date: date, shape: BillShape, rng: random.Random) -> None:
    _head(text, "#支付宝账务明细查询", bill_date, shape, ACCOUNT_COLUMNS)
    start = datetime.combine(bill_date, datetime.min.time())
    balance = Decimal("10000.00")
    counts = {"收入": 0, "支出": 0}
    sums = {"收入": Decimal("0.00"), "支出": Decimal("0.00")}
    extra = "x\t," if shape.extra_column else ""
    for n in range(shape.rows):
        at = start + timedelta(seconds=n * 86399 // max(shape.rows, 1))
        amount = Decimal(rng.randint(1, 99999)) / 100
        income = n % 3 != 2
        balance += amount if income else -amount
        side = "收入" if income else "支出"
        counts[side] += 1
        sums[side] += amount
        text.write(
            f"{bill_date:%Y%m%d}{n:012d}\t,{bill_date:%Y%m%d}2200{n:014d}\t,ORDER{n:010d}\t,商品{n % 7}\t,"
            f"{at:%Y-%m-%d %H:%M:%S},*三(a***@example.com)\t,{amount if income else '0.00'},"
            f"{'0.00' if income else -amount},{balance},支付宝,{'在线支付' if income else '提现'},{extra}\r\n"
        )
    if shape.bad_totals:
        counts["收入"] += 1
    text.write(f"{_RULE}账务明细列表结束{_RULE[1:]}\r\n")
    text.write(f"#收入合计：{counts['收入']}笔，共{sums['收入']}元\r\n")
    text.write(f"#支出合计：{counts['支出']}笔，共-{sums['支出']}元\r\n")
    text.write(f"#导出时间：[{bill_date + timedelta(days=1):%Y年%m月%d日} 05:46:49]\r\n")
