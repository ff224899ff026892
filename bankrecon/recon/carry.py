"""Open items across days (未达账项): a one-sided line of an earlier day matched by a later day's run.

A ``ledger_only`` or ``channel_only`` line of day D that nobody resolved is matched by the
runs of D + 1 ... D + ``carry_days`` against their own one-sided lines of the other side, by
the same rules as within a day: per (reference, direction), equal sums, and fees (where the
ledger records them) within the tolerance. The later run's lines become
``matched_across_days``, naming the other line's day; D's run is not rewritten, its item is
resolved by a ``matched_across_days`` action. A re-run of the later day that no longer matches
it reopens it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnClause,
    Connection,
    and_,
    func,
    insert,
    literal_column,
    or_,
    select,
    type_coerce,
    update,
)

from bankrecon.recon.actions import (
    RECONCILIATION,
    REOPEN,
    RESOLVING,
    newest_actions,
    same_identity,
)
from bankrecon.recon.matching import FEE_UNITS, fee_units_sql
from bankrecon.recon.models import MATCHED_ACROSS_DAYS, ONE_SIDED
from bankrecon.recon.results import latest_runs
from bankrecon.recon.tables import recon_actions, recon_items
from bankrecon.store.db import Money


def _one_sided_sums(conn: Connection, *where: Any, by_day: bool = False) -> Any:
    """One-sided lines with a reference, summed per (reference, direction, side): amounts, fees."""
    i = recon_items.c
    fee_units: ColumnClause[int] = literal_column(fee_units_sql("recon_items.fee", conn.dialect.name))
    keys = [*([i.recon_date] if by_day else []), i.reference, i.direction, i.side, i.state]
    return (
        select(
            *keys,
            type_coerce(func.sum(i.amount), Money).label("total"),
            func.sum(fee_units).label("fee_units"),
            func.count(i.fee).label("fee_lines"),
        )
        .where(i.state.in_(ONE_SIDED.values()), i.reference != "", *where)
        .group_by(*keys)
    )


def _fees_agree(pair: Any, fee_tolerance: Decimal) -> bool:
    """Where the ledger records fees, the two sides' fees differ by at most the tolerance."""
    ledger_fee_lines = pair.our_fee_lines if pair.our_side == "ledger" else pair.fee_lines
    if not ledger_fee_lines:
        return True
    gap = abs(int(pair.our_fee_units or 0) - int(pair.fee_units or 0))
    return Decimal(gap) / FEE_UNITS <= fee_tolerance


def match_across_days(
    conn: Connection,
    run_id: str,
    account_no: str,
    day: date,
    carry_days: int,
    fee_tolerance: Decimal,
    at: datetime,
) -> None:
    """Match the run's one-sided lines with the earlier days' open ones (the run not stored yet).

    The sums are paired in SQL: only the pairs found come back, however many one-sided lines a
    day has (a day whose ledger is empty has nothing else).
    """
    i = recon_items.c
    resolution = newest_actions((*RESOLVING, REOPEN), "resolution")
    r = resolution.c
    earlier_runs = latest_runs(day - timedelta(days=carry_days), day - timedelta(days=1), account_no)
    unresolved_or_ours = or_(
        r.action.is_(None), r.action == REOPEN, (r.action == MATCHED_ACROSS_DAYS) & (r.other_day == day)
    )
    our_references = select(i.reference).where(i.run_id == run_id, i.state.in_(ONE_SIDED.values()))
    ours = _one_sided_sums(conn, i.run_id == run_id).subquery("ours")
    earlier = (
        _one_sided_sums(
            conn, i.run_id.in_(earlier_runs), i.reference.in_(our_references), unresolved_or_ours, by_day=True
        )
        .select_from(recon_items.outerjoin(resolution, same_identity(i, r)))
        .subquery("earlier")
    )
    e, o = earlier.c, ours.c
    pairs = (
        select(
            earlier,
            o.side.label("our_side"),
            o.state.label("our_state"),
            o.fee_units.label("our_fee_units"),
            o.fee_lines.label("our_fee_lines"),
        )
        .select_from(earlier.join(ours, and_(e.reference == o.reference, e.direction == o.direction)))
        .where(e.side != o.side, e.total == o.total)
        .order_by(e.reference, e.direction, e.recon_date)
    )
    matched: dict[tuple[str, str], Any] = {}
    for pair in conn.execute(pairs) if carry_days else ():
        # The oldest earlier day whose lines agree.
        if (pair.reference, pair.direction) not in matched and _fees_agree(pair, fee_tolerance):
            matched[(pair.reference, pair.direction)] = pair
    for (reference, direction), pair in matched.items():
        conn.execute(
            update(recon_items)
            .where(
                i.run_id == run_id,
                i.reference == reference,
                i.direction == direction,
                i.state == pair.our_state,
            )
            .values(
                state=MATCHED_ACROSS_DAYS,
                counterpart_total=pair.total,
                detail=f"with the {pair.side}'s line(s) of {pair.recon_date}",
            )
        )
    already = {
        (resolved.recon_date, resolved.state, resolved.side, resolved.reference, resolved.direction)
        for resolved in conn.execute(
            select(resolution).where(
                r.account_no == account_no, r.action == MATCHED_ACROSS_DAYS, r.other_day == day
            )
        )
    }
    records = [
        {"recon_date": row.recon_date, "state": row.state, "side": row.side, "reference": row.reference,
         "direction": row.direction, "action": MATCHED_ACROSS_DAYS, "other_day": day,
         "reason": f"matched by the {row.our_side}'s line(s) of {day} (run {run_id})"}
        for row in matched.values()
        if (row.recon_date, row.state, row.side, row.reference, row.direction) not in already
    ]  # fmt: skip
    now_matched = {
        (row.recon_date, row.state, row.side, row.reference, row.direction) for row in matched.values()
    }
    records += [
        {"recon_date": recon_date, "state": state, "side": side, "reference": reference,
         "direction": direction, "action": REOPEN, "other_day": day,
         "reason": f"the reconciliation of {day} run again (run {run_id}) no longer matches it"}
        for recon_date, state, side, reference, direction in sorted(already - now_matched)
    ]  # fmt: skip
    if records:
        conn.execute(
            insert(recon_actions),
            [
                record | {"account_no": account_no, "acted_by": RECONCILIATION, "acted_at": at}
                for record in records
            ],
        )
