"""The bank's per-merchant request window, kept durably in the database.

The bank answers 1005 and restarts its window when a merchant's request arrives
sooner than min_interval after the previous one. Every worker process and every
workflow of a merchant therefore claims the window in the database before it sends:

- claim: one transaction, holding the merchant's row, takes the window when
  ``next_request_at`` has passed and holds it for the longest a request may last plus
  one interval, so a worker that dies mid-request still leaves the window closed long
  enough;
- release: once the request is over (answered or failed), the window reopens
  ``min_interval`` after that moment. The bank measured the arrival, which came
  before the answer, so counting from the answer keeps every arrival at least one
  full interval apart without guessing latency.

Both times come from the database's clock, which every worker shares: workers on hosts whose
clocks differ by a few seconds would otherwise send inside the window (see ``database_now``).

A release names the claim it ends, so a request that outlived its hold cannot
reopen a window that another request has taken since.

The window goes to the statement that has waited longest. A statement that finds it
taken, or finds it open while another statement of the merchant has waited longer,
joins the merchant's queue and asks again when the window opens. Without the queue the
statement that had the last request would always win: its regular retry comes one
window after its request, the moment the window opens, while the waiting ones come a
margin later. A date the bank never gets ready would then keep the merchant's other
dates from the bank for good. A row whose statement stopped asking (terminated, or its
worker gone for long) is forgotten after two windows.

A place is the statement's, not its workflow run's: Temporal runs one workflow of an id at a
time, so a later run of the id (continued as new when its history grew long, or started again
after a termination) takes over the place of the earlier, which asks no more.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, Connection, Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bankrecon.store.db import UtcDateTime, bank_requests, bank_window_queue, bank_windows, merchant_pauses

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The bank counts arrivals, and timers fire a little early or late: a fetch that found the
# window taken asks again slightly past its opening (1 % of the window, as bank-api.md advises).
WINDOW_MARGIN = timedelta(milliseconds=50)


def opening_margin(min_interval: timedelta) -> timedelta:
    return max(WINDOW_MARGIN, min_interval / 100)


def merchant_pace(min_interval: timedelta) -> timedelta:
    """How often a merchant's waiting statements get a request: a window, and the margin past its opening."""
    return min_interval + opening_margin(min_interval)


def _forgotten_after(min_interval: timedelta) -> timedelta:
    # A waiting statement asks again at least once a window (plus a margin).
    return 2 * min_interval + timedelta(minutes=1)


# Answers after which a statement asks no more: its file, no transactions, or a refusal for good.
_FINAL_OUTCOMES = ("0000", "2001", "1001", "1002", "1003")


def statements_asking(engine: Engine, merchant_id: str, min_interval: timedelta, now: datetime) -> int:
    """How many statements take turns at the merchant's window now, each a turn before a newcomer's.

    Those waiting in its queue, and those whose latest request left them asking again (the
    statement that had the last request is not in the queue, but still takes its turns).
    """
    since = now - _forgotten_after(min_interval)
    latest = (
        select(func.max(bank_requests.c.id))
        .where(bank_requests.c.merchant_id == merchant_id, bank_requests.c.sent_at >= since)
        .group_by(bank_requests.c.workflow_id)
    )
    with engine.connect() as conn:
        waiting = conn.execute(
            select(bank_window_queue.c.workflow_id).where(
                bank_window_queue.c.merchant_id == merchant_id, bank_window_queue.c.seen_at >= since
            )
        ).scalars()
        asking_again = conn.execute(
            select(bank_requests.c.workflow_id).where(
                bank_requests.c.id.in_(latest),
                or_(bank_requests.c.outcome.is_(None), bank_requests.c.outcome.not_in(_FINAL_OUTCOMES)),
            )
        ).scalars()
        return len(set(waiting) | set(asking_again))


@dataclass(frozen=True)
class Claim:
    request_id: str
    sent_at: datetime


