"""Calls into a session's workflow shared by the API and the trigger activities.

Both submit runs the same way (update-with-start of ``SessionRunWorkflow.submit``) and signal
the session's current execution; this is the one place that says how.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from tether.ids import session_workflow_id
from tether.settings import Settings
from workflows.session_run import (
    SessionRunWorkflow,
    run_details,
    run_memo,
    run_search_attributes,
    run_summary,
)
from workflows.types import RunPolicy, RunSpec, RunState, SessionInput


def run_policy(settings: Settings, *, accept_wait_s: float) -> RunPolicy:
    """The run's timeouts from the settings (workflows read no settings themselves)."""
    return RunPolicy(
        accept_wait_s=accept_wait_s,
        dispatch_deadline_s=settings.dispatch_deadline_s,
        runner_lost_timeout_s=settings.runner_lost_timeout_s,
        heartbeat_timeout_s=settings.follow_heartbeat_timeout_s,
        interaction_expiry_s=settings.interaction_expiry_s,
        cancel_grace_s=settings.cancel_grace_s,
        history_events_limit=settings.history_events_limit,
    )


def start_operation(spec: RunSpec, task_queue: str) -> WithStartWorkflowOperation:
    """Start the session's workflow if it is not running, showing this run in the UI."""
    return WithStartWorkflowOperation(
        SessionRunWorkflow.run,
        SessionInput(session_id=spec.session_id, project_id=spec.project_id),
        id=session_workflow_id(spec.session_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=run_search_attributes(spec),
        static_summary=run_summary(spec),
        static_details=run_details(spec),
        memo=run_memo(spec),
    )


def session_handle(client: Client, session_id: str) -> WorkflowHandle[Any, RunState | None]:
    """The session's current execution (signals reach whichever run it is driving)."""
    return client.get_workflow_handle_for(
        SessionRunWorkflow.run,  # type: ignore[arg-type]  # mypy can't infer through @defn
        session_workflow_id(session_id),
    )
