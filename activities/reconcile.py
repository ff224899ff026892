"""Reconciliation's activities: thin adapters around bankrecon.recon."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy.exc import DBAPIError
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from bankrecon.bankrec.models import bank_reconcile_workflow_id
from bankrecon.config import Settings
from bankrecon.models import StatementKey
from bankrecon.recon.config import ChannelRecon, ReconConfigError, load_recon_config
from bankrecon.recon.ledger import LedgerError, LedgerMissing
from bankrecon.recon.models import (
    INPUTS_READY,
    ReconDay,
    ReconInputs,
    ReconRunRequest,
    ReconRunSummary,
    SettlementCheck,
    reconcile_workflow_id,
)
from bankrecon.recon.run import check_settlement, inputs_missing, reconcile_day, reconciliations_waiting_for
from bankrecon.store.db import describe_error
from bankrecon.store.schema import open_database

# Error types the workflow and operators see: nothing heals them but a corrected file.
RECON_NOT_CONFIGURED = "ReconNotConfigured"
LEDGER_REJECTED = "LedgerRejected"

HEARTBEAT_EVERY = timedelta(seconds=5)


@contextmanager
def heartbeating_beside(every: timedelta) -> Iterator[None]:
    """Heartbeat from a thread of its own while a synchronous activity's body runs.

    The body spends its time inside single long SQL statements, between which it could not beat;
    a beat from beside it stops with its process, so a dead worker's attempt is retried within
    the heartbeat timeout. As with ``heartbeating``, the first beat comes after ``every``.
    """
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every.total_seconds()):
            activity.heartbeat()

    # The activity's context (which heartbeat needs) lives in the body's context variables.
    beater = threading.Thread(target=contextvars.copy_context().run, args=(beat,), daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join()


class ReconcileActivities:
    def __init__(self, settings: Settings):
        self._config_file = settings.recon_config_file
        self._engine = open_database(settings.resolved_database_url())

    @activity.defn(name="reconciled_accounts")
    def reconciled_accounts(self) -> list[str]:
        """The channel accounts RECON_CONFIG_FILE reconciles, read afresh (none without the file)."""
        if self._config_file is None:
            return []
        try:
            return sorted(load_recon_config(self._config_file).accounts)
        except ReconConfigError as exc:
            raise ApplicationError(str(exc), type=RECON_NOT_CONFIGURED, non_retryable=True) from None

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

    @activity.defn(name="check_settlement")
    def check_settlement(self, check: SettlementCheck) -> ReconRunSummary:
        try:
            return check_settlement(self._engine, self._channel(check.day.account_no), check)
        except DBAPIError as exc:
            raise RuntimeError(f"database error: {describe_error(exc)}") from None

    @activity.defn(name="signal_reconciliations")
    async def signal_reconciliations(self, stored: StatementKey) -> list[str]:
        """Tell the reconciliations this statement is an input of to look at once; the ids told.

        One that is not running (not started, or done) is left alone: it looks when it starts.
        """
        if self._config_file is None:
            return []
        try:
            config = load_recon_config(self._config_file)
        except ReconConfigError as exc:
            raise ApplicationError(str(exc), type=RECON_NOT_CONFIGURED, non_retryable=True) from None
        waiting = [
            reconcile_workflow_id(day.account_no, day.recon_date)
            for day in reconciliations_waiting_for(config, stored.account_no, stored.bill_date)
        ]
        if stored.account_no in config.bank_accounts:
            waiting.append(bank_reconcile_workflow_id(stored.account_no, stored.bill_date))
        told = []
        for workflow_id in waiting:
            try:
                await activity.client().get_workflow_handle(workflow_id).signal(INPUTS_READY)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                continue
            told.append(workflow_id)
        return told

    @activity.defn(name="reconcile_day")
    def reconcile(self, request: ReconRunRequest) -> ReconRunSummary:
        channel = self._channel(request.day.account_no)
        try:
            with heartbeating_beside(HEARTBEAT_EVERY):
                return reconcile_day(self._engine, channel, request)
        except LedgerMissing:
            raise
        except LedgerError as exc:
            raise ApplicationError(str(exc), type=LEDGER_REJECTED, non_retryable=True) from None
        except DBAPIError as exc:
            raise RuntimeError(f"database error: {describe_error(exc)}") from None
