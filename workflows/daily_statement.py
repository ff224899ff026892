"""DailyStatementWorkflow: one account's statement for one date, fetched, decoded and stored once."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.statements import (
        ACCOUNT_NOT_CONFIGURED,
        BANK_REJECTED,
        STATEMENT_DAMAGED,
        StatementActivities,
    )
    from bankrecon.logs import statement_fields
    from bankrecon.models import (
        DailyStatementInput,
        DailyStatementResult,
        DailyStatementStatus,
        DecodedStatement,
        DecodeRequest,
        FetchResult,
        PersistRequest,
        Phase,
        StatementKey,
        StatementTotals,
    )
    from bankrecon.statement import CHINA_STANDARD_TIME

# The fetch holds one bank request, bounded by BANK_REQUEST_TIMEOUT_SECONDS (default 300 s).
FETCH_TIMEOUT = timedelta(minutes=15)
LOAD_TIMEOUT = timedelta(hours=2)
# Activities heartbeat every few seconds: a dead worker's attempt is retried within this.
HEARTBEAT_TIMEOUT = timedelta(seconds=30)
LOAD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[STATEMENT_DAMAGED],
)


def polling_retry_policy(interval: timedelta) -> RetryPolicy:
    """Ask the bank again every ``interval``, for as long as it takes (no attempt cap)."""
    return RetryPolicy(
        initial_interval=interval,
        backoff_coefficient=1.0,
        maximum_interval=interval,
        maximum_attempts=0,
        non_retryable_error_types=[BANK_REJECTED, ACCOUNT_NOT_CONFIGURED],
    )


def yesterday_in_china(moment: datetime) -> date:
    return moment.astimezone(CHINA_STANDARD_TIME).date() - timedelta(days=1)


def statement_workflow_id(account_no: str, bill_date: date) -> str:
    return f"statement-{account_no}-{bill_date.isoformat()}"


# Invalid input (say a malformed account number from the CLI) fails the workflow with
# pydantic's explanation, instead of failing its task over and over.
@workflow.defn(name="DailyStatementWorkflow", failure_exception_types=[ValidationError])
class DailyStatementWorkflow:
    def __init__(self) -> None:
        self._phase: Phase = "waiting_for_bank"
        self._key: StatementKey | None = None

    @workflow.run
    async def run(self, request: DailyStatementInput) -> DailyStatementResult:
        key = StatementKey(
            account_no=request.account_no,
            bill_date=request.bill_date or yesterday_in_china(workflow.info().start_time),
        )
        self._key = key
        try:
            fetched, decoded = await self._download(
                key, timedelta(seconds=request.retry_interval_seconds), request.max_damaged_downloads
            )
            return await self._persist(key, fetched, decoded)
        except ActivityError as err:
            self._phase = "failed"
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                # Fail with the activity's own words: they say what went wrong and what to fix.
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from err
            raise

    async def _download(
        self, key: StatementKey, retry_interval: timedelta, max_damaged: int
    ) -> tuple[FetchResult, DecodedStatement | None]:
        """Fetch until the bank has the statement, and fetch again while what it sends is damaged."""
        damaged = 0
        while True:
            self._phase = "waiting_for_bank"
            fetched = await workflow.execute_activity_method(
                StatementActivities.fetch_statement,
                key,
                start_to_close_timeout=FETCH_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=polling_retry_policy(retry_interval),
            )
            if fetched.archive is None:
                return fetched, None
            self._phase = "decoding"
            try:
                decoded = await workflow.execute_activity_method(
                    StatementActivities.decode_statement,
                    DecodeRequest(statement=key, archive=fetched.archive),
                    start_to_close_timeout=LOAD_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=LOAD_RETRY,
                )
                return fetched, decoded
            except ActivityError as err:
                if not (isinstance(err.cause, ApplicationError) and err.cause.type == STATEMENT_DAMAGED):
                    raise
                damaged += 1
                if damaged >= max_damaged:
                    self._phase = "failed"
                    raise ApplicationError(
                        f"{damaged} damaged download(s) in a row, giving up; the last: {err.cause.message}",
                        type=STATEMENT_DAMAGED,
                        non_retryable=True,
                    ) from err
                workflow.logger.warning(
                    "damaged download %d of at most %d, fetching again after %s: %s",
                    damaged,
                    max_damaged,
                    retry_interval,
                    err.cause.message,
                    extra=statement_fields(key),
                )
                # The bank may regenerate the file; asking again at once would only meet the window.
                await workflow.sleep(retry_interval)

    async def _persist(
        self, key: StatementKey, fetched: FetchResult, decoded: DecodedStatement | None
    ) -> DailyStatementResult:
        totals = decoded.totals if decoded else StatementTotals.empty()
        records_file = decoded.records_file if decoded else None
        self._phase = "persisting"
        source_sha256 = fetched.archive.sha256 if fetched.archive else None
        persisted = await workflow.execute_activity_method(
            StatementActivities.persist_statement,
            PersistRequest(
                statement=key,
                bank_code=fetched.code,
                totals=totals,
                records_file=records_file,
                source_sha256=source_sha256,
                fetched_at=fetched.fetched_at,
            ),
            start_to_close_timeout=LOAD_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=LOAD_RETRY,
        )
        self._phase = "done"
        return DailyStatementResult(
            account_no=key.account_no,
            bill_date=key.bill_date,
            status="persisted" if persisted.written else "already_persisted",
            transaction_count=persisted.transaction_count,
            fetch_attempts=fetched.bank_requests,
            bank_code=fetched.code,
            currency=totals.currency,
            opening_balance=totals.opening_balance,
            closing_balance=totals.closing_balance,
            source_sha256=source_sha256,
        )

    @workflow.query
    def status(self) -> DailyStatementStatus | None:
        if self._key is None:
            return None
        return DailyStatementStatus(statement=self._key, phase=self._phase)
