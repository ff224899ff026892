"""WeChat Pay bills as the API serves them: gzip of UTF-8 CSV, deterministic from a seed.

Trade bills hold payments and, in ALL and REFUND bills, refunds with their negative fee;
fees carry five decimals. As in WeChat Pay's own bills (docs/sources/wechatpay.md), a refund
row's 应结订单金额 and 订单金额 are 0.00, a REFUND bill's 交易时间 is the refunded payment's
(days before; 退款申请时间 and 退款成功时间 are the bill date's), and every layout, SUCCESS
too, ends with the same seven summary columns. Fund-flow bills hold income and spending with
the balance after each. ``write_bill`` streams a bill of any size into a gzip file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import IO, Literal

TRADE_ALL_COLUMNS = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
]
_REFUND_COLUMNS = (
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "申请退款金额",
)
TRADE_SUCCESS_COLUMNS = [name for name in TRADE_ALL_COLUMNS if name not in _REFUND_COLUMNS]
_REFUND_TIMES_AT = TRADE_ALL_COLUMNS.index("代金券金额") + 1
TRADE_REFUND_COLUMNS = [
    *TRADE_ALL_COLUMNS[:_REFUND_TIMES_AT],
    "退款申请时间",
    "退款成功时间",
    *TRADE_ALL_COLUMNS[_REFUND_TIMES_AT:],
]
TRADE_SUMMARY = [
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
]
FUND_FLOW_COLUMNS = [
    "记账时间",
    "微信支付业务单号",
    "资金流水单号",
    "业务名称",
    "业务类型",
    "收支类型",
    "收支金额(元)",
    "账户结余(元)",
    "资金变更提交申请人",
    "备注",
    "业务凭证号",
]
FUND_FLOW_SUMMARY = ["资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额"]
EXTRA_COLUMN = "营销详情"
_GOODS = ("咖啡", "早餐套餐", "会员月卡", "Coffee beans 1kg", "停车费")
_TRADE_TYPES = ("JSAPI", "NATIVE", "APP", "MICROPAY")
_BANKS = ("OTHERS", "CMB_DEBIT", "ICBC_CREDIT", "CFT")
# A fee of 0.60 % on an amount in cents, in hundred-thousandths of a yuan (five decimals).
_FEE_UNITS_PER_CENT = 6
_BATCH = 10_000
_Summary = Callable[[], list[str]]


@dataclass(frozen=True)
class BillShape:
    """What a generated bill looks like, and how it is broken when a test asks for that."""

    bill: Literal["tradebill", "fundflowbill"] = "tradebill"
    bill_type: str = "ALL"  # tradebill: ALL, SUCCESS or REFUND
    rows: int = 20
    refund_every: int = 5  # ALL: every Nth row is a refund
    mchid: str = "1900009191"
    bom: bool = False
    shuffled_columns: bool = False  # columns in another order than the documented one
    extra_column: bool = False  # a column the documentation does not know, at the end
    bad_summary: bool = False  # 总交易单数 / 资金流水总笔数 one more than the rows
    line_end: Literal["\n", "\r\n"] = "\n"  # some merchants' bills end their lines in CRLF


@dataclass
class _Sums:
    payments: int = 0
    payment_cents: int = 0
    refunds: int = 0
    refund_cents: int = 0
    fee_units: int = 0


def _yuan(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _fee(units: int) -> str:
    sign = "-" if units < 0 else ""
    return f"{sign}{abs(units) // 100_000}.{abs(units) % 100_000:05d}"


def bill_lines(bill_date: date, shape: BillShape, seed: int = 1) -> Iterator[str]:
    """The bill's lines, each ending in LF; the first with a BOM when the shape says so."""
    rng = random.Random(seed * 1_000_003 + bill_date.toordinal())
    if shape.bill == "tradebill":
        columns, summary_columns, rows, summary = _trade(bill_date, shape, rng)
    else:
        columns, summary_columns, rows, summary = _fund_flow(bill_date, shape, rng)
    order = list(range(len(columns)))
    if shape.shuffled_columns:
        random.Random(seed).shuffle(order)
    if shape.extra_column:
        columns = [*columns, EXTRA_COLUMN]
        order.append(len(order))
    end = shape.line_end
    yield ("\ufeff" if shape.bom else "") + ",".join(columns[i] for i in order) + end
    extra = ["无"] if shape.extra_column else []
    for values in rows:
        values += extra
        yield "`" + ",`".join([values[i] for i in order]) + end
    yield ",".join(summary_columns) + end
    yield "`" + ",`".join(summary()) + end


