"""Inputs and outputs of the reconciliation workflow and its activities: figures, never lines."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from bankrecon.models import STATEMENT_NAME_MAX_CHARS, STATEMENT_NAME_PATTERN

LINE_STATES = ("matched", "ledger_only", "channel_only", "amount_differs", "duplicate")
SETTLEMENT_STATES = ("settlement_missing", "settlement_differs")
EXCEPTION_STATES = (*LINE_STATES[1:], *SETTLEMENT_STATES)


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

    @property
    def exceptions(self) -> list[StateTotal]:
        return [total for total in self.totals if total.state != "matched"]


class ReconciliationNotice(BaseModel):
    """Exceptions found by a run: counts and amounts per state, no lines."""

    workflow_id: str
    run_id: str
    day: ReconDay
    exceptions: list[StateTotal]
    at: datetime
