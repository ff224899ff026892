"""Statement parts (statement-format.md v1): parsing and validation, no Temporal, no I/O but the archive.

Contract used by the decode activity (do not change without changing activities/):

    summary = validate_statement_archive(zip_path, expected, limits, on_details)

streams the zip at ``zip_path`` member by member (never trusting declared sizes),
decodes each ``.txt`` part as GB18030, validates every rule of statement-format.md
and calls ``on_details`` with the detail lines in statement order (parts in
part-number order, lines in file order), a block of lines at a time. It returns the
StatementSummary, or raises StatementDamaged naming the part, line and rule. The
caller must treat everything passed to ``on_details`` as void when StatementDamaged
is raised. ``read_statement_archive`` is the same with one Transaction per call.

Memory stays flat whatever the statement's size: the archive is read a quarter of a
megabyte at a time, and the serial numbers that rule 6 needs are kept as 8-byte hashes.

Most blocks hold nothing but valid D records: ``_valid_records`` checks such a block
whole, in C loops, and only a block it doubts goes through the line-by-line checks that
name a fault. ``bankrecon.sources.refbank.shards`` shares that block check out over several
processes for large statements, and uses the helpers here to join their verdicts.
"""

from __future__ import annotations

import re
import zipfile
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import accumulate, pairwise
from operator import methodcaller, mul
from pathlib import Path
from typing import IO

from bankrecon.statements.common import CHINA_STANDARD_TIME, ArchiveLimits, StatementDamaged
from bankrecon.statements.zipguard import ZIP_ERRORS, InflationGuard, zip_members


@dataclass(frozen=True, slots=True)
class ExpectedStatement:
    """What the request asked for: rule 1 checks every header against it."""

    account_no: str
    bill_date: date
    currency: str | None = None  # None: any ISO 4217 code is accepted


@dataclass(frozen=True, slots=True)
class Transaction:
    serial_no: str
    traded_at: datetime  # aware, China Standard Time
    direction: str  # "C" or "D"
    amount: Decimal
    balance_after: Decimal
    counterparty_account: str | None  # empty field -> None
    counterparty_name: str | None
    memo: str | None


@dataclass(frozen=True, slots=True)
class DetailLines:
    """Consecutive valid detail lines of a statement, in order.

    ``text`` is the lines as the bank wrote them, decoded, each ending with LF (a CR before
    it dropped): ``D|trade_date|trade_time|serial_no|direction|amount|balance_after|``
    ``counterparty_account|counterparty_name|memo``. ``serial_nos`` are theirs, in the same order.
    """

    serial_nos: Sequence[str]
    text: str


@dataclass(frozen=True, slots=True)
class StatementSummary:
    account_no: str
    bill_date: date
    currency: str
    opening_balance: Decimal  # part 1's opening balance
    closing_balance: Decimal  # the last part's closing balance
    credit_count: int
    debit_count: int
    credit_total: Decimal
    debit_total: Decimal
    transaction_count: int
    part_count: int


# Reading in large chunks and splitting them ourselves keeps the per-line cost low;
# ZipExtFile.readline(limit) goes through the slow generic path for every line.
_CHUNK_BYTES = 262144
# The format sets no length, but a real record is a few hundred bytes; the cap
# keeps a member without line breaks from growing one line without bound.
_MAX_LINE_BYTES = 64 * 1024
# A valid header is under 100 bytes; reading only this much in the first pass
# keeps that pass cheap even for a hostile member.
_MAX_HEADER_BYTES = 256
_BOMS = (b"\xef\xbb\xbf", b"\x84\x31\x95\x33", b"\xff\xfe", b"\xfe\xff")

