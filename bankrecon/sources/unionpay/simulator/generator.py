"""UnionPay settlement zips as the file transfer serves them, deterministic from a seed.

A day holds purchases, every ``refund_every``-th record a refund and every
``reversal_every``-th a reversal, trades from 23:00 the day before to 23:00; fees of 0.6 %
are taken from purchases and given back on refunds and reversals. ``write_settlement_zip``
streams a file of any size.
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import IO

from bankrecon.sources.unionpay.records import ZM_FIELDS, ZME_WIDTHS

GBK_MEMBER = "商户交易汇总表_{mer_id}.txt"
_BATCH = 10_000
_SUB_MERCHANTS = ("", "", "", "测试二级商户", "Coffee 分店")


@dataclass(frozen=True)
class SettlementShape:
    """What a generated settlement file looks like, and how it is broken when a test asks."""

    rows: int = 20
    refund_every: int = 5
    reversal_every: int = 7
    error_records: int = 1
    gbk_member_names: bool = False  # a summary member whose name is GBK, without the UTF-8 flag
    net_mismatch: bool = False  # one record's 结算金额 a fen off 交易金额 net of 商户手续费
    wrong_length: bool = False  # one record a byte short
    extra_field: bool = False  # one record with a field the layout does not know
    unknown_member: bool = False  # a member of no known name (read past)


class _GbkNamed(zipfile.ZipInfo):
    """A member whose name zipfile writes in GBK without the UTF-8 flag (it writes UTF-8 otherwise)."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def _field(value: str, width: int) -> bytes:
    data = value.encode("gbk")
    if len(data) > width:
        raise ValueError(f"{value!r} is wider than {width} bytes")
    return data.ljust(width, b" ")


def _record(values: dict[str, str]) -> bytes:
    return b" ".join(_field(values.get(name, ""), width) for name, width in ZM_FIELDS)


def detail_member(settle_date: date, mer_id: str) -> str:
    return f"INN{settle_date:%y%m%d}88ZM_{mer_id}"


def error_member(settle_date: date, mer_id: str) -> str:
    return f"INN{settle_date:%y%m%d}88ZME_{mer_id}"


def _zm_records(settle_date: date, shape: SettlementShape, mer_id: str, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed * 1_000_003 + settle_date.toordinal())
    start = datetime.combine(settle_date - timedelta(days=1), time(23))
    step = 86_400 / max(shape.rows, 1)
    broken = shape.rows // 2
    for i in range(shape.rows):
        moment = start + timedelta(seconds=int(i * step + rng.random() * step))
        fen = rng.randint(1, 2_000_000)
        fee = fen * 6 // 1000
        if shape.refund_every and i % shape.refund_every == shape.refund_every - 1:
            kind, sign = "04", -1
        elif shape.reversal_every and i % shape.reversal_every == shape.reversal_every - 1:
            kind, sign = "31", -1
        else:
            kind, sign = "01", 1
        signed_fee = -sign * fee  # taken (D) from a purchase, given back (C) on a refund or reversal
        settled = sign * fen + signed_fee
        if shape.net_mismatch and i == broken:
            settled += 1
        query_id = f"{settle_date:%m%d}{seed % 1000:03d}{i:014d}"
        values = {
            "交易代码": "S56",
            "代理机构标识码": "88022900",
            "发送机构标识码": "00049993",
            "系统跟踪号": f"{i % 1_000_000:06d}",
            "交易传输时间": moment.strftime("%m%d%H%M%S"),
            "账号": "622609******0048",
            "交易金额": f"{fen:012d}",
            "商户类别": "4899",
            "终端类型": "07",
            "查询流水号": query_id,
            "支付方式(旧)": "01",
            "商户订单号": f"ORD{settle_date:%Y%m%d}{i:09d}",
            "支付卡类型": "01",
            "原始交易的系统跟踪号": "" if kind == "01" else f"{(i + 1) % 1_000_000:06d}",
            "原始交易日期时间": "" if kind == "01" else (moment - timedelta(hours=5)).strftime("%m%d%H%M%S"),
            "商户手续费": ("C" if signed_fee >= 0 else "D") + f"{abs(signed_fee):012d}",
            "结算金额": ("C" if settled >= 0 else "D") + f"{abs(settled):012d}",
            "支付方式": "0001",
            "交易类型": kind,
            "交易子类": "01",
            "业务类型": "000201",
            "账号类型": "01",
            "交互方式": "0",
            "原交易查询流水号": "" if kind == "01" else f"{settle_date:%m%d}{seed % 1000:03d}{i + 1:014d}",
            "商户代码": mer_id,
            "二级商户简称": _SUB_MERCHANTS[i % len(_SUB_MERCHANTS)],
            "终端号": "00000001",
            "交易介质": "1",
        }
        record = _record(values)
        if shape.wrong_length and i == broken:
            record = record[:-1]
        if shape.extra_field and i == broken:
            record += b" " + _field("EXTRA", 8)
        yield record


def _zme_records(settle_date: date, count: int, mer_id: str) -> Iterator[bytes]:
    for i in range(count):
        values = ["E22", "88022900", "00049993", f"{i:06d}", f"{settle_date:%m%d}120000", "622609******0048"]
        values += ["000000001000", "4899", "07", "01", f"{i:06d}", f"{settle_date:%m%d}110000", "0001"]
        values += ["000000001000", "D000000000006", "C000000000994", mer_id, "", "1", "", "01", "差错调整"]
        yield b" ".join(_field(value, width) for value, width in zip(values, ZME_WIDTHS, strict=True))


def write_settlement_zip(
    out: IO[bytes], settle_date: date, shape: SettlementShape, mer_id: str, seed: int = 1
) -> None:
    """The day's zip into ``out`` (seekable); a million records take seconds and little memory."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        with archive.open(detail_member(settle_date, mer_id), "w", force_zip64=True) as member:
            batch: list[bytes] = []
            for record in _zm_records(settle_date, shape, mer_id, seed):
                batch.append(record)
                if len(batch) == _BATCH:
                    member.write(b"\r\n".join(batch) + b"\r\n")
                    batch.clear()
            if batch:
                member.write(b"\r\n".join(batch) + b"\r\n")
        if shape.error_records:
            records = list(_zme_records(settle_date, shape.error_records, mer_id))
            archive.writestr(error_member(settle_date, mer_id), b"\r\n".join(records) + b"\r\n")
        summary = f"中国银联全渠道商户交易汇总表\r\n商户代码：{mer_id}\r\n清算日期：{settle_date:%Y%m%d}\r\n"
        archive.writestr(f"RD2010{settle_date:%y%m%d}01_{mer_id}", summary.encode("gbk"))
        if shape.gbk_member_names:
            # The name's bytes are GBK and the UTF-8 flag is off, as Chinese Windows zip tools write it.
            info = _GbkNamed(GBK_MEMBER.format(mer_id=mer_id), date_time=(2026, 1, 1, 0, 0, 0))
            archive.writestr(info, summary.encode("gbk"))
        if shape.unknown_member:
            archive.writestr(f"README_{mer_id}.txt", b"unknown member\r\n")


def settlement_zip(settle_date: date, shape: SettlementShape, mer_id: str, seed: int = 1) -> bytes:
    out = io.BytesIO()
    write_settlement_zip(out, settle_date, shape, mer_id, seed)
    return out.getvalue()
