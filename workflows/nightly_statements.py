"""NightlyStatementsWorkflow: start each account's statement workflow for yesterday, and catch up.

Runs under a Temporal Schedule (``bankrecon schedule``) or as a cron workflow. It only
starts workflows and ends within seconds: every statement is its own execution,
abandoned when this run closes, so a date whose data is late delays nothing else and
the next night starts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.nightly import NightlyActivities
    from bankrecon.bankrec.models import BankReconcileInput, bank_reconcile_workflow_id
    from bankrecon.models import (
        DailyStatementInput,
        NightlyPlanRequest,
        NightlyStatementsInput,
        NightlyStatementsResult,
        StatementKey,
    )
    from bankrecon.recon.models import ReconcileInput
    from workflows.bank_reconcile import BankReconcileWorkflow
    from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id, yesterday_in_china
    from workflows.reconcile import ReconcileWorkflow, reconcile_workflow_id

SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
PLAN_TIMEOUT = timedelta(minutes=5)
# A statement that ran already is not fetched again by the nightly run: only a failed (or
# terminated, or timed-out) one is started anew. A cancelled one would be too, so the plan
# leaves out dates an operator cancelled (bankrecon/store/cancellations.py). Operators re-fetch a
# stored date on purpose (``bankrecon refetch``).
NIGHTLY_ID_REUSE = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
# The workflow.patched id of planning a page at a time (max_starts_per_run statements).
PAGED_PLAN_PATCH = "nightly-plan-in-pages"
# The workflow.patched id of starting the night's reconciliations.
RECONCILE_PATCH = "nightly-starts-reconciliations"
# The workflow.patched id of starting the night's bank reconciliations ([bank_accounts]).
BANK_RECONCILE_PATCH = "nightly-starts-bank-reconciliations"


def nightly_start_time() -> datetime:
    """When this run was due: the Schedule's time, so a run that starts late still picks the right day."""
    scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START_TIME)
    return scheduled if scheduled is not None else workflow.info().start_time


def _after(keys: list[StatementKey], done: StatementKey | None) -> list[StatementKey]:
    """The statements after ``done``, in the plan's order (date, then account)."""
    if done is None:
        return keys
    return [key for key in keys if (key.bill_date, key.account_no) > (done.bill_date, done.account_no)]


@workflow.defn(name="NightlyStatementsWorkflow")
class NightlyStatementsWorkflow:
    @workflow.run
    async def run(self, request: NightlyStatementsInput) -> NightlyStatementsResult:
        bill_date = request.bill_date or yesterday_in_china(nightly_start_time())
        # Patched: a run that planned under the earlier code got every missing statement at once
        # (over the payload limit on a big night), and replays taking its page from them.
        paged = workflow.patched(PAGED_PLAN_PATCH)
        plan = await workflow.execute_activity_method(
            NightlyActivities.plan_nightly_statements,
            NightlyPlanRequest(
                first_date=bill_date - timedelta(days=request.catch_up_days),
                last_date=bill_date,
                after=request.resume_after,
                limit=request.max_starts_per_run,
            ),
            start_to_close_timeout=PLAN_TIMEOUT,
        )
        if paged:
            batch, more = plan.missing, plan.more
        else:
            pending = _after(plan.missing, request.resume_after)
            batch, more = pending[: request.max_starts_per_run], len(pending) > request.max_starts_per_run
        # All starts go out in one workflow task; each is confirmed, or refused as a duplicate.
        outcomes = await asyncio.gather(*(self._start(key, request) for key in batch))
        started = [workflow_id for workflow_id, is_new in outcomes if is_new]
        already = [workflow_id for workflow_id, is_new in outcomes if not is_new]
        workflow.logger.info(
            "nightly run for %s: %d accounts, %d statements started, %d already started",
            bill_date,
            plan.accounts,
            len(started),
            len(already),
        )
        follow_up = None
        if more:
            follow_up = await self._start_follow_up(request, bill_date, after=batch[-1])
        # The night's first run starts the day's reconciliations too; each waits for its
        # statement and ledger, and a day reconciled already is left alone.
        if request.resume_after is None and workflow.patched(RECONCILE_PATCH):
            # By name: importing the activities' module here confuses mypy's reading of the
            # workflow classes the tests take handles of (get_workflow_handle_for).
            accounts = await workflow.execute_activity(
                "reconciled_accounts", start_to_close_timeout=PLAN_TIMEOUT, result_type=list[str]
            )
            channel = (ReconcileWorkflow.run, ReconcileInput, reconcile_workflow_id)
            await asyncio.gather(
                *(self._reconcile(*channel, account, bill_date, request) for account in accounts)
            )
        if request.resume_after is None and workflow.patched(BANK_RECONCILE_PATCH):
            bank_accounts = await workflow.execute_activity(
                "bank_reconciled_accounts", start_to_close_timeout=PLAN_TIMEOUT, result_type=list[str]
            )
            bank = (BankReconcileWorkflow.run, BankReconcileInput, bank_reconcile_workflow_id)
            await asyncio.gather(
                *(self._reconcile(*bank, account, bill_date, request) for account in bank_accounts)
            )
        return NightlyStatementsResult(
            bill_date=bill_date,
            accounts=plan.accounts,
            started=started,
            already_started=already,
            follow_up=follow_up,
        )

    async def _start_follow_up(
        self, request: NightlyStatementsInput, bill_date: date, after: StatementKey
    ) -> str:
        """Start a run for the statements after ``after``, which this one leaves; its workflow id.

        Not continue-as-new: the server takes a cron schedule from the continue-as-new
        command, which the Python SDK leaves empty, so a cron run that continued as new
        would never be scheduled again (temporalio/temporal#746). A follow-up run of its
        own serves the cron and the Schedule alike.
        """
        # One id per night and position: a second run of the same night that reaches the same
        # point finds the follow-up running, and leaves the rest to it.
        workflow_id = f"nightly-statements-{bill_date}-after-{after.account_no}-{after.bill_date}"
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                NightlyStatementsWorkflow.run,
                request.model_copy(update={"bill_date": bill_date, "resume_after": after}),
                id=workflow_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        return workflow_id

    async def _reconcile(
        self,
        run: Callable[[Any, Any], Awaitable[Any]],
        made: type[ReconcileInput] | type[BankReconcileInput],
        workflow_id: Callable[[str, date], str],
        account_no: str,
        day: date,
        request: NightlyStatementsInput,
    ) -> None:
        """Start the day's reconciliation of the account (a channel's or a bank's), left running;
        one started already, or done, is left alone."""
        interval = request.retry_interval_seconds
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                run,
                made(account_no=account_no, recon_date=day, check_interval_seconds=interval),
                id=workflow_id(account_no, day),
                task_queue=request.statement_task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            )

    async def _start(self, key: StatementKey, request: NightlyStatementsInput) -> tuple[str, bool]:
        workflow_id = statement_workflow_id(key.account_no, key.bill_date)
        try:
            await workflow.start_child_workflow(
                DailyStatementWorkflow.run,
                DailyStatementInput(
                    account_no=key.account_no,
                    bill_date=key.bill_date,
                    retry_interval_seconds=request.retry_interval_seconds,
                    deadline=request.deadline,
                ),
                id=workflow_id,
                task_queue=request.statement_task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=NIGHTLY_ID_REUSE,
            )
        except WorkflowAlreadyStartedError:
            return workflow_id, False
        return workflow_id, True
