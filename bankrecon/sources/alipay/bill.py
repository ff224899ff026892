"""Alipay bills: a zip of GBK CSV members, the detail member checked against its trailer, canonical rows.

The zip holds a detail member and a summary member (汇总) whose names are GBK without the
UTF-8 flag; the detail member is the one whose first line is ``#支付宝业务明细查询`` (trade) or
``#支付宝账务明细查询`` (signcustomer), whatever its name. It has ``#`` comment lines before
and after the table, a header row, and rows whose fields may end in a tab (dropped). Columns
are found by header name; every column, known or not, is kept in the row's ``details``.

Trade rows: 业务类型 交易 is a credit of 商家实收（元） keyed by 支付宝交易号; 退款 is a refund,
written negative, kept as a debit keyed by 支付宝交易号/退款批次号/请求号. ``#交易合计`` and
``#退款合计`` must give the count and the 商家实收 sum of each. Account (signcustomer) rows are
keyed by 账务流水号: a credit of 收入金额（+元） or a debit of 支出金额（-元）, whichever is set,
checked against ``#收入合计`` and ``#支出合计``.
"""

from __future__ import annotations

import _csv
import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Literal

from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey, StatementTotals
from bankrecon.sources.canonical_records import china_time, column_index, decode_to_records, name_repeated_key
from bankrecon.statements.canonical import CanonicalRow
from bankrecon.statements.common import ArchiveLimits, StatementDamaged
from bankrecon.statements.rowkeys import RowKeys
from bankrecon.statements.zipguard import ZIP_ERRORS, InflationGuard, zip_members

BillType = Literal["trade", "signcustomer"]
FIRST_LINES: dict[str, str] = {"trade": "#支付宝业务明细查询", "signcustomer": "#支付宝账务明细查询"}
MAX_LINE_CHARS = 64 * 1024
ENCODING = "gb18030"  # GBK's superset: a GBK file reads the same, and nothing GBK-like is refused
_FIRST_LINE_BYTES = 256
_PROGRESS_EVERY = 8192
_TEXT_BUFFER = 256 * 1024
_COMMENT = "#"
# Fees carry more decimals than amounts; past this many a value is not a fee either.
MAX_FEE_PLACES = 6
_PLAIN_DECIMAL = {
    places: re.compile(rf"-?[0-9]+(?:\.[0-9]{{1,{places}}})?").fullmatch for places in (2, MAX_FEE_PLACES)
}
# A trailer's count, then the first amount of its first clause, whatever its words: "6笔，商家实收共
# 0.06元，...", "4笔，商家实收退款共-0.04元，...", "4笔，交易金额共0.08元，...", "6笔，共-25133.56元".
_TOTAL_LINE = re.compile(r"([0-9]+)笔[，,][^，,]*?共(-?[0-9]+(?:\.[0-9]{1,2})?)元")


def decode_bill(
    data_dir: Path,
    key: StatementKey,
    archive: ArchiveRef,
    bill_type: BillType,
    limits: ArchiveLimits,
    on_progress: Callable[[int], None],
) -> DecodedStatement:
    """Check the whole bill; its records file exists only if every rule held."""
    return decode_to_records(
        data_dir, key, archive, lambda path, write: read_bill(path, bill_type, limits, write, on_progress)
    )


def read_bill(
    path: Path,
    bill_type: BillType,
    limits: ArchiveLimits,
    write: Callable[[CanonicalRow], None],
    on_progress: Callable[[int], None] = lambda _count: None,
) -> StatementTotals:
    """Every detail row of the bill zip at ``path`` to ``write``, in order; the totals, checked."""
    layout = _read(path, bill_type, limits, write, on_progress)
    repeated = layout.keys.repeated()
    if repeated:
        name_repeated_key(
            lambda check: _read(path, bill_type, limits, lambda row: check(row.serial_no), _no_progress),
            repeated,
            first_line=layout.first_row_line,
        )
    return layout.totals()


