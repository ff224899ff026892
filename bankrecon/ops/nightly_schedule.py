"""The Temporal Schedule that starts NightlyStatementsWorkflow every night, kept in step with the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from bankrecon.config import Settings
from bankrecon.models import NightlyStatementsInput
from workflows.nightly_statements import NightlyStatementsWorkflow

NIGHTLY_WORKFLOW_ID = "nightly-statements"
RETENTION_WORKFLOW_ID = "retention"


@dataclass(frozen=True)
class ScheduleApplied:
    schedule_id: str
    change: Literal["created", "updated"]
    cron: str
    time_zone: str


def nightly_cron(settings: Settings) -> str:
    return f"{settings.nightly_time.minute} {settings.nightly_time.hour} * * *"


def nightly_input(settings: Settings) -> NightlyStatementsInput:
    return NightlyStatementsInput(
        catch_up_days=settings.nightly_catch_up_days,
        retry_interval_seconds=settings.statement_retry_interval_seconds,
        deadline=settings.statement_deadline,
    )


def nightly_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            NightlyStatementsWorkflow.run,
            nightly_input(settings),
            id=NIGHTLY_WORKFLOW_ID,
            task_queue=settings.temporal_task_queue,
        ),
        spec=ScheduleSpec(
            cron_expressions=[nightly_cron(settings)], time_zone_name=settings.nightly_timezone
        ),
        # A night missed while Temporal itself was down is made good by the next run's
        # catch-up, so the server need not replay every missed night.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1)),
    )


def retention_cron(settings: Settings) -> str:
    return f"{settings.retention_time.minute} {settings.retention_time.hour} * * *"


def retention_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "RetentionWorkflow", id=RETENTION_WORKFLOW_ID, task_queue=settings.temporal_task_queue
        ),
        spec=ScheduleSpec(
            cron_expressions=[retention_cron(settings)], time_zone_name=settings.nightly_timezone
        ),
        # A missed day's expired rows are deleted by the next day's run.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1)),
    )


async def _apply(client: Client, schedule_id: str, wanted: Schedule) -> Literal["created", "updated"]:
    """Create the schedule, or bring an existing one in line with the settings (a pause stays as it was)."""
    try:
        await client.create_schedule(schedule_id, wanted)
    except ScheduleAlreadyRunningError:

        def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
            wanted.state = current.description.schedule.state
            return ScheduleUpdate(schedule=wanted)

        await client.get_schedule_handle(schedule_id).update(update)
        return "updated"
    return "created"


async def apply_nightly_schedule(client: Client, settings: Settings) -> ScheduleApplied:
    change = await _apply(client, settings.schedule_id, nightly_schedule(settings))
    return ScheduleApplied(settings.schedule_id, change, nightly_cron(settings), settings.nightly_timezone)


async def apply_retention_schedule(client: Client, settings: Settings) -> ScheduleApplied:
    change = await _apply(client, settings.retention_schedule_id, retention_schedule(settings))
    return ScheduleApplied(
        settings.retention_schedule_id, change, retention_cron(settings), settings.nightly_timezone
    )
