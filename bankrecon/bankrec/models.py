"""Inputs and outputs of bank reconciliation's workflow and activities: figures, never lines."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from bankrecon.models import STATEMENT_NAME_MAX_CHARS, STATEMENT_NAME_PATTERN
from bankrecon.recon.models import ReconDay, StateTotal

# The 未达账项, by side and direction: what one side has and the other has not (yet).
OPEN_STATES = {
    ("bank", "C"): "bank_credit_not_booked",  # 银行已收、企业未收
    ("bank", "D"): "bank_debit_not_booked",  # 银行已付、企业未付
    ("book", "C"): "book_credit_not_in_bank",  # 企业已收、银行未收
    ("book", "D"): "book_debit_not_in_bank",  # 企业已付、银行未付
}
STATE_HEADINGS = {
    "bank_credit_not_booked": "银行已收、企业未收",
    "bank_debit_not_booked": "银行已付、企业未付",
    "book_credit_not_in_bank": "企业已收、银行未收",
    "book_debit_not_in_bank": "企业已付、银行未付",
}
MATCHED = "matched"
BANK_RUN = "bank"


def bank_reconcile_workflow_id(account_no: str, day: date) -> str:
    return f"bankrec-{account_no}-{day.isoformat()}"


class BankReconcileInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_no: str = Field(pattern=STATEMENT_NAME_PATTERN, max_length=STATEMENT_NAME_MAX_CHARS)
    recon_date: date
    # How often the workflow looks for the day's statement and cash book until both are there;
    # the signal ``inputs_ready`` makes it look at once.
    check_interval_seconds: float = Field(default=1800.0, gt=0)
    alert: bool = True  # open items or an unbalanced statement raise the alert webhook


class BankRunSummary(BaseModel):
    run_id: str
    day: ReconDay
    finished_at: datetime
    totals: list[StateTotal]  # per state and side: lines and amount
    rules: dict[str, int]  # matches per rule
    adjusted_bank_balance: Decimal
    adjusted_book_balance: Decimal

    @property
    def difference(self) -> Decimal:
        return self.adjusted_bank_balance - self.adjusted_book_balance

    @property
    def open_items(self) -> list[StateTotal]:
        return [total for total in self.totals if total.state != MATCHED]


class BankReconciliationNotice(BaseModel):
    """A bank run's open items (counts and amounts per state) and whether its 调节表 balances."""

    workflow_id: str
    run_id: str
    day: ReconDay
    open_items: list[StateTotal]
    difference: Decimal
    at: datetime
