"""ReconcileWorkflow: a channel account's day matched against the company's ledger, once both are there.

Started by ``bankrecon recon ACCOUNT DATE --rerun``, or by whatever learns that the day's
statement is stored (``bankrecon.ops.recon_commands.start_reconciliation``, a
signal-with-start). Until the statement and the ledger are both there it looks again
every ``check_interval_seconds``, or at once when signalled ``inputs_ready``, which the
statement's workflow sends once it has stored the statement. Each run of the id
``recon-{account_no}-{date}`` is one reconciliation run, stored under its run id.

A settlement whose bank statement is not stored yet is pending, not an exception: the run
stays open, and checks it again when that statement's workflow signals ``inputs_ready`` (or
every ``check_interval_seconds``), and for the last time at its deadline, alerting then if
it is missing or differs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal, Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.notifications import NotificationActivities
    from activities.reconcile import ReconcileActivities
    from bankrecon.recon.models import (
        INPUTS_READY,
        ReconcileInput,
        ReconciliationNotice,
        ReconDay,
        ReconInputs,
        ReconRunRequest,
        ReconRunSummary,
        SettlementCheck,
        StateTotal,
        reconcile_workflow_id,
    )

__all__ = ["INPUTS_READY", "ReconcileWorkflow", "reconcile_workflow_id"]

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
# The workflow.patched id of waiting for a pending settlement after the run.
PENDING_SETTLEMENT_PATCH = "wait-for-a-pending-settlement"


class InputsWaiter(Protocol):
    """A workflow told by the signal ``inputs_ready`` that what it waits for may be there."""

    _look_now: bool


async def wait_for_inputs(
    waiter: InputsWaiter,
    check_inputs: Callable[[Any, ReconDay], ReconInputs],
    day: ReconDay,
    interval: timedelta,
    what: str,
) -> None:
    """Look for the day's inputs until they are there: again every ``interval``, or at once when told."""
    while True:
        waiter._look_now = False
        inputs = await workflow.execute_activity_method(
            check_inputs, day, start_to_close_timeout=CHECK_TIMEOUT
        )
        if inputs.missing is None:
            return
        workflow.logger.info("%s of %s %s waits: %s", what, day.account_no, day.recon_date, inputs.missing)
        await until_told(waiter, interval)


async def until_told(waiter: InputsWaiter, longest: timedelta) -> None:
    """Wait for ``inputs_ready``, at most ``longest``."""
    with contextlib.suppress(TimeoutError):
        await workflow.wait_condition(lambda: waiter._look_now, timeout=longest)


@workflow.defn(name="ReconcileWorkflow")
class ReconcileWorkflow:
    def __init__(self) -> None:
        self._look_now = False

    @workflow.signal(name=INPUTS_READY)
    def inputs_ready(self) -> None:
        """The statement, the ledger or the settlement's bank statement has just arrived: look at once."""
        self._look_now = True

    @workflow.run
    async def run(self, request: ReconcileInput) -> ReconRunSummary:
        day = ReconDay(account_no=request.account_no, recon_date=request.recon_date)
        interval = timedelta(seconds=request.check_interval_seconds)
        await wait_for_inputs(self, ReconcileActivities.check_inputs, day, interval, "reconciliation")
        info = workflow.info()
        summary = await workflow.execute_activity_method(
            ReconcileActivities.reconcile,
            ReconRunRequest(day=day, workflow_id=info.workflow_id, run_id=info.run_id),
            start_to_close_timeout=RUN_TIMEOUT,
            heartbeat_timeout=RUN_HEARTBEAT_TIMEOUT,
            retry_policy=RUN_RETRY,
        )
        if summary.exceptions and request.alert:
            await self._alert(day, summary, summary.exceptions, "run")
        if summary.settlement_deadline is not None and workflow.patched(PENDING_SETTLEMENT_PATCH):
            summary = await self._settle(day, summary, interval)
            if summary.settlement_exceptions and request.alert:
                await self._alert(day, summary, summary.settlement_exceptions, "settlement")
        return summary

    async def _settle(self, day: ReconDay, summary: ReconRunSummary, interval: timedelta) -> ReconRunSummary:
        """Check the pending settlement whenever told, or every interval, until it is decided."""
        while summary.settlement_deadline is not None:
            deadline = summary.settlement_deadline
            self._look_now = False
            remaining = deadline - workflow.now()
            if remaining > timedelta(0):
                await until_told(self, min(interval, remaining))
            summary = await workflow.execute_activity_method(
                ReconcileActivities.check_settlement,
                SettlementCheck(run_id=summary.run_id, day=day, final=workflow.now() >= deadline),
                start_to_close_timeout=CHECK_TIMEOUT,
            )
        return summary

    async def _alert(
        self,
        day: ReconDay,
        summary: ReconRunSummary,
        exceptions: list[StateTotal],
        subject: Literal["run", "settlement"],
    ) -> None:
        info = workflow.info()
        await workflow.execute_activity_method(
            NotificationActivities.notify_reconciliation,
            ReconciliationNotice(
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                day=day,
                exceptions=exceptions,
                at=workflow.now(),
                subject=subject,
                open_by_age=summary.open_by_age,
            ),
            start_to_close_timeout=NOTICE_TIMEOUT,
            retry_policy=NOTICE_RETRY,
        )
