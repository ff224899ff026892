"""Reading runs and items back, and operators' notes on exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, Row, and_, func, select, type_coerce
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bankrecon.recon.models import EXCEPTION_STATES, ReconDay, ReconRunSummary, StateTotal
from bankrecon.recon.tables import recon_items, recon_notes, recon_runs
from bankrecon.store.db import Money

ITEM_IDENTITY = ("account_no", "recon_date", "state", "side", "reference", "direction")


class ReconResultError(Exception):
    """What was asked of the results does not exist; the message says what does."""


def _latest_runs(first: date, last: date, account_no: str | None = None) -> Any:
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
        return conn.execute(_latest_runs(day.recon_date, day.recon_date, day.account_no)).scalar()


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


def _with_notes() -> Any:
    i, n = recon_items.c, recon_notes.c
    joined = recon_items.outerjoin(recon_notes, and_(*(i[name] == n[name] for name in ITEM_IDENTITY)))
    return select(recon_items, n.note, n.noted_at).select_from(joined)


def run_items(engine: Engine, run_id: str, exceptions_only: bool = False) -> list[Row[Any]]:
    i = recon_items.c
    query = _with_notes().where(i.run_id == run_id)
    if exceptions_only:
        query = query.where(i.state.in_(EXCEPTION_STATES))
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(i.state, i.side, i.reference, i.item_id)))


def streamed_items(engine: Engine, run_id: str) -> Iterator[Row[Any]]:
    """A run's items with their notes, by state, without holding them all."""
    i = recon_items.c
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
            _with_notes().where(i.run_id == run_id).order_by(i.state, i.side, i.reference, i.item_id)
        )
        yield from result


def open_exceptions(engine: Engine, first: date, last: date, account_no: str | None = None) -> list[Row[Any]]:
    """Exceptions of each day's latest run in the range that no operator has explained."""
    i = recon_items.c
    query = (
        _with_notes()
        .where(i.run_id.in_(_latest_runs(first, last, account_no)), i.state.in_(EXCEPTION_STATES))
        .where(recon_notes.c.note.is_(None))
        .order_by(i.recon_date, i.account_no, i.state, i.reference, i.item_id)
    )
    with engine.connect() as conn:
        return list(conn.execute(query))


def explain(engine: Engine, item_id: int, note: str, at: datetime) -> Row[Any]:
    """Note why an exception is what it is; the note holds for the same item in later runs too."""
    if not note.strip():
        raise ReconResultError("the note is empty: say why the exception is explained")
    with engine.begin() as conn:
        item = conn.execute(select(recon_items).where(recon_items.c.item_id == item_id)).first()
        if item is None:
            raise ReconResultError(f"no reconciliation item {item_id}")
        if item.state not in EXCEPTION_STATES:
            raise ReconResultError(f"item {item_id} is {item.state}: only exceptions take a note")
        identity = {name: getattr(item, name) for name in ITEM_IDENTITY}
        dialect_insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        statement = dialect_insert(recon_notes).values(**identity, note=note.strip(), noted_at=at)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=list(ITEM_IDENTITY),
                set_={"note": statement.excluded.note, "noted_at": statement.excluded.noted_at},
            )
        )
    return item


def open_totals_by_day(engine: Engine, first: date, last: date) -> list[Row[Any]]:
    """Each reconciled day in the range (its latest run) with its open exceptions' count and amount."""
    i, n = recon_items.c, recon_notes.c
    latest = _latest_runs(first, last).subquery()
    open_items = (
        _with_notes()
        .where(i.run_id.in_(select(latest.c.run_id)), i.state.in_(EXCEPTION_STATES), n.note.is_(None))
        .subquery()
    )
    totals = (
        select(
            open_items.c.run_id,
            func.count().label("open_count"),
            type_coerce(func.sum(open_items.c.amount), Money).label("open_amount"),
        )
        .group_by(open_items.c.run_id)
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
        .where(r.run_id.in_(select(latest.c.run_id)))
    )
    with engine.connect() as conn:
        return list(conn.execute(query))


def item_with_counterparts(engine: Engine, item_id: int) -> list[Row[Any]]:
    """The item with its note, then the lines of its run with the same reference and direction (the
    other side's, and its own side's twins); empty if there is no such item."""
    i = recon_items.c
    with engine.connect() as conn:
        item = conn.execute(_with_notes().where(i.item_id == item_id)).first()
        if item is None:
            return []
        if not item.reference:
            return [item]
        others = conn.execute(
            _with_notes()
            .where(
                i.run_id == item.run_id,
                i.reference == item.reference,
                i.direction == item.direction,
                i.item_id != item_id,
            )
            .order_by(i.side, i.item_id)
        ).all()
    return [item, *others]
