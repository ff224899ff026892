"""One run of a channel account's day: read the ledger, match, check the settlement, record it all."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
from sqlalchemy import Connection, Engine, insert, make_url, select

from bankrecon.recon.carry import match_across_days
from bankrecon.recon.config import ChannelRecon, ReconConfig, SqlLedger
from bankrecon.recon.fingerprint import LinesFingerprint
from bankrecon.recon.ledger import (
    LedgerLine,
    LedgerMissing,
    ledger_available,
    ledger_lines,
    previous_day_tail_start,
)
from bankrecon.recon.matching import match_day, stage_ledger, stage_ledger_query, statement_fingerprint
from bankrecon.recon.models import (
    SETTLEMENT_PENDING,
    ReconDay,
    ReconRunRequest,
    ReconRunSummary,
    SettlementCheck,
)
from bankrecon.recon.results import open_by_age, run_summary
from bankrecon.recon.settlement import settle, settle_again
from bankrecon.recon.tables import ledger_stage, recon_runs
from bankrecon.store.db import connection_options, statements

log = logging.getLogger(__name__)


def inputs_missing(engine: Engine, channel: ChannelRecon, day: ReconDay) -> str | None:
    """What the day's run still waits for: the channel's statement, the ledger; None when both are there."""
    with engine.connect() as conn:
        stored = conn.execute(
            select(statements.c.bill_date).where(
                statements.c.account_no == day.account_no, statements.c.bill_date == day.recon_date
            )
        ).first()
    if stored is None:
        return f"the statement of {day.account_no} for {day.recon_date} is not stored yet"
    if not ledger_available(channel, day.recon_date):
        return f"the ledger for {day.recon_date} is not there yet"
    return None


def _previous_tail(channel: ChannelRecon, day: ReconDay) -> Iterator[LedgerLine]:
    """The previous day's ledger lines within the cut-off before midnight (none without its file)."""
    previous = day.recon_date - timedelta(days=1)
    try:
        yield from ledger_lines(
            channel,
            day.account_no,
            previous,
            since=previous_day_tail_start(day.recon_date, channel.cutoff_seconds),
        )
    except LedgerMissing:
        log.info("no ledger for %s: no order of it is carried into %s", previous, day.recon_date)


def _same_database(conn: Connection, engine: Engine, url: str) -> bool:
    """Whether ``url`` opens the PostgreSQL database ``conn`` is on, with the same options (search path)."""
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        return False
    parsed = make_url(url)
    return parsed.difference_update_query(["options"]) == engine.url and (
        raw.info.options == connection_options(parsed)
    )


def _staged_ledger(
    conn: Connection, engine: Engine, channel: ChannelRecon, day: ReconDay
) -> LinesFingerprint:
    """Stage the ledger: inside PostgreSQL when its query runs on the same database, else line by line."""
    source = channel.ledger
    if isinstance(source, SqlLedger) and _same_database(conn, engine, source.url):
        staged = stage_ledger_query(
            conn, day.recon_date, channel.cutoff_seconds, source, day.account_no, channel.ledger_channel
        )
        if staged is not None:
            return staged
    return stage_ledger(
        conn,
        day.recon_date,
        channel.cutoff_seconds,
        [
            (day.recon_date - timedelta(days=1), _previous_tail(channel, day)),
            (day.recon_date, ledger_lines(channel, day.account_no, day.recon_date)),
        ],
    )


def record_run(
    conn: Connection,
    request: ReconRunRequest,
    started_at: datetime,
    ledger: LinesFingerprint,
    statement: LinesFingerprint,
    settings_json: str,
    kind: str = "channel",
) -> None:
    """The run's row: when, what it read (fingerprints and counts of both sides), with what settings."""
    conn.execute(
        insert(recon_runs).values(
            run_id=request.run_id,
            workflow_id=request.workflow_id,
            account_no=request.day.account_no,
            recon_date=request.day.recon_date,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            ledger_sha256=ledger.hexdigest(),
            statement_sha256=statement.hexdigest(),
            ledger_lines=ledger.count,
            channel_lines=statement.count,
            settings_json=settings_json,
            kind=kind,
        )
    )


def reconcile_day(engine: Engine, channel: ChannelRecon, request: ReconRunRequest) -> ReconRunSummary:
    """Match the day and store the run, in one transaction; a retry of a stored run returns it."""
    done = run_summary(engine, request.run_id)
    if done is not None:
        return with_settlement_deadline(_with_open_by_age(engine, done), channel)
    day = request.day
    started_at = datetime.now(UTC)
    with engine.begin() as conn:
        ledger = _staged_ledger(conn, engine, channel, day)
        channel_lines = statement_fingerprint(conn, day.account_no, day.recon_date)
        match_day(conn, request.run_id, day.account_no, day.recon_date, channel.fee_tolerance)
        match_across_days(
            conn, request.run_id, day.account_no, day.recon_date, channel.carry_days, channel.fee_tolerance,
            started_at,
        )  # fmt: skip
        if channel.settlement is not None:
            final = started_at >= channel.settlement.deadline_for(day.recon_date)
            settle(conn, request.run_id, day.account_no, day.recon_date, channel.settlement, final=final)
        ledger_stage.drop(conn)
        record_run(conn, request, started_at, ledger, channel_lines, channel.model_dump_json())
    summary = run_summary(engine, request.run_id)
    assert summary is not None
    return with_settlement_deadline(_with_open_by_age(engine, summary), channel)


def _with_open_by_age(engine: Engine, summary: ReconRunSummary) -> ReconRunSummary:
    """The summary with the account's exceptions still open on its day, by age: the morning report."""
    aged = open_by_age(engine, summary.day.recon_date, account_no=summary.day.account_no)
    return summary.model_copy(update={"open_by_age": aged})


def with_settlement_deadline(summary: ReconRunSummary, channel: ChannelRecon) -> ReconRunSummary:
    """The summary, saying until when a pending settlement waits for its bank statement."""
    pending = any(total.state == SETTLEMENT_PENDING for total in summary.totals)
    if not pending or channel.settlement is None:
        return summary
    deadline = channel.settlement.deadline_for(summary.day.recon_date)
    return summary.model_copy(update={"settlement_deadline": deadline})


def check_settlement(engine: Engine, channel: ChannelRecon, check: SettlementCheck) -> ReconRunSummary:
    """Decide a run's pending settlement anew, now that its bank statement may be stored."""
    if channel.settlement is not None:
        settle_again(
            engine,
            check.run_id,
            check.day.account_no,
            check.day.recon_date,
            channel.settlement,
            final=check.final,
        )
    summary = run_summary(engine, check.run_id)
    if summary is None:
        raise ValueError(f"no reconciliation run {check.run_id}")
    return with_settlement_deadline(_with_open_by_age(engine, summary), channel)


def reconciliations_waiting_for(config: ReconConfig, account_no: str, day: date) -> list[ReconDay]:
    """The reconciliations a statement of ``account_no`` for ``day`` is an input of: its own day's,
    and the day whose settlement arrives in it for every account settling into this one."""
    waiting = [ReconDay(account_no=account_no, recon_date=day)] if account_no in config.accounts else []
    for channel_account, channel in sorted(config.accounts.items()):
        rule = channel.settlement
        if rule is not None and rule.bank_account == account_no:
            waiting.append(
                ReconDay(account_no=channel_account, recon_date=day - timedelta(days=rule.lag_days))
            )
    return waiting
