"""The bank's per-merchant request window, kept durably in the database.

The bank answers 1005 and restarts its window when a merchant's request arrives
sooner than min_interval after the previous one. Every worker process and every
workflow of a merchant therefore claims the window in the database before it sends:

- claim: an atomic conditional UPDATE takes the window when ``next_request_at`` has
  passed and holds it for the longest a request may last plus one interval, so a
  worker that dies mid-request still leaves the window closed long enough;
- release: once the request is over (answered or failed), the window reopens
  ``min_interval`` after that moment. The bank measured the arrival, which came
  before the answer, so counting from the answer keeps every arrival at least one
  full interval apart without guessing latency.

A release names the claim it ends, so a request that outlived its hold cannot
reopen a window that another request has taken since.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bankrecon.db import bank_requests, bank_windows, merchant_pauses

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The bank counts arrivals, and timers fire a little early or late: a fetch that found the
# window taken asks again slightly past its opening (1 % of the window, as bank-api.md advises).
WINDOW_MARGIN = timedelta(milliseconds=50)


def opening_margin(min_interval: timedelta) -> timedelta:
    return max(WINDOW_MARGIN, min_interval / 100)


def merchant_pace(min_interval: timedelta) -> timedelta:
    """How often a merchant's waiting statements get a request: a window, and the margin past its opening."""
    return min_interval + opening_margin(min_interval)


@dataclass(frozen=True)
class Claim:
    request_id: str
    sent_at: datetime


@dataclass(frozen=True)
class RequestOrigin:
    """Who is about to send, recorded with the request for operators and attempt counts."""

    merchant_id: str
    account_no: str
    bill_date: date
    workflow_id: str
    run_id: str
    activity_attempt: int


class MerchantWindow:
    def __init__(self, engine: Engine, min_interval: timedelta, request_timeout: timedelta):
        self._engine = engine
        self._min_interval = min_interval
        self._hold = request_timeout + min_interval

    def try_claim(self, origin: RequestOrigin, now: datetime) -> Claim | timedelta:
        """Take the window and log the request, or say how long until it may open at the earliest."""
        self._ensure_row(origin.merchant_id)
        request_id = uuid.uuid4().hex
        with self._engine.begin() as conn:
            taken = conn.execute(
                update(bank_windows)
                .where(
                    bank_windows.c.merchant_id == origin.merchant_id,
                    bank_windows.c.next_request_at <= now,
                )
                .values(next_request_at=now + self._hold, holder=request_id)
            ).rowcount
            if taken:
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
            opens_at, holder = conn.execute(
                select(bank_windows.c.next_request_at, bank_windows.c.holder).where(
                    bank_windows.c.merchant_id == origin.merchant_id
                )
            ).one()
        wait: timedelta = opens_at - now
        if holder is not None:
            # In flight: it may end any moment, and the window then opens one interval later.
            wait = min(wait, self._min_interval)
        return max(wait, timedelta(0))

    def release(self, merchant_id: str, claim: Claim, ended_at: datetime, outcome: str) -> None:
        with self._engine.begin() as conn:
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
