"""Did the channel's net for the day arrive in the bank account? One settlement item per run."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import ColumnClause, Connection, func, insert, literal_column, select, type_coerce

from bankrecon.recon.config import SettlementRule
from bankrecon.recon.matching import FEE_UNITS, fee_units_sql
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


def settle(conn: Connection, run_id: str, account_no: str, day: date, rule: SettlementRule) -> None:
    net = channel_net(conn, account_no, day)
    arrives_on = day + timedelta(days=rule.lag_days)
    t = transactions.c
    bank_day_stored = conn.execute(
        select(statements.c.bill_date).where(
            statements.c.account_no == rule.bank_account, statements.c.bill_date == arrives_on
        )
    ).first()
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
    if bank_day_stored is None:
        state, detail = (
            "settlement_missing",
            f"no statement of {rule.bank_account} for {arrives_on} stored yet",
        )
    elif not credits:
        state, detail = (
            "settlement_missing",
            f"no credit on {rule.bank_account} on {arrives_on} fits the rule",
        )
    elif abs(received - net) <= rule.tolerance:
        state, detail = "matched", None
    else:
        state, detail = "settlement_differs", f"expected {net}, received {received}"
    conn.execute(
        insert(recon_items).values(
            run_id=run_id,
            account_no=account_no,
            recon_date=day,
            state=state,
            side="settlement",
            reference="",
            direction="C",
            # Fees may carry more decimals than a bank moves: the expected credit is in cents.
            amount=net.quantize(CENT, ROUND_HALF_UP),
            line_ref=",".join(serial for serial, _amount in credits)[:128],
            booked_on=arrives_on,
            counterpart_total=received if credits else None,
            detail=detail,
        )
    )
