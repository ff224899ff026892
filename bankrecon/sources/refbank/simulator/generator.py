"""Deterministic daily statements in the bank's part format (statement-format.md).

A statement is replayed from its seed every time it is read, so a two-million-line statement
costs no more memory than a twenty-line one: nothing but the generation parameters is kept.
Money is handled as integer cents internally; ``Decimal`` only appears at the public surface.
"""

from __future__ import annotations

import io
import math
import random
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property
from itertools import chain, groupby, islice, pairwise
from pathlib import Path
from typing import BinaryIO, Literal

ENCODING = "gb18030"
_UTF8_NAME_FLAG = 0x800
# Lines joined, encoded and written at a time: big enough to amortise the calls, small
# enough that a part of any size is written in a few hundred kilobytes of memory.
_CHUNK_LINES = 4096

_TRANSFER, _FEE, _INTEREST = 0, 1, 2
_FEES = (50, 100, 200, 500, 1000, 2500)

# Cumulative share of the day's transactions by clock time: quiet at night, busy in office
# hours. Mapping an evenly spread, increasing fraction through it keeps times increasing.
_DAY_SHAPE = (
    (0.00, 0),
    (0.03, 7 * 3600),
    (0.45, 12 * 3600),
    (0.52, 13 * 3600 + 1800),
    (0.93, 18 * 3600),
    (1.00, 24 * 3600),
)

# (fraction where the segment ends, where it starts, its first second, seconds per fraction);
# the last segment never ends, because floats near 1.0 can round up to it.
_DAY_SEGMENTS = tuple(
    (high if high < 1 else math.inf, low, start, (end - start) / (high - low))
    for (low, start), (high, end) in pairwise(_DAY_SHAPE)
)

_CITIES = ("北京", "上海", "深圳", "广州", "杭州", "成都", "武汉", "南京", "苏州", "西安", "天津", "重庆")
_BRANDS = ("华信", "远航", "鼎盛", "恒通", "创新", "博远", "金桥", "瑞丰", "天成", "启明", "东方", "新纪元")
_TRADES = ("科技", "贸易", "物流", "餐饮管理", "建筑工程", "信息技术", "医疗器械", "文化传媒", "电子商务")
_SURNAMES: tuple[str, ...] = (*"王李张刘陈杨黄赵周吴徐孙胡朱高林何郭马罗", "欧阳", "司马")
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
_LATIN = (
    "ACME Trading Co., Ltd.",
    "Global Freight Services Pte Ltd",
    "John Smith",
    "Maria Garcia Lopez",
    "Nordic Supply AB",
    "Müller & Söhne GmbH",
    "O'Brien Consulting",
    "Sunrise Electronics (HK) Limited",
)
# Names with characters outside GBK; 𠀀 and 㐀 take GB18030's four-byte form.
_RARE = ("刘䶮", "广州𠀀记茶餐厅", "㐀山文化工作室", "陈䶮龙", "𠀀𠀀贸易商行")
# Payment platforms settle without a counterparty account.
_NO_ACCOUNT = ("财付通支付科技有限公司", "支付宝（中国）网络技术有限公司", "中国银联股份有限公司")
_MEMOS = (
    "货款",
    "报销",
    "工资",
    "代发工资",
    "房租",
    "退款",
    "服务费",
    "采购款",
    "往来款",
    "运费",
    "保证金",
    "借款归还",
    "",
)


@dataclass(frozen=True)
class GeneratedTransaction:
    serial_no: str
    trade_time: str
    direction: Literal["C", "D"]
    amount: Decimal
    balance_after: Decimal
    counterparty_account: str
    counterparty_name: str
    memo: str


# (trade_time, serial_no, signed cents, balance after in cents, account, name, memo)
_Row = tuple[str, str, int, int, str, str, str]


