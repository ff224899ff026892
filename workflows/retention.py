"""RetentionWorkflow: deletes what has expired (bankrecon/store/retention.py); run daily by a Schedule."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.retention import RetentionActivities
    from bankrecon.models import RetentionResult

# A first run over a year of history deletes millions of rows, a batch at a time; each
# batch heartbeats, so a dead worker's attempt is taken over within the heartbeat timeout.
EXPIRE_TIMEOUT = timedelta(hours=6)
HEARTBEAT_TIMEOUT = timedelta(minutes=2)


@workflow.defn
class RetentionWorkflow:
    @workflow.run
    async def run(self) -> RetentionResult:
        return await workflow.execute_activity_method(
            RetentionActivities.expire_retained,
            start_to_close_timeout=EXPIRE_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            # Whatever a failed attempt deleted stays deleted; the next attempt goes on from there.
            retry_policy=RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(minutes=10)),
        )
