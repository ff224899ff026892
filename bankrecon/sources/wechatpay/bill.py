"""WeChat Pay trade and fund-flow bills: read, checked against their summary, written as canonical rows.

A bill is UTF-8 CSV (a BOM is allowed): a header row, detail rows whose every value starts
with a backtick, a summary header and one summary row. Columns are found by their header
name; every column, known or not, is kept in the row's ``details``.

Trade bills: a row whose 交易状态 is REFUND is a refund (a debit of 退款金额 keyed by
微信退款单号, at its 退款成功时间 where the bill has that column: a REFUND bill's 交易时间 is the
refunded payment's); a SUCCESS row is a payment (a credit of 应结订单金额 keyed by 微信订单号). Only
交易状态 decides: the refund columns of a payment row and the 应结订单金额 of a refund row
are kept in ``details`` and count towards no total, so a bill that counted them in its
summary fails the summary check. Fees are kept as written, with their sign: WeChat Pay
returns the fee of a refunded payment, and writes it negative on the refund row; the fees
of all rows add up to 手续费总金额.

Fund-flow bills: every row is keyed by 资金流水单号; 收入 is a credit and 支出 a debit.
"""

from __future__ import annotations

import _csv
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Literal

from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey, StatementTotals
from bankrecon.sources.canonical_records import column_index, name_repeated_key
from bankrecon.sources.wechatpay.gunzip import GunzipStream
from bankrecon.statements.canonical import CanonicalRecordWriter, ChinaTimestamps, JsonObject
from bankrecon.statements.common import ArchiveLimits, StatementDamaged
from bankrecon.statements.rowkeys import RowKeys
from bankrecon.store.archive import archive_path
from bankrecon.store.records import decoded_into_records

Bill = Literal["tradebill", "fundflowbill"]
MAX_LINE_CHARS = 64 * 1024
_MARK = "`"
_PROGRESS_EVERY = 8192
_TEXT_BUFFER = 256 * 1024
# No bill holds it: rows are joined on it to take their backticks off in C.
_SEPARATOR = "\x1f"
# The forms nearly every value has, checked in C; anything else goes through _decimal.
_AMOUNT = re.compile(r"[0-9]{1,15}\.[0-9]{2}").fullmatch
_MONEY = re.compile(r"-?[0-9]{1,15}\.[0-9]{2}").fullmatch
_FEE = re.compile(r"-?[0-9]{1,15}\.[0-9]{1,5}").fullmatch


def decode_bill(
    data_dir: Path,
    key: StatementKey,
    archive: ArchiveRef,
    bill: Bill,
    limits: ArchiveLimits,
    on_progress: Callable[[int], None],
) -> DecodedStatement:
    """Check the whole bill; its records file exists only if every rule held."""
    path = archive_path(data_dir, archive.sha256)

    def read(writer: CanonicalRecordWriter) -> StatementTotals:
        return read_bill(path, bill, limits, writer.write_texts, on_progress)

    return decoded_into_records(data_dir, key, archive.sha256, read)


def read_bill(
    path: Path,
    bill: Bill,
    limits: ArchiveLimits,
    write: WriteTexts,
    on_progress: Callable[[int], None] = lambda _count: None,
) -> StatementTotals:
    """Every detail row of the gzip bill at ``path`` to ``write`` (CanonicalRecordWriter.write_texts),
    in order; the totals, checked."""
    layout, summary = _read(path, bill, limits, write, on_progress)
    repeated = layout.keys.repeated()
    if repeated:
        _name_repeated_key(path, bill, limits, repeated)
    return layout.totals(summary)


def _read(
    path: Path,
    bill: Bill,
    limits: ArchiveLimits,
    write: WriteTexts,
    on_progress: Callable[[int], None],
) -> tuple[_Layout, dict[str, str]]:
    with path.open("rb") as compressed:
        raw = GunzipStream(compressed, path.stat().st_size, limits)
        text = io.TextIOWrapper(io.BufferedReader(raw, _TEXT_BUFFER), encoding="utf-8", newline="")
        reader = csv.reader(_lines(text), strict=True)
        try:
            header = _header(next(reader, None))
            layout: _Layout = _TradeLayout(header) if bill == "tradebill" else _FundFlowLayout(header)
            summary_header = _details(reader, layout, write, on_progress)
            return layout, _summary(reader, summary_header)
        except UnicodeDecodeError:
            raise StatementDamaged("encoding", "not UTF-8", line=reader.line_num + 1) from None
        except csv.Error as exc:
            raise StatementDamaged("csv", str(exc), line=reader.line_num) from None