# Explicit [0-9] classes: \d would also accept non-ASCII digits.
_TIME_PATTERN = r"(?:[01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]"
_SERIAL_NO_PATTERN = r"[0-9A-Za-z]{1,32}"
_POSITIVE_AMOUNT_PATTERN = r"[1-9][0-9]{0,14}\.[0-9]{2}|0\.(?:0[1-9]|[1-9][0-9])"
# -0.00 is rejected: the format has one spelling per value, and a second one for
# zero would only show up from a generator that formats floats.
_SIGNED_AMOUNT_PATTERN = r"-?[1-9][0-9]{0,14}\.[0-9]{2}|-?0\.(?:0[1-9]|[1-9][0-9])|0\.00"
_ACCOUNT_NO = re.compile(r"[0-9]{10,32}").fullmatch
_DATE = re.compile(r"[0-9]{8}").fullmatch
_TIME = re.compile(_TIME_PATTERN).fullmatch
_CURRENCY = re.compile(r"[A-Z]{3}").fullmatch
_PART_NUMBER = re.compile(r"[1-9][0-9]{0,8}").fullmatch
_COUNT = re.compile(r"0|[1-9][0-9]{0,17}").fullmatch
_SERIAL_NO = re.compile(_SERIAL_NO_PATTERN).fullmatch
_POSITIVE_AMOUNT = re.compile(_POSITIVE_AMOUNT_PATTERN).fullmatch
_TOTAL = re.compile(r"(?:0|[1-9][0-9]{0,14})\.[0-9]{2}").fullmatch
_SIGNED_AMOUNT = re.compile(_SIGNED_AMOUNT_PATTERN).fullmatch
# An amount already checked against its pattern, without its point: its exact cents.
_WITHOUT_POINT = methodcaller("replace", ".", "")
_SIGN = {"C": 1, "D": -1}
# Hash ranges of equal width: a statement's serial hashes fall evenly into them.
_SERIAL_BUCKETS = 64
_SERIAL_BUCKET_BOUNDS = tuple(-(2**63) + k * (2**64 // _SERIAL_BUCKETS) for k in range(1, _SERIAL_BUCKETS))

# Any text but NUL: PostgreSQL's text cannot hold it. Other control characters (a tab) are kept.
_FREE_TEXT_FIELDS = ("counterparty_account", "counterparty_name", "memo")

_AMOUNT_FORM = "digits, a point and two decimals, no sign, separator or exponent, e.g. 1500.00"
_SIGNED_FORM = "an optional minus, digits, a point and two decimals, e.g. -123.45"


@dataclass(frozen=True, slots=True)
class _Part:
    """A part's header, read in the first pass so the parts can be put in order."""

    info: zipfile.ZipInfo
    label: str
    part_no: int
    part_count: int
    account_no: str
    bill_date: date
    bill_date_text: str
    currency: str
    opening_text: str
    opening_cents: int


@dataclass(frozen=True, slots=True)
class _PartTotals:
    credit_count: int
    debit_count: int
    credit_cents: int
    debit_cents: int
    closing_cents: int


def validate_statement_archive(
    zip_path: Path,
    expected: ExpectedStatement,
    limits: ArchiveLimits,
    on_details: Callable[[DetailLines], None],
) -> StatementSummary:
    with _statement_parts(zip_path, expected, limits) as (archive, parts):
        return _stream_statement(archive, parts, limits, on_details)


@contextmanager
def _statement_parts(
    zip_path: Path, expected: ExpectedStatement, limits: ArchiveLimits
) -> Iterator[tuple[zipfile.ZipFile, list[_Part]]]:
    """The open archive and its parts in part-number order, their headers checked (rules 1 and 4)."""
    # Opening the file ourselves lets a missing or unreadable file surface as the
    # OSError it is, not as a damaged download to fetch again.
    with zip_path.open("rb") as file:
        try:
            archive = zipfile.ZipFile(file, metadata_encoding="gb18030")
        except ZIP_ERRORS as exc:
            raise StatementDamaged("archive", f"not a readable zip archive: {exc}") from exc
        with archive:
            members = _part_members(archive, limits)
            yield (
                archive,
                _ordered_parts([_read_header(archive, info, expected) for info in members], expected),
            )


def read_statement_archive(
    zip_path: Path,
    expected: ExpectedStatement,
    limits: ArchiveLimits,
    on_transaction: Callable[[Transaction], None],
) -> StatementSummary:
    """``validate_statement_archive`` with each detail line as a Transaction of exact values."""
    day = expected.bill_date

    def each(details: DetailLines) -> None:
        for line in details.text.split("\n")[:-1]:
            _, _, trade_time, serial_no, direction, amount, balance, account, name, memo = line.split("|")
            traded_at = datetime(
                day.year,
                day.month,
                day.day,
                int(trade_time[:2]),
                int(trade_time[2:4]),
                int(trade_time[4:]),
                tzinfo=CHINA_STANDARD_TIME,
            )
            on_transaction(
                Transaction(
                    serial_no,
                    traded_at,
                    direction,
                    Decimal(amount),
                    Decimal(balance),
                    account or None,
                    name or None,
                    memo or None,
                )
            )

    return validate_statement_archive(zip_path, expected, limits, each)


def _part_members(archive: zipfile.ZipFile, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    members = zip_members(archive, limits, lambda info: info.filename.lower().endswith(".txt"))
    if not members:
        raise StatementDamaged("structure", "archive holds no statement part (no .txt member)")
    return members


def _read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, expected: ExpectedStatement) -> _Part:
    name = info.filename
    try:
        with archive.open(info) as stream:
            first = stream.readline(_MAX_HEADER_BYTES)
    except ZIP_ERRORS as exc:
        raise StatementDamaged("archive", f"cannot inflate member: {exc}", part=name) from exc
    if first.startswith(_BOMS):
        raise StatementDamaged("encoding", "part starts with a byte order mark (BOM)", part=name, line=1)
    if len(first) == _MAX_HEADER_BYTES and not first.endswith(b"\n"):
        raise StatementDamaged(
            "structure", f"header line longer than {_MAX_HEADER_BYTES} bytes", part=name, line=1
        )
    raw = first.removesuffix(b"\n").removesuffix(b"\r")
    if not raw:
        raise StatementDamaged(
            "structure", "missing header: the part's first line is empty", part=name, line=1
        )
    fields = _decode(raw, name, 1).split("|")
    if fields[0] != "H":
        raise StatementDamaged("structure", "missing header: line 1 is not an H record", part=name, line=1)
    if len(fields) != 7:
        raise StatementDamaged(
            "structure", f"H record has {len(fields)} fields, expected 7", part=name, line=1
        )
    _, account_no, bill_date_text, currency, opening, part_no, part_count = fields

    def bad(field: str, detail: str) -> StatementDamaged:
        return StatementDamaged(f"field {field}", detail, part=name, line=1)

    if not _ACCOUNT_NO(account_no):
        raise bad("account_no", f"{account_no!r} is not 10 to 32 digits")
    bill_date = _parse_date(bill_date_text)
    if bill_date is None:
        raise bad("bill_date", f"{bill_date_text!r} is not a calendar date YYYYMMDD")
    if not _CURRENCY(currency):
        raise bad("currency", f"{currency!r} is not three uppercase letters")
    if not _SIGNED_AMOUNT(opening):
        raise bad("opening_balance", f"{opening!r} is not {_SIGNED_FORM}")
    if not _PART_NUMBER(part_no):
        raise bad("part_no", f"{part_no!r} is not a positive integer")
    if not _PART_NUMBER(part_count):
        raise bad("part_count", f"{part_count!r} is not a positive integer")
    if int(part_no) > int(part_count):
        raise bad("part_no", f"part_no {part_no} is greater than part_count {part_count}")

    label = f"{part_no} ({name})"
    if account_no != expected.account_no:
        raise StatementDamaged(
            "rule 1 (header)", f"account_no {account_no}, expected {expected.account_no}", part=label, line=1
        )
    if bill_date != expected.bill_date:
        raise StatementDamaged(
            "rule 1 (header)",
            f"bill_date {bill_date_text}, expected {expected.bill_date:%Y%m%d}",
            part=label,
            line=1,
        )
    if expected.currency is not None and currency != expected.currency:
        raise StatementDamaged(
            "rule 1 (header)", f"currency {currency}, expected {expected.currency}", part=label, line=1
        )
    return _Part(
        info=info,
        label=label,
        part_no=int(part_no),
        part_count=int(part_count),
        account_no=account_no,
        bill_date=bill_date,
        bill_date_text=bill_date_text,
        currency=currency,
        opening_text=opening,
        opening_cents=_cents(opening),
    )


def _ordered_parts(parts: list[_Part], expected: ExpectedStatement) -> list[_Part]:
    first = parts[0]
    by_number: dict[int, _Part] = {}
    for part in parts:
        if part.part_count != first.part_count:
            raise StatementDamaged(
                "rule 4 (part numbers)",
                f"part_count {part.part_count}, but part {first.label} says {first.part_count}",
                part=part.label,
                line=1,
            )
        if part.part_no in by_number:
            raise StatementDamaged(
                "rule 4 (part numbers)",
                f"part {part.part_no} appears twice, also in {by_number[part.part_no].info.filename}",
                part=part.label,
                line=1,
            )
        # Without a configured currency rule 1 cannot pin it, but one statement
        # still has one currency.
        if expected.currency is None and part.currency != first.currency:
            raise StatementDamaged(
                "rule 1 (header)",
                f"currency {part.currency}, but part {first.label} has {first.currency}",
                part=part.label,
                line=1,
            )
        by_number[part.part_no] = part
    missing = [number for number in range(1, first.part_count + 1) if number not in by_number]
    if missing:
        raise StatementDamaged(
            "rule 4 (part numbers)",
            f"part {missing[0]} of {first.part_count} is missing ({len(missing)} missing in all)",
        )
    return [by_number[number] for number in range(1, first.part_count + 1)]


def _stream_statement(
    archive: zipfile.ZipFile,
    parts: list[_Part],
    limits: ArchiveLimits,
    on_details: Callable[[DetailLines], None],
) -> StatementSummary:
    inflation = InflationGuard(limits)
    serials = _SerialNumbers()
    totals: list[_PartTotals] = []
    for part in parts:
        _check_continuity(part, totals)
        totals.append(_stream_part(archive, part, inflation, serials, on_details))
    candidates = serials.repeated_hashes()
    if candidates:
        _find_repeated_serial(archive, parts, candidates, limits)
    return _summary(parts, totals)


def _check_continuity(part: _Part, totals_before: list[_PartTotals]) -> None:
    """Rule 5: the part opens where the one before it closed."""
    if totals_before and part.opening_cents != totals_before[-1].closing_cents:
        raise StatementDamaged(
            "rule 5 (part continuity)",
            f"opening_balance {part.opening_text}, but part {part.part_no - 1} "
            f"closes at {_format(totals_before[-1].closing_cents)}",
            part=part.label,
            line=1,
        )


def _summary(parts: list[_Part], totals: list[_PartTotals]) -> StatementSummary:
    """The whole statement's figures from its parts' (at least one)."""
    first = parts[0]
    credit_count = sum(part.credit_count for part in totals)
    debit_count = sum(part.debit_count for part in totals)
    return StatementSummary(
        account_no=first.account_no,
        bill_date=first.bill_date,
        currency=first.currency,
        opening_balance=Decimal(first.opening_text),
        closing_balance=_decimal(totals[-1].closing_cents),
        credit_count=credit_count,
        debit_count=debit_count,
        credit_total=_decimal(sum(part.credit_cents for part in totals)),
        debit_total=_decimal(sum(part.debit_cents for part in totals)),
        transaction_count=credit_count + debit_count,
        part_count=len(parts),
    )


class _SerialNumbers:
    """Every serial_no of the statement, kept as its 64-bit hash in arrays split by hash range.

    Two million serials take 16 MB so, where a set of the strings takes some 150 MB. Equal
    hashes only make candidates, which a second pass over the archive confirms or clears.
    """

    def __init__(self) -> None:
        self.buckets = [array("q") for _ in range(_SERIAL_BUCKETS)]

    def add(self, serial_nos: Sequence[str]) -> None:
        hashes = sorted(map(hash, serial_nos))
        start = 0
        for bucket, bound in zip(self.buckets, _SERIAL_BUCKET_BOUNDS, strict=False):
            end = bisect_left(hashes, bound, start)
            bucket.extend(hashes[start:end])
            start = end
        self.buckets[-1].extend(hashes[start:])

    def repeated_hashes(self) -> set[int]:
        repeated: set[int] = set()
        for bucket in self.buckets:
            if len(set(bucket)) != len(bucket):
                ordered = sorted(bucket)
                repeated.update(a for a, b in pairwise(ordered) if a == b)
        return repeated


def _find_repeated_serial(
    archive: zipfile.ZipFile, parts: list[_Part], candidates: set[int], limits: ArchiveLimits
) -> None:
    """Rule 6 for serials whose hashes repeat: the first one that really appears twice, if any."""
    seen: set[str] = set()
    inflation = InflationGuard(limits)
    for part in parts:
        line_no = 1
        for block in _member_blocks(archive, part.info, part.label, inflation):
            for line in block.decode("gb18030").split("\n")[:-1]:
                line_no += 1
                if not line.startswith("D|"):
                    continue
                serial_no = line.split("|", 4)[3]
                if hash(serial_no) not in candidates:
                    continue
                if serial_no in seen:
                    raise StatementDamaged(
                        "rule 6 (serial_no unique)",
                        f"serial_no {serial_no} already appeared earlier in the statement",
                        part=part.label,
                        line=line_no,
                    )
                seen.add(serial_no)


class _PartState:
    """What a part's detail lines add up to so far, and its trailer once seen."""

    __slots__ = ("balance", "credit_cents", "credits", "debit_cents", "debits", "trailer", "trailer_line")

    def __init__(self, opening_cents: int) -> None:
        self.balance = opening_cents
        self.credits = self.debits = self.credit_cents = self.debit_cents = 0
        self.trailer: list[str] | None = None
        self.trailer_line = 0

    def add(self, records: _ChainedTotals) -> None:
        """Records that continue the chain so far (the caller checked their opening balance)."""
        self.credits += records.credits
        self.debits += records.records - records.credits
        self.credit_cents += records.credit_cents
        self.debit_cents += records.debit_cents
        self.balance = records.closing_cents

    def totals(self) -> _PartTotals:
        return _PartTotals(self.credits, self.debits, self.credit_cents, self.debit_cents, self.balance)


def _stream_part(
    archive: zipfile.ZipFile,
    part: _Part,
    inflation: InflationGuard,
    serials: _SerialNumbers,
    on_details: Callable[[DetailLines], None],
) -> _PartTotals:
    label = part.label
    find_details = _detail_finder(part.bill_date_text)
    state = _PartState(part.opening_cents)
    line_no = 1  # the header, validated in the first pass
    for block in _member_blocks(archive, part.info, part.label, inflation):
        lines = block.split(b"\n")
        lines.pop()  # the block ends with LF
        _check_line_lengths(lines, line_no, label)
        details = None
        if state.trailer is None:
            details = _valid_block(block, len(lines), find_details, state)
        if details is None:
            details = _checked_lines(lines, line_no, part, state)
        line_no += len(lines)
        if details.serial_nos:
            serials.add(details.serial_nos)
            on_details(details)
    if state.trailer is None:
        raise StatementDamaged("structure", "missing trailer (T record)", part=label, line=line_no)
    found = state.totals()
    _check_trailer(state.trailer, found, label, state.trailer_line)
    return found


FindDetails = Callable[[str], list[tuple[str, ...]]]


def _detail_finder(bill_date_text: str) -> FindDetails:
    """Every whole line of a text that is a valid D record of this bill_date, as the fields rules need.

    The groups: serial_no, direction, amount, balance_after.
    """
    free = r"[^|\r\n\x00]*"
    return re.compile(
        rf"^D\|{re.escape(bill_date_text)}\|{_TIME_PATTERN}\|({_SERIAL_NO_PATTERN})\|"
        rf"([CD])\|({_POSITIVE_AMOUNT_PATTERN})\|({_SIGNED_AMOUNT_PATTERN})\|{free}\|{free}\|{free}$",
        re.MULTILINE,
    ).findall


@dataclass(frozen=True, slots=True)
class _ChainedTotals:
    """What consecutive D records add up to, their balance chain holding from the first to the last."""

    records: int
    credits: int
    credit_cents: int
    debit_cents: int
    opening_cents: int  # the balance before the first record
    closing_cents: int  # the balance after the last


@dataclass(frozen=True, slots=True)
class _Records:
    details: DetailLines
    totals: _ChainedTotals


def _block_text(block: bytes) -> str | None:
    """A block of lines decoded, with LF endings; None if it is not GB18030."""
    try:
        text = block.decode("gb18030")
    except UnicodeDecodeError:
        return None
    return text.replace("\r\n", "\n") if "\r" in text else text


def _valid_records(text: str, line_count: int, find_details: FindDetails) -> _Records | None:
    """The lines of ``text`` if all ``line_count`` are valid D records chained to each other, else None.

    The common case, checked a block at a time in C loops. The balance before the first
    record is what it implies; whether that continues the chain so far is the caller's check.
    """
    rows = find_details(text)
    if len(rows) != line_count or not rows:
        return None
    serial_nos, directions, amounts, balances = zip(*rows, strict=True)
    cents = list(map(int, map(_WITHOUT_POINT, amounts)))
    signed = list(map(mul, cents, map(_SIGN.__getitem__, directions)))
    balance_cents = list(map(int, map(_WITHOUT_POINT, balances)))
    opening = balance_cents[0] - signed[0]
    chain = list(accumulate(signed, initial=opening))
    del chain[0]
    if chain != balance_cents:
        return None
    total, net = sum(cents), sum(signed)
    return _Records(
        DetailLines(serial_nos, text),
        _ChainedTotals(
            records=line_count,
            credits=directions.count("C"),
            credit_cents=(total + net) // 2,
            debit_cents=(total - net) // 2,
            opening_cents=opening,
            closing_cents=chain[-1],
        ),
    )


def _valid_block(
    block: bytes, line_count: int, find_details: FindDetails, state: _PartState
) -> DetailLines | None:
    """The block's details if every line is a valid D record continuing the balance chain, else None.

    Any doubt (a trailer, a bad byte, a broken chain) leaves the block to ``_checked_lines``,
    which finds and names the fault.
    """
    text = _block_text(block)
    records = _valid_records(text, line_count, find_details) if text is not None else None
    if records is None or records.totals.opening_cents != state.balance:
        return None
    state.add(records.totals)
    return records.details


def _checked_lines(lines: list[bytes], line_no: int, part: _Part, state: _PartState) -> DetailLines:
    """Line by line, every rule with its own message: the trailer, and blocks with a fault."""
    label = part.label
    bill_date_text = part.bill_date_text
    serial_nos: list[str] = []
    valid: list[str] = []
    for raw in lines:
        line_no += 1
        if raw[-1:] == b"\r":
            raw = raw[:-1]
        if state.trailer is not None:
            if raw:
                raise StatementDamaged("structure", "text after the trailer", part=label, line=line_no)
            continue
        if not raw:
            raise StatementDamaged("structure", "empty line before the trailer", part=label, line=line_no)
        if b"\r" in raw:
            raise StatementDamaged("structure", "CR inside a line", part=label, line=line_no)
        line = _decode(raw, label, line_no)
        fields = line.split("|")
        kind = fields[0]
        if kind == "T":
            state.trailer = fields
            state.trailer_line = line_no
            continue
        if kind != "D":
            raise StatementDamaged(
                "structure", f"record type {kind[:8]!r}, expected D or T", part=label, line=line_no
            )
        if len(fields) != 10:
            raise StatementDamaged(
                "structure", f"D record has {len(fields)} fields, expected 10", part=label, line=line_no
            )
        _, trade_date, trade_time, serial_no, direction, amount, balance_after = fields[:7]
        for field, value in zip(_FREE_TEXT_FIELDS, fields[7:], strict=True):
            if "\x00" in value:
                raise StatementDamaged(
                    f"field {field}",
                    "holds a NUL character, which no database stores",
                    part=label,
                    line=line_no,
                )
        if trade_date != bill_date_text:
            raise StatementDamaged(
                "field trade_date",
                f"{trade_date!r}, expected the bill_date {bill_date_text}",
                part=label,
                line=line_no,
            )
        if not _TIME(trade_time):
            raise StatementDamaged(
                "field trade_time", f"{trade_time!r} is not a time HHMMSS", part=label, line=line_no
            )
        if not _SERIAL_NO(serial_no):
            raise StatementDamaged(
                "field serial_no",
                f"{serial_no[:40]!r} is not 1 to 32 characters of [0-9A-Za-z]",
                part=label,
                line=line_no,
            )
        if not _POSITIVE_AMOUNT(amount):
            raise StatementDamaged(
                "field amount",
                f"{amount[:40]!r} is not a positive amount: {_AMOUNT_FORM}",
                part=label,
                line=line_no,
            )
        if not _SIGNED_AMOUNT(balance_after):
            raise StatementDamaged(
                "field balance_after",
                f"{balance_after[:40]!r} is not {_SIGNED_FORM}",
                part=label,
                line=line_no,
            )
        balance = state.balance
        cents = _cents(amount)
        if direction == "C":
            expected_balance = balance + cents
            state.credits += 1
            state.credit_cents += cents
        elif direction == "D":
            expected_balance = balance - cents
            state.debits += 1
            state.debit_cents += cents
        else:
            raise StatementDamaged(
                "field direction", f"{direction[:8]!r}, expected C or D", part=label, line=line_no
            )
        if _cents(balance_after) != expected_balance:
            raise StatementDamaged(
                "rule 3 (balance chain)",
                f"balance_after {balance_after}, expected {_format(expected_balance)} "
                f"(previous balance {_format(balance)} {'+' if direction == 'C' else '-'} {amount})",
                part=label,
                line=line_no,
            )
        state.balance = expected_balance
        serial_nos.append(serial_no)
        valid.append(line)
    return DetailLines(serial_nos, "".join(f"{line}\n" for line in valid))


def _check_trailer(fields: list[str], found: _PartTotals, label: str, line: int) -> None:
    """Rules 2 and 3: the T record against what the part's D records add up to."""
    if len(fields) != 7:
        raise StatementDamaged(
            "structure", f"T record has {len(fields)} fields, expected 7", part=label, line=line
        )
    _, detail_count, credit_count, debit_count, credit_total, debit_total, closing = fields
    for field, value in (
        ("detail_count", detail_count),
        ("credit_count", credit_count),
        ("debit_count", debit_count),
    ):
        if not _COUNT(value):
            raise StatementDamaged(
                f"field {field}", f"{value[:40]!r} is not a non-negative integer", part=label, line=line
            )
    for field, value in (("credit_total", credit_total), ("debit_total", debit_total)):
        if not _TOTAL(value):
            raise StatementDamaged(
                f"field {field}", f"{value[:40]!r} is not {_AMOUNT_FORM}", part=label, line=line
            )
    if not _SIGNED_AMOUNT(closing):
        raise StatementDamaged(
            "field closing_balance", f"{closing[:40]!r} is not {_SIGNED_FORM}", part=label, line=line
        )

    def broken(rule: str, detail: str) -> StatementDamaged:
        return StatementDamaged(rule, detail, part=label, line=line)

    details = found.credit_count + found.debit_count
    if int(detail_count) != details:
        raise broken(
            "rule 2 (trailer counts)", f"detail_count {detail_count}, but the part has {details} D records"
        )
    if int(credit_count) + int(debit_count) != details:
        raise broken(
            "rule 2 (trailer counts)",
            f"credit_count {credit_count} + debit_count {debit_count} != detail_count {detail_count}",
        )
    # With both sums equal, a wrong credit_count implies a wrong debit_count too.
    if int(credit_count) != found.credit_count:
        raise broken(
            "rule 2 (trailer counts)",
            f"credit_count {credit_count} and debit_count {debit_count}, but the part has "
            f"{found.credit_count} credits and {found.debit_count} debits",
        )
    if _cents(credit_total) != found.credit_cents:
        raise broken(
            "rule 2 (trailer totals)",
            f"credit_total {credit_total}, but the credits add up to {_format(found.credit_cents)}",
        )
    if _cents(debit_total) != found.debit_cents:
        raise broken(
            "rule 2 (trailer totals)",
            f"debit_total {debit_total}, but the debits add up to {_format(found.debit_cents)}",
        )
    if _cents(closing) != found.closing_cents:
        raise broken(
            "rule 3 (balance chain)",
            f"closing_balance {closing}, but the balance chain ends at {_format(found.closing_cents)}",
        )


def _member_blocks(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    label: str,
    inflation: InflationGuard,
    chunk_bytes: int = _CHUNK_BYTES,
) -> Iterator[bytes]:
    """The part's lines after the header, in blocks of whole lines each ending with LF.

    Every inflated byte is counted against the limits, and no line may outgrow its cap
    while it waits for its end. The blocks are the same on every read of the same archive.
    """
    try:
        stream = archive.open(info)
    except ZIP_ERRORS as exc:
        raise StatementDamaged("archive", f"cannot inflate member: {exc}", part=label) from exc
    with stream:
        member_bytes = 0
        lines_before = 0  # the header is line 1
        pending = b""
        in_header = True
        while chunk := _read(stream, label, chunk_bytes):
            member_bytes += len(chunk)
            inflation.add(len(chunk), member_bytes, info, label)
            data = pending + chunk
            if in_header:
                end = data.find(b"\n")
                if end < 0:
                    pending = data
                    continue
                data = data[end + 1 :]
                in_header = False
                lines_before = 1
            cut = data.rfind(b"\n") + 1
            pending = data[cut:]
            if cut:
                yield data[:cut]
                lines_before += data.count(b"\n", 0, cut)
            if len(pending) > _MAX_LINE_BYTES:
                raise StatementDamaged(
                    "structure",
                    f"line longer than {_MAX_LINE_BYTES} bytes",
                    part=label,
                    line=lines_before + 1,
                )
        if pending and not in_header:
            yield pending + b"\n"


def _check_line_lengths(lines: list[bytes], lines_before: int, label: str) -> None:
    # Checked on every line, not just on the unfinished one, so that the verdict
    # does not depend on where the chunk boundaries fall.
    if lines and max(map(len, lines)) > _MAX_LINE_BYTES:
        index = next(i for i, line in enumerate(lines) if len(line) > _MAX_LINE_BYTES)
        raise StatementDamaged(
            "structure",
            f"line longer than {_MAX_LINE_BYTES} bytes",
            part=label,
            line=lines_before + index + 1,
        )


def _read(stream: IO[bytes], label: str, chunk_bytes: int) -> bytes:
    try:
        return stream.read(chunk_bytes)
    except ZIP_ERRORS as exc:
        raise StatementDamaged("archive", f"cannot inflate member: {exc}", part=label) from exc


def _decode(raw: bytes, label: str, line: int) -> str:
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise _not_gb18030(exc, label, line) from exc


def _not_gb18030(exc: UnicodeDecodeError, label: str, line: int) -> StatementDamaged:
    return StatementDamaged(
        "encoding",
        f"bytes {exc.object[exc.start : exc.end].hex()} at byte {exc.start} are not GB18030",
        part=label,
        line=line,
    )


def _parse_date(text: str) -> date | None:
    if not _DATE(text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _cents(amount: str) -> int:
    """An amount already checked against its pattern, as exact integer cents."""
    return int(amount[:-3] + amount[-2:])


def _decimal(cents: int) -> Decimal:
    sign = 1 if cents < 0 else 0
    return Decimal((sign, tuple(int(digit) for digit in str(abs(cents))), -2))


def _format(cents: int) -> str:
    return str(_decimal(cents))
