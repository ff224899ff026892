"""UnionPay ACP settlement files: the zip of one settlement day, read into canonical rows, checked.

The zip (``<merId>_<YYYYMMDD>.zip``) holds the detail member ``INN<yyMMdd>88ZM_<merId>``,
perhaps the error member ``INN<yyMMdd>88ZME_<merId>`` and a human-readable summary (RD...)
that is not read. Both INN members are fixed-width GBK records, each of exactly
``ZM_RECORD_BYTES`` (or ``ZME_RECORD_BYTES``) bytes and CRLF, fields separated by single
spaces, widths as the official layout (channels.md §3). Amounts are fen: 交易金额 twelve
digits; 商户手续费, 结算金额 and 清算净额 a C (to the merchant) or D (from it) and twelve
digits. A record is damage unless its length, separators, amounts and the relation
结算金额 = ±交易金额 + 商户手续费 (signs as the letters and the direction say) hold.

Direction comes from the record's 交易类型 (the ACP txnType): 01 purchase and 03 pre-authorisation
completion credit; 04 refund, 31 purchase reversal and 33 completion reversal debit. Any other
type is damage. Error records (ZME) are checked and counted in the summary, not stored as rows.
"""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from typing import Literal

from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey, StatementTotals
from bankrecon.statements.canonical import CanonicalRecordWriter, CanonicalRow
from bankrecon.statements.common import CHINA_STANDARD_TIME, ArchiveLimits, StatementDamaged
from bankrecon.statements.rowkeys import RowKeys
from bankrecon.statements.zipguard import ZIP_ERRORS, InflationGuard, zip_members
from bankrecon.store.archive import archive_path
from bankrecon.store.records import decoded_into_records

ZM_FIELDS: tuple[tuple[str, int], ...] = (
    ("交易代码", 3),
    ("代理机构标识码", 11),
    ("发送机构标识码", 11),
    ("系统跟踪号", 6),
    ("交易传输时间", 10),
    ("账号", 19),
    ("交易金额", 12),
    ("商户类别", 4),
    ("终端类型", 2),
    ("查询流水号", 21),
    ("支付方式(旧)", 2),
    ("商户订单号", 32),
    ("支付卡类型", 2),
    ("原始交易的系统跟踪号", 6),
    ("原始交易日期时间", 10),
    ("商户手续费", 13),
    ("结算金额", 13),
    ("支付方式", 4),
    ("集团商户代码", 15),
    ("交易类型", 2),
    ("交易子类", 2),
    ("业务类型", 6),
    ("账号类型", 2),
    ("账单类型", 4),
    ("账单号码", 32),
    ("交互方式", 1),
    ("原交易查询流水号", 21),
    ("商户代码", 15),
    ("分账入账方式", 1),
    ("二级商户代码", 15),
    ("二级商户简称", 32),
    ("二级商户分账入账金额", 13),
    ("清算净额", 13),
    ("终端号", 8),
    ("商户自定义域", 32),
    ("优惠金额", 13),
    ("发票金额", 13),
    ("分期付款附加手续费", 12),
    ("分期付款期数", 2),
    ("交易介质", 1),
    ("原始交易订单号", 32),
    ("保留使用", 98),
)
ZME_WIDTHS = (3, 11, 11, 6, 10, 19, 12, 4, 2, 2, 6, 10, 4, 12, 13, 13, 15, 15, 1, 12, 2, 135)
ZM_NAMES = tuple(name for name, _ in ZM_FIELDS)
ZM_RECORD_BYTES = sum(width for _, width in ZM_FIELDS) + len(ZM_FIELDS) - 1  # 607
ZME_RECORD_BYTES = sum(ZME_WIDTHS) + len(ZME_WIDTHS) - 1  # 339
CREDIT_TYPES = {"01": "消费", "03": "预授权完成"}
DEBIT_TYPES = {"04": "退货", "31": "消费撤销", "33": "预授权完成撤销"}
DETAIL_MEMBER = re.compile(r"INN([0-9]{6})88ZM_([0-9A-Za-z]{15})")
ERROR_MEMBER = re.compile(r"INN([0-9]{6})88ZME_([0-9A-Za-z]{15})")
# A single space between fields: the layout as a struct whose pad bytes are the separators.
_ZM_LAYOUT = struct.Struct(
    "".join(f"{width}s" if i == 0 else f"x{width}s" for i, (_, width) in enumerate(ZM_FIELDS))
)
_ZM_SLICES = itemgetter(
    *(
        slice(end - width - 1, end - 1)
        for end, (_, width) in zip(accumulate(w + 1 for _, w in ZM_FIELDS), ZM_FIELDS, strict=True)
    )
)
_SEPARATORS = tuple(sum(width + 1 for _, width in ZM_FIELDS[: i + 1]) - 1 for i in range(len(ZM_FIELDS) - 1))
_ZME_SEPARATORS = tuple(
    sum(width + 1 for width in ZME_WIDTHS[: i + 1]) - 1 for i in range(len(ZME_WIDTHS) - 1)
)
_AMOUNT = ZM_NAMES.index("交易金额")
_FEE = ZM_NAMES.index("商户手续费")
_SETTLED = ZM_NAMES.index("结算金额")
_NET = ZM_NAMES.index("清算净额")
_TYPE = ZM_NAMES.index("交易类型")
_KEY = ZM_NAMES.index("查询流水号")
_ORDER = ZM_NAMES.index("商户订单号")
_TIME = ZM_NAMES.index("交易传输时间")
_MER_ID = ZM_NAMES.index("商户代码")
_SIGN = {"C": 1, "D": -1}
_CHUNK = 1024 * 1024
_PROGRESS_EVERY = 8192
_FEN = Decimal("0.01")