@dataclass(frozen=True)
class Wait:
    """Not this statement's request yet: ask again after ``delay``."""

    delay: timedelta
    ahead: int  # statements of the merchant that have waited longer for the window


@dataclass(frozen=True)
class RequestOrigin:
    """Who is about to send, recorded with the request for operators and attempt counts."""

    merchant_id: str
    account_no: str
    bill_date: date
    workflow_id: str
    run_id: str
    activity_attempt: int


def database_now(conn: Connection) -> datetime:
    """The time now on the clock all workers share, read inside the window's transaction.

    PostgreSQL: ``clock_timestamp()``, the moment of the call (``now()`` is when the transaction
    began, before it waited for the merchant's row). SQLite: this process's clock. Its database
    is one file on one host, whose workers all read the one clock of that host.
    """
    if conn.dialect.name == "sqlite":
        return datetime.now(UTC)
    return conn.execute(select(func.clock_timestamp(type_=UtcDateTime()))).scalar_one()


class MerchantWindow:
    def __init__(
        self,
        engine: Engine,
        min_interval: timedelta,
        request_timeout: timedelta,
        clock: Callable[[Connection], datetime] = database_now,
    ):
        self._engine = engine
        self._clock = clock
        self._min_interval = min_interval
        self._hold = request_timeout + min_interval
        self._forget_after = _forgotten_after(min_interval)

    def try_claim(self, origin: RequestOrigin) -> Claim | Wait:
        """Take the window and log the request, or say how soon this statement's turn may come."""
        self._ensure_row(origin.merchant_id)
        request_id = uuid.uuid4().hex
        queued = _queued(origin)
        with self._engine.begin() as conn:
            # Taking the merchant's row first makes its statements decide one at a time, on
            # SQLite and PostgreSQL alike: the queue below is read and written by one of them.
            conn.execute(
                update(bank_windows)
                .where(bank_windows.c.merchant_id == origin.merchant_id)
                .values(merchant_id=bank_windows.c.merchant_id)
            )
            now = self._clock(conn)
            conn.execute(
                delete(bank_window_queue).where(
                    bank_window_queue.c.merchant_id == origin.merchant_id,
                    bank_window_queue.c.seen_at < now - self._forget_after,
                )
            )
            since = conn.execute(select(func.min(bank_window_queue.c.waiting_since)).where(queued)).scalar()
            ahead = conn.execute(
                select(func.count())
                .select_from(bank_window_queue)
                .where(
                    bank_window_queue.c.merchant_id == origin.merchant_id,
                    bank_window_queue.c.waiting_since < (since or now),
                    ~queued,
                )
            ).scalar_one()
            opens_at, holder = conn.execute(
                select(bank_windows.c.next_request_at, bank_windows.c.holder).where(
                    bank_windows.c.merchant_id == origin.merchant_id
                )
            ).one()
            if not ahead and opens_at <= now:
                conn.execute(
                    update(bank_windows)
                    .where(bank_windows.c.merchant_id == origin.merchant_id)
                    .values(next_request_at=now + self._hold, holder=request_id)
                )
                conn.execute(delete(bank_window_queue).where(queued))
                conn.execute(
                    insert(bank_requests).values(
                        request_id=request_id,
                        merchant_id=origin.merchant_id,
                        account_no=origin.account_no,
                        bill_date=origin.bill_date,
                        workflow_id=origin.workflow_id,
                        run_id=origin.run_id,
                        activity_attempt=origin.activity_attempt,
                        sent_at=now,
                    )
                )
                return Claim(request_id=request_id, sent_at=now)
            this_run = and_(queued, bank_window_queue.c.run_id == origin.run_id)
            if conn.execute(update(bank_window_queue).where(this_run).values(seen_at=now)).rowcount == 0:
                # New in the queue, or an earlier run of the statement held its place.
                conn.execute(delete(bank_window_queue).where(queued))
                conn.execute(
                    insert(bank_window_queue).values(
                        merchant_id=origin.merchant_id,
                        workflow_id=origin.workflow_id,
                        run_id=origin.run_id,
                        waiting_since=since or now,
                        seen_at=now,
                    )
                )
        wait = opens_at - now  # not positive when open: another statement's turn comes first
        if holder is not None:
            # In flight: it may end any moment, and the window then opens one interval later.
            wait = min(wait, self._min_interval)
        return Wait(max(wait, timedelta(0)), ahead)

    def release(self, merchant_id: str, claim: Claim, outcome: str) -> None:
        """End the claim now that its request is over: the window opens one interval from now."""
        with self._engine.begin() as conn:
            ended_at = self._clock(conn)
            conn.execute(
                update(bank_windows)
                .where(
                    bank_windows.c.merchant_id == merchant_id,
                    bank_windows.c.holder == claim.request_id,
                )
                .values(next_request_at=ended_at + self._min_interval, holder=None)
            )
            conn.execute(
                update(bank_requests)
                .where(bank_requests.c.request_id == claim.request_id)
                .values(answered_at=ended_at, outcome=outcome[:64])
            )

    def _ensure_row(self, merchant_id: str) -> None:
        with self._engine.connect() as conn:
            exists = conn.execute(
                select(bank_windows.c.merchant_id).where(bank_windows.c.merchant_id == merchant_id)
            ).first()
        if exists:
            return
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(bank_windows).values(merchant_id=merchant_id, next_request_at=_EPOCH))
        except IntegrityError:
            pass  # another worker created it first: that is all we wanted