def _read(
    path: Path,
    bill_type: BillType,
    limits: ArchiveLimits,
    write: Callable[[CanonicalRow], None],
    on_progress: Callable[[int], None],
) -> _Layout:
    with path.open("rb") as file:
        try:
            with zipfile.ZipFile(file, metadata_encoding=ENCODING) as archive:
                info = _detail_member(archive, bill_type, limits)
                with archive.open(info) as member:
                    raw = _GuardedMember(member, info, InflationGuard(limits))
                    text = io.TextIOWrapper(
                        io.BufferedReader(raw, _TEXT_BUFFER), encoding=ENCODING, newline=""
                    )
                    return _read_member(text, bill_type, info.filename, write, on_progress)
        except ZIP_ERRORS as exc:
            # UnicodeDecodeError is a ValueError: name it as what it is.
            if isinstance(exc, UnicodeDecodeError):
                raise StatementDamaged("encoding", "not GBK text") from None
            raise StatementDamaged("archive", f"not a readable zip: {exc}") from None


def _detail_member(archive: zipfile.ZipFile, bill_type: BillType, limits: ArchiveLimits) -> zipfile.ZipInfo:
    """The one member whose first line names the bill, whatever its name."""
    wanted = FIRST_LINES[bill_type]
    found = [info for info in zip_members(archive, limits) if _first_line(archive, info) == wanted]
    if len(found) != 1:
        raise StatementDamaged("structure", f"the zip holds {len(found)} members starting {wanted}, not 1")
    return found[0]