def _lines(text: IO[str]) -> Iterator[str]:
    readline = text.readline
    line = readline(MAX_LINE_CHARS + 1)
    # Some bills start with a byte order mark; it belongs to no header name.
    if line.startswith("\ufeff"):
        line = line[1:]
    number = 1
    while line:
        if len(line) > MAX_LINE_CHARS:
            raise StatementDamaged("line length", f"longer than {MAX_LINE_CHARS} characters", line=number)
        yield line
        line = readline(MAX_LINE_CHARS + 1)
        number += 1


def _header(row: list[str] | None, line: int = 1) -> list[str]:
    if not row:
        raise StatementDamaged("header", "the bill has no header row", line=line)
    if any(name.startswith(_MARK) for name in row):
        raise StatementDamaged(
            "header", "neither a header nor a row whose values all start with a backtick", line=line
        )
    if len(set(row)) != len(row):
        raise StatementDamaged("header", "a column name appears twice", line=line)
    return row


def _values(row: list[str], width: int, line: int) -> list[str]:
    """The row's values without their backtick, which every one of them must have."""
    if len(row) != width:
        raise StatementDamaged("row width", f"{len(row)} values under a header of {width}", line=line)
    # In C: the row joined on a character no value holds, each value's backtick found after it.
    joined = _SEPARATOR + _SEPARATOR.join(row)
    if joined.count(_SEPARATOR + _MARK) != width or joined.count(_SEPARATOR) != width:
        if "".join([value[:1] for value in row]) != _MARK * width:
            raise StatementDamaged("backtick", "a value does not start with a backtick", line=line)
        return [value[1:] for value in row]
    return joined[2:].split(_SEPARATOR + _MARK)


def _details(
    reader: _csv.Reader,
    layout: _Layout,
    write: WriteTexts,
    on_progress: Callable[[int], None],
) -> list[str]:
    """Writes the detail rows; returns the summary header that ends them."""
    width = len(layout.header)
    take = layout.take
    for written, row in enumerate(reader):
        if row and not row[0].startswith(_MARK):
            on_progress(written)
            return _header(row, reader.line_num)
        line = reader.line_num
        write(*take(_values(row, width, line), line))
        if (written + 1) % _PROGRESS_EVERY == 0:
            on_progress(written + 1)
    raise StatementDamaged("summary", "the bill ends without its summary rows", line=reader.line_num + 1)


def _summary(reader: _csv.Reader, summary_header: list[str]) -> dict[str, str]:
    row = next(reader, None)
    if row is None:
        raise StatementDamaged("summary", "no summary row after the summary header", line=reader.line_num + 1)
    summary = dict(zip(summary_header, _values(row, len(summary_header), reader.line_num), strict=True))
    for extra in reader:
        if extra:
            raise StatementDamaged("summary", "rows after the summary row", line=reader.line_num)
    return summary


def _name_repeated_key(path: Path, bill: Bill, limits: ArchiveLimits, candidates: set[int]) -> None:
    """Reads the bill again to name the first key that is really repeated; returns if none is."""

    def reread(check: Callable[[str], None]) -> None:
        _read(path, bill, limits, lambda serial_no, *_texts: check(serial_no), lambda _count: None)

    name_repeated_key(reread, candidates, first_line=2)


def _decimal(text: str, column: str, line: int, *, places: int, signed: bool = False) -> Decimal:
    """A plain decimal as the bill writes it: digits, at most one point and ``places`` decimals."""
    digits = text[1:] if signed and text.startswith("-") else text
    point = digits.find(".")
    whole, fraction = (digits, "") if point < 0 else (digits[:point], digits[point + 1 :])
    if not (
        whole.isascii() and whole.isdigit() and (not fraction or (fraction.isascii() and fraction.isdigit()))
    ):
        raise StatementDamaged("amount", f"{column} is not a plain decimal", line=line)
    if len(fraction) > places or (point >= 0 and not fraction):
        raise StatementDamaged("amount", f"{column} has more than {places} decimals", line=line)
    return Decimal(text)


