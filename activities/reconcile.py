"""Reconciliation's activities: thin adapters around bankrecon.recon."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from bankrecon.config import Settings
from bankrecon.recon.config import ChannelRecon, ReconConfigError, load_recon_config
from bankrecon.recon.ledger import LedgerError, LedgerMissing
from bankrecon.recon.models import ReconDay, ReconInputs, ReconRunRequest, ReconRunSummary
from bankrecon.recon.run import inputs_missing, reconcile_day
from bankrecon.store.db import describe_error
from bankrecon.store.schema import open_database

# Error types the workflow and operators see: nothing heals them but a corrected file.
RECON_NOT_CONFIGURED = "ReconNotConfigured"
LEDGER_REJECTED = "LedgerRejected"


class ReconcileActivities:
    def __init__(self, settings: Settings):
        self._config_file = settings.recon_config_file
        self._engine = open_database(settings.resolved_database_url())

    def close(self) -> None:
        self._engine.dispose()

    def _channel(self, account_no: str) -> ChannelRecon:
        # Read at each run: a corrected file holds for the re-run without restarting workers.
        try:
            return load_recon_config(self._config_file).channel(account_no)
        except ReconConfigError as exc:
            raise ApplicationError(str(exc), type=RECON_NOT_CONFIGURED, non_retryable=True) from None

    @activity.defn(name="check_reconciliation_inputs")
    def check_inputs(self, day: ReconDay) -> ReconInputs:
        return ReconInputs(missing=inputs_missing(self._engine, self._channel(day.account_no), day))

    @activity.defn(name="reconcile_day")
    def reconcile(self, request: ReconRunRequest) -> ReconRunSummary:
        channel = self._channel(request.day.account_no)
        try:
            return reconcile_day(self._engine, channel, request)
        except LedgerMissing:
            raise
        except LedgerError as exc:
            raise ApplicationError(str(exc), type=LEDGER_REJECTED, non_retryable=True) from None
        except DBAPIError as exc:
            raise RuntimeError(f"database error: {describe_error(exc)}") from None