@dataclass(frozen=True)
class GeneratedStatement:
    """One account's statement for one day, replayed from ``seed`` whenever it is read.

    ``write_zip`` streams, so it suits statements of any size; ``parts``, ``transactions()``
    and ``part_texts()`` hold the whole statement in memory.
    """

    account_no: str
    bill_date: date
    currency: str
    opening_balance: Decimal
    member_names: list[str]
    part_line_counts: tuple[int, ...]
    seed: int

    @property
    def line_count(self) -> int:
        return sum(self.part_line_counts)

    @cached_property
    def closing_balance(self) -> Decimal:
        opening = _cents(self.opening_balance)
        return _decimal(
            opening + sum(cents for _kind, cents in _money_draws(self._key, self.line_count, opening))
        )

    @cached_property
    def parts(self) -> list[list[GeneratedTransaction]]:
        rows = self._rows()
        return [
            [
                GeneratedTransaction(
                    serial_no=serial,
                    trade_time=clock,
                    direction="C" if cents > 0 else "D",
                    amount=_decimal(abs(cents)),
                    balance_after=_decimal(balance),
                    counterparty_account=account,
                    counterparty_name=name,
                    memo=memo,
                )
                for clock, serial, cents, balance, account, name, memo in islice(rows, size)
            ]
            for size in self.part_line_counts
        ]

    def transactions(self) -> list[GeneratedTransaction]:
        return list(chain.from_iterable(self.parts))

    def part_texts(self, line_ending: str = "\n", final_newline: bool = True) -> list[str]:
        return [
            "".join(text for _part, text in pieces)
            for _part, pieces in groupby(self._pieces(line_ending, final_newline), key=lambda p: p[0])
        ]

    def write_zip(
        self,
        target: BinaryIO | Path,
        *,
        line_ending: str = "\n",
        final_newline: bool = True,
        compression: int = zipfile.ZIP_DEFLATED,
    ) -> None:
        """Write the archive part by part, a few thousand lines at a time, whatever its size."""
        # A fixed timestamp keeps the archive bytes, and so their digest, a function of the seed.
        made = self.bill_date + timedelta(days=1)
        stamp = (made.year, made.month, made.day, 2, 30, 0)
        with zipfile.ZipFile(target, "w", compression=compression) as archive:
            for part, pieces in groupby(self._pieces(line_ending, final_newline), key=lambda p: p[0]):
                info = _GB18030NameInfo(self.member_names[part], date_time=stamp)
                info.compress_type = compression
                info.external_attr = 0o644 << 16
                with archive.open(info, "w", force_zip64=True) as member:
                    for _part, text in pieces:
                        member.write(text.encode(ENCODING))

    def to_zip_bytes(
        self,
        *,
        line_ending: str = "\n",
        final_newline: bool = True,
        compression: int = zipfile.ZIP_DEFLATED,
    ) -> bytes:
        buffer = io.BytesIO()
        self.write_zip(buffer, line_ending=line_ending, final_newline=final_newline, compression=compression)
        return buffer.getvalue()

    @property
    def _key(self) -> str:
        return f"{self.seed}:{self.account_no}:{self.bill_date:%Y%m%d}"

    def _pieces(self, line_ending: str, final_newline: bool) -> Iterator[tuple[int, str]]:
        """(part index, text) of every part in order, each part's text cut into a few pieces."""
        if line_ending not in ("\n", "\r\n"):
            raise ValueError(f"line_ending must be LF or CRLF, not {line_ending!r}")
        eol = line_ending
        day = f"{self.bill_date:%Y%m%d}"
        part_count = len(self.part_line_counts)
        rows = self._rows()
        balance = _cents(self.opening_balance)
        for part, size in enumerate(self.part_line_counts):
            lines = [
                f"H|{self.account_no}|{day}|{self.currency}|{_amount(balance)}|{part + 1}|{part_count}{eol}"
            ]
            credits = debits = credit_total = debit_total = 0
            for clock, serial, cents, balance, account, name, memo in islice(rows, size):
                if cents > 0:
                    credits += 1
                    credit_total += cents
                    direction = "C"
                else:
                    debits += 1
                    debit_total -= cents
                    direction = "D"
                lines.append(
                    f"D|{day}|{clock}|{serial}|{direction}|{_amount(abs(cents))}|"
                    f"{_amount(balance)}|{account}|{name}|{memo}{eol}"
                )
                if len(lines) == _CHUNK_LINES:
                    yield part, "".join(lines)
                    lines = []
            lines.append(
                f"T|{credits + debits}|{credits}|{debits}|{_amount(credit_total)}|"
                f"{_amount(debit_total)}|{_amount(balance)}{eol if final_newline else ''}"
            )
            yield part, "".join(lines)

    def _rows(self) -> Iterator[_Row]:
        # Money and text come from separate streams so that the closing balance can be
        # replayed from the money stream alone.
        count = self.line_count
        rng = random.Random(f"{self._key}:text")
        draw = rng.random
        parties = _counterparties(random.Random(f"{self._key}:parties"))
        memos = (
            *_MEMOS,
            *(f"发票 FP{rng.randrange(10**8):08d}" for _ in range(3)),
            *(f"Invoice INV-{rng.randrange(10**4):04d}" for _ in range(2)),
        )
        party_count, memo_count = len(parties), len(memos)
        prefix = f"{self.bill_date:%Y%m%d}"
        segments = iter(_DAY_SEGMENTS)
        end, low, start, slope = next(segments)
        second, clock = -1, ""
        balance = _cents(self.opening_balance)
        for index, (kind, cents) in enumerate(_money_draws(self._key, count, balance)):
            # Evenly spread, increasing fractions of the day through its shape: times increase.
            fraction = (index + draw()) / count
            while fraction >= end:
                end, low, start, slope = next(segments)
            now = min(start + int((fraction - low) * slope), 86_399)
            if now != second:
                second = now
                clock = f"{now // 3600:02d}{now // 60 % 60:02d}{now % 60:02d}"
            if kind == _TRANSFER:
                account, name = parties[int(draw() * party_count)]
                memo = memos[int(draw() * memo_count)]
            elif kind == _FEE:
                account = name = ""
                memo = "手续费" if draw() < 0.8 else ""
            else:
                account = name = ""
                memo = "利息" if draw() < 0.8 else ""
            balance += cents
            # The index runs across parts, so serials are unique in the whole statement.
            yield clock, f"{prefix}{index + 1:06d}", cents, balance, account, name, memo


