"""BankReconcileWorkflow: a bank account's cash book against its statement, up to a day, once both are there.

Started by the nightly run for every account of ``[bank_accounts]``, by ``bankrecon recon
ACCOUNT DATE --rerun``, or by the statement's workflow once the day's statement is stored (a
signal-with-start, ``bankrecon.ops.bankrec_commands.start_bank_reconciliation``). Until the
statement and the cash book are there it looks again every ``check_interval_seconds``, or at
once when signalled ``inputs_ready``. Each run of the id ``bankrec-{account_no}-{date}`` is one
bank run, stored under its run id; its open items, and whether its 余额调节表 balances, go to
the alert webhook.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.bank_reconcile import BankReconcileActivities
    from activities.notifications import NotificationActivities
    from bankrecon.bankrec.models import BankReconcileInput, BankReconciliationNotice, BankRunSummary
    from bankrecon.recon.models import INPUTS_READY, ReconDay, ReconRunRequest
    from workflows.reconcile import (
        NOTICE_RETRY,
        NOTICE_TIMEOUT,
        RUN_HEARTBEAT_TIMEOUT,
        RUN_RETRY,
        RUN_TIMEOUT,
        wait_for_inputs,
    )


@workflow.defn(name="BankReconcileWorkflow")
class BankReconcileWorkflow:
    def __init__(self) -> None:
        self._look_now = False

    @workflow.signal(name=INPUTS_READY)
    def inputs_ready(self) -> None:
        """The statement or the cash book has just arrived: look at once."""
        self._look_now = True

    @workflow.run
    async def run(self, request: BankReconcileInput) -> BankRunSummary:
        day = ReconDay(account_no=request.account_no, recon_date=request.recon_date)
        interval = timedelta(seconds=request.check_interval_seconds)
        await wait_for_inputs(
            self, BankReconcileActivities.check_inputs, day, interval, "bank reconciliation"
        )
        info = workflow.info()
        summary = await workflow.execute_activity_method(
            BankReconcileActivities.reconcile,
            ReconRunRequest(day=day, workflow_id=info.workflow_id, run_id=info.run_id),
            start_to_close_timeout=RUN_TIMEOUT,
            heartbeat_timeout=RUN_HEARTBEAT_TIMEOUT,
            retry_policy=RUN_RETRY,
        )
        if request.alert and (summary.open_items or summary.difference):
            await workflow.execute_activity_method(
                NotificationActivities.notify_bank_reconciliation,
                BankReconciliationNotice(
                    workflow_id=info.workflow_id,
                    run_id=info.run_id,
                    day=day,
                    open_items=summary.open_items,
                    difference=summary.difference,
                    at=workflow.now(),
                ),
                start_to_close_timeout=NOTICE_TIMEOUT,
                retry_policy=NOTICE_RETRY,
            )
        return summary