def write_bill(
    out: IO[bytes], bill_date: date, shape: BillShape, seed: int = 1, compresslevel: int = 6
) -> str:
    """The bill, gzipped, into ``out``; returns the SHA-1 of the bill before gzip, as WeChat Pay's
    ``hash_value`` gives it. A million rows take seconds and little memory."""
    sha1 = hashlib.sha1(usedforsecurity=False)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=compresslevel, mtime=0) as packed:
        for data in _batches(bill_lines(bill_date, shape, seed)):
            sha1.update(data)
            packed.write(data)
    return sha1.hexdigest()


def write_served(out: IO[bytes], bill: bytes) -> str:
    """A bill's own bytes, gzipped into ``out`` as WeChat Pay serves them; their SHA-1 (``hash_value``)."""
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as packed:
        packed.write(bill)
    return hashlib.sha1(bill, usedforsecurity=False).hexdigest()


def _batches(lines: Iterator[str]) -> Iterator[bytes]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == _BATCH:
            yield "".join(batch).encode("utf-8")
            batch.clear()
    yield "".join(batch).encode("utf-8")


def bill_bytes(bill_date: date, shape: BillShape, seed: int = 1) -> bytes:
    out = io.BytesIO()
    write_bill(out, bill_date, shape, seed)
    return out.getvalue()


def _moments(bill_date: date, rows: int, rng: random.Random) -> Iterator[str]:
    start = datetime.combine(bill_date, time())
    step = 86_400 / max(rows, 1)
    for i in range(rows):
        yield (start + timedelta(seconds=int(i * step + rng.random() * step))).strftime("%Y-%m-%d %H:%M:%S")