def decode_settlement(
    data_dir: Path,
    key: StatementKey,
    archive: ArchiveRef,
    mer_id: str,
    limits: ArchiveLimits,
    on_progress: Callable[[int], None],
) -> DecodedStatement:
    """Check the whole settlement file; its records file exists only if every rule held."""
    path = archive_path(data_dir, archive.sha256)

    def read(writer: CanonicalRecordWriter) -> StatementTotals:
        return read_settlement(path, key.bill_date, mer_id, limits, writer.write, on_progress)

    return decoded_into_records(data_dir, key, archive.sha256, read)


def read_settlement(
    path: Path,
    settle_date: date,
    mer_id: str,
    limits: ArchiveLimits,
    write: Callable[[CanonicalRow], None],
    on_progress: Callable[[int], None] = lambda _count: None,
) -> StatementTotals:
    """Every ZM record of the zip at ``path`` to ``write``, in order; the day's totals."""
    keys = RowKeys()

    def keep(row: CanonicalRow, _line: int) -> None:
        keys.add(row.serial_no)
        write(row)

    totals = _read(path, settle_date, mer_id, limits, keep, on_progress)
    candidates = keys.repeated()
    if candidates:
        _name_repeated_key(path, settle_date, mer_id, limits, candidates)
    return totals


def _read(
    path: Path,
    settle_date: date,
    mer_id: str,
    limits: ArchiveLimits,
    write: Callable[[CanonicalRow, int], None],
    on_progress: Callable[[int], None],
) -> StatementTotals:
    with path.open("rb") as file:
        try:
            archive = zipfile.ZipFile(file, metadata_encoding="gbk")
        except ZIP_ERRORS as exc:
            raise StatementDamaged("archive", f"not a readable zip archive: {exc}") from None
        with archive:
            detail, error = _members(archive, limits, settle_date, mer_id)
            inflation = InflationGuard(limits)
            totals = _Totals(settle_date)
            for number, record in enumerate(_records(archive, detail, inflation, ZM_RECORD_BYTES), 1):
                write(totals.take(record, number, detail.filename), number)
                if number % _PROGRESS_EVERY == 0:
                    on_progress(number)
            errors = 0
            if error is not None:
                for errors, record in enumerate(_records(archive, error, inflation, ZME_RECORD_BYTES), 1):
                    _check_separators(record, _ZME_SEPARATORS, error.filename, errors)
            on_progress(totals.credit_count + totals.debit_count)
            return totals.statement_totals(detail.filename, error.filename if error else None, errors)


