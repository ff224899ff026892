"""Working an exception: notes, pairs, write-offs and reopenings, each an appended action.

An exception's status follows from its identity's actions, newest last: ``resolved`` when the
newest of pair, write_off, matched_across_days and reopen is not a reopen; else ``explained``
when it has a note; else ``open``. Actions are never updated: a reopen is one more action.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Row, Subquery, and_, case, func, insert, select

from bankrecon.recon.models import (
    EXCEPTION_STATES,
    EXPLAINED,
    MATCHED_ACROSS_DAYS,
    ONE_SIDED,
    OPEN,
    RESOLVED,
)
from bankrecon.recon.tables import ACTOR_MAX_CHARS, LEDGER_ACCOUNT_MAX_CHARS, recon_actions, recon_items

ITEM_IDENTITY = ("account_no", "recon_date", "state", "side", "reference", "direction")
EXPLAIN, PAIR, WRITE_OFF, REOPEN = "explain", "pair", "write_off", "reopen"
# The reconciliation's own action on an earlier day's item has the name of the later day's state.
RESOLVING = (PAIR, WRITE_OFF, MATCHED_ACROSS_DAYS)
# What the reconciliation itself records its actions as.
RECONCILIATION = "bankrecon"


class ActionRefused(Exception):
    """The action does not apply to the item(s); the message says why."""


@dataclass(frozen=True)
class Actor:
    """Who acts, and when."""

    by: str
    at: datetime

    def __post_init__(self) -> None:
        if not self.by.strip() or len(self.by) > ACTOR_MAX_CHARS:
            raise ActionRefused(
                f"who acts must be named in 1 to {ACTOR_MAX_CHARS} characters, not {self.by!r}"
            )


def newest_actions(kinds: tuple[str, ...] | None, name: str) -> Subquery:
    """Per item identity, its newest action of ``kinds`` (of any kind: None)."""
    a = recon_actions.c
    newest = select(func.max(a.action_id)).group_by(*(a[column] for column in ITEM_IDENTITY))
    if kinds is not None:
        newest = newest.where(a.action.in_(kinds))
    return select(recon_actions).where(a.action_id.in_(newest)).subquery(name)


def same_identity(left: Any, right: Any) -> Any:
    return and_(*(left[column] == right[column] for column in ITEM_IDENTITY))


def items_with_status() -> Any:
    """Every item with its note, status (None for what is no exception) and newest action."""
    i = recon_items.c
    note = newest_actions((EXPLAIN,), "note")
    resolution = newest_actions((*RESOLVING, REOPEN), "resolution")
    last = newest_actions(None, "last_action")
    status = case(
        (i.state.not_in(EXCEPTION_STATES), None),
        (resolution.c.action.in_(RESOLVING), RESOLVED),
        (note.c.action_id.is_not(None), EXPLAINED),
        else_=OPEN,
    )
    joined = (
        recon_items.outerjoin(note, same_identity(i, note.c))
        .outerjoin(resolution, same_identity(i, resolution.c))
        .outerjoin(last, same_identity(i, last.c))
    )
    return select(
        recon_items,
        note.c.reason.label("note"),
        note.c.acted_at.label("noted_at"),
        status.label("status"),
        last.c.action.label("last_action"),
        last.c.acted_by.label("last_by"),
        last.c.acted_at.label("last_at"),
        last.c.reason.label("last_reason"),
    ).select_from(joined)


def describe_action(item: Any, at_text: str) -> str:
    """An item's newest action in a line: what, by whom, when, and why (a note shows apart)."""
    why = "" if item.last_action == EXPLAIN else f": {item.last_reason}"
    return f"{item.last_action} by {item.last_by} {at_text}{why}"


def identity_actions(engine: Engine, account_no: str, day: date) -> dict[tuple[Any, ...], list[Row[Any]]]:
    """Every action on the items of an account's day, oldest first, by identity."""
    a = recon_actions.c
    found: dict[tuple[Any, ...], list[Row[Any]]] = {}
    with engine.connect() as conn:
        for action in conn.execute(
            select(recon_actions).where(a.account_no == account_no, a.recon_date == day).order_by(a.action_id)
        ):
            found.setdefault(tuple(getattr(action, column) for column in ITEM_IDENTITY), []).append(action)
    return found


def _item(conn: Connection, item_id: int) -> Row[Any]:
    found = conn.execute(items_with_status().where(recon_items.c.item_id == item_id)).first()
    if found is None:
        raise ActionRefused(f"no reconciliation item {item_id}")
    if found.status is None:
        raise ActionRefused(f"item {item_id} is {found.state}: only exceptions are worked")
    return found


def _record(conn: Connection, item: Row[Any], action: str, reason: str, actor: Actor, **more: Any) -> None:
    conn.execute(
        insert(recon_actions).values(
            **{column: getattr(item, column) for column in ITEM_IDENTITY},
            action=action,
            reason=reason,
            acted_by=actor.by,
            acted_at=actor.at,
            item_id=item.item_id,
            **more,
        )
    )


