"""Activities: thin adapters between Temporal and the domain code in bankrecon/."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.service import RPCError

from bankrecon import cancellations, failures, metrics
from bankrecon.accounts import Account, AccountDirectory
from bankrecon.archive import archive_path, sweep_staged_files
from bankrecon.bank import REJECTION_ADVICE, BankAnswer, BankClient, BankUnavailable, Outcome
from bankrecon.config import Settings
from bankrecon.db import create_schema, describe_error, make_engine
from bankrecon.decoding import decode_archive
from bankrecon.logs import statement_fields
from bankrecon.models import (
    DecodedStatement,
    DecodeRequest,
    FetchAttemptReport,
    FetchResult,
    PersistRequest,
    PersistResult,
    StatementCancellation,
    StatementFailure,
    StatementKey,
)
from bankrecon.persistence import save_statement
from bankrecon.quarantine import quarantine_archive
from bankrecon.statement import ArchiveLimits, StatementDamaged
from bankrecon.window import (
    MerchantWindow,
    RequestOrigin,
    Wait,
    leave_queues,
    merchant_pause,
    opening_margin,
    requests_sent,
)

log = logging.getLogger(__name__)

# Error types the workflow and operators see in failures and pending-activity details.
BANK_REJECTED = "BankRejected"
ACCOUNT_NOT_CONFIGURED = "AccountNotConfigured"
STATEMENT_DAMAGED = "StatementDamaged"

HEARTBEAT_EVERY = timedelta(seconds=5)
# Longer than any activity may run (the workflow's LOAD_TIMEOUT is 2 h): no live attempt owns such a file.
STAGED_FILES_EXPIRE = timedelta(hours=3)


@asynccontextmanager
async def heartbeating(every: timedelta) -> AsyncIterator[None]:
    """Heartbeat in the background, so a dead worker's attempt is retried within the heartbeat timeout.

    The first beat comes after ``every``: the server counts the timeout from the attempt's start
    until then, so a short attempt (most of them) costs it no heartbeat at all.
    """

    async def beat() -> None:
        while True:
            await asyncio.sleep(every.total_seconds())
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


class HeartbeatWhenDue:
    """``on_progress`` for a long load: heartbeats with the count so far, once ``every`` has passed.

    As with ``heartbeating``, a load done sooner than that sends no heartbeat.
    """

    def __init__(self, every: timedelta):
        self._every = every.total_seconds()
        self._last = time.monotonic()

    def __call__(self, count: int) -> None:
        now = time.monotonic()
        if now - self._last >= self._every:
            activity.heartbeat(count)
            self._last = now


def _workflow_run() -> tuple[str, str]:
    info = activity.info()
    if info.workflow_id is None or info.workflow_run_id is None:
        raise ApplicationError("statement activities run only inside a workflow", non_retryable=True)
    return info.workflow_id, info.workflow_run_id


@dataclass(frozen=True)
class _MerchantLink:
    """What talking to one merchant's bank takes: its client, its window, and the wait margin."""

    bank: BankClient
    window: MerchantWindow
    margin: timedelta