def _name_repeated_key(
    path: Path, settle_date: date, mer_id: str, limits: ArchiveLimits, candidates: set[int]
) -> None:
    """Reads the file again to name the first 查询流水号 really repeated; returns if none is."""
    first_seen: dict[str, int] = {}

    def check(row: CanonicalRow, line: int) -> None:
        if hash(row.serial_no) not in candidates:
            return
        if row.serial_no in first_seen:
            raise StatementDamaged(
                "duplicate key",
                f"查询流水号 repeats the one of record {first_seen[row.serial_no]}",
                line=line,
            )
        first_seen[row.serial_no] = line

    _read(path, settle_date, mer_id, limits, check, lambda _count: None)


def _members(
    archive: zipfile.ZipFile, limits: ArchiveLimits, settle_date: date, mer_id: str
) -> tuple[zipfile.ZipInfo, zipfile.ZipInfo | None]:
    day = f"{settle_date:%y%m%d}"
    details: list[zipfile.ZipInfo] = []
    errors: list[zipfile.ZipInfo] = []
    for info in zip_members(archive, limits):
        for pattern, found in ((DETAIL_MEMBER, details), (ERROR_MEMBER, errors)):
            match = pattern.fullmatch(info.filename)
            if match is None:
                continue
            if (match[1], match[2]) != (day, mer_id):
                raise StatementDamaged(
                    "structure", f"member {info.filename} is not of {day} and merId {mer_id}"
                )
            found.append(info)
    if len(details) != 1 or len(errors) > 1:
        raise StatementDamaged(
            "structure",
            f"the zip holds {len(details)} INN{day}88ZM_{mer_id} members (exactly one expected)"
            if len(details) != 1
            else f"the zip holds {len(errors)} error members (at most one expected)",
        )
    return details[0], errors[0] if errors else None


def _records(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, inflation: InflationGuard, record_bytes: int
) -> Iterator[bytes]:
    """The member's records without CRLF, each checked for its exact length."""
    line_bytes = record_bytes + 2
    try:
        stream = archive.open(info)
    except ZIP_ERRORS as exc:
        raise StatementDamaged("archive", f"cannot inflate member: {exc}", part=info.filename) from None
    with stream:
        pending = b""
        member_bytes = 0
        number = 0
        while True:
            try:
                chunk = stream.read(_CHUNK)
            except ZIP_ERRORS as exc:
                raise StatementDamaged(
                    "archive", f"cannot inflate member: {exc}", part=info.filename
                ) from None
            if not chunk:
                break
            member_bytes += len(chunk)
            inflation.add(len(chunk), member_bytes, info, info.filename)
            data = pending + chunk
            whole = len(data) - len(data) % line_bytes
            for start in range(0, whole, line_bytes):
                number += 1
                line = data[start : start + line_bytes]
                if line[-2:] != b"\r\n" or b"\n" in line[:-1]:
                    raise _wrong_length(data[start:], record_bytes, info.filename, number)
                yield line[:-2]
            pending = data[whole:]
        if pending:
            raise _wrong_length(pending, record_bytes, info.filename, number + 1)


def _wrong_length(rest: bytes, record_bytes: int, member: str, number: int) -> StatementDamaged:
    end = rest.find(b"\n")
    length = len(rest) if end < 0 else end - (1 if rest[end - 1 : end] == b"\r" else 0)
    return StatementDamaged(
        "record length",
        f"a record of {length} bytes, not {record_bytes} bytes and CRLF",
        part=member,
        line=number,
    )


def _check_separators(record: bytes, separators: tuple[int, ...], member: str, number: int) -> None:
    if any(record[at] != 0x20 for at in separators):
        raise StatementDamaged("record layout", "a field separator is not a space", part=member, line=number)


def _fen(text: str, name: str, member: str, line: int) -> int:
    if len(text) != 12 or not (text.isascii() and text.isdigit()):
        raise StatementDamaged("amount", f"{name} is not twelve digits of fen", part=member, line=line)
    return int(text)


def _signed_fen(text: str, name: str, member: str, line: int) -> int:
    if len(text) != 13 or text[0] not in _SIGN:
        raise StatementDamaged("amount", f"{name} is not C or D and twelve digits", part=member, line=line)
    return _SIGN[text[0]] * _fen(text[1:], name, member, line)


def _yuan(fen: int) -> Decimal:
    return Decimal(fen).scaleb(-2).quantize(_FEN)


