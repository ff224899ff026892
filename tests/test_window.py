"""The per-merchant window: one claim at a time, reopening one interval after the request ends."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect, select, text

from bankrecon.pacing.window import (
    Claim,
    MerchantWindow,
    RequestOrigin,
    Wait,
    leave_queues,
    merchant_pace,
    requests_sent,
    statements_asking,
)
from bankrecon.store.db import bank_requests, make_engine
from bankrecon.store.schema import prepare_schema, upgrade_schema
from tests.previous_release import create_previous_release_schema

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=1800)
TIMEOUT = timedelta(seconds=300)


def _origin(merchant: str = "M1", attempt: int = 1, run: str = "run-1") -> RequestOrigin:
    return RequestOrigin(
        merchant_id=merchant,
        account_no="6222020000000001",
        bill_date=date(2026, 11, 24),
        workflow_id="statement-6222020000000001-2026-11-24",
        run_id=run,
        activity_attempt=attempt,
    )


@pytest.fixture
def engine(database_url: str) -> Engine:
    engine = make_engine(database_url)
    prepare_schema(engine)
    return engine


class WindowAtSetTimes:
    """A MerchantWindow whose clock reads the time each call names: its rules at chosen moments."""

    def __init__(self, engine: Engine):
        self._now = T0
        self._window = MerchantWindow(engine, INTERVAL, TIMEOUT, clock=lambda _conn: self._now)

    def try_claim(self, origin: RequestOrigin, now: datetime) -> Claim | Wait:
        self._now = now
        return self._window.try_claim(origin)

    def release(self, merchant_id: str, claim: Claim, ended_at: datetime, outcome: str) -> None:
        self._now = ended_at
        self._window.release(merchant_id, claim, outcome)


@pytest.fixture
def window(engine: Engine) -> WindowAtSetTimes:
    return WindowAtSetTimes(engine)


def test_window_reopens_one_interval_after_the_answer(window: WindowAtSetTimes) -> None:
    claim = window.try_claim(_origin(), T0)
    assert isinstance(claim, Claim)
    # In flight: closed, and the earliest it can open is one interval after the request ends.
    assert window.try_claim(_origin(), T0 + timedelta(seconds=1)) == Wait(INTERVAL, ahead=0)
    answered = T0 + timedelta(seconds=2)
    window.release("M1", claim, answered, "9999")
    assert window.try_claim(_origin(), answered + INTERVAL - timedelta(seconds=5)) == Wait(
        timedelta(seconds=5), ahead=0
    )
    assert isinstance(window.try_claim(_origin(), answered + INTERVAL), Claim)


def test_merchants_have_separate_windows(window: WindowAtSetTimes) -> None:
    assert isinstance(window.try_claim(_origin("M1"), T0), Claim)
    assert isinstance(window.try_claim(_origin("M2"), T0), Claim)
    assert isinstance(window.try_claim(_origin("M1"), T0), Wait)


def test_a_dead_workers_claim_keeps_the_window_closed_until_its_hold_ends(
    window: WindowAtSetTimes,
) -> None:
    assert isinstance(window.try_claim(_origin(), T0), Claim)  # never released: the worker died
    assert window.try_claim(_origin(), T0 + TIMEOUT) == Wait(INTERVAL, ahead=0)
    assert window.try_claim(_origin(), T0 + TIMEOUT + INTERVAL / 2) == Wait(INTERVAL / 2, ahead=0)
    assert isinstance(window.try_claim(_origin(), T0 + TIMEOUT + INTERVAL), Claim)


def test_a_stale_release_cannot_reopen_a_window_taken_since(window: WindowAtSetTimes) -> None:
    stale = window.try_claim(_origin(), T0)
    assert isinstance(stale, Claim)
    later = T0 + TIMEOUT + INTERVAL
    current = window.try_claim(_origin(attempt=2), later)
    assert isinstance(current, Claim)
    window.release("M1", stale, later + timedelta(seconds=1), "9999")  # the zombie answers late
    assert isinstance(window.try_claim(_origin(attempt=3), later + timedelta(seconds=2)), Wait)


def test_concurrent_claims_admit_exactly_one(engine: Engine, window: WindowAtSetTimes) -> None:
    window.try_claim(_origin("warm-up"), T0)  # the table exists; the race is on the merchant row
    results: list[Claim | Wait] = []
    start = threading.Barrier(8)

    def claim(n: int) -> None:
        start.wait()
        results.append(window.try_claim(_origin("M9", attempt=n, run=f"run-{n}"), T0))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, Claim) for r in results) == 1
    with engine.connect() as conn:
        logged = conn.execute(select(bank_requests.c.run_id).where(bank_requests.c.merchant_id == "M9")).all()
    assert len(logged) == 1


def test_requests_are_logged_and_counted_per_run(window: WindowAtSetTimes, engine: Engine) -> None:
    t = T0
    for attempt in (1, 2, 3):
        claim = window.try_claim(_origin(attempt=attempt), t)
        assert isinstance(claim, Claim)
        t += timedelta(seconds=1)
        window.release("M1", claim, t, "9999" if attempt < 3 else "0000")
        t += INTERVAL
    claim = window.try_claim(_origin(run="run-2"), t)
    assert isinstance(claim, Claim)
    assert requests_sent(engine, "statement-6222020000000001-2026-11-24", "run-1") == 3
    assert requests_sent(engine, "statement-6222020000000001-2026-11-24", "run-2") == 1
    with engine.connect() as conn:
        outcomes = conn.execute(select(bank_requests.c.outcome).order_by(bank_requests.c.id)).scalars().all()
    assert outcomes == ["9999", "9999", "0000", None]


def test_a_runs_requests_are_counted_through_an_index_which_an_older_database_gets_too(
    database_url: str,
) -> None:
    engine = make_engine(database_url)

    def indexed() -> list[list[str | None]]:
        return [index["column_names"] for index in inspect(engine).get_indexes("bank_requests")]

    try:
        # A database of the first release made before the index: its upgrade adds it.
        create_previous_release_schema(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX bank_requests_workflow_run"))
        assert ["workflow_id", "run_id"] not in indexed()
        upgrade_schema(engine)
        assert ["workflow_id", "run_id"] in indexed()
    finally:
        engine.dispose()


def test_a_merchants_pace_is_its_window_and_the_margin_past_its_opening() -> None:
    assert merchant_pace(timedelta(minutes=30)) == timedelta(minutes=30, seconds=18)
    assert merchant_pace(timedelta(seconds=1)) == timedelta(seconds=1.05)  # 50 ms at least


def _statement(name: str, run: str = "run-1") -> RequestOrigin:
    return RequestOrigin(
        merchant_id="M1",
        account_no="6222020000000001",
        bill_date=date(2026, 11, 24),
        workflow_id=f"statement-{name}",
        run_id=run,
        activity_attempt=1,
    )


def _requests(window: WindowAtSetTimes, asking: list[str], first: datetime, windows: int) -> list[str]:
    """Each of ``asking`` asks at each opening, in that order: the statements that got the turns."""
    turns = []
    now = first
    for _ in range(windows):
        for name in asking:
            claim = window.try_claim(_statement(name), now)
            if isinstance(claim, Claim):
                turns.append(name)
                window.release("M1", claim, now + timedelta(seconds=1), "9999")
        now += timedelta(seconds=1) + INTERVAL
    return turns


def test_the_window_goes_to_the_statement_that_waited_longest(window: WindowAtSetTimes) -> None:
    # "stuck" had the last request; its retry always comes first, right at the opening.
    stuck = window.try_claim(_statement("stuck"), T0)
    assert isinstance(stuck, Claim)
    assert window.try_claim(_statement("day2"), T0 + timedelta(seconds=2)) == Wait(INTERVAL, ahead=0)
    assert window.try_claim(_statement("day3"), T0 + timedelta(seconds=3)) == Wait(INTERVAL, ahead=1)
    window.release("M1", stuck, T0 + timedelta(seconds=1), "9999")
    opening = T0 + timedelta(seconds=1) + INTERVAL
    # Open, but two statements waited longer: it waits behind them, just past the opening.
    assert window.try_claim(_statement("stuck"), opening) == Wait(timedelta(0), ahead=2)

    assert _requests(window, ["stuck", "day3", "day2"], opening, 6) == [
        "day2",
        "day3",
        "stuck",
        "day2",
        "day3",
        "stuck",
    ]


def test_a_statement_that_stopped_asking_is_forgotten_after_two_windows(window: WindowAtSetTimes) -> None:
    first = window.try_claim(_statement("stuck"), T0)
    assert isinstance(first, Claim)
    window.release("M1", first, T0 + timedelta(seconds=1), "9999")
    assert isinstance(
        window.try_claim(_statement("gone"), T0 + timedelta(seconds=2)), Wait
    )  # then terminated
    opening = T0 + timedelta(seconds=1) + INTERVAL
    assert window.try_claim(_statement("stuck"), opening) == Wait(timedelta(0), ahead=1)
    forgotten = T0 + timedelta(seconds=2) + 2 * INTERVAL + timedelta(minutes=1, seconds=1)
    assert isinstance(window.try_claim(_statement("stuck"), forgotten), Claim)


def test_a_statement_continued_as_a_new_run_keeps_its_place_and_its_earlier_run_holds_up_no_one(
    window: WindowAtSetTimes,
) -> None:
    first = window.try_claim(_statement("other"), T0)
    assert isinstance(first, Claim)
    window.release("M1", first, T0 + timedelta(seconds=1), "9999")
    opening = T0 + timedelta(seconds=1) + INTERVAL
    assert window.try_claim(_statement("long"), T0 + timedelta(seconds=2)) == Wait(
        INTERVAL - timedelta(seconds=1), 0
    )
    assert window.try_claim(_statement("other"), T0 + timedelta(seconds=3)) == Wait(
        INTERVAL - timedelta(seconds=2), 1
    )
    # "long" grew its history long and continued as a new run, which asks a little later.
    assert window.try_claim(_statement("other"), opening) == Wait(timedelta(0), ahead=1)
    turn = window.try_claim(_statement("long", run="run-2"), opening + timedelta(seconds=1))
    assert isinstance(turn, Claim)
    window.release("M1", turn, opening + timedelta(seconds=2), "9999")
    # The earlier run's place went with the turn: "other" is next, not two windows later.
    assert isinstance(window.try_claim(_statement("other"), opening + timedelta(seconds=2) + INTERVAL), Claim)


def test_a_statement_continued_as_a_new_run_is_one_statement_asking(
    window: WindowAtSetTimes, engine: Engine
) -> None:
    first = window.try_claim(_statement("long"), T0)
    assert isinstance(first, Claim)
    window.release("M1", first, T0 + timedelta(seconds=1), "9999")
    assert isinstance(window.try_claim(_statement("long", run="run-2"), T0 + timedelta(seconds=2)), Wait)
    assert statements_asking(engine, "M1", INTERVAL, T0 + timedelta(seconds=3)) == 1


def test_a_cancelled_statement_leaves_the_queue_at_once(window: WindowAtSetTimes, engine: Engine) -> None:
    first = window.try_claim(_statement("stuck"), T0)
    assert isinstance(first, Claim)
    window.release("M1", first, T0 + timedelta(seconds=1), "9999")
    assert isinstance(window.try_claim(_statement("cancelled"), T0 + timedelta(seconds=2)), Wait)
    leave_queues(engine, "statement-cancelled", "run-1")
    assert isinstance(window.try_claim(_statement("stuck"), T0 + timedelta(seconds=1) + INTERVAL), Claim)


def test_statements_asking_are_those_queued_and_those_the_bank_left_asking(
    window: WindowAtSetTimes, engine: Engine
) -> None:
    def asks(name: str, at: datetime, outcome: str) -> None:
        claim = window.try_claim(_statement(name), at)
        assert isinstance(claim, Claim)
        window.release("M1", claim, at + timedelta(seconds=1), outcome)

    asks("done", T0, "0000")
    asks("refused", T0 + timedelta(seconds=1) + INTERVAL, "1002")
    now = T0 + 2 * (timedelta(seconds=1) + INTERVAL)
    asks("stuck", now, "9999")
    assert isinstance(window.try_claim(_statement("queued"), now + timedelta(seconds=2)), Wait)

    later = now + timedelta(seconds=3)
    assert statements_asking(engine, "M1", INTERVAL, later) == 2  # "stuck" and "queued"
    assert statements_asking(engine, "M2", INTERVAL, later) == 0
    assert statements_asking(engine, "M1", INTERVAL, later + 2 * INTERVAL + timedelta(minutes=2)) == 0
