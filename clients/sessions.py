"""Calls into a session's ``SessionRunWorkflow``: submit a run, signal an answer or a cancel.

The API and the trigger activities both submit runs here, the same way: update-with-start
of ``SessionRunWorkflow.submit`` on the session's workflow ID (``USE_EXISTING``), whose
validator applies the multitask strategy inside the workflow, race-free. Temporal's errors
come out as the domain errors of ``clients.errors``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from clients.errors import (
    RPC_TIMEOUT,
    IdempotencyConflict,
    RunNotActive,
    SessionBusy,
    SessionUnavailable,
    TemporalUnavailable,
    temporal_call,
)
from store import runs
from tether.ids import legacy_session_workflow_id, session_workflow_id
from tether.settings import Settings
from workflows.errors import ErrorType
from workflows.session_run import (
    SessionRunWorkflow,
    run_details,
    run_memo,
    run_search_attributes,
    run_summary,
)
from workflows.types import (
    CancelSignal,
    RespondSignal,
    RunPolicy,
    RunSpec,
    RunState,
    SessionInput,
    SubmitResult,
)

# An update can land on an execution that is closing its last run; the next attempt then
# starts a fresh execution. A few quick retries cover that window.
CLOSING_RETRIES = 8

# Temporal answers these when it is down or overloaded: worth a retry later, never a crash.
_UNAVAILABLE = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


def run_policy(settings: Settings, *, accept_wait_s: float) -> RunPolicy:
    """The run's timeouts from the settings (workflows read no settings themselves)."""
    return RunPolicy(
        accept_wait_s=accept_wait_s,
        dispatch_deadline_s=settings.dispatch_deadline_s,
        runner_lost_timeout_s=settings.runner_lost_timeout_s,
        heartbeat_timeout_s=settings.follow_heartbeat_timeout_s,
        interaction_expiry_s=settings.interaction_expiry_s,
        waiting_probe_s=settings.waiting_probe_s,
        cancel_grace_s=settings.cancel_grace_s,
        history_events_limit=settings.history_events_limit,
    )