def _queued(origin: RequestOrigin) -> ColumnElement[bool]:
    """The queue place of the statement (workflow id, whichever run) that ``origin`` sends for."""
    return and_(
        bank_window_queue.c.merchant_id == origin.merchant_id,
        bank_window_queue.c.workflow_id == origin.workflow_id,
    )


def leave_queues(engine: Engine, workflow_id: str, run_id: str) -> None:
    """A statement that will ask no more (cancelled) gives up its place in its merchant's queue."""
    with engine.begin() as conn:
        conn.execute(
            delete(bank_window_queue).where(
                bank_window_queue.c.workflow_id == workflow_id, bank_window_queue.c.run_id == run_id
            )
        )


def requests_sent(engine: Engine, workflow_id: str, run_id: str) -> int:
    """How many requests one workflow run has sent to the bank, whatever the merchant."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(bank_requests)
            .where(bank_requests.c.workflow_id == workflow_id, bank_requests.c.run_id == run_id)
        ).scalar_one()


@dataclass(frozen=True)
class MerchantPause:
    merchant_id: str
    paused_at: datetime
    reason: str


def pause_merchant(engine: Engine, merchant_id: str, reason: str, now: datetime) -> bool:
    """Stop the merchant's requests until resumed; False if it was paused already."""
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(merchant_pauses).values(merchant_id=merchant_id, paused_at=now, reason=reason[:256])
            )
    except IntegrityError:
        return False
    return True


def resume_merchant(engine: Engine, merchant_id: str) -> bool:
    """Let the merchant's requests go again; False if it was not paused."""
    with engine.begin() as conn:
        return bool(
            conn.execute(delete(merchant_pauses).where(merchant_pauses.c.merchant_id == merchant_id)).rowcount
        )


def merchant_pauses_now(engine: Engine) -> list[MerchantPause]:
    with engine.connect() as conn:
        rows = conn.execute(select(merchant_pauses).order_by(merchant_pauses.c.merchant_id)).all()
    return [MerchantPause(row.merchant_id, row.paused_at, row.reason) for row in rows]


def merchant_pause(engine: Engine, merchant_id: str) -> MerchantPause | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(merchant_pauses).where(merchant_pauses.c.merchant_id == merchant_id)
        ).first()
    return MerchantPause(row.merchant_id, row.paused_at, row.reason) if row else None