def _count(summary: dict[str, str], name: str) -> int:
    """A summary count, which WeChat Pay may write as a float (``20.0``)."""
    text = summary[name]
    whole, point, fraction = text.partition(".")
    if not (whole.isascii() and whole.isdigit()) or (point and fraction.strip("0")):
        raise StatementDamaged("summary", f"{name} is not a count")
    return int(whole)


def _summary_amount(summary: dict[str, str], name: str, places: int = 2) -> Decimal:
    try:
        return _decimal(summary[name], name, 0, places=places, signed=True)
    except StatementDamaged as exc:
        raise StatementDamaged("summary", exc.detail) from None


def _agree(summary: dict[str, str], name: str, counted: Decimal | int, what: str) -> None:
    if name not in summary:
        raise StatementDamaged("summary", f"the summary has no {name}")
    said = _count(summary, name) if isinstance(counted, int) else _summary_amount(summary, name, 5)
    if said != counted:
        raise StatementDamaged("summary", f"{name} says {said}, the rows give {counted} ({what})")


# A row as CanonicalRecordWriter.write_texts takes it.
Texts = tuple[str, str, str, str, str | None, str | None, str | None, None, None, None, str]
WriteTexts = Callable[..., None]


@dataclass
class _Layout:
    header: list[str]
    keys: RowKeys = field(default_factory=RowKeys, init=False)
    times: ChinaTimestamps = field(default_factory=ChinaTimestamps, init=False)
    credit_count: int = field(default=0, init=False)
    debit_count: int = field(default=0, init=False)
    credit_cents: int = field(default=0, init=False)
    debit_cents: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.details = JsonObject(self.header)

    def take(self, values: list[str], line: int) -> Texts:
        raise NotImplementedError

    def totals(self, summary: dict[str, str]) -> StatementTotals:
        raise NotImplementedError

    @property
    def credit_total(self) -> Decimal:
        return Decimal(self.credit_cents).scaleb(-2)

    @property
    def debit_total(self) -> Decimal:
        return Decimal(self.debit_cents).scaleb(-2)

    def _statement_totals(self, summary: dict[str, str], fee_total: Decimal | None) -> StatementTotals:
        return StatementTotals(
            currency="CNY",
            opening_balance=None,
            closing_balance=None,
            credit_count=self.credit_count,
            debit_count=self.debit_count,
            credit_total=self.credit_total,
            debit_total=self.debit_total,
            transaction_count=self.credit_count + self.debit_count,
            fee_total=fee_total,
            summary=summary,
        )

    def _keyed(self, key: str, line: int) -> str:
        if not key:
            raise StatementDamaged("key", "the row's key is empty", line=line)
        self.keys.add(key)
        return key

    def _utc(self, text: str, column: str, line: int) -> str:
        utc = self.times.utc_text(text)
        if utc is None:
            raise StatementDamaged("time", f"{column} is not YYYY-MM-DD HH:MM:SS", line=line)
        return utc


def _cents(text: str, column: str, line: int, *, signed: bool = False) -> tuple[str, int]:
    """An amount of at most two decimals as the tables take it (two decimals) and in cents."""
    if not (_MONEY if signed else _AMOUNT)(text):
        value = _decimal(text, column, line, places=2, signed=signed)
        text = f"{value:.2f}"
    return text, int(text[:-3] + text[-2:])


def _fee(text: str, line: int) -> Decimal:
    return Decimal(text) if _FEE(text) else _decimal(text, "手续费", line, places=5, signed=True)


