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

from bankrecon.accounts import Account, AccountDirectory, defaults_of, kind_of
from bankrecon.config import Settings
from bankrecon.models import (
    ArchiveRef,
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
from bankrecon.pacing.window import (
    MerchantWindow,
    RequestOrigin,
    Wait,
    leave_queues,
    merchant_pause,
    opening_margin,
    requests_sent,
)
from bankrecon.sources.base import (
    Answer,
    AnswerNotBelieved,
    DecodeJob,
    Outcome,
    SourceUnavailable,
    StatementClient,
    earliest_request,
)
from bankrecon.statements.common import CHINA_STANDARD_TIME, ArchiveLimits, StatementDamaged
from bankrecon.store import cancellations, failures
from bankrecon.store.archive import sweep_staged_files
from bankrecon.store.archives import ArchiveNotStored, archive_store
from bankrecon.store.db import describe_error, retry_can_cure
from bankrecon.store.persistence import discard_records, is_stored, save_statement
from bankrecon.store.quarantine import quarantine_archive
from bankrecon.store.retention import RetentionPolicy, sweep_data_dir
from bankrecon.store.schema import open_database
from bankrecon.telemetry import metrics
from bankrecon.telemetry.logs import statement_fields

log = logging.getLogger(__name__)

# Error types the workflow and operators see in failures and pending-activity details.
BANK_REJECTED = "BankRejected"
ACCOUNT_NOT_CONFIGURED = "AccountNotConfigured"
STATEMENT_DAMAGED = "StatementDamaged"
# The workflow asks again after the interval, and gives up after max_unbelieved_answers in a row.
ANSWER_NOT_BELIEVED = "AnswerNotBelieved"
STATEMENT_REFUSED = "StatementRefused"

HEARTBEAT_EVERY = timedelta(seconds=5)
# Logged by a persist on a host without the decode's records file (bench/nightly.py counts them).
DECODING_AGAIN = "decoding again: the records file is on the host that decoded"
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

    client: StatementClient
    window: MerchantWindow
    margin: timedelta


class StatementActivities:
    def __init__(self, settings: Settings, engine: Engine, directory: AccountDirectory):
        self._data_dir = settings.data_dir.resolve()
        self._defaults = defaults_of(settings)
        self._engine = engine
        self._archives = archive_store(settings.archive_store_url, engine)
        self._directory = directory
        self._merchants = {
            merchant.id: _MerchantLink(
                client=kind_of(merchant).client(merchant, defaults_of(settings)),
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
        # The retention run reaches only the DATA_DIR of the host it runs on; each worker its own.
        policy = RetentionPolicy.from_settings(settings)
        for kind, count in sweep_data_dir(settings.data_dir, policy, datetime.now(UTC)).items():
            if count:
                log.info("removed %d expired file(s) from %s", count, settings.data_dir / kind)
        return cls(settings, open_database(settings.resolved_database_url()), directory)

    async def close(self) -> None:
        for link in self._merchants.values():
            await link.client.aclose()
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
        account = self._account(key.account_no)
        merchant_id = account.merchant.id
        kind = kind_of(account.merchant)
        link = self._merchants[merchant_id]
        now = datetime.now(UTC)
        refusal = kind.refusal(key.bill_date, now.astimezone(CHINA_STANDARD_TIME).date())
        if refusal is not None:
            message = f"{kind.label} cannot serve {key.bill_date}: {refusal}; nothing was asked"
            await self._report(None, message, final=True)
            raise ApplicationError(message, type=BANK_REJECTED, non_retryable=True)
        first_request = earliest_request(key.bill_date, account.merchant)
        if first_request is not None and now < first_request:
            wait = first_request - now
            message = (
                f"{kind.label} prepares the statement for {key.bill_date} by "
                f"{first_request:%Y-%m-%d %H:%M} China Standard Time; first request then"
            )
            await self._report(None, message, next_attempt_in=wait)
            raise ApplicationError(
                message,
                type="StatementNotDue",
                next_retry_delay=wait,
                category=ApplicationErrorCategory.BENIGN,
            )
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
        claim = await asyncio.to_thread(link.window.try_claim, origin)
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
            answer = await link.client.ask(account, key.bill_date, claim.request_id, self._data_dir)
            outcome = answer.code
            metrics.fetch_attempted(merchant_id, answer)
        except SourceUnavailable as exc:
            outcome = str(exc)
            metrics.fetch_attempted(merchant_id, None)
            unbelieved = isinstance(exc, AnswerNotBelieved)
            message = f"{kind.label}{'' if unbelieved else ' unavailable'}: {exc}"
            await self._report(None, message)
            if unbelieved:
                raise ApplicationError(message, type=ANSWER_NOT_BELIEVED, non_retryable=True) from None
            raise ApplicationError(message, type="BankUnavailable") from None
        finally:
            await asyncio.to_thread(link.window.release, merchant_id, claim, outcome)
            activity.logger.info("bank request: %s", outcome, extra=statement_fields(key))
        if answer.archive is not None:
            # Before the result says where it is: a decode on another host fetches it from there.
            await asyncio.to_thread(self._archives.put, self._data_dir, answer.archive.sha256)
        damaged = answer.outcome is Outcome.READY and answer.archive is None
        if answer.outcome in (Outcome.READY, Outcome.EMPTY) and not damaged:
            # The activity's result brings this answer to the workflow: a signal would only cost
            # it another workflow task.
            sent = await asyncio.to_thread(requests_sent, self._engine, *_workflow_run())
        else:
            sent = await self._report(answer.code, answer.message, final=answer.outcome is Outcome.REJECTED)
        return self._accept(key, kind.label, answer, claim.sent_at, sent)

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

    def _accept(
        self, key: StatementKey, label: str, answer: Answer, sent_at: datetime, sent: int
    ) -> FetchResult:
        said = f"{label} answered {answer.code} {answer.message}".rstrip()
        if answer.outcome is Outcome.REJECTED:
            raise ApplicationError(f"{said}: {answer.advice}", type=BANK_REJECTED, non_retryable=True)
        if answer.outcome is Outcome.NOT_READY:
            raise ApplicationError(
                f"statement not ready ({said})",
                type="BankNotReady",
                category=ApplicationErrorCategory.BENIGN,
            )
        if answer.outcome in (Outcome.THROTTLED, Outcome.UNRECOGNISED):
            kind = "BankRateLimited" if answer.outcome is Outcome.THROTTLED else "BankUnknownCode"
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
            code=answer.code,
            message=answer.message,
            archive=archive,
            fetched_at=sent_at,
            bank_requests=sent,
        )

    @activity.defn(name="decode_statement")
    def decode_statement(self, request: DecodeRequest) -> DecodedStatement:
        key = request.statement
        try:
            return self._decode(key, request.archive)
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

    def _decode(self, key: StatementKey, archive: ArchiveRef) -> DecodedStatement:
        """Decode the archive on this host, fetching it from the archive store if DATA_DIR lacks it."""
        account = self._account(key.account_no)
        try:
            self._archives.get(self._data_dir, archive.sha256)
        except ArchiveNotStored as exc:
            # DATA_DIR alone may heal when the attempt lands on the host that has it; a shared
            # store that lost an archive will not.
            raise ApplicationError(
                str(exc), type="ArchiveMissing", non_retryable=self._archives.shared
            ) from None
        return kind_of(account.merchant).decode(
            DecodeJob(self._data_dir, key, archive, account, self._limits, HeartbeatWhenDue(HEARTBEAT_EVERY))
        )

    @activity.defn(name="record_cancellation")
    def record_cancellation(self, cancellation: StatementCancellation) -> None:
        cancellations.record_cancellation(self._engine, cancellation)
        leave_queues(self._engine, cancellation.workflow_id, cancellation.run_id)
        activity.logger.info(
            "statement cancelled by an operator; the nightly catch-up leaves it alone",
            extra=statement_fields(cancellation.statement),
        )

    def _records_on_this_host(self, request: PersistRequest) -> None:
        """Decode again here when the decode ran on another host: deterministic, it writes the same file.

        Cheaper than sending the records file through the store, and it survives the loss of
        the host that decoded.
        """
        if (
            request.records_file is None
            or request.archive is None
            or (self._data_dir / request.records_file).exists()
            or is_stored(self._engine, request)
        ):
            return
        activity.logger.info(DECODING_AGAIN, extra=statement_fields(request.statement))
        decoded = self._decode(request.statement, request.archive)
        if decoded.records_file != request.records_file or decoded.totals != request.totals:
            raise ApplicationError(
                f"decoding {request.archive.sha256} again gave {decoded.records_file} and its totals, "
                f"not {request.records_file} and the workflow's",
                type="RecordsMismatch",
                non_retryable=True,
            )

    def _refused(self, request: PersistRequest, what: str) -> ApplicationError:
        """The database refused the statement's data: every attempt would fail the same way."""
        key = request.statement
        kept = ""
        if request.archive is not None:
            damage = StatementDamaged("refused by the database", what)
            path = quarantine_archive(self._data_dir, key, request.archive, damage, _workflow_run()[0])
            kept = f"; the archive is quarantined at {path}"
        discard_records(self._data_dir, request)
        activity.logger.error(
            "the database refused the statement%s: %s", kept, what, extra=statement_fields(key)
        )
        return ApplicationError(
            f"the database refused statement {key.account_no} {key.bill_date} ({what}), "
            f"nothing of it was stored{kept}",
            type=STATEMENT_REFUSED,
            non_retryable=True,
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
            self._records_on_this_host(request)
            stored = save_statement(
                self._engine,
                self._data_dir,
                request,
                on_progress=HeartbeatWhenDue(HEARTBEAT_EVERY),
                source_kind=self._account(key.account_no).merchant.kind,
            )
        except DBAPIError as exc:
            # The database's own words can quote rows (PostgreSQL's DETAIL shows the failing row or
            # key): the log and Temporal's history get what kind of error it was and where, not them.
            what = describe_error(exc)
            if not retry_can_cure(exc):
                raise self._refused(request, what) from None
            activity.logger.warning("storing failed, to be retried: %s", what, extra=statement_fields(key))
            raise ApplicationError(
                f"database error while storing {key.account_no} {key.bill_date}: {what}; "
                "nothing was stored, retrying",
                type="DatabaseError",
            ) from None
        account = self._account(key.account_no)
        if request.archive is not None:
            try:
                kind_of(account.merchant).after_stored(
                    account, key.bill_date, request.archive, self._defaults
                )
            except SourceUnavailable as exc:
                raise ApplicationError(
                    f"statement {key.account_no} {key.bill_date} is stored; the step after it failed: {exc}",
                    type="BankUnavailable",
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
