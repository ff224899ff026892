"""The per-merchant window: one claim at a time, reopening one interval after the request ends."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect, select, text

from bankrecon.db import bank_requests, create_schema, make_engine
from bankrecon.window import Claim, MerchantWindow, RequestOrigin, merchant_pace, requests_sent

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
    create_schema(engine)
    return engine


@pytest.fixture
def window(engine: Engine) -> MerchantWindow:
    return MerchantWindow(engine, INTERVAL, TIMEOUT)


def test_window_reopens_one_interval_after_the_answer(window: MerchantWindow) -> None:
    claim = window.try_claim(_origin(), T0)
    assert isinstance(claim, Claim)
    # In flight: closed, and the earliest it can open is one interval after the request ends.
    assert window.try_claim(_origin(), T0 + timedelta(seconds=1)) == INTERVAL
    answered = T0 + timedelta(seconds=2)
    window.release("M1", claim, answered, "9999")
    assert window.try_claim(_origin(), answered + INTERVAL - timedelta(seconds=5)) == timedelta(seconds=5)
    assert isinstance(window.try_claim(_origin(), answered + INTERVAL), Claim)


def test_merchants_have_separate_windows(window: MerchantWindow) -> None:
    assert isinstance(window.try_claim(_origin("M1"), T0), Claim)
    assert isinstance(window.try_claim(_origin("M2"), T0), Claim)
    assert isinstance(window.try_claim(_origin("M1"), T0), timedelta)


def test_a_dead_workers_claim_keeps_the_window_closed_until_its_hold_ends(
    window: MerchantWindow,
) -> None:
    assert isinstance(window.try_claim(_origin(), T0), Claim)  # never released: the worker died
    assert window.try_claim(_origin(), T0 + TIMEOUT) == INTERVAL
    assert window.try_claim(_origin(), T0 + TIMEOUT + INTERVAL / 2) == INTERVAL / 2
    assert isinstance(window.try_claim(_origin(), T0 + TIMEOUT + INTERVAL), Claim)


def test_a_stale_release_cannot_reopen_a_window_taken_since(window: MerchantWindow) -> None:
    stale = window.try_claim(_origin(), T0)
    assert isinstance(stale, Claim)
    later = T0 + TIMEOUT + INTERVAL
    current = window.try_claim(_origin(attempt=2), later)
    assert isinstance(current, Claim)
    window.release("M1", stale, later + timedelta(seconds=1), "9999")  # the zombie answers late
    assert isinstance(window.try_claim(_origin(attempt=3), later + timedelta(seconds=2)), timedelta)


def test_concurrent_claims_admit_exactly_one(engine: Engine, window: MerchantWindow) -> None:
    window.try_claim(_origin("warm-up"), T0)  # the table exists; the race is on the merchant row
    results: list[Claim | timedelta] = []
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


def test_requests_are_logged_and_counted_per_run(window: MerchantWindow, engine: Engine) -> None:
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
        create_schema(engine)
        assert ["workflow_id", "run_id"] in indexed()
        # A database made before the index: the next start of a worker or a command adds it.
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX bank_requests_workflow_run"))
        assert ["workflow_id", "run_id"] not in indexed()
        create_schema(engine)
        assert ["workflow_id", "run_id"] in indexed()
    finally:
        engine.dispose()


def test_a_merchants_pace_is_its_window_and_the_margin_past_its_opening() -> None:
    assert merchant_pace(timedelta(minutes=30)) == timedelta(minutes=30, seconds=18)
    assert merchant_pace(timedelta(seconds=1)) == timedelta(seconds=1.05)  # 50 ms at least