class _Totals:
    def __init__(self, settle_date: date):
        self.settle_date = settle_date
        self.credit_count = 0
        self.debit_count = 0
        self.credit_fen = 0
        self.debit_fen = 0
        self.fee_fen = 0  # paid by the merchant: a D fee adds, a returned (C) fee takes away
        self.settled_fen = 0  # signed: what UnionPay pays the merchant for the day

    def take(self, record: bytes, line: int, member: str) -> CanonicalRow:
        _check_separators(record, _SEPARATORS, member, line)
        try:
            if record.isascii():
                # One byte a character: the fields are slices of the text, cut in C.
                values = [field.strip() for field in _ZM_SLICES(record.decode("ascii"))]
            else:
                values = [field.decode("gbk").strip() for field in _ZM_LAYOUT.unpack(record)]
        except UnicodeDecodeError:
            raise StatementDamaged("encoding", "a field is not GBK", part=member, line=line) from None
        kind = values[_TYPE]
        direction: Literal["C", "D"]
        if kind in CREDIT_TYPES:
            direction = "C"
        elif kind in DEBIT_TYPES:
            direction = "D"
        else:
            raise StatementDamaged(
                "交易类型", f"transaction type {kind!r} is unknown", part=member, line=line
            )
        amount = _fen(values[_AMOUNT], "交易金额", member, line)
        fee = _signed_fen(values[_FEE], "商户手续费", member, line)
        settled = _signed_fen(values[_SETTLED], "结算金额", member, line)
        if values[_NET]:
            _signed_fen(values[_NET], "清算净额", member, line)
        if settled != _SIGN[direction] * amount + fee:
            raise StatementDamaged(
                "net",
                f"结算金额 {values[_SETTLED]} is not 交易金额 {values[_AMOUNT]} "
                f"({'credit' if direction == 'C' else 'debit'}) net of 商户手续费 {values[_FEE]}",
                part=member,
                line=line,
            )
        if not values[_KEY]:
            raise StatementDamaged("key", "查询流水号 is empty", part=member, line=line)
        if direction == "C":
            self.credit_count += 1
            self.credit_fen += amount
        else:
            self.debit_count += 1
            self.debit_fen += amount
        self.fee_fen -= fee
        self.settled_fen += settled
        return CanonicalRow(
            serial_no=values[_KEY],
            traded_at=self._traded_at(values[_TIME], member, line),
            direction=direction,
            amount=_yuan(amount),
            fee=_yuan(-fee),
            reference=values[_ORDER] or None,
            details=dict(zip(ZM_NAMES, values, strict=True)),
        )

    def _traded_at(self, text: str, member: str, line: int) -> datetime:
        """交易传输时间 is MMDDhhmmss: its year is the one putting it nearest the settlement day."""
        if len(text) != 10 or not (text.isascii() and text.isdigit()):
            raise StatementDamaged("time", "交易传输时间 is not MMDDhhmmss", part=member, line=line)
        month, day, hour, minute, second = (int(text[i : i + 2]) for i in range(0, 10, 2))
        candidates = []
        for year in (self.settle_date.year - 1, self.settle_date.year, self.settle_date.year + 1):
            try:
                candidates.append(
                    datetime(year, month, day, hour, minute, second, tzinfo=CHINA_STANDARD_TIME)
                )
            except ValueError:
                continue
        if not candidates:
            raise StatementDamaged("time", "交易传输时间 is not a time of day", part=member, line=line)
        noon = datetime(
            self.settle_date.year,
            self.settle_date.month,
            self.settle_date.day,
            12,
            tzinfo=CHINA_STANDARD_TIME,
        )
        return min(candidates, key=lambda moment: abs(moment - noon))

    def statement_totals(self, detail: str, error: str | None, errors: int) -> StatementTotals:
        return StatementTotals(
            currency="CNY",
            opening_balance=None,
            closing_balance=None,
            credit_count=self.credit_count,
            debit_count=self.debit_count,
            credit_total=_yuan(self.credit_fen),
            debit_total=_yuan(self.debit_fen),
            transaction_count=self.credit_count + self.debit_count,
            fee_total=_yuan(self.fee_fen),
            summary={
                "detail_member": detail,
                "error_member": error or "",
                "error_records": str(errors),
                "settled_total": str(_yuan(self.settled_fen)),
            },
        )
