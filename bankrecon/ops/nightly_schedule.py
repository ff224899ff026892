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


async def apply_nightly_schedule(client: Client, settings: Settings) -> ScheduleApplied:
    """Create the schedule, or bring an existing one in line with the settings (a pause stays as it was)."""
    wanted = nightly_schedule(settings)
    change: Literal["created", "updated"] = "created"
    try:
        await client.create_schedule(settings.schedule_id, wanted)
    except ScheduleAlreadyRunningError:

        def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
            wanted.state = current.description.schedule.state
            return ScheduleUpdate(schedule=wanted)

        await client.get_schedule_handle(settings.schedule_id).update(update)
        change = "updated"
    return ScheduleApplied(settings.schedule_id, change, nightly_cron(settings), settings.nightly_timezone)
