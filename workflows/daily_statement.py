"""DailyStatementWorkflow: one account's statement for one date, fetched, decoded and stored once."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import date, datetime, time, timedelta
from typing import NoReturn

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.notifications import NotificationActivities
    from activities.reconcile import ReconcileActivities
    from activities.statements import (
        ACCOUNT_NOT_CONFIGURED,
        ANSWER_NOT_BELIEVED,
        BANK_REJECTED,
        STATEMENT_DAMAGED,
        StatementActivities,
    )
    from bankrecon.models import (
        BankAnswerSeen,
        DailyStatementInput,
        DailyStatementResult,
        DailyStatementStatus,
        DecodedStatement,
        DecodeRequest,
        FetchAttemptReport,
        FetchResult,
        NoticeKind,
        OperatorNotice,
        PersistRequest,
        Phase,
        StatementCancellation,
        StatementFailure,
        StatementKey,
        StatementProgress,
        StatementTotals,
    )
    from bankrecon.statements.common import CHINA_STANDARD_TIME
    from bankrecon.telemetry.logs import statement_fields
    from bankrecon.temporal.search_attributes import BANK_ACCOUNT, BILL_DATE, STATEMENT_LATE, STATEMENT_PHASE

# The workflow.patched id of the status shown while waiting after a damaged download.
WAITING_AFTER_DAMAGE_PATCH = "status-waiting-after-a-damaged-download"
# The workflow.patched id of continuing as a new run when a wait's history grows long.
BOUNDED_HISTORY_PATCH = "continue-as-new-when-the-history-is-long"
# How long a run that has grown long lets the fetch attempt that reported last end, before
# cancelling the fetch to continue as a new run.
ATTEMPT_SETTLES = timedelta(seconds=30)
# The workflow.patched id of signalling the reconciliations a stored statement is an input of.
TELL_RECONCILIATIONS_PATCH = "tell-reconciliations-the-statement-is-stored"
# The workflow.patched id of recording a failure for good, and its notice.
FAILURE_RECORD_PATCH = "record-a-failure-for-good"
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
# A cancellation or a failure: one row written; retried like the loads, since a database outage heals.
RECORD_TIMEOUT = timedelta(seconds=30)
# A webhook that is down for good must not keep the statement's workflow open: 12 attempts,
# waiting 10 s doubling up to 10 min between them (60.5 min), each up to 30 s: about an hour.
NOTICE_TIMEOUT = timedelta(seconds=30)
NOTICE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=10),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=12,
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


def statement_deadline(bill_date: date, deadline: time) -> datetime:
    """When a statement counts as late: ``deadline`` in China Standard Time on the day after it."""
    return datetime.combine(bill_date + timedelta(days=1), deadline, CHINA_STANDARD_TIME)


# Invalid input (say a malformed account number from the CLI) fails the workflow with
# pydantic's explanation, instead of failing its task over and over.
@workflow.defn(name="DailyStatementWorkflow", failure_exception_types=[ValidationError])
class DailyStatementWorkflow:
    """Fetch, decode and store one statement; alert operators once if it misses its deadline.

    The fetch's retries happen on the Temporal server, out of the workflow's sight; each
    attempt reports what the bank said through the ``fetch_attempted`` signal, so the
    ``status`` query can show attempts, the last answer and the next attempt.
    """

    def __init__(self) -> None:
        self._phase: Phase = "waiting_for_bank"
        self._key: StatementKey | None = None
        self._deadline: datetime | None = None
        self._fetch_attempts = 0
        self._last_answer: BankAnswerSeen | None = None
        self._holdup: str | None = None
        self._next_attempt_at: datetime | None = None
        self._late = False
        self._retry_interval = timedelta(0)
        self._requests_before = 0  # sent by the runs this one continues
        self._damaged = 0
        self._unbelieved = 0  # answers in a row whose signature or certificate did not verify

    @workflow.run
    async def run(self, request: DailyStatementInput) -> DailyStatementResult:
        key = StatementKey(
            account_no=request.account_no,
            bill_date=request.bill_date or yesterday_in_china(workflow.info().start_time),
        )
        self._key = key
        self._deadline = statement_deadline(key.bill_date, request.deadline)
        self._retry_interval = timedelta(seconds=request.retry_interval_seconds)
        workflow.upsert_search_attributes(
            [
                BANK_ACCOUNT.value_set(key.account_no),
                BILL_DATE.value_set(key.bill_date.isoformat()),
            ]
        )
        if request.progress is not None:
            self._carry_on(request.progress)
        alerting = request.alert_when_late and not self._late
        watch = asyncio.create_task(self._alert_when_late()) if alerting else None
        try:
            downloaded = await self._download(key, request)
            if downloaded is None:
                self._continue_as_new(key, request)
            fetched, decoded = downloaded
            result = await self._persist(key, fetched, decoded)
            await self._tell_reconciliations(key)
        except asyncio.CancelledError:  # cancelled while no activity ran (the wait after a damaged download)
            await self._record_cancellation(key)
            raise
        except ActivityError as err:
            if is_cancelled_exception(err):
                await self._record_cancellation(key)
                raise
            self._enter("failed")
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                # Fail with the activity's own words: they say what went wrong and what to fix.
                failure = ApplicationError(cause.message, type=cause.type, non_retryable=True)
                await self._record_failure(key, failure)
                raise failure from err
            raise
        except ApplicationError as err:  # every download was damaged, or no answer was believed
            await self._record_failure(key, err)
            raise
        finally:
            if watch is not None and not self._late:
                watch.cancel()
        if request.alert_when_late and self._late:
            if watch is not None:
                await watch  # the alert goes out before its recovery notice
            await self._notify("recovered")
        return result

    async def _tell_reconciliations(self, key: StatementKey) -> None:
        """The statement is stored: every reconciliation it is an input of may go on at once."""
        # Patched: a run stored under the earlier code replays without this activity.
        if not workflow.patched(TELL_RECONCILIATIONS_PATCH):
            return
        try:
            told = await workflow.execute_activity_method(
                ReconcileActivities.signal_reconciliations,
                key,
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=NOTICE_RETRY,
            )
        except ActivityError as err:
            # They look again at their interval anyway: the statement is stored, the run done.
            workflow.logger.error("could not tell the reconciliations: %s", err.cause or err)
            return
        if told:
            workflow.logger.info("told %s: the statement is stored", ", ".join(told))

    def _carry_on(self, progress: StatementProgress) -> None:
        self._requests_before = self._fetch_attempts = progress.bank_requests
        self._last_answer = progress.last_answer
        self._late = progress.late
        self._damaged = progress.damaged_downloads
        self._unbelieved = progress.unbelieved_answers

    def _continue_as_new(self, key: StatementKey, request: DailyStatementInput) -> NoReturn:
        """Go on waiting in a new run with an empty history, carrying what this one saw."""
        progress = StatementProgress(
            bank_requests=self._fetch_attempts,
            last_answer=self._last_answer,
            late=self._late,
            damaged_downloads=self._damaged,
            unbelieved_answers=self._unbelieved,
        )
        workflow.logger.info(
            "history reached %d events: continuing as a new run", workflow.info().get_current_history_length()
        )
        carried = {"bill_date": key.bill_date, "progress": progress}
        workflow.continue_as_new(request.model_copy(update=carried))

    async def _record_cancellation(self, key: StatementKey) -> None:
        """An operator cancelled this date: remember it, so that the nightly catch-up leaves it alone
        (Temporal's id reuse policy would allow a new run, and forgets the cancelled one after
        the namespace's retention)."""
        self._next_attempt_at = None
        self._enter("cancelled")
        info = workflow.info()
        await workflow.execute_activity_method(
            StatementActivities.record_cancellation,
            StatementCancellation(
                statement=key, workflow_id=info.workflow_id, run_id=info.run_id, cancelled_at=workflow.now()
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=LOAD_RETRY,
        )

    async def _record_failure(self, key: StatementKey, failure: ApplicationError) -> None:
        """This run failed for a reason that does not heal by itself: remember it, so that the nightly
        catch-up does not start the date again (to fail again, and alert again) until an operator
        does; and tell the operators, once, what to fix."""
        # Patched: a run that failed under the earlier code replays without these activities.
        if not workflow.patched(FAILURE_RECORD_PATCH):
            return
        self._next_attempt_at = None
        info = workflow.info()
        reason = f"{failure.message}; then: bankrecon refetch {key.account_no} {key.bill_date}"
        await workflow.execute_activity_method(
            StatementActivities.record_failure,
            StatementFailure(
                statement=key,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                failed_at=workflow.now(),
                error_type=failure.type or "",
                reason=reason,
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=LOAD_RETRY,
        )
        await self._notify("failed", reason=reason)

    def _enter(self, phase: Phase) -> None:
        self._phase = phase
        workflow.upsert_search_attributes([STATEMENT_PHASE.value_set(phase)])

    async def _alert_when_late(self) -> None:
        assert self._deadline is not None
        remaining = self._deadline - workflow.now()
        if remaining > timedelta(0):
            await workflow.sleep(remaining)
        self._late = True
        workflow.upsert_search_attributes([STATEMENT_LATE.value_set(True)])
        await self._notify("late")

    async def _notify(self, kind: NoticeKind, reason: str | None = None) -> None:
        assert self._key is not None and self._deadline is not None
        notice = OperatorNotice(
            kind=kind,
            workflow_id=workflow.info().workflow_id,
            run_id=workflow.info().run_id,
            statement=self._key,
            deadline=self._deadline,
            at=workflow.now(),
            fetch_attempts=self._fetch_attempts,
            last_answer=self._last_answer,
            reason=reason,
        )
        try:
            await workflow.execute_activity_method(
                NotificationActivities.notify_operators,
                notice,
                start_to_close_timeout=NOTICE_TIMEOUT,
                retry_policy=NOTICE_RETRY,
            )
        except ActivityError as err:
            # The statement matters more than its notice: carry on, and say so in the worker's log.
            workflow.logger.error("could not deliver the %s notice: %s", kind, err.cause or err)

    @workflow.signal(name="fetch_attempted")
    def record_fetch_attempt(self, report: FetchAttemptReport) -> None:
        self._seen(report)

    def _seen(self, report: FetchAttemptReport) -> None:
        """What a fetch attempt met: from its signal, or for the attempt that got the file, its result."""
        now = workflow.now()
        self._fetch_attempts = max(self._fetch_attempts, self._requests_before + report.bank_requests)
        if report.bank_code is None:
            self._holdup = report.message
        else:
            self._holdup = None
            self._unbelieved = 0
            self._last_answer = BankAnswerSeen(code=report.bank_code, message=report.message, at=now)
        if report.final:
            self._next_attempt_at = None
        else:
            self._next_attempt_at = now + (report.next_attempt_in or self._retry_interval)

    async def _fetch(
        self, key: StatementKey, retry_interval: timedelta, history_limit: int
    ) -> FetchResult | None:
        """Fetch until the bank answers for good; None when the history grew long first."""
        fetch = workflow.start_activity_method(
            StatementActivities.fetch_statement,
            key,
            start_to_close_timeout=FETCH_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=polling_retry_policy(retry_interval),
            # The run ends only once the server has the fetch cancelled: no attempt outlives it.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        # Every attempt's report (a signal) adds to the history: a date the bank never gets
        # ready would reach the server's limits within months.
        await workflow.wait_condition(
            lambda: fetch.done() or workflow.info().get_current_history_length() >= history_limit
        )
        # Patched only here, where a run first grows long: a run that grew long under the earlier
        # code, which waited on, replays without the cancel.
        if not fetch.done() and workflow.patched(BOUNDED_HISTORY_PATCH):
            # The attempt that reported is about to end; once it has, the fetch waits for its
            # next attempt and the cancel lands at once.
            with suppress(asyncio.TimeoutError):
                await workflow.wait_condition(fetch.done, timeout=ATTEMPT_SETTLES)
            if not fetch.done():
                fetch.cancel()
                try:
                    return await fetch
                except ActivityError as err:
                    if is_cancelled_exception(err):
                        return None
                    raise
        return await fetch

    async def _download(
        self, key: StatementKey, request: DailyStatementInput
    ) -> tuple[FetchResult, DecodedStatement | None] | None:
        """Fetch until the bank has the statement, and fetch again while what it sends is damaged.

        None: the history grew long while waiting, and a new run should go on waiting.
        """
        retry_interval = self._retry_interval
        while True:
            self._enter("waiting_for_bank")
            try:
                fetched = await self._fetch(key, retry_interval, request.history_limit)
            except ActivityError as err:
                if not (isinstance(err.cause, ApplicationError) and err.cause.type == ANSWER_NOT_BELIEVED):
                    raise
                self._unbelieved += 1
                await self._ask_again_or_give_up(
                    key, err.cause, self._unbelieved, request.max_unbelieved_answers, "unbelieved answer"
                )
                continue
            if fetched is None:
                return None
            self._seen(
                FetchAttemptReport(
                    bank_code=fetched.code,
                    message=fetched.message,
                    bank_requests=fetched.bank_requests,
                    final=True,
                )
            )
            fetched = fetched.model_copy(update={"bank_requests": self._fetch_attempts})
            if fetched.archive is None:
                return fetched, None
            self._enter("decoding")
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
                self._damaged += 1
                await self._ask_again_or_give_up(
                    key, err.cause, self._damaged, request.max_damaged_downloads, "damaged download"
                )

    async def _ask_again_or_give_up(
        self, key: StatementKey, cause: ApplicationError, in_a_row: int, limit: int, what: str
    ) -> None:
        """After a download that cannot be used: wait the interval to ask again, or, the limit
        reached, fail for good with the last one's words (they name what to check)."""
        if in_a_row >= limit:
            self._enter("failed")
            raise ApplicationError(
                f"{in_a_row} {what}(s) in a row, giving up; the last: {cause.message}",
                type=cause.type,
                non_retryable=True,
            ) from cause
        workflow.logger.warning(
            "%s %d of at most %d in a row, fetching again after %s: %s",
            what,
            in_a_row,
            limit,
            self._retry_interval,
            cause.message,
            extra=statement_fields(key),
        )
        # The bank may regenerate the file; asking again at once would only meet the window.
        # Patched: a run that waited here under the earlier code replays without these upserts.
        if workflow.patched(WAITING_AFTER_DAMAGE_PATCH):
            self._next_attempt_at = workflow.now() + self._retry_interval
            self._enter("waiting_for_bank")
        await workflow.sleep(self._retry_interval)

    async def _persist(
        self, key: StatementKey, fetched: FetchResult, decoded: DecodedStatement | None
    ) -> DailyStatementResult:
        totals = decoded.totals if decoded else StatementTotals.empty()
        records_file = decoded.records_file if decoded else None
        self._enter("persisting")
        source_sha256 = fetched.archive.sha256 if fetched.archive else None
        persisted = await workflow.execute_activity_method(
            StatementActivities.persist_statement,
            PersistRequest(
                statement=key,
                bank_code=fetched.code,
                totals=totals,
                records_file=records_file,
                records_format=decoded.records_format if decoded else "refbank",
                source_sha256=source_sha256,
                fetched_at=fetched.fetched_at,
                archive=fetched.archive,
            ),
            start_to_close_timeout=LOAD_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=LOAD_RETRY,
        )
        self._next_attempt_at = None
        self._enter("done")
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
        if self._key is None or self._deadline is None:
            return None
        return DailyStatementStatus(
            statement=self._key,
            phase=self._phase,
            fetch_attempts=self._fetch_attempts,
            last_answer=self._last_answer,
            holdup=self._holdup,
            next_attempt_at=self._next_attempt_at,
            deadline=self._deadline,
            late=self._late,
        )
