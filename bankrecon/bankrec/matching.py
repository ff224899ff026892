"""Matching the cash book against the bank statement, where the two sides share no key.

Four rules, each on what the rules before it left, every match recording its rule:

1. ``reference``: a reference both sides carry, or the voucher/invoice number ``voucher_pattern``
   finds in the bank memo equal to the book's voucher number; amounts and directions equal.
2. ``counterparty``: amount and direction equal, the counterparty's account equal (or, where one
   side lacks it, the name equal once normalised), dates within the window.
3. ``amount_date``: amount and direction equal within the window, where exactly one candidate
   exists on each side.
4. ``group``: one bank line against several book entries of its counterparty (or one entry
   against several bank lines) adding up exactly, at most ``group_max``, within the window.

Deterministic: of several candidates the nearest date wins, then the earlier line; lines are
taken in their order (date, then position).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from itertools import combinations

from bankrecon.bankrec.entries import Entry

RULES = ("reference", "counterparty", "amount_date", "group")
# A group is looked for among this many nearest candidates: enough for any real split payment,
# and it bounds the combinations tried per line.
GROUP_CANDIDATES = 16
# Company suffixes that one side writes and the other leaves out, longest first.
COMPANY_SUFFIXES = (
    "股份有限公司", "有限责任公司", "有限公司", "集团公司", "集团", "公司",
    "co.,ltd.", "co.,ltd", "co.ltd.", "co.ltd", "coltd", "limited", "ltd.", "ltd",
    "corporation", "corp.", "corp", "inc.", "inc", "llc", "gmbh",
)  # fmt: skip
_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = ".,()-_/&"


@dataclass(frozen=True)
class MatchRules:
    date_window_days: int
    group_max: int
    voucher_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    rule: str
    book: tuple[Entry, ...]
    bank: tuple[Entry, ...]


@dataclass
class Matching:
    matches: list[Match] = field(default_factory=list)
    open_book: list[Entry] = field(default_factory=list)
    open_bank: list[Entry] = field(default_factory=list)


@cache
def normalised_name(name: str | None) -> str:
    """A counterparty's name without width, case, spaces and the usual company suffixes."""
    if not name:
        return ""
    text = _SPACES.sub("", unicodedata.normalize("NFKC", name).casefold())
    stripped = None
    while stripped != text:
        stripped = text
        text = text.strip(_EDGE_PUNCTUATION)
        for suffix in COMPANY_SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix):
                text = text[: -len(suffix)]
                break
    return text


def same_counterparty(one: Entry, other: Entry) -> bool:
    """The account equal where both carry one; else the normalised name equal (both carrying one)."""
    if one.counterparty_account and other.counterparty_account:
        return _account(one.counterparty_account) == _account(other.counterparty_account)
    mine, theirs = normalised_name(one.counterparty_name), normalised_name(other.counterparty_name)
    return bool(mine) and mine == theirs


@cache
def _account(number: str) -> str:
    return re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", number))


def vouchers_in(memo: str | None, pattern: re.Pattern[str] | None) -> set[str]:
    """The voucher or invoice numbers ``pattern`` finds in a memo (its first group where it has one)."""
    if not memo or pattern is None:
        return set()
    return {found.group(1) if pattern.groups else found.group(0) for found in pattern.finditer(memo)}


def _days_apart(a: Entry, b: Entry) -> int:
    return abs((a.booked_on - b.booked_on).days)


def _nearest(line: Entry, candidates: Iterable[Entry]) -> Entry | None:
    return min(candidates, key=lambda other: (_days_apart(line, other), other.order), default=None)