def _reason(reason: str, what: str) -> str:
    if not reason.strip():
        raise ActionRefused(f"the reason is empty: say why {what}")
    return reason.strip()


def explain(engine: Engine, item_id: int, note: str, actor: Actor) -> Row[Any]:
    """Note why an exception is what it is; the note holds for the same item in later runs too."""
    note = _reason(note, "the exception is explained")
    with engine.begin() as conn:
        item = _item(conn, item_id)
        _record(conn, item, EXPLAIN, note, actor)
    return item


def _unresolved(item: Row[Any]) -> None:
    if item.status == RESOLVED:
        raise ActionRefused(
            f"item {item.item_id} is resolved already ({item.last_action} by {item.last_by}): reopen it first"
        )


def pair(
    engine: Engine, item_ids: tuple[int, int], reason: str, actor: Actor, allow_difference: bool = False
) -> tuple[Row[Any], Row[Any], Decimal]:
    """Match a ledger line with a channel line by hand: both halves, and the ledger's amount less
    the channel's."""
    reason = _reason(reason, "they are one")
    if item_ids[0] == item_ids[1]:
        raise ActionRefused("pair takes two different items")
    with engine.begin() as conn:
        first, second = (_item(conn, item_id) for item_id in item_ids)
        ledger, channel = (first, second) if first.side == "ledger" else (second, first)
        halves = {(ledger.side, ledger.state), (channel.side, channel.state)}
        if halves not in (
            {("ledger", ONE_SIDED["ledger"]), ("channel", ONE_SIDED["channel"])},
            {("ledger", "amount_differs"), ("channel", "amount_differs")},
        ):
            raise ActionRefused(
                f"items {first.item_id} ({first.state} {first.side}) and {second.item_id} "
                f"({second.state} {second.side}): pair takes a ledger_only with a channel_only, "
                "or the ledger and channel halves of amount_differs"
            )
        for item in (first, second):
            _unresolved(item)
        if ledger.account_no != channel.account_no or ledger.direction != channel.direction:
            raise ActionRefused(
                f"items {ledger.item_id} and {channel.item_id} are not of the same account and direction"
            )
        difference = ledger.amount - channel.amount
        if difference and not allow_difference:
            raise ActionRefused(
                f"item {ledger.item_id} is {ledger.amount}, item {channel.item_id} {channel.amount} "
                f"(difference {difference}): pair them with --allow-difference if that is right"
            )
        for item, other in ((ledger, channel), (channel, ledger)):
            _record(
                conn, item, PAIR, reason, actor,
                other_item_id=other.item_id, other_day=other.recon_date, difference=difference,
            )  # fmt: skip
    return ledger, channel, difference


def write_off(
    engine: Engine, item_id: int, reason: str, actor: Actor, ledger_account: str | None = None
) -> Row[Any]:
    """Accept an exception as it is, booked to ``ledger_account`` if given."""
    reason = _reason(reason, "it is written off")
    if ledger_account is not None and not 0 < len(ledger_account.strip()) <= LEDGER_ACCOUNT_MAX_CHARS:
        raise ActionRefused(f"the ledger account must be 1 to {LEDGER_ACCOUNT_MAX_CHARS} characters")
    with engine.begin() as conn:
        item = _item(conn, item_id)
        _unresolved(item)
        _record(conn, item, WRITE_OFF, reason, actor, ledger_account=ledger_account)
    return item


def _resolution(conn: Connection, item_id: int) -> Row[Any] | None:
    """The item identity's newest action that resolved it or reopened it."""
    resolution = newest_actions((*RESOLVING, REOPEN), "resolution")
    i = recon_items.c
    return conn.execute(
        select(resolution)
        .select_from(recon_items.join(resolution, same_identity(i, resolution.c)))
        .where(i.item_id == item_id)
    ).first()


def reopen(engine: Engine, item_id: int, reason: str, actor: Actor) -> list[Row[Any]]:
    """Undo a pair (both halves) or a write-off; the items reopened."""
    reason = _reason(reason, "it is reopened")
    with engine.begin() as conn:
        item = _item(conn, item_id)
        undone = _resolution(conn, item_id)
        if undone is not None and undone.action == MATCHED_ACROSS_DAYS:
            raise ActionRefused(
                f"item {item_id} was matched across days by the run of {undone.other_day}: "
                "correct that day's inputs and re-run it instead"
            )
        if undone is None or undone.action == REOPEN:
            raise ActionRefused(f"item {item_id} is neither paired nor written off: nothing to reopen")
        reopened = [item]
        if undone.action == PAIR:
            other = _resolution(conn, undone.other_item_id)
            if other is not None and other.action == PAIR:
                reopened.append(_item(conn, undone.other_item_id))
        for each in reopened:
            _record(conn, each, REOPEN, reason, actor, other_day=undone.other_day)
    return reopened
