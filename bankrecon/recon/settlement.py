"""Did the channel's net for the day arrive in the bank account? One settlement item per run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import (
    ColumnClause,
    Connection,
    Engine,
    func,
    insert,
    literal_column,
    select,
    type_coerce,
    update,
)

from bankrecon.recon.config import SettlementRule
from bankrecon.recon.matching import FEE_UNITS, fee_units_sql
from bankrecon.recon.models import SETTLEMENT_PENDING
from bankrecon.recon.tables import recon_items
from bankrecon.store.db import CENT, Money, statements, transactions


def channel_net(conn: Connection, account_no: str, day: date) -> Decimal:
    """Payments less refunds less fees of the channel's bill of ``day``, exact."""
    t = transactions.c
    fee_units: ColumnClause[int] = literal_column(fee_units_sql("fee", conn.dialect.name))
    rows = conn.execute(
        select(t.direction, type_coerce(func.sum(t.amount), Money), func.sum(fee_units))
        .where(t.account_no == account_no, t.bill_date == day)
        .group_by(t.direction)
    ).all()
    net = Decimal(0)
    for direction, amount, fees in rows:
        net += amount if direction == "C" else -amount
        net -= Decimal(int(fees or 0)) / FEE_UNITS
    return net


@dataclass(frozen=True)
class Verdict:
    state: str
    detail: str | None
    expected: Decimal  # the channel's net, in cents
    credits: list[tuple[str, Decimal]]  # the bank's credits fitting the rule: serial_no, amount

    def values(self) -> dict[str, object]:
        received = sum((amount for _serial, amount in self.credits), Decimal("0.00"))
        return {
            "state": self.state,
            "detail": self.detail,
            "amount": self.expected,
            "line_ref": ",".join(serial for serial, _amount in self.credits)[:128],
            "counterpart_total": received if self.credits else None,
        }


def verdict(conn: Connection, account_no: str, day: date, rule: SettlementRule, *, final: bool) -> Verdict:
    """The settlement of ``day``: pending while its bank statement is not stored, unless ``final``."""
    # Fees may carry more decimals than a bank moves: the expected credit is in cents.
    net = channel_net(conn, account_no, day).quantize(CENT, ROUND_HALF_UP)
    arrives_on = rule.arrives_on(day)
    t = transactions.c
    bank_day_stored = conn.execute(
        select(statements.c.bill_date).where(
            statements.c.account_no == rule.bank_account, statements.c.bill_date == arrives_on
        )
    ).first()
    if bank_day_stored is None:
        if final:
            return Verdict(
                "settlement_missing",
                f"no statement of {rule.bank_account} for {arrives_on} stored by the deadline",
                net,
                [],
            )
        return Verdict(
            SETTLEMENT_PENDING, f"waiting for the statement of {rule.bank_account} for {arrives_on}", net, []
        )
    query = select(t.serial_no, t.amount, t.memo).where(
        t.account_no == rule.bank_account, t.bill_date == arrives_on, t.direction == "C"
    )
    if rule.counterparty_name is not None:
        query = query.where(t.counterparty_name == rule.counterparty_name)
    if rule.counterparty_account is not None:
        query = query.where(t.counterparty_account == rule.counterparty_account)
    memo = re.compile(rule.memo_pattern.format(date=day)) if rule.memo_pattern is not None else None
    credits = [
        (serial_no, amount)
        for serial_no, amount, text in conn.execute(query.order_by(t.serial_no))
        if memo is None or memo.search(text or "")
    ]
    received = sum((amount for _serial, amount in credits), Decimal("0.00"))
    if not credits:
        return Verdict(
            "settlement_missing", f"no credit on {rule.bank_account} on {arrives_on} fits the rule", net, []
        )
    if abs(received - net) <= rule.tolerance:
        return Verdict("matched", None, net, credits)
    return Verdict("settlement_differs", f"expected {net}, received {received}", net, credits)


def settle(
    conn: Connection, run_id: str, account_no: str, day: date, rule: SettlementRule, *, final: bool
) -> None:
    """Store the run's settlement item."""
    found = verdict(conn, account_no, day, rule, final=final)
    conn.execute(
        insert(recon_items).values(
            run_id=run_id,
            account_no=account_no,
            recon_date=day,
            side="settlement",
            reference="",
            direction="C",
            booked_on=rule.arrives_on(day),
            **found.values(),
        )
    )


def settle_again(
    engine: Engine, run_id: str, account_no: str, day: date, rule: SettlementRule, *, final: bool
) -> str:
    """Decide a run's pending settlement anew, in place; its state now (still pending or not)."""
    i = recon_items.c
    with engine.begin() as conn:
        found = verdict(conn, account_no, day, rule, final=final)
        conn.execute(
            update(recon_items)
            .where(i.run_id == run_id, i.side == "settlement", i.state == SETTLEMENT_PENDING)
            .values(**found.values())
        )
    return found.state
