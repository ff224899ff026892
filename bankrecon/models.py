"""Inputs and outputs of the workflow and its activities.

Everything here travels through Temporal history, so it holds references and
summaries only: never statement lines, never credentials.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AccountNo = str  # a bank account number, or a statement's name (STATEMENT_NAME_PATTERN)
RecordsFormat = Literal["refbank", "canonical"]
ACCOUNT_NO_PATTERN = r"^[0-9]{10,32}$"  # the reference bank's (statement-format.md)
# What names a statement of any source: a bank account number, or a name of letters, digits,
# '.', '_' and '-' with at least one letter (digits alone would be taken for an account number).
STATEMENT_NAME_PATTERN = r"^(?:[0-9]{10,32}|[A-Za-z][A-Za-z0-9._-]*|[0-9][0-9._-]*[A-Za-z][A-Za-z0-9._-]*)$"
STATEMENT_NAME_MAX_CHARS = 64
STATEMENT_NAME_FORM = "10 to 32 digits, or letters, digits, '.', '_' and '-' with a letter, at most 64"


def is_statement_name(text: str) -> bool:
    return len(text) <= STATEMENT_NAME_MAX_CHARS and re.fullmatch(STATEMENT_NAME_PATTERN, text) is not None


class DailyStatementInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_no: AccountNo = Field(pattern=STATEMENT_NAME_PATTERN, max_length=STATEMENT_NAME_MAX_CHARS)
    bill_date: date | None = None  # default: yesterday in China Standard Time
    retry_interval_seconds: float = Field(default=1800.0, gt=0)
    # A damaged download is fetched again after the interval (the bank may regenerate it),
    # until this many in a row were damaged.
    max_damaged_downloads: int = Field(default=3, ge=1)
    # An answer whose signature or certificate does not verify is asked for again after the
    # interval, until this many in a row were not believed: then a key file is wrong.
    max_unbelieved_answers: int = Field(default=3, ge=1)
    # Operators are alerted when the statement is not stored by this time (China Standard
    # Time) on the day after bill_date; the workflow keeps trying after the alert.
    deadline: time = time(9, 0)
    alert_when_late: bool = True
    # A run whose history reaches this many events continues as a new run (a date the bank
    # never gets ready must not grow one history without bound; the server caps it).
    history_limit: int = Field(default=8000, ge=200, le=40000)
    # Set by a run for the run it continues as: what the statement met so far.
    progress: StatementProgress | None = None


class StatementProgress(BaseModel):
    """What earlier runs of a statement's workflow met, carried into the run that continues them."""

    bank_requests: int  # requests those runs sent
    last_answer: BankAnswerSeen | None
    late: bool  # the late alert went out already
    damaged_downloads: int
    unbelieved_answers: int = 0


class StatementKey(BaseModel):
    account_no: AccountNo
    bill_date: date


class ArchiveRef(BaseModel):
    """A downloaded zip kept in DATA_DIR, named by the SHA-256 of its bytes."""

    sha256: str
    size: int
    file_name: str


class FetchResult(BaseModel):
    code: str  # the source's own code: 0000 or 2001 from the reference bank
    message: str = ""  # the source's words with its code (成功, 当日无交易)
    archive: ArchiveRef | None  # None: no statement that day (2001), stored as an empty statement
    fetched_at: datetime
    bank_requests: int  # requests this workflow run sent for the statement, this one included


class DecodeRequest(BaseModel):
    statement: StatementKey
    archive: ArchiveRef


class StatementTotals(BaseModel):
    """What a statement's header and trailers say; balances are unknown for a 2001 answer."""

    currency: str | None
    opening_balance: Decimal | None
    closing_balance: Decimal | None
    credit_count: int
    debit_count: int
    credit_total: Decimal
    debit_total: Decimal
    transaction_count: int
    # Sources whose summary carries more (WeChat Pay's fee total): the fee total with every
    # decimal the source writes, and the summary's fields by their own names, as written.
    fee_total: Decimal | None = None
    summary: dict[str, str] | None = None

    @classmethod
    def empty(cls) -> StatementTotals:
        return cls(
            currency=None,
            opening_balance=None,
            closing_balance=None,
            credit_count=0,
            debit_count=0,
            credit_total=Decimal("0.00"),
            debit_total=Decimal("0.00"),
            transaction_count=0,
        )


class DecodedStatement(BaseModel):
    totals: StatementTotals
    source_sha256: str
    records_file: str  # validated detail lines, relative to DATA_DIR
    part_count: int
    # How the records file is written: the reference bank's D records, or canonical rows
    # (bankrecon.statements.canonical).
    records_format: RecordsFormat = "refbank"


