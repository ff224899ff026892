"""The bankrecon worker: serves DailyStatementWorkflow and its activities on one task queue.

    python worker.py

Configuration comes from the environment or a .env file (see bankrecon/config.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.worker import Worker

from activities.bank_reconcile import BankReconcileActivities
from activities.nightly import NightlyActivities
from activities.notifications import NotificationActivities
from activities.reconcile import ReconcileActivities
from activities.retention import RetentionActivities
from activities.statements import StatementActivities
from bankrecon.accounts import AccountDirectory, AccountsFileError
from bankrecon.config import Settings, settings_error
from bankrecon.store.db import DatabaseUnusable, database_location
from bankrecon.store.schema import SchemaError
from bankrecon.telemetry.logs import configure_logging
from bankrecon.temporal.client import TemporalConnectionError, connect, key_ring
from bankrecon.temporal.codec import KeyRingError
from bankrecon.temporal.search_attributes import SearchAttributesMissing, register_search_attributes
from workflows.bank_reconcile import BankReconcileWorkflow
from workflows.daily_statement import DailyStatementWorkflow
from workflows.nightly_statements import NightlyStatementsWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.retention import RetentionWorkflow

log = logging.getLogger("bankrecon.worker")

# Decode and persist each hold a thread while they run; fetches are async and hold none.
MAX_CONCURRENT_ACTIVITIES = 32


@asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    """A worker polling ``settings.temporal_task_queue`` until the block exits."""
    activities = StatementActivities.from_settings(settings)
    nightly = NightlyActivities(settings)
    notifications = NotificationActivities(settings)
    reconcile = ReconcileActivities(settings)
    bank_reconcile = BankReconcileActivities(settings)
    retention = RetentionActivities(settings)
    try:
        with ThreadPoolExecutor(max_workers=MAX_CONCURRENT_ACTIVITIES) as executor:
            worker = Worker(
                client,
                task_queue=settings.temporal_task_queue,
                workflows=[
                    DailyStatementWorkflow,
                    NightlyStatementsWorkflow,
                    ReconcileWorkflow,
                    BankReconcileWorkflow,
                    RetentionWorkflow,
                ],
                activities=[
                    activities.fetch_statement,
                    activities.decode_statement,
                    activities.persist_statement,
                    activities.record_cancellation,
                    activities.record_failure,
                    nightly.plan_nightly_statements,
                    notifications.notify_operators,
                    notifications.notify_reconciliation,
                    notifications.notify_bank_reconciliation,
                    reconcile.check_inputs,
                    reconcile.check_settlement,
                    reconcile.signal_reconciliations,
                    reconcile.reconcile,
                    reconcile.reconciled_accounts,
                    bank_reconcile.bank_reconciled_accounts,
                    bank_reconcile.check_inputs,
                    bank_reconcile.reconcile,
                    retention.expire_retained,
                ],
                activity_executor=executor,
                max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
            )
            async with worker:
                yield worker
    finally:
        nightly.close()
        reconcile.close()
        bank_reconcile.close()
        retention.close()
        await activities.close()


async def serve(settings: Settings) -> None:
    try:
        client = await connect(settings)
        added = await register_search_attributes(client)
    except (TemporalConnectionError, SearchAttributesMissing) as exc:
        raise SystemExit(str(exc)) from None
    if added:
        log.info("registered search attributes %s in namespace %r", ", ".join(added), client.namespace)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        async with running_worker(client, settings):
            ring = key_ring(settings)
            log.info(
                "worker serving task queue %r on %s (namespace %r), database %s, payload encryption %s",
                settings.temporal_task_queue,
                settings.temporal_address,
                settings.temporal_namespace,
                database_location(settings.resolved_database_url()),
                f"on (key id {ring.current_id!r})" if ring else "off",
            )
            await stop.wait()
            log.info("shutting down: letting running activities finish")
    except DatabaseUnusable as exc:
        raise SystemExit(str(exc)) from None
    log.info("worker stopped")


def main() -> None:
    try:
        settings = Settings()
        configure_logging(settings.log_format)
        # Read now, so that a mistake stops the worker before it takes any task.
        AccountDirectory.from_settings(settings)
        key_ring(settings)
    except ValidationError as exc:
        raise SystemExit(f"configuration error: {settings_error(exc)}") from None
    except (AccountsFileError, KeyRingError) as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    try:
        asyncio.run(serve(settings))
    except SchemaError as exc:
        # The database's schema is checked as the activities start: behind or ahead of this code.
        raise SystemExit(f"bankrecon: {exc}") from None


if __name__ == "__main__":
    main()