class _TradeLayout(_Layout):
    def __init__(self, header: list[str]):
        super().__init__(header)
        self.time = column_index(header, "交易时间", line=1)
        self.status = column_index(header, "交易状态", line=1)
        self.order_no = column_index(header, "微信订单号", line=1)
        self.reference = column_index(header, "商户订单号", line=1)
        self.fee = column_index(header, "手续费", line=1)
        # A SUCCESS bill has no refund columns, a REFUND bill no payments to settle: each is
        # needed once a row needs it.
        self.settled = header.index("应结订单金额") if "应结订单金额" in header else None
        self.refund_no = header.index("微信退款单号") if "微信退款单号" in header else None
        self.refunded = header.index("退款金额") if "退款金额" in header else None
        # A REFUND bill's 交易时间 is the refunded payment's, days before; its refund happened at
        # 退款成功时间 (an ALL bill has no such column: its refund rows' 交易时间 is the refund's).
        self.refunded_at = header.index("退款成功时间") if "退款成功时间" in header else None
        self.fee_total = Decimal("0")

    def take(self, values: list[str], line: int) -> Texts:
        status = values[self.status]
        time, time_column = values[self.time], "交易时间"
        if status == "SUCCESS":
            if self.settled is None:
                raise StatementDamaged("columns", "the bill has no column 应结订单金额", line=1)
            key = values[self.order_no]
            amount, cents = _cents(values[self.settled], "应结订单金额", line)
            direction = "C"
            self.credit_count += 1
            self.credit_cents += cents
        elif status == "REFUND":
            if self.refund_no is None or self.refunded is None:
                raise StatementDamaged("columns", "the bill has no column 微信退款单号 or 退款金额", line=1)
            key = values[self.refund_no]
            amount, cents = _cents(values[self.refunded], "退款金额", line)
            if self.refunded_at is not None:
                time, time_column = values[self.refunded_at], "退款成功时间"
            direction = "D"
            self.debit_count += 1
            self.debit_cents += cents
        else:
            raise StatementDamaged("交易状态", "neither SUCCESS nor REFUND", line=line)
        fee = values[self.fee]
        self.fee_total += _fee(fee, line)
        return (
            self._keyed(key, line),
            self._utc(time, time_column, line),
            direction,
            amount,
            fee,
            None,
            values[self.reference] or None,
            None,
            None,
            None,
            self.details.render(values),
        )

    def totals(self, summary: dict[str, str]) -> StatementTotals:
        _agree(summary, "总交易单数", self.credit_count + self.debit_count, "detail rows")
        _agree(summary, "手续费总金额", self.fee_total, "sum of 手续费")
        if self.credit_count or "应结订单总金额" in summary:
            _agree(summary, "应结订单总金额", self.credit_total, "sum of 应结订单金额 of SUCCESS rows")
        if self.debit_count or "退款总金额" in summary:
            _agree(summary, "退款总金额", self.debit_total, "sum of 退款金额 of REFUND rows")
        return self._statement_totals(summary, self.fee_total)


class _FundFlowLayout(_Layout):
    def __init__(self, header: list[str]):
        super().__init__(header)
        self.time = column_index(header, "记账时间", line=1)
        self.flow_no = column_index(header, "资金流水单号", line=1)
        self.kind = column_index(header, "收支类型", line=1)
        self.amount = column_index(header, "收支金额(元)", line=1)
        self.balance = column_index(header, "账户结余(元)", line=1)
        self.reference = column_index(header, "业务凭证号", line=1)

    def take(self, values: list[str], line: int) -> Texts:
        kind = values[self.kind]
        amount, cents = _cents(values[self.amount], "收支金额(元)", line)
        if kind == "收入":
            direction = "C"
            self.credit_count += 1
            self.credit_cents += cents
        elif kind == "支出":
            direction = "D"
            self.debit_count += 1
            self.debit_cents += cents
        else:
            raise StatementDamaged("收支类型", "neither 收入 nor 支出", line=line)
        balance, _ = _cents(values[self.balance], "账户结余(元)", line, signed=True)
        return (
            self._keyed(values[self.flow_no], line),
            self._utc(values[self.time], "记账时间", line),
            direction,
            amount,
            None,
            balance,
            values[self.reference] or None,
            None,
            None,
            None,
            self.details.render(values),
        )

    def totals(self, summary: dict[str, str]) -> StatementTotals:
        _agree(summary, "资金流水总笔数", self.credit_count + self.debit_count, "detail rows")
        _agree(summary, "收入笔数", self.credit_count, "收入 rows")
        _agree(summary, "收入金额", self.credit_total, "sum of 收入 rows")
        _agree(summary, "支出笔数", self.debit_count, "支出 rows")
        _agree(summary, "支出金额", self.debit_total, "sum of 支出 rows")
        return self._statement_totals(summary, None)
