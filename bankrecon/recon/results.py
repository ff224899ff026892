"""Reading runs and items back, with their exceptions' status and age."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, Row, case, func, select, type_coerce

from bankrecon.recon.actions import items_with_status
from bankrecon.recon.models import (
    AGE_BANDS,
    EXCEPTION_STATES,
    UNRESOLVED,
    AgedTotal,
    ReconDay,
    ReconRunSummary,
    StateTotal,
)
from bankrecon.recon.tables import recon_items, recon_runs
from bankrecon.store.db import Money

# The second age band ends this many days before the report's day.
RECENT_DAYS = 3


class ReconResultError(Exception):
    """What was asked of the results does not exist; the message says what does."""


def latest_runs(first: date, last: date, account_no: str | None = None) -> Any:
    r = recon_runs.c
    ranked = select(
        r.run_id,
        r.account_no,
        r.recon_date,
        func.row_number()
        .over(partition_by=(r.account_no, r.recon_date), order_by=(r.finished_at.desc(), r.run_id.desc()))
        .label("newest"),
    ).where(r.recon_date.between(first, last))
    if account_no is not None:
        ranked = ranked.where(r.account_no == account_no)
    ranked_runs = ranked.subquery()
    return select(ranked_runs.c.run_id).where(ranked_runs.c.newest == 1)


def latest_run_id(engine: Engine, day: ReconDay) -> str | None:
    with engine.connect() as conn:
        return conn.execute(latest_runs(day.recon_date, day.recon_date, day.account_no)).scalar()


def run_summary(engine: Engine, run_id: str) -> ReconRunSummary | None:
    i = recon_items.c
    with engine.connect() as conn:
        run = conn.execute(select(recon_runs).where(recon_runs.c.run_id == run_id)).first()
        if run is None:
            return None
        totals = conn.execute(
            select(i.state, i.side, func.count(), type_coerce(func.sum(i.amount), Money))
            .where(i.run_id == run_id)
            .group_by(i.state, i.side)
            .order_by(i.state, i.side)
        ).all()
    return ReconRunSummary(
        run_id=run_id,
        day=ReconDay(account_no=run.account_no, recon_date=run.recon_date),
        finished_at=run.finished_at,
        totals=[
            StateTotal(state=state, side=side, lines=lines, amount=amount)
            for state, side, lines, amount in totals
        ],
        ledger_sha256=run.ledger_sha256,
        statement_sha256=run.statement_sha256,
    )


def run_items(engine: Engine, run_id: str, exceptions_only: bool = False) -> list[Row[Any]]:
    i = recon_items.c
    query = items_with_status().where(i.run_id == run_id)
    if exceptions_only:
        query = query.where(i.state.in_(EXCEPTION_STATES))
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(i.state, i.side, i.reference, i.item_id)))


def streamed_items(engine: Engine, run_id: str) -> Iterator[Row[Any]]:
    """A run's items with their notes and status, by state, without holding them all."""
    i = recon_items.c
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
            items_with_status().where(i.run_id == run_id).order_by(i.state, i.side, i.reference, i.item_id)
        )
        yield from result


def _unresolved(first: date, last: date, account_no: str | None) -> Any:
    """Exceptions of each day's latest run in the range that nobody resolved, as a subquery."""
    items = (
        items_with_status().where(recon_items.c.run_id.in_(latest_runs(first, last, account_no))).subquery()
    )
    return items, items.c.status.in_(UNRESOLVED)


def open_exceptions(engine: Engine, first: date, last: date, account_no: str | None = None) -> list[Row[Any]]:
    """Exceptions of each day's latest run in the range that nobody resolved: open and explained."""
    items, unresolved = _unresolved(first, last, account_no)
    query = (
        select(items)
        .where(unresolved)
        .order_by(items.c.recon_date, items.c.account_no, items.c.state, items.c.reference, items.c.item_id)
    )
    with engine.connect() as conn:
        return list(conn.execute(query))


def age_days(day: date, as_of: date) -> int:
    """An exception's age (账龄): whole days from its day to the report's day, never below 0."""
    return max((as_of - day).days, 0)


def open_by_age(
    engine: Engine,
    as_of: date,
    first: date = date.min,
    account_no: str | None = None,
    last: date | None = None,
) -> list[AgedTotal]:
    """Per account and state, the count and amount of unresolved exceptions of ``first`` to ``last``
    (default: ``as_of``) in each age band on ``as_of``; a day after ``as_of`` is of its first band."""
    items, unresolved = _unresolved(first, last or as_of, account_no)
    band = case(
        (items.c.recon_date >= as_of, AGE_BANDS[0]),
        (items.c.recon_date >= as_of - timedelta(days=RECENT_DAYS), AGE_BANDS[1]),
        else_=AGE_BANDS[2],
    ).label("band")
    query = (
        select(
            items.c.account_no,
            items.c.state,
            band,
            func.count(),
            type_coerce(func.sum(items.c.amount), Money),
        )
        .where(unresolved)
        .group_by(items.c.account_no, items.c.state, band)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    totals = [
        AgedTotal(account_no=account, state=state, band=band_name, lines=lines, amount=amount)
        for account, state, band_name, lines, amount in rows
    ]
    return sorted(totals, key=lambda total: (total.account_no, total.state, AGE_BANDS.index(total.band)))


def open_totals_by_day(engine: Engine, first: date, last: date) -> list[Row[Any]]:
    """Each reconciled day in the range (its latest run) with its unresolved exceptions' count and amount."""
    items, unresolved = _unresolved(first, last, None)
    totals = (
        select(
            items.c.run_id,
            func.count().label("open_count"),
            type_coerce(func.sum(items.c.amount), Money).label("open_amount"),
        )
        .where(unresolved)
        .group_by(items.c.run_id)
        .subquery()
    )
    r = recon_runs.c
    query = (
        select(
            r.account_no,
            r.recon_date,
            r.run_id,
            r.finished_at,
            func.coalesce(totals.c.open_count, 0).label("open_count"),
            totals.c.open_amount,
        )
        .select_from(recon_runs.outerjoin(totals, totals.c.run_id == r.run_id))
        .where(r.run_id.in_(latest_runs(first, last)))
    )
    with engine.connect() as conn:
        return list(conn.execute(query))


def item_with_counterparts(engine: Engine, item_id: int) -> list[Row[Any]]:
    """The item with its note and status, then the lines of its run with the same reference and
    direction (the other side's, and its own side's twins); empty if there is no such item."""
    i = recon_items.c
    with engine.connect() as conn:
        item = conn.execute(items_with_status().where(i.item_id == item_id)).first()
        if item is None:
            return []
        if not item.reference:
            return [item]
        others = conn.execute(
            items_with_status()
            .where(
                i.run_id == item.run_id,
                i.reference == item.reference,
                i.direction == item.direction,
                i.item_id != item_id,
            )
            .order_by(i.side, i.item_id)
        ).all()
    return [item, *others]