def _trade(
    bill_date: date, shape: BillShape, rng: random.Random
) -> tuple[list[str], list[str], Iterator[list[str]], _Summary]:
    sums = _Sums()
    columns = {"ALL": TRADE_ALL_COLUMNS, "SUCCESS": TRADE_SUCCESS_COLUMNS, "REFUND": TRADE_REFUND_COLUMNS}[
        shape.bill_type
    ]
    day = f"{bill_date:%Y%m%d}"
    earlier = f"{bill_date - timedelta(days=3):%Y%m%d}"

    def rows() -> Iterator[list[str]]:
        for i, moment in enumerate(_moments(bill_date, shape.rows, rng)):
            paid_at = f"{bill_date - timedelta(days=3):%Y-%m-%d}{moment[10:]}"
            refund = shape.bill_type == "REFUND" or (
                shape.bill_type == "ALL"
                and shape.refund_every
                and i % shape.refund_every == shape.refund_every - 1
            )
            cents = rng.randint(1, 200_000)
            fee_units = cents * _FEE_UNITS_PER_CENT
            row = {
                # A REFUND bill's 交易时间 is the payment's; an ALL bill's, the refund's.
                "交易时间": paid_at if shape.bill_type == "REFUND" else moment,
                "公众账号ID": "wx2421b1c4370ec43b",
                "商户号": shape.mchid,
                "特约商户号": "0",
                "设备号": "",
                "用户标识": f"oUpF8uMuAJO_M2pxb1Q9zNjW{i:06d}",
                "交易类型": _TRADE_TYPES[i % len(_TRADE_TYPES)],
                "付款银行": _BANKS[i % len(_BANKS)],
                "货币种类": "CNY",
                "代金券金额": "0.00",
                "充值券退款金额": "0.00",
                "商品名称": _GOODS[i % len(_GOODS)],
                "商户数据包": "",
                "费率": "0.60%",
                "费率备注": "",
            }
            if refund:
                refunded = rng.randint(1, cents)
                row |= {
                    "微信订单号": f"42000{earlier}{i:015d}",
                    "商户订单号": f"ORD{earlier}{i:09d}",
                    "交易状态": "REFUND",
                    "应结订单金额": "0.00",
                    "微信退款单号": f"50300{day}{i:015d}",
                    "商户退款单号": f"REF{day}{i:09d}",
                    "退款金额": _yuan(refunded),
                    "退款类型": "ORIGINAL",
                    "退款状态": "SUCCESS",
                    "手续费": _fee(-refunded * _FEE_UNITS_PER_CENT),
                    "订单金额": "0.00",
                    "申请退款金额": _yuan(refunded),
                    "退款申请时间": moment,
                    "退款成功时间": moment,
                }
                sums.refunds += 1
                sums.refund_cents += refunded
                sums.fee_units -= refunded * _FEE_UNITS_PER_CENT
            else:
                row |= {
                    "微信订单号": f"42000{day}{i:015d}",
                    "商户订单号": f"ORD{day}{i:09d}",
                    "交易状态": "SUCCESS",
                    "应结订单金额": _yuan(cents),
                    "微信退款单号": "0",
                    "商户退款单号": "0",
                    "退款金额": "0.00",
                    "退款类型": "",
                    "退款状态": "",
                    "手续费": _fee(fee_units),
                    "订单金额": _yuan(cents),
                    "申请退款金额": "0.00",
                }
                sums.payments += 1
                sums.payment_cents += cents
                sums.fee_units += fee_units
            yield [row[name] for name in columns]

    def summary() -> list[str]:
        count = sums.payments + sums.refunds + (1 if shape.bad_summary else 0)
        values = {
            "总交易单数": str(count),
            "应结订单总金额": _yuan(sums.payment_cents),
            "退款总金额": _yuan(sums.refund_cents),
            "充值券退款总金额": "0.00",
            "手续费总金额": _fee(sums.fee_units),
            "订单总金额": _yuan(sums.payment_cents),
            "申请退款总金额": _yuan(sums.refund_cents),
        }
        return [values[name] for name in summary_columns]

    summary_columns = TRADE_SUMMARY
    return list(columns), summary_columns, rows(), summary


def _fund_flow(
    bill_date: date, shape: BillShape, rng: random.Random
) -> tuple[list[str], list[str], Iterator[list[str]], _Summary]:
    sums = _Sums()
    day = f"{bill_date:%Y%m%d}"

    def rows() -> Iterator[list[str]]:
        balance = 1_000_000
        for i, moment in enumerate(_moments(bill_date, shape.rows, rng)):
            income = i % 4 != 3
            cents = rng.randint(1, 50_000) if income else rng.randint(1, 5_000)
            balance += cents if income else -cents
            if income:
                sums.payments += 1
                sums.payment_cents += cents
            else:
                sums.refunds += 1
                sums.refund_cents += cents
            yield [
                moment,
                f"42000{day}{i:015d}",
                f"{shape.mchid}{day}{i:010d}",
                "交易" if income else "退款",
                "交易" if income else "退款",
                "收入" if income else "支出",
                _yuan(cents),
                _yuan(balance),
                "system",
                "" if income else "缺货",
                f"ORD{day}{i:09d}" if income else f"REF{day}{i:09d}",
            ]

    def summary() -> list[str]:
        count = sums.payments + sums.refunds + (1 if shape.bad_summary else 0)
        # WeChat Pay writes these counts as floats.
        return [
            f"{count}.0",
            f"{sums.payments}.0",
            _yuan(sums.payment_cents),
            f"{sums.refunds}.0",
            _yuan(sums.refund_cents),
        ]

    return list(FUND_FLOW_COLUMNS), list(FUND_FLOW_SUMMARY), rows(), summary
