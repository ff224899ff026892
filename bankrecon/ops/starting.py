"""Starting a day's reconciliation workflow, or telling the one already waiting to look now."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.types import MethodAsyncSingleParam, ParamType, ReturnType, SelfType

from bankrecon.recon.models import INPUTS_READY


async def start_or_tell(
    client: Client,
    run: MethodAsyncSingleParam[SelfType, ParamType, ReturnType],
    arg: ParamType,
    *,
    workflow_id: str,
    task_queue: str,
    rerun: bool,
) -> WorkflowHandle[SelfType, ReturnType]:
    """A signal-with-start of ``inputs_ready``: the workflow starts, or the one waiting for its
    inputs looks at once; a day done already runs again only with ``rerun``, which also replaces
    a run still waiting (for inputs, or a pending settlement)."""
    options: dict[str, Any] = {
        "id": workflow_id,
        "task_queue": task_queue,
        "start_signal": INPUTS_READY,
        "id_reuse_policy": (
            WorkflowIDReusePolicy.ALLOW_DUPLICATE
            if rerun
            else WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
        ),
        "id_conflict_policy": (
            WorkflowIDConflictPolicy.TERMINATE_EXISTING if rerun else WorkflowIDConflictPolicy.USE_EXISTING
        ),
    }
    try:
        return await client.start_workflow(run, arg, **options)
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle_for(run, workflow_id)