class PersistRequest(BaseModel):
    statement: StatementKey
    bank_code: str
    totals: StatementTotals
    records_file: str | None  # None: no transactions
    records_format: RecordsFormat = "refbank"
    source_sha256: str | None
    fetched_at: datetime
    # Quarantined if the database refuses the statement; None for 2001 (no file).
    archive: ArchiveRef | None = None


class PersistResult(BaseModel):
    written: bool  # False when this very statement was already in the database
    transaction_count: int


Phase = Literal["waiting_for_bank", "decoding", "persisting", "done", "failed", "cancelled"]


class StatementCancellation(BaseModel):
    """An operator cancelled a statement's workflow: recorded, so that catch-up does not start it again."""

    statement: StatementKey
    workflow_id: str
    run_id: str
    cancelled_at: datetime


class StatementFailure(BaseModel):
    """A statement's run failed for a reason that does not heal by itself: recorded, so that catch-up
    leaves the date to an operator."""

    statement: StatementKey
    workflow_id: str
    run_id: str
    failed_at: datetime
    error_type: str  # BankRejected, AccountNotConfigured, StatementDamaged, ...
    reason: str  # the failure's own words: what went wrong and what to fix


class FetchAttemptReport(BaseModel):
    """What one fetch attempt met, sent by the activity to its workflow for the status query."""

    bank_code: str | None  # None: no answer (the bank was unreachable, or the window was busy)
    message: str
    bank_requests: int  # requests this workflow run has sent so far
    final: bool  # no further attempt: the statement was fetched, or the bank refused for good
    # When the next attempt comes other than one retry interval later (a busy window).
    next_attempt_in: timedelta | None = None


class BankAnswerSeen(BaseModel):
    code: str
    message: str
    at: datetime


class DailyStatementStatus(BaseModel):
    statement: StatementKey
    phase: Phase
    fetch_attempts: int  # requests sent to the bank by this run
    last_answer: BankAnswerSeen | None  # the bank's own answer, code and message
    # What kept the latest attempt from an answer: a busy window, a paused merchant, no connection.
    holdup: str | None
    next_attempt_at: datetime | None
    deadline: datetime
    late: bool  # the deadline passed before the statement was stored (operators were alerted)


NoticeKind = Literal["late", "recovered", "failed"]


class OperatorNotice(BaseModel):
    """A late-data alert, its recovery notice, or a failure for good; statement references only, never
    its content."""

    kind: NoticeKind
    workflow_id: str
    run_id: str  # a failed date is started again under the same workflow id
    statement: StatementKey
    deadline: datetime
    at: datetime
    fetch_attempts: int
    last_answer: BankAnswerSeen | None
    # A failure's: what went wrong and what to fix.
    reason: str | None = None


class NightlyStatementsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bill_date: date | None = None  # default: yesterday in China Standard Time, from the scheduled time
    # Dates before bill_date that have no stored statement are started too (catch-up after an outage).
    catch_up_days: int = Field(default=7, ge=0, le=60)
    retry_interval_seconds: float = Field(default=1800.0, gt=0)
    deadline: time = time(9, 0)
    # A run starts at most this many statements, then starts a follow-up run for the rest:
    # the server limits how many child workflows one execution may have pending.
    max_starts_per_run: int = Field(default=500, ge=1, le=1000)
    # Set by a run for its follow-up run: the last statement already handled.
    resume_after: StatementKey | None = None
    # The task queue of the statements' workflows, when workers of their own run them; default:
    # this run's.
    statement_task_queue: str | None = None


class RetentionResult(BaseModel):
    deleted: dict[str, int]  # how many of each kind expired: rows, stored archives, files


class NightlyPlanRequest(BaseModel):
    """A page of the statements to start: one activity result stays small whatever the number of
    accounts and days."""

    first_date: date
    last_date: date
    after: StatementKey | None = None  # the last statement of the page before
    limit: int = Field(ge=1)


class NightlyPlan(BaseModel):
    accounts: int  # configured accounts
    # (account, date) pairs without a stored statement, oldest first, at most the request's limit.
    missing: list[StatementKey]
    # More are missing after the page. False in the plans of runs before pages, which had them all.
    more: bool = False


class NightlyStatementsResult(BaseModel):
    bill_date: date
    accounts: int
    started: list[str]  # workflow ids started by this run
    # Workflow ids that already ran or are running (the id reuse policy made the start a no-op).
    already_started: list[str]
    # The workflow id of the follow-up run that starts what this run left (max_starts_per_run).
    follow_up: str | None = None


class DailyStatementResult(BaseModel):
    account_no: AccountNo
    bill_date: date
    status: Literal["persisted", "already_persisted"]
    transaction_count: int
    fetch_attempts: int
    bank_code: str
    currency: str | None
    opening_balance: Decimal | None
    closing_balance: Decimal | None
    source_sha256: str | None


DailyStatementInput.model_rebuild()
