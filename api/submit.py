"""Submitting a run: update-with-start of the session's workflow carrying ``submit``."""

from __future__ import annotations

import asyncio

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.errors import ApiError, from_temporal
from tether import temporal as sa
from tether.settings import Settings
from workflows.errors import ErrorType
from workflows.session_run import SessionRunWorkflow
from workflows.types import RunSpec, RunState, RunStatus, SessionInput

# An update can land on an execution that is closing its last run; the next attempt then
# starts a fresh execution. A few quick retries cover that window.
CLOSING_RETRIES = 8


def _closing(err: Exception) -> bool:
    if isinstance(err, WorkflowUpdateFailedError) and isinstance(err.cause, ApplicationError):
        return err.cause.type == ErrorType.SESSION_CLOSING
    return isinstance(err, RPCError) and "already completed" in str(err).lower()


async def submit_run(client: Client, settings: Settings, spec: RunSpec) -> RunState:
    """Start the run in its session's workflow; answers per the run's ``accept_wait_s``."""
    for attempt in range(CLOSING_RETRIES):
        start = WithStartWorkflowOperation(
            SessionRunWorkflow.run,
            SessionInput(session_id=spec.session_id, project_id=spec.project_id),
            id=sa.session_workflow_id(spec.session_id),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.SESSION_ID, spec.session_id),
                    SearchAttributePair(sa.PROJECT_ID, spec.project_id),
                    SearchAttributePair(sa.RUN_ID, spec.run_id),
                    SearchAttributePair(sa.AGENT, spec.agent),
                    SearchAttributePair(sa.RUN_STATUS, RunStatus.QUEUED.value),
                ]
            ),
            static_summary=f"{spec.run_id} · {spec.agent} · session {spec.session_id}",
        )
        try:
            return await client.execute_update_with_start_workflow(
                SessionRunWorkflow.submit, spec, start_workflow_operation=start
            )
        except (WorkflowUpdateFailedError, RPCError) as err:
            if _closing(err) and attempt + 1 < CLOSING_RETRIES:
                await asyncio.sleep(0.02 * (attempt + 1))
                continue
            mapped = from_temporal(err)
            if mapped is not None:
                raise mapped from err
            raise
    raise ApiError(503, "session_unavailable", "the session did not accept the run; retry")
