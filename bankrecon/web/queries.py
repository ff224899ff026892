"""What the pages show, read from the same tables as the CLI; every value bound, never spliced into SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Engine, Row, String, cast, func, or_, select

from bankrecon.recon.actions import ITEM_IDENTITY, identity_actions
from bankrecon.recon.models import ONE_SIDED
from bankrecon.recon.results import open_exceptions, open_totals_by_day
from bankrecon.store.db import bank_requests, failed_statements, statements, transactions

GRID_DAYS = 7
STATEMENT_PAGE_ROWS = 50
OPEN_ITEMS_PAGE_ROWS = 100
AGE_BANDS = ((0, 1, "0-1"), (2, 7, "2-7"), (8, 30, "8-30"), (31, None, "31+"))


@dataclass(frozen=True)
class ConfiguredAccount:
    account_no: str
    kind: str  # the source kind (refbank, wechatpay, ...), or "channel" for one only reconciled


@dataclass
class DayCell:
    """One account's day: what was collected, is awaited or failed, and what reconciliation left open."""

    collected_rows: int | None = None
    collected_at: datetime | None = None
    waiting_answer: str | None = None
    waiting_attempts: int = 0
    waiting_since: datetime | None = None
    failed_reason: str | None = None
    reconciled_at: datetime | None = None
    open_count: int = 0
    open_amount: Decimal = Decimal("0.00")

    @property
    def needs_attention(self) -> bool:
        return self.failed_reason is not None or self.open_count > 0


@dataclass
class GridRow:
    account: ConfiguredAccount
    cells: dict[date, DayCell] = field(default_factory=dict)

    @property
    def needs_attention(self) -> bool:
        return any(cell.needs_attention for cell in self.cells.values())


def grid_days(today: date) -> list[date]:
    """The last GRID_DAYS bill dates, newest first: yesterday's is the newest a bank can have."""
    return [today - timedelta(days=back) for back in range(1, GRID_DAYS + 1)]


def today_grid(engine: Engine, accounts: Sequence[ConfiguredAccount], days: Sequence[date]) -> list[GridRow]:
    first, last = min(days), max(days)
    rows = {a.account_no: GridRow(a, {day: DayCell() for day in days}) for a in accounts}

    def cell(account_no: str, day: date) -> DayCell | None:
        row = rows.get(account_no)
        return None if row is None else row.cells.get(day)

    s, f, b = statements.c, failed_statements.c, bank_requests.c
    with engine.connect() as conn:
        for found in conn.execute(
            select(s.account_no, s.bill_date, s.transaction_count, s.persisted_at).where(
                s.bill_date.between(first, last)
            )
        ):
            if (target := cell(found.account_no, found.bill_date)) is not None:
                target.collected_rows, target.collected_at = found.transaction_count, found.persisted_at
        for failure in conn.execute(
            select(f.account_no, f.bill_date, f.reason).where(f.bill_date.between(first, last))
        ):
            if (target := cell(failure.account_no, failure.bill_date)) is not None:
                target.failed_reason = failure.reason
        ranked = select(
            b.account_no,
            b.bill_date,
            b.outcome,
            b.sent_at,
            func.count().over(partition_by=(b.account_no, b.bill_date)).label("attempts"),
            func.row_number()
            .over(partition_by=(b.account_no, b.bill_date), order_by=(b.sent_at.desc(), b.id.desc()))
            .label("newest"),
        ).where(b.bill_date.between(first, last))
        latest = ranked.subquery()
        for request in conn.execute(select(latest).where(latest.c.newest == 1)):
            target = cell(request.account_no, request.bill_date)
            if target is not None and target.collected_rows is None:
                target.waiting_answer = request.outcome or "…"
                target.waiting_attempts = request.attempts
                target.waiting_since = request.sent_at
    for run in open_totals_by_day(engine, first, last):
        if (target := cell(run.account_no, run.recon_date)) is not None:
            target.reconciled_at = run.finished_at
            target.open_count = run.open_count
            target.open_amount = run.open_amount or Decimal("0.00")
    return list(rows.values())


@dataclass(frozen=True)
class StatementPage:
    header: Row[Any]
    rows: list[Row[Any]]
    total_rows: int
    page: int
    pages: int


