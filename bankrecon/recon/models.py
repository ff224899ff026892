"""Inputs and outputs of the reconciliation workflow and its activities: figures, never lines."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bankrecon.models import STATEMENT_NAME_MAX_CHARS, STATEMENT_NAME_PATTERN

LINE_STATES = ("matched", "ledger_only", "channel_only", "amount_differs", "duplicate")
SETTLEMENT_STATES = ("settlement_missing", "settlement_differs")
EXCEPTION_STATES = (*LINE_STATES[1:], *SETTLEMENT_STATES)
# A later day's line that matched a one-sided line of an earlier day (docs/reconciliation.md, "Open
# items across days"): a match, not an exception; the earlier item is resolved by it.
MATCHED_ACROSS_DAYS = "matched_across_days"
ONE_SIDED = {"ledger": "ledger_only", "channel": "channel_only"}
# An exception's status, from its actions: nobody acted, a note, or paired / written off / matched.
OPEN, EXPLAINED, RESOLVED = "open", "explained", "resolved"
# What --open lists and the morning report counts: exceptions nobody resolved.
UNRESOLVED = (OPEN, EXPLAINED)
# How old the open exceptions are, in days before the report's day: new, recent, ageing.
AGE_BANDS = ("today", "1-3 days", "over 3 days")
# Not an exception: the bank statement the settlement arrives in is not stored yet.
SETTLEMENT_PENDING = "settlement_pending"
# The signal that tells a reconciliation to look at once: its statement, its ledger or the bank
# statement its settlement arrives in has just been stored.
INPUTS_READY = "inputs_ready"


def reconcile_workflow_id(account_no: str, day: date) -> str:
    return f"recon-{account_no}-{day.isoformat()}"


class ReconcileInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_no: str = Field(pattern=STATEMENT_NAME_PATTERN, max_length=STATEMENT_NAME_MAX_CHARS)
    recon_date: date
    # How often the workflow looks for the day's statement and ledger until both are there;
    # the signal ``inputs_ready`` makes it look at once.
    check_interval_seconds: float = Field(default=1800.0, gt=0)
    alert: bool = True  # exceptions raise the alert webhook


class ReconDay(BaseModel):
    account_no: str
    recon_date: date


class ReconInputs(BaseModel):
    missing: str | None  # what is not there yet; None: both the statement and the ledger are


class ReconRunRequest(BaseModel):
    day: ReconDay
    workflow_id: str
    run_id: str


class StateTotal(BaseModel):
    state: str
    side: str  # ledger, channel, settlement
    lines: int
    amount: Decimal


class AgedTotal(BaseModel):
    """Open (or explained) exceptions of one account in one state and age band."""

    account_no: str
    state: str
    band: str  # one of AGE_BANDS
    lines: int
    amount: Decimal


class ReconRunSummary(BaseModel):
    run_id: str
    day: ReconDay
    finished_at: datetime
    totals: list[StateTotal]
    ledger_sha256: str
    statement_sha256: str
    # The account's open and explained exceptions of this day and the days before, by age.
    open_by_age: list[AgedTotal] = []
    # Set while the settlement is pending: when it becomes missing unless its bank statement comes.
    settlement_deadline: datetime | None = None

    @property
    def exceptions(self) -> list[StateTotal]:
        return [total for total in self.totals if total.state in EXCEPTION_STATES]

    @property
    def settlement_exceptions(self) -> list[StateTotal]:
        return [total for total in self.totals if total.state in SETTLEMENT_STATES]


class SettlementCheck(BaseModel):
    """Check a run's pending settlement again; ``final``: its deadline has passed."""

    run_id: str
    day: ReconDay
    final: bool


class ReconciliationNotice(BaseModel):
    """Exceptions found by a run: counts and amounts per state, no lines."""

    workflow_id: str
    run_id: str
    day: ReconDay
    exceptions: list[StateTotal]
    at: datetime
    # The account's exceptions still open on the run's day (this run's and earlier days'), by age.
    open_by_age: list[AgedTotal] = []
    # "run": the exceptions a run found; "settlement": its pending settlement, decided later.
    subject: Literal["run", "settlement"] = "run"