class _GB18030NameInfo(zipfile.ZipInfo):
    """A member whose name is stored as GB18030 bytes without the UTF-8 flag, as bank SDKs do.

    ``zipfile`` would store any non-ASCII name as UTF-8 and set the flag; ASCII names are
    the same bytes either way.
    """

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode(ENCODING), self.flag_bits & ~_UTF8_NAME_FLAG


def generate_statement(
    account_no: str,
    bill_date: date,
    *,
    seed: int,
    lines: int,
    parts: int = 1,
    currency: str = "CNY",
    opening_balance: Decimal | None = None,
    gb18030_names: bool = False,
) -> GeneratedStatement:
    """The statement of ``account_no`` for ``bill_date``, the same for the same seed, account and date.

    ``lines`` are spread over ``parts`` as evenly as possible (a part may have none). With
    ``gb18030_names`` the members are named ``对账单_...`` in GB18030 instead of ASCII.
    """
    if lines < 0 or parts < 1:
        raise ValueError(f"need lines >= 0 and parts >= 1, got lines={lines}, parts={parts}")
    if opening_balance is None:
        opening_rng = random.Random(f"{seed}:{account_no}:{bill_date:%Y%m%d}:opening")
        if opening_rng.random() < 0.05:
            opening_cents = -opening_rng.randrange(1, 5_000_000)
        else:
            opening_cents = opening_rng.randrange(0, 500_000_000)
    else:
        opening_cents = _cents(opening_balance)
    base, extra = divmod(lines, parts)
    prefix = "对账单_" if gb18030_names else ""
    return GeneratedStatement(
        account_no=account_no,
        bill_date=bill_date,
        currency=currency,
        opening_balance=_decimal(opening_cents),
        member_names=[f"{prefix}{account_no}_{bill_date:%Y%m%d}_{n:03d}.txt" for n in range(1, parts + 1)],
        part_line_counts=tuple(base + 1 if n < extra else base for n in range(parts)),
        seed=seed,
    )


def _money_draws(key: str, count: int, opening: int) -> Iterator[tuple[int, int]]:
    """(kind, signed cents) of each transaction: credits positive, debits negative."""
    rng = random.Random(f"{key}:money")
    draw = rng.random
    balance = opening
    for _ in range(count):
        roll = draw()
        if roll < 0.03:
            cents = -_FEES[int(draw() * len(_FEES))]
            kind = _FEE
        elif roll < 0.04:
            cents = 1 + int(draw() * 50_000)
            kind = _INTEREST
        else:
            if roll < 0.09:
                cents = 1 + int(draw() * 99)
            elif roll < 0.998:
                # Log-uniform from one yuan to a million, some 30 % of them whole yuan.
                cents = int(10.0 ** (2 + draw() * 6))
                if roll < 0.35:
                    cents -= cents % 100
            elif roll < 0.9995:
                cents = int(10.0 ** (8 + draw() * 2))
            else:
                cents = int(10.0 ** (10 + draw() * 2))
            # Overdrawn accounts mostly receive money and rich ones mostly pay, so balances
            # wander without drifting away.
            if draw() >= (0.75 if balance < 0 else 0.25 if balance > 10**10 else 0.45):
                cents = -cents
            kind = _TRANSFER
        balance += cents
        yield kind, cents


def _counterparties(rng: random.Random) -> list[tuple[str, str]]:
    """(account, name) pairs a statement's transfers draw from."""

    def account() -> str:
        return "62" + "".join(rng.choices("0123456789", k=rng.choice((14, 15, 17))))

    def person() -> str:
        return rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2))))

    def company() -> str:
        city, brand, trade = rng.choice(_CITIES), rng.choice(_BRANDS), rng.choice(_TRADES)
        if rng.random() < 0.2:
            return f"{brand}{trade}（{city}）有限公司"
        return f"{city}{brand}{trade}有限公司"

    parties = [(account(), company()) for _ in range(24)]
    parties += [(account(), person()) for _ in range(16)]
    parties += [(account(), name) for name in _LATIN]
    parties += [(account(), name) for name in _RARE]
    parties += [("", name) for name in _NO_ACCOUNT]
    parties += [(account(), "")]
    return parties


def _amount(cents: int) -> str:
    whole, fraction = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{whole}.{fraction:02d}"


def _decimal(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _cents(amount: Decimal) -> int:
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} has more than two fraction digits")
    return int(cents)