class _Left:
    """The lines of one side no rule has matched yet, found by (direction, amount)."""

    def __init__(self, lines: Sequence[Entry]) -> None:
        self.lines = sorted(lines, key=lambda line: line.order)
        self._used: set[int] = set()
        self._by_amount: dict[tuple[str, Decimal], list[int]] = defaultdict(list)
        for index, line in enumerate(self.lines):
            self._by_amount[(line.direction, line.amount)].append(index)
        self._index = {id(line): index for index, line in enumerate(self.lines)}
        self._by_account: dict[str, list[int]] = defaultdict(list)
        self._by_name: dict[str, list[int]] = defaultdict(list)
        for index, line in enumerate(self.lines):
            if line.counterparty_account:
                self._by_account[_account(line.counterparty_account)].append(index)
            if name := normalised_name(line.counterparty_name):
                self._by_name[name].append(index)

    def __iter__(self) -> Iterator[Entry]:
        return (line for index, line in enumerate(self.lines) if index not in self._used)

    def take(self, *lines: Entry) -> None:
        self._used.update(self._index[id(line)] for line in lines)

    def taken(self, line: Entry) -> bool:
        return self._index[id(line)] in self._used

    def with_amount(self, direction: str, amount: Decimal) -> Iterator[Entry]:
        return (self.lines[i] for i in self._by_amount.get((direction, amount), ()) if i not in self._used)

    def of_counterparty(self, other: Entry) -> Iterator[Entry]:
        """The lines left whose counterparty is ``other``'s (as ``same_counterparty`` has it), in order."""
        found = set(self._by_name.get(normalised_name(other.counterparty_name), ()))
        if other.counterparty_account:
            found.update(self._by_account.get(_account(other.counterparty_account), ()))
        return (self.lines[i] for i in sorted(found - self._used) if same_counterparty(self.lines[i], other))


def match_entries(book: Sequence[Entry], bank: Sequence[Entry], rules: MatchRules) -> Matching:
    """Every match of the four rules, in rule order, and the lines left open on each side."""
    books, banks = _Left(book), _Left(bank)
    window = rules.date_window_days
    pattern = re.compile(rules.voucher_pattern) if rules.voucher_pattern else None
    result = Matching()

    def pair_each(rule: str, fits: Callable[[Entry, Entry], bool]) -> None:
        for line in list(banks):
            chosen = _nearest(
                line, (entry for entry in books.with_amount(line.direction, line.amount) if fits(entry, line))
            )
            if chosen is not None:
                books.take(chosen)
                banks.take(line)
                result.matches.append(Match(rule, (chosen,), (line,)))

    def by_reference(entry: Entry, line: Entry) -> bool:
        if entry.reference and entry.reference == line.reference:
            return True
        return bool(entry.key) and entry.key in vouchers_in(line.memo, pattern)

    pair_each("reference", by_reference)
    pair_each(
        "counterparty",
        lambda entry, line: _days_apart(entry, line) <= window and same_counterparty(entry, line),
    )
    _match_unique(books, banks, window, result)
    _match_groups(books, banks, rules, result)
    result.open_book = list(books)
    result.open_bank = list(banks)
    return result


def _match_unique(books: _Left, banks: _Left, window: int, result: Matching) -> None:
    """Rule 3: amount and direction equal within the window, one candidate on each side, counted
    among what the rules before left (so the order lines are taken in does not matter)."""

    def within(line: Entry, others: _Left) -> list[Entry]:
        return [
            other
            for other in others.with_amount(line.direction, line.amount)
            if _days_apart(line, other) <= window
        ]

    pairs = []
    for line in banks:
        candidates = within(line, books)
        if len(candidates) == 1 and within(candidates[0], banks) == [line]:
            pairs.append((candidates[0], line))
    for entry, line in pairs:
        books.take(entry)
        banks.take(line)
        result.matches.append(Match("amount_date", (entry,), (line,)))


def _match_groups(books: _Left, banks: _Left, rules: MatchRules, result: Matching) -> None:
    """Rule 4: one bank line against several book entries of its counterparty, then one book entry
    against several bank lines."""
    for one, many, one_is_bank in ((banks, books, True), (books, banks, False)):
        for line in list(one):
            if one.taken(line):
                continue
            candidates = sorted(
                (
                    other
                    for other in many.of_counterparty(line)
                    if other.direction == line.direction
                    and other.amount < line.amount
                    and _days_apart(line, other) <= rules.date_window_days
                ),
                key=lambda other: (_days_apart(line, other), other.order),
            )[:GROUP_CANDIDATES]
            group = _adding_up(candidates, line.amount, rules.group_max)
            if group is None:
                continue
            one.take(line)
            many.take(*group)
            ordered = tuple(sorted(group, key=lambda other: other.order))
            result.matches.append(
                Match("group", ordered, (line,)) if one_is_bank else Match("group", (line,), ordered)
            )


def _adding_up(candidates: Sequence[Entry], total: Decimal, most: int) -> tuple[Entry, ...] | None:
    """The first of the fewest candidates (in their order) whose amounts add up to ``total``."""
    for size in range(2, min(most, len(candidates)) + 1):
        for group in combinations(candidates, size):
            if sum((entry.amount for entry in group), Decimal(0)) == total:
                return group
    return None