def request_hash(fields: dict[str, Any]) -> str:
    """A stable fingerprint of what was asked, to tell a retry from a different request."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def start_operation(spec: RunSpec, task_queue: str) -> WithStartWorkflowOperation:
    """Start the session's workflow if it is not running, showing this run in the UI."""
    return WithStartWorkflowOperation(
        SessionRunWorkflow.run,
        SessionInput(session_id=spec.session_id, project_id=spec.project_id),
        id=session_workflow_id(spec.project_id, spec.session_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=run_search_attributes(spec),
        static_summary=run_summary(spec),
        static_details=run_details(spec),
        memo=run_memo(spec),
    )


def session_handle(
    client: Client, project_id: str, session_id: str
) -> WorkflowHandle[Any, RunState | None]:
    """The session's current execution (signals reach whichever run it is driving)."""
    return client.get_workflow_handle_for(
        SessionRunWorkflow.run,  # type: ignore[arg-type]  # mypy can't infer through @defn
        session_workflow_id(project_id, session_id),
    )


async def submit_run(
    client: Client, db: async_sessionmaker[AsyncSession], spec: RunSpec, task_queue: str
) -> SubmitResult:
    """Start or queue the run in its session's workflow, or find the run its key made.

    Raises ``SessionBusy`` (strategy ``reject`` and the session has an active run),
    ``IdempotencyConflict`` (the key made a run for another request), ``SessionUnavailable``
    (the session kept closing under the submit) or ``TemporalUnavailable``.
    """
    # The update answers once a runner took the run, or after the run's accept wait.
    timeout = RPC_TIMEOUT + timedelta(seconds=spec.policy.accept_wait_s)
    for attempt in range(CLOSING_RETRIES):
        duplicate = await _stored_duplicate(db, spec)
        if duplicate is not None:
            return duplicate
        try:
            async with temporal_call(timeout):
                return await client.execute_update_with_start_workflow(
                    SessionRunWorkflow.submit,
                    spec,
                    start_workflow_operation=start_operation(spec, task_queue),
                    rpc_timeout=timeout,
                )
        except (WorkflowUpdateRPCTimeoutOrCancelledError, TemporalUnavailable) as err:
            # Temporal, or a worker to admit the run, did not answer in time. The run may
            # still have been admitted: a retry with the same idempotency key finds it.
            raise TemporalUnavailable(
                "the run was not admitted in time: Temporal or its workers did not answer",
                {"run_id": spec.run_id},
            ) from err
        except WorkflowUpdateFailedError as err:
            rejection = _rejection(err)
            if rejection is not None:
                raise rejection from err
            if not _closing(err):
                raise
        except RPCError as err:
            if not _closing(err):
                raise _rpc_error(err) from err
        await asyncio.sleep(0.02 * (attempt + 1))
    raise SessionUnavailable(
        f"session {spec.session_id} did not accept the run; retry", {"run_id": spec.run_id}
    )


async def _stored_duplicate(
    db: async_sessionmaker[AsyncSession], spec: RunSpec
) -> SubmitResult | None:
    """A run this key already made that is on record (it may have ended long ago)."""
    if not spec.idempotency_key:
        return None
    async with db() as session:
        found = await runs.find_run_by_idempotency_key(
            session, spec.project_id, spec.session_id, spec.idempotency_key
        )
    if found is None:
        return None
    if found.request_hash is not None and found.request_hash != spec.request_hash:
        raise IdempotencyConflict(
            f"idempotency key {spec.idempotency_key!r} was used for another request",
            {"run_id": found.run.run_id},
        )
    return SubmitResult(state=found.run, duplicate=True)


def _rejection(err: WorkflowUpdateFailedError) -> Exception | None:
    """The domain error of a ``submit`` its validator rejected, if it is one."""
    cause = err.cause
    if not isinstance(cause, ApplicationError):
        return None
    details = cause.details[0] if cause.details else {}
    if cause.type == ErrorType.SESSION_BUSY:
        return SessionBusy(cause.message, details)
    if cause.type == ErrorType.IDEMPOTENCY_CONFLICT:
        return IdempotencyConflict(cause.message, details)
    return None


def _closing(err: Exception) -> bool:
    """The execution the submit reached is closing (or just closed) its last run."""
    if isinstance(err, WorkflowUpdateFailedError):
        cause = err.cause
        return isinstance(cause, ApplicationError) and cause.type == ErrorType.SESSION_CLOSING
    # The update reached an execution that completed before it was admitted.
    return isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND


def _rpc_error(err: RPCError) -> Exception:
    if err.status in _UNAVAILABLE:
        return TemporalUnavailable(f"Temporal did not answer: {err.message}")
    return err


async def signal_cancel(
    client: Client, project_id: str | None, session_id: str, request: CancelSignal
) -> None:
    """Ask the session's current run to stop. ``RunNotActive`` if the session is closed."""
    await _signal(client, project_id, session_id, SessionRunWorkflow.cancel, request)


async def signal_respond(
    client: Client, project_id: str, session_id: str, answer: RespondSignal
) -> None:
    """Hand a human's answer to the session's current run. ``RunNotActive`` if it is closed."""
    await _signal(client, project_id, session_id, SessionRunWorkflow.respond, answer)


async def _signal(
    client: Client, project_id: str | None, session_id: str, signal: Any, arg: Any
) -> None:
    # The session's execution, else one started before workflow IDs carried the project (an
    # upgrade with runs waiting); ``project_id`` None: a caller recorded before then.
    handles = [client.get_workflow_handle(legacy_session_workflow_id(session_id))]
    if project_id is not None:
        handles.insert(0, session_handle(client, project_id, session_id))
    for handle in handles:
        try:
            async with temporal_call():
                await handle.signal(signal, arg, rpc_timeout=RPC_TIMEOUT)
            return
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise _rpc_error(err) from err
    raise RunNotActive("the run is no longer active", {"session_id": session_id})