def _search_clause(text: str) -> Any:
    t = transactions.c
    # LIKE's own wildcards in the text are searched for as themselves.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped.lower()}%"
    clauses: list[ColumnElement[bool]] = [
        func.lower(t.reference).like(pattern, escape="\\"),
        func.lower(t.counterparty_name).like(pattern, escape="\\"),
        func.lower(t.counterparty_account).like(pattern, escape="\\"),
        func.lower(cast(t.serial_no, String)).like(pattern, escape="\\"),
    ]
    try:
        amount = Decimal(text.replace(",", ""))
    except InvalidOperation:
        amount = None
    if amount is not None and amount.is_finite() and amount == amount.quantize(Decimal("0.01")):
        clauses.append(t.amount == abs(amount))
    return or_(*clauses)


def statement_page(
    engine: Engine, account_no: str, day: date, search: str, page: int
) -> StatementPage | None:
    t = transactions.c
    with engine.connect() as conn:
        header = conn.execute(
            select(statements).where(statements.c.account_no == account_no, statements.c.bill_date == day)
        ).first()
        if header is None:
            return None
        where = [t.account_no == account_no, t.bill_date == day]
        if search.strip():
            where.append(_search_clause(search.strip()))
        total = conn.execute(select(func.count()).select_from(transactions).where(*where)).scalar_one()
        pages = max(1, -(-total // STATEMENT_PAGE_ROWS))
        page = min(max(1, page), pages)
        rows = list(
            conn.execute(
                select(transactions)
                .where(*where)
                .order_by(t.seq)
                .limit(STATEMENT_PAGE_ROWS)
                .offset((page - 1) * STATEMENT_PAGE_ROWS)
            )
        )
    return StatementPage(header, rows, total, page, pages)


def statement_lines(engine: Engine, account_no: str, keys: Sequence[tuple[date, str]]) -> list[Row[Any]]:
    """The account's stored statement lines by (bill date, serial number), in that order."""
    t = transactions.c
    found: list[Row[Any]] = []
    with engine.connect() as conn:
        for bill_date, serial_no in keys:
            found.extend(
                conn.execute(
                    select(transactions).where(
                        t.account_no == account_no, t.bill_date == bill_date, t.serial_no == serial_no
                    )
                )
            )
    return found


def age_band(age_days: int) -> str:
    for low, high, name in AGE_BANDS:
        if age_days >= low and (high is None or age_days <= high):
            return name
    return AGE_BANDS[0][2]


@dataclass(frozen=True)
class OpenItem:
    item: Row[Any]
    age_days: int

    @property
    def band(self) -> str:
        return age_band(self.age_days)


OPEN_ITEM_ORDERS = {
    "date": lambda o: (o.item.recon_date, o.item.account_no, o.item.item_id),
    "account": lambda o: (o.item.account_no, o.item.recon_date, o.item.item_id),
    "amount": lambda o: (-o.item.amount, o.item.item_id),
    "age": lambda o: (-o.age_days, o.item.item_id),
}


def open_items(
    engine: Engine, first: date, last: date, account_no: str | None, today: date, order: str
) -> list[OpenItem]:
    """The open exceptions of ``recon --open``, each with its age in days since its day."""
    found = [
        OpenItem(item, (today - item.recon_date).days)
        for item in open_exceptions(engine, first, last, account_no or None)
    ]
    return sorted(found, key=OPEN_ITEM_ORDERS.get(order, OPEN_ITEM_ORDERS["date"]))


# How far back, and forward, the items a line may be paired with are looked for.
PAIR_WINDOW_DAYS = 31


def pair_candidates(engine: Engine, item: Any) -> list[Row[Any]]:
    """What ``pair`` would take for ``item``: the unresolved other halves of the same account and
    direction (the other side's one-sided line, or the other side of an amount_differs) in the
    latest runs of the days around it, those of the same amount first."""
    if item.state not in (*ONE_SIDED.values(), "amount_differs"):
        return []
    other_side = "channel" if item.side == "ledger" else "ledger"
    other_state = ONE_SIDED[other_side] if item.state in ONE_SIDED.values() else "amount_differs"
    window = timedelta(days=PAIR_WINDOW_DAYS)
    found = [
        candidate
        for candidate in open_exceptions(
            engine, item.recon_date - window, item.recon_date + window, item.account_no
        )
        if candidate.side == other_side
        and candidate.state == other_state
        and candidate.direction == item.direction
        and candidate.item_id != item.item_id
    ]
    return sorted(
        found,
        key=lambda candidate: (candidate.amount != item.amount, candidate.recon_date, candidate.item_id),
    )


def item_history(engine: Engine, item: Any) -> list[Row[Any]]:
    """Every action on the item's identity (notes included), oldest first: who, when, what, why."""
    key = tuple(getattr(item, column) for column in ITEM_IDENTITY)
    return identity_actions(engine, item.account_no, item.recon_date).get(key, [])
