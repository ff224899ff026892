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


class ReconRunSummary(BaseModel):
    run_id: str
    day: ReconDay
    finished_at: datetime
    totals: list[StateTotal]
    ledger_sha256: str
    statement_sha256: str
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
    # "run": the exceptions a run found; "settlement": its pending settlement, decided later.
    subject: Literal["run", "settlement"] = "run"
