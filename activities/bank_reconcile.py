"""Bank reconciliation's activities: thin adapters around bankrecon.bankrec."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.reconcile import HEARTBEAT_EVERY, LEDGER_REJECTED, RECON_NOT_CONFIGURED, heartbeating_beside
from bankrecon.bankrec.balance import bank_run_summary
from bankrecon.bankrec.config import BankAccountRecon, bank_account, bank_accounts
from bankrecon.bankrec.models import BankRunSummary
from bankrecon.bankrec.run import BankRecRefused, inputs_missing, reconcile_bank_day
from bankrecon.config import Settings
from bankrecon.recon.config import ReconConfigError
from bankrecon.recon.ledger import LedgerError, LedgerMissing
from bankrecon.recon.models import ReconDay, ReconInputs, ReconRunRequest
from bankrecon.store.db import describe_error
from bankrecon.store.schema import open_database

# A channel's account, or one without a closing balance: nothing but another account heals it.
BANK_REC_REFUSED = "BankReconciliationRefused"


class BankReconcileActivities:
    def __init__(self, settings: Settings):
        self._config_file = settings.recon_config_file
        self._engine = open_database(settings.resolved_database_url())

    def close(self) -> None:
        self._engine.dispose()

    def _account(self, account_no: str) -> BankAccountRecon:
        # Read at each run: a corrected file holds for the re-run without restarting workers.
        try:
            return bank_account(self._config_file, account_no)
        except ReconConfigError as exc:
            raise ApplicationError(str(exc), type=RECON_NOT_CONFIGURED, non_retryable=True) from None

    @activity.defn(name="bank_reconciled_accounts")
    def bank_reconciled_accounts(self) -> list[str]:
        """The bank accounts of RECON_CONFIG_FILE's [bank_accounts], read afresh (none without the file)."""
        if self._config_file is None:
            return []
        try:
            return sorted(bank_accounts(self._config_file))
        except ReconConfigError as exc:
            raise ApplicationError(str(exc), type=RECON_NOT_CONFIGURED, non_retryable=True) from None

    @activity.defn(name="check_bank_reconciliation_inputs")
    def check_inputs(self, day: ReconDay) -> ReconInputs:
        try:
            return ReconInputs(missing=inputs_missing(self._engine, self._account(day.account_no), day))
        except BankRecRefused as exc:
            raise ApplicationError(str(exc), type=BANK_REC_REFUSED, non_retryable=True) from None

    @activity.defn(name="reconcile_bank_day")
    def reconcile(self, request: ReconRunRequest) -> BankRunSummary:
        account = self._account(request.day.account_no)
        try:
            with heartbeating_beside(HEARTBEAT_EVERY):
                return bank_run_summary(self._engine, reconcile_bank_day(self._engine, account, request))
        except LedgerMissing:
            raise
        except BankRecRefused as exc:
            raise ApplicationError(str(exc), type=BANK_REC_REFUSED, non_retryable=True) from None
        except LedgerError as exc:
            raise ApplicationError(str(exc), type=LEDGER_REJECTED, non_retryable=True) from None
        except DBAPIError as exc:
            raise RuntimeError(f"database error: {describe_error(exc)}") from None