def _first_line(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    with archive.open(info) as member:
        head = member.read(_FIRST_LINE_BYTES)
    return head.split(b"\n", 1)[0].decode(ENCODING, errors="replace").rstrip("\r\t ,")


class _GuardedMember(io.RawIOBase):
    """A member's bytes as inflated, each counted against the archive limits."""

    def __init__(self, member: IO[bytes], info: zipfile.ZipInfo, inflation: InflationGuard):
        self._member = member
        self._info = info
        self._inflation = inflation
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        piece = self._member.read(len(buffer))
        self._read += len(piece)
        self._inflation.add(len(piece), self._read, self._info, self._info.filename)
        buffer[: len(piece)] = piece
        return len(piece)


def _read_member(
    text: IO[str],
    bill_type: BillType,
    label: str,
    write: Callable[[CanonicalRow], None],
    on_progress: Callable[[int], None],
) -> _Layout:
    lines = _Lines(text)
    comments: list[str] = []
    line = lines.next()
    while line is not None and (line.startswith(_COMMENT) or not line.strip()):
        comments.append(line)
        line = lines.next()
    if line is None:
        raise StatementDamaged("header", "the bill has no header row", part=label, line=lines.number)
    header = _header(next(csv.reader([line]), []), lines.number)
    layout: _Layout = _TradeLayout(header) if bill_type == "trade" else _AccountLayout(header)
    layout.first_row_line = lines.number + 1
    reader = csv.reader(lines.table(), strict=True)
    try:
        _rows(reader, lines, layout, write, on_progress)
    except csv.Error as exc:
        raise StatementDamaged("csv", str(exc), part=label, line=lines.number) from None
    if lines.trailer_start is None:
        raise StatementDamaged("trailer", "the bill ends without its # totals lines", line=lines.number + 1)
    trailer = [lines.trailer_start]
    while (line := lines.next()) is not None:
        if line.strip() and not line.startswith(_COMMENT):
            raise StatementDamaged("trailer", "a row after the table's end", line=lines.number)
        trailer.append(line)
    layout.summary = _summary(comments + trailer)
    return layout


class _Lines:
    """The member's lines without their line ends, numbered, none longer than MAX_LINE_CHARS."""

    def __init__(self, text: IO[str]):
        self._readline = text.readline
        self.number = 0
        self.trailer_start: str | None = None

    def next(self) -> str | None:
        line = self._readline(MAX_LINE_CHARS + 1)
        if not line:
            return None
        self.number += 1
        if len(line) > MAX_LINE_CHARS:
            raise StatementDamaged(
                "line length", f"longer than {MAX_LINE_CHARS} characters", line=self.number
            )
        return line.rstrip("\r\n")

    def table(self) -> Iterator[str]:
        """The table's lines, up to the first ``#`` line, which is kept as ``trailer_start``."""
        while (line := self.next()) is not None:
            if line.startswith(_COMMENT):
                self.trailer_start = line
                return
            # Most fields end in a tab: dropped here in one pass over the line, not field by field.
            yield line.replace("\t,", ",").removesuffix("\t")


def _header(row: list[str], line: int) -> list[str]:
    names = [name.strip("\t ") for name in row]
    while names and not names[-1]:
        names.pop()  # a trailing comma
    if len(set(names)) != len(names) or not all(names):
        raise StatementDamaged("header", "a column name is empty or appears twice", line=line)
    return names


def _rows(
    reader: _csv.Reader,
    lines: _Lines,
    layout: _Layout,
    write: Callable[[CanonicalRow], None],
    on_progress: Callable[[int], None],
) -> None:
    width = len(layout.header)
    take = layout.take
    written = 0
    for row in reader:
        if not row:
            continue
        values = row
        if len(values) == width + 1 and not values[-1]:
            values.pop()  # a trailing comma, as the header may have
        if len(values) != width:
            raise StatementDamaged(
                "row width", f"{len(values)} values under a header of {width}", line=lines.number
            )
        write(take(values, lines.number))
        written += 1
        if written % _PROGRESS_EVERY == 0:
            on_progress(written)
    on_progress(written)


def _summary(comments: list[str]) -> dict[str, str]:
    """The ``#name：value`` lines before and after the table, by name, as written."""
    summary: dict[str, str] = {}
    for line in comments:
        name, colon, value = line[1:].partition("：")
        if colon and name.strip():
            summary[name.strip()] = value.strip()
    return summary


def _decimal(text: str, column: str, line: int, *, places: int) -> Decimal:
    """A plain signed decimal as the bill writes it: digits, at most one point and ``places`` decimals."""
    if _PLAIN_DECIMAL[places](text) is None:
        if _PLAIN_DECIMAL[MAX_FEE_PLACES](text) is not None:
            raise StatementDamaged("amount", f"{column} has more than {places} decimals", line=line)
        raise StatementDamaged("amount", f"{column} is not a plain decimal", line=line)
    return Decimal(text)


@dataclass
class _Total:
    count: int = 0
    amount: Decimal = field(default_factory=lambda: Decimal("0.00"))

    def add(self, amount: Decimal) -> None:
        self.count += 1
        self.amount += amount

    def agree(self, summary: dict[str, str], name: str, what: str, *, required: bool) -> None:
        """The trailer's ``#name：N笔，...共X元`` gives this count and, sign aside, this sum."""
        if name not in summary:
            if required or self.count:
                raise StatementDamaged("trailer", f"the bill has no #{name} line")
            return
        match = _TOTAL_LINE.match(summary[name])
        if match is None:
            raise StatementDamaged("trailer", f"#{name} is not 'N笔，...共X元'")
        count, amount = int(match[1]), abs(Decimal(match[2]))
        if (count, amount) != (self.count, self.amount):
            raise StatementDamaged(
                "trailer",
                f"#{name} says {count} rows of {amount}, "
                f"the rows give {self.count} of {self.amount} ({what})",
            )


@dataclass
class _Layout:
    header: list[str]
    keys: RowKeys = field(default_factory=RowKeys, init=False)
    credits: _Total = field(default_factory=_Total, init=False)
    debits: _Total = field(default_factory=_Total, init=False)
    summary: dict[str, str] = field(default_factory=dict, init=False)
    first_row_line: int = field(default=0, init=False)

    def take(self, values: list[str], line: int) -> CanonicalRow:
        raise NotImplementedError

    def totals(self) -> StatementTotals:
        raise NotImplementedError

    def _statement_totals(self, fee_total: Decimal | None) -> StatementTotals:
        return StatementTotals(
            currency="CNY",
            opening_balance=None,
            closing_balance=None,
            credit_count=self.credits.count,
            debit_count=self.debits.count,
            credit_total=self.credits.amount,
            debit_total=self.debits.amount,
            transaction_count=self.credits.count + self.debits.count,
            fee_total=fee_total,
            summary=self.summary,
        )

    def _keyed(self, key: str, line: int) -> str:
        if not key:
            raise StatementDamaged("key", "the row's key is empty", line=line)
        self.keys.add(key)
        return key


class _TradeLayout(_Layout):
    def __init__(self, header: list[str]):
        super().__init__(header)
        self.trade_no = column_index(header, "支付宝交易号")
        self.reference = column_index(header, "商户订单号")
        self.business = column_index(header, "业务类型")
        self.completed = column_index(header, "完成时间")
        self.received = column_index(header, "商家实收（元）")
        self.refund_no = column_index(header, "退款批次号/请求号")
        self.fee = column_index(header, "服务费（元）")
        self.fee_total = Decimal("0")

    def take(self, values: list[str], line: int) -> CanonicalRow:
        business = values[self.business]
        amount = _decimal(values[self.received], "商家实收（元）", line, places=2)
        direction: Literal["C", "D"]
        if business == "交易" and amount >= 0:
            key = values[self.trade_no]
            direction = "C"
            self.credits.add(amount)
        elif business == "退款" and amount <= 0:
            if not values[self.refund_no]:
                raise StatementDamaged("key", "a refund without 退款批次号/请求号", line=line)
            key = f"{values[self.trade_no]}/{values[self.refund_no]}"
            direction = "D"
            amount = -amount
            self.debits.add(amount)
        else:
            raise StatementDamaged(
                "业务类型", "neither 交易 with 商家实收 >= 0 nor 退款 with 商家实收 <= 0", line=line
            )
        fee = _decimal(values[self.fee], "服务费（元）", line, places=MAX_FEE_PLACES)
        self.fee_total += fee
        return CanonicalRow(
            serial_no=self._keyed(key, line),
            traded_at=china_time(values[self.completed], "完成时间", line),
            direction=direction,
            amount=amount,
            fee=fee,
            reference=values[self.reference] or None,
            details=dict(zip(self.header, values, strict=True)),
        )

    def totals(self) -> StatementTotals:
        self.credits.agree(self.summary, "交易合计", "业务类型 交易", required=True)
        self.debits.agree(self.summary, "退款合计", "业务类型 退款", required=False)
        return self._statement_totals(self.fee_total)


class _AccountLayout(_Layout):
    def __init__(self, header: list[str]):
        super().__init__(header)
        self.flow_no = column_index(header, "账务流水号")
        self.reference = column_index(header, "商户订单号")
        self.time = column_index(header, "发生时间")
        self.income = column_index(header, "收入金额（+元）")
        self.expense = column_index(header, "支出金额（-元）")
        self.balance = column_index(header, "账户余额（元）")

    def take(self, values: list[str], line: int) -> CanonicalRow:
        income = _decimal(values[self.income], "收入金额（+元）", line, places=2)
        expense = abs(_decimal(values[self.expense], "支出金额（-元）", line, places=2))
        direction: Literal["C", "D"]
        if income > 0 and not expense:
            direction, amount = "C", income
            self.credits.add(amount)
        elif expense and not income:
            direction, amount = "D", expense
            self.debits.add(amount)
        else:
            raise StatementDamaged(
                "amount", "not exactly one of 收入金额 (positive) and 支出金额 is set", line=line
            )
        return CanonicalRow(
            serial_no=self._keyed(values[self.flow_no], line),
            traded_at=china_time(values[self.time], "发生时间", line),
            direction=direction,
            amount=amount,
            balance_after=_decimal(values[self.balance], "账户余额（元）", line, places=2),
            reference=values[self.reference] or None,
            details=dict(zip(self.header, values, strict=True)),
        )

    def totals(self) -> StatementTotals:
        self.credits.agree(self.summary, "收入合计", "收入 rows", required=True)
        self.debits.agree(self.summary, "支出合计", "支出 rows", required=True)
        return self._statement_totals(None)


def _no_progress(_count: int) -> None:
    pass
