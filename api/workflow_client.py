"""The API's calls into Temporal: submit a run (update-with-start carrying ``submit``) and
signal a session's workflow. Temporal errors become HTTP errors here."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.errors import ApiError, from_temporal
from store import runs
from tether.session_client import session_handle, start_operation
from tether.settings import Settings
from workflows.errors import ErrorType
from workflows.session_run import (
    SessionRunWorkflow,
)
from workflows.types import (
    CancelSignal,
    RespondSignal,
    RunSpec,
    SubmitResult,
)

# An update can land on an execution that is closing its last run; the next attempt then
# starts a fresh execution. A few quick retries cover that window.
CLOSING_RETRIES = 8


def request_hash(fields: dict[str, Any]) -> str:
    """A stable fingerprint of what was asked, to tell a retry from a different request."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _closing(err: Exception) -> bool:
    if isinstance(err, WorkflowUpdateFailedError) and isinstance(err.cause, ApplicationError):
        return err.cause.type == ErrorType.SESSION_CLOSING
    return isinstance(err, RPCError) and "already completed" in str(err).lower()


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
    state, stored_hash = found.run, found.request_hash
    if stored_hash is not None and stored_hash != spec.request_hash:
        raise ApiError(
            409,
            "idempotency_conflict",
            f"idempotency key {spec.idempotency_key!r} was used for another request",
            {"run_id": state.run_id},
        )
    return SubmitResult(state=state, duplicate=True)


async def submit_run(
    client: Client, db: async_sessionmaker[AsyncSession], settings: Settings, spec: RunSpec
) -> SubmitResult:
    """Start or queue the run in its session's workflow, or find the run this key made."""
    for attempt in range(CLOSING_RETRIES):
        duplicate = await _stored_duplicate(db, spec)
        if duplicate is not None:
            return duplicate
        start = start_operation(spec, settings.task_queue)
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


async def _signal(client: Client, session_id: str, signal: Any, arg: Any) -> None:
    try:
        await session_handle(client, session_id).signal(signal, arg)
    except RPCError as err:
        mapped = from_temporal(err)
        if mapped is None:
            raise
        raise mapped from err


async def signal_cancel(client: Client, session_id: str, request: CancelSignal) -> None:
    await _signal(client, session_id, SessionRunWorkflow.cancel, request)


async def signal_respond(client: Client, session_id: str, answer: RespondSignal) -> None:
    await _signal(client, session_id, SessionRunWorkflow.respond, answer)