class StatementActivities:
    def __init__(self, settings: Settings, engine: Engine, directory: AccountDirectory):
        self._data_dir = settings.data_dir.resolve()
        self._engine = engine
        self._directory = directory
        self._merchants = {
            merchant.id: _MerchantLink(
                bank=BankClient(
                    merchant.base_url,
                    merchant.id,
                    merchant.secret,
                    connect_timeout=settings.bank_connect_timeout_seconds,
                    request_timeout=settings.bank_request_timeout_seconds,
                ),
                window=MerchantWindow(
                    engine,
                    min_interval=timedelta(seconds=merchant.min_interval_seconds),
                    request_timeout=timedelta(seconds=settings.bank_request_timeout_seconds),
                ),
                margin=opening_margin(timedelta(seconds=merchant.min_interval_seconds)),
            )
            for merchant in directory.merchants()
        }
        self._limits = ArchiveLimits(
            max_members=settings.archive_max_members,
            max_total_uncompressed_bytes=settings.archive_max_total_bytes,
            max_compression_ratio=settings.archive_max_compression_ratio,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> StatementActivities:
        directory = AccountDirectory.from_settings(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        for stored in ("archives", "records"):
            for left in sweep_staged_files(settings.data_dir / stored, older_than=STAGED_FILES_EXPIRE):
                log.info("removed %s, left behind by a worker that died while writing it", left)
        engine = make_engine(settings.resolved_database_url())
        create_schema(engine)
        return cls(settings, engine, directory)

    async def close(self) -> None:
        for link in self._merchants.values():
            await link.bank.aclose()
        self._engine.dispose()

    def _account(self, account_no: str) -> Account:
        account = self._directory.account(account_no)
        if account is None:
            raise ApplicationError(
                f"account {account_no} is not configured in {self._directory.source}: "
                "add it there with its merchant",
                type=ACCOUNT_NOT_CONFIGURED,
                non_retryable=True,
            )
        return account

    @activity.defn(name="fetch_statement")
    async def fetch_statement(self, key: StatementKey) -> FetchResult:
        # The whole attempt heartbeats: the download, and storing a large archive after it.
        async with heartbeating(HEARTBEAT_EVERY):
            return await self._fetch(key)

    async def _fetch(self, key: StatementKey) -> FetchResult:
        workflow_id, run_id = _workflow_run()
        merchant_id = self._account(key.account_no).merchant.id
        link = self._merchants[merchant_id]
        paused = await asyncio.to_thread(merchant_pause, self._engine, merchant_id)
        if paused is not None:
            message = (
                f"merchant {merchant_id} is paused since {paused.paused_at:%Y-%m-%d %H:%M} UTC "
                f"({paused.reason}); `bankrecon resume {merchant_id}` lets it go on"
            )
            await self._report(None, message)
            raise ApplicationError(message, type="MerchantPaused", category=ApplicationErrorCategory.BENIGN)
        origin = RequestOrigin(
            merchant_id=merchant_id,
            account_no=key.account_no,
            bill_date=key.bill_date,
            workflow_id=workflow_id,
            run_id=run_id,
            activity_attempt=activity.info().attempt,
        )
        claim = await asyncio.to_thread(link.window.try_claim, origin, datetime.now(UTC))
        if isinstance(claim, Wait):
            wait = claim.delay + link.margin
            whose = (
                f"goes to {claim.ahead} statement(s) that waited longer"
                if claim.ahead
                else "is in use by another statement"
            )
            message = (
                f"merchant {merchant_id}'s request window {whose}; "
                f"next request in {wait.total_seconds():.1f}s"
            )
            await self._report(None, message, next_attempt_in=wait)
            raise ApplicationError(
                message,
                type="MerchantWindowBusy",
                next_retry_delay=wait,
                category=ApplicationErrorCategory.BENIGN,
            )
        outcome = "no answer"
        try:
            answer = await link.bank.download_statement(
                key.account_no, key.bill_date, claim.request_id, self._data_dir
            )
            outcome = answer.code
            metrics.fetch_attempted(merchant_id, answer)
        except BankUnavailable as exc:
            outcome = str(exc)
            metrics.fetch_attempted(merchant_id, None)
            await self._report(None, f"bank unavailable: {exc}")
            raise ApplicationError(f"bank unavailable: {exc}", type="BankUnavailable") from None
        finally:
            await asyncio.to_thread(link.window.release, merchant_id, claim, datetime.now(UTC), outcome)
            activity.logger.info("bank request: %s", outcome, extra=statement_fields(key))
        damaged = answer.outcome is Outcome.READY and answer.archive is None
        if answer.outcome in (Outcome.READY, Outcome.EMPTY) and not damaged:
            # The activity's result brings this answer to the workflow: a signal would only cost
            # it another workflow task.
            sent = await asyncio.to_thread(requests_sent, self._engine, *_workflow_run())
        else:
            sent = await self._report(answer.code, answer.message, final=answer.outcome is Outcome.REJECTED)
        return self._accept(key, answer, claim.sent_at, sent)

    async def _report(
        self,
        bank_code: str | None,
        message: str,
        *,
        final: bool = False,
        next_attempt_in: timedelta | None = None,
    ) -> int:
        """Tell the workflow what this attempt met (its status query shows it); the requests sent so far."""
        workflow_id, run_id = _workflow_run()
        sent = await asyncio.to_thread(requests_sent, self._engine, workflow_id, run_id)
        report = FetchAttemptReport(
            bank_code=bank_code,
            message=message,
            bank_requests=sent,
            final=final,
            next_attempt_in=next_attempt_in,
        )
        try:
            await (
                activity.client()
                .get_workflow_handle(workflow_id, run_id=run_id)
                .signal("fetch_attempted", report)
            )
        except RPCError as exc:
            # Only the status shown to operators misses this attempt; the fetch itself goes on.
            log.warning("could not report a fetch attempt to %s: %s", workflow_id, exc.message)
        return sent

    def _accept(self, key: StatementKey, answer: BankAnswer, sent_at: datetime, sent: int) -> FetchResult:
        said = f"bank answered {answer.code} {answer.message}".rstrip()
        if answer.outcome is Outcome.REJECTED:
            raise ApplicationError(
                f"{said}: {REJECTION_ADVICE[answer.code]}", type=BANK_REJECTED, non_retryable=True
            )
        if answer.outcome is Outcome.NOT_YET:
            if answer.code == "9999":
                raise ApplicationError(
                    f"statement not ready ({said})",
                    type="BankNotReady",
                    category=ApplicationErrorCategory.BENIGN,
                )
            kind = "BankRateLimited" if answer.known else "BankUnknownCode"
            raise ApplicationError(f"{said}; trying again after the window", type=kind)
        archive = None
        if answer.outcome is Outcome.READY:
            # Stored while the answer was read: the download streamed to disk.
            if answer.archive is None:
                raise ApplicationError(
                    f"download damaged: {answer.damage}; fetching again", type="ArchiveDamaged"
                )
            archive = answer.archive
            metrics.archive_downloaded(self._account(key.account_no).merchant.id, archive)
        activity.logger.info("statement fetched: %s", said, extra=statement_fields(key))
        return FetchResult(
            code="0000" if archive else "2001",
            message=answer.message,
            archive=archive,
            fetched_at=sent_at,
            bank_requests=sent,
        )

    @activity.defn(name="decode_statement")
    def decode_statement(self, request: DecodeRequest) -> DecodedStatement:
        key = request.statement
        currency = self._account(key.account_no).currency
        try:
            return decode_archive(
                self._data_dir,
                key,
                request.archive,
                self._limits,
                currency,
                on_progress=HeartbeatWhenDue(HEARTBEAT_EVERY),
            )
        except StatementDamaged as exc:
            kept = quarantine_archive(self._data_dir, key, request.archive, exc, _workflow_run()[0])
            activity.logger.warning(
                "statement damaged, quarantined at %s: %s", kept, exc, extra=statement_fields(key)
            )
            raise ApplicationError(
                f"statement {key.account_no} {key.bill_date} is damaged, nothing of it was stored: {exc}; "
                f"the archive is quarantined at {kept}",
                type=STATEMENT_DAMAGED,
                non_retryable=True,
            ) from None
        except FileNotFoundError:
            raise ApplicationError(
                f"archive {archive_path(self._data_dir, request.archive.sha256)} is missing: "
                "every worker of this task queue must share DATA_DIR",
                type="ArchiveMissing",
            ) from None

    @activity.defn(name="record_cancellation")
    def record_cancellation(self, cancellation: StatementCancellation) -> None:
        cancellations.record_cancellation(self._engine, cancellation)
        leave_queues(self._engine, cancellation.workflow_id, cancellation.run_id)
        activity.logger.info(
            "statement cancelled by an operator; the nightly catch-up leaves it alone",
            extra=statement_fields(cancellation.statement),
        )

    @activity.defn(name="record_failure")
    def record_failure(self, failure: StatementFailure) -> None:
        failures.record_failure(self._engine, failure)
        activity.logger.info(
            "statement failed for good (%s); the nightly catch-up leaves it to an operator",
            failure.error_type,
            extra=statement_fields(failure.statement),
        )

    @activity.defn(name="persist_statement")
    def persist_statement(self, request: PersistRequest) -> PersistResult:
        key = request.statement
        try:
            stored = save_statement(
                self._engine, self._data_dir, request, on_progress=HeartbeatWhenDue(HEARTBEAT_EVERY)
            )
        except DBAPIError as exc:
            # The database's own words can quote rows (PostgreSQL's DETAIL shows the failing row or
            # key): the log and Temporal's history get what kind of error it was and where, not them.
            what = describe_error(exc)
            activity.logger.warning("storing failed, to be retried: %s", what, extra=statement_fields(key))
            raise ApplicationError(
                f"database error while storing {key.account_no} {key.bill_date}: {what}; "
                "nothing was stored, retrying",
                type="DatabaseError",
            ) from None
        if stored.written:
            metrics.statement_persisted(self._account(key.account_no).merchant.id, request, datetime.now(UTC))
        activity.logger.info(
            "statement %s: %d transactions",
            "stored" if stored.written else "already stored",
            stored.transaction_count,
            extra=statement_fields(key),
        )
        return stored
