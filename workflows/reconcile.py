"""ReconcileWorkflow: a channel account's day matched against the company's ledger, once both are there.

Started by ``bankrecon recon ACCOUNT DATE --rerun``, or by whatever learns that the day's
statement is stored (``bankrecon.ops.recon_commands.start_reconciliation``, a
signal-with-start). Until the statement and the ledger are both there it looks again
every ``check_interval_seconds``, or at once when signalled ``inputs_ready``. Each run
of the id ``recon-{account_no}-{date}`` is one reconciliation run, stored under its run id.
"""

from __future__ import annotations

import contextlib
from datetime import date, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.notifications import NotificationActivities
    from activities.reconcile import ReconcileActivities
    from bankrecon.recon.models import (
        ReconcileInput,
        ReconciliationNotice,
        ReconDay,
        ReconRunRequest,
        ReconRunSummary,
    )

CHECK_TIMEOUT = timedelta(minutes=1)
# A million-line day takes about a minute; one that takes this long is stuck.
RUN_TIMEOUT = timedelta(hours=1)
# The run heartbeats every few seconds: a dead worker's run is tried again after this.
RUN_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
RUN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=10), maximum_interval=timedelta(minutes=5))
NOTICE_TIMEOUT = timedelta(seconds=30)
# Together about an hour of tries, as for the late-statement alerts.
NOTICE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=10), maximum_interval=timedelta(minutes=10),
                           maximum_attempts=10)  # fmt: skip
INPUTS_READY = "inputs_ready"


def reconcile_workflow_id(account_no: str, day: date) -> str:
    return f"recon-{account_no}-{day.isoformat()}"


@workflow.defn(name="ReconcileWorkflow")
class ReconcileWorkflow:
    def __init__(self) -> None:
        self._look_now = False

    @workflow.signal(name=INPUTS_READY)
    def inputs_ready(self) -> None:
        """The statement or the ledger has just arrived: look at once."""
        self._look_now = True

    @workflow.run
    async def run(self, request: ReconcileInput) -> ReconRunSummary:
        day = ReconDay(account_no=request.account_no, recon_date=request.recon_date)
        while True:
            self._look_now = False
            inputs = await workflow.execute_activity_method(
                ReconcileActivities.check_inputs, day, start_to_close_timeout=CHECK_TIMEOUT
            )
            if inputs.missing is None:
                break
            workflow.logger.info(
                "reconciliation of %s %s waits: %s", day.account_no, day.recon_date, inputs.missing
            )
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._look_now, timeout=timedelta(seconds=request.check_interval_seconds)
                )
        info = workflow.info()
        summary = await workflow.execute_activity_method(
            ReconcileActivities.reconcile,
            ReconRunRequest(day=day, workflow_id=info.workflow_id, run_id=info.run_id),
            start_to_close_timeout=RUN_TIMEOUT,
            heartbeat_timeout=RUN_HEARTBEAT_TIMEOUT,
            retry_policy=RUN_RETRY,
        )
        if summary.exceptions and request.alert:
            await workflow.execute_activity_method(
                NotificationActivities.notify_reconciliation,
                ReconciliationNotice(
                    workflow_id=info.workflow_id,
                    run_id=info.run_id,
                    day=day,
                    exceptions=summary.exceptions,
                    at=workflow.now(),
                    open_by_age=summary.open_by_age,
                ),
                start_to_close_timeout=NOTICE_TIMEOUT,
                retry_policy=NOTICE_RETRY,
            )
        return summary
