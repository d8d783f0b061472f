"""The runner protocol's HTTP calls (see ``runner/protocol.py`` for the table)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from runner.protocol import (
    NDJSON_MEDIA_TYPE,
    Ack,
    AgentInfo,
    AgentList,
    CancelRequest,
    DispatchRequest,
    InteractionReply,
    RunProbe,
    StreamRecord,
    encode_record,
)
from runner.runs import (
    HostedRun,
    RunConflictError,
    RunRegistry,
    UnknownAgentError,
    UnknownInteractionError,
)
from tether.settings import Settings


class RunnerError(Exception):
    """An error answer: rendered as ``{"error": {"code": ..., "message": ...}}``."""

    def __init__(
        self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _registry(request: Request) -> RunRegistry:
    return request.app.state.registry  # type: ignore[no-any-return]


RunnerSettings = Annotated[Settings, Depends(_settings)]
Registry = Annotated[RunRegistry, Depends(_registry)]


def require_token(request: Request, settings: RunnerSettings) -> None:
    """Every protocol call carries ``Authorization: Bearer <runner token>``: the current token
    or, while a rotation is under way, one of ``runner_previous_tokens``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    given = token.strip().encode()
    # compare_digest against every accepted token: no early exit that would leak which matched.
    matches = [secrets.compare_digest(given, t.encode()) for t in settings.runner_accepted_tokens]
    if scheme.lower() != "bearer" or not given or not any(matches):
        raise RunnerError(
            401, "unauthorized", "missing or invalid runner token", {"WWW-Authenticate": "Bearer"}
        )


def _known_run(registry: RunRegistry, run_id: str) -> HostedRun:
    run = registry.get(run_id)
    if run is None:
        raise RunnerError(404, "unknown_run", f"this runner does not know run {run_id}")
    return run


def _ndjson(records: AsyncIterator[StreamRecord]) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        async for record in records:
            yield encode_record(record)

    # no-cache / no buffering: a proxy holding lines back would look like a stalled run.
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(lines(), media_type=NDJSON_MEDIA_TYPE, headers=headers)


router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)])


@router.post("/runs", response_class=StreamingResponse)
async def dispatch_run(
    body: DispatchRequest, registry: Registry, settings: RunnerSettings
) -> StreamingResponse:
    """Start the run (idempotent on ``run_id``) and stream it, ``run.started`` first.

    The agent runs in its own task: the caller may hang up after the first record.
    """
    try:
        run = registry.dispatch(body)
    except UnknownAgentError:
        raise RunnerError(
            404, "unknown_agent", f"this runner has no agent {body.agent!r}"
        ) from None
    except RunConflictError as exc:
        raise RunnerError(409, "run_conflict", str(exc)) from None
    return _ndjson(run.follow(0, settings.runner_keepalive_s))


@router.get("/runs/{run_id}/events", response_class=StreamingResponse)
async def follow_run(
    run_id: str,
    registry: Registry,
    settings: RunnerSettings,
    after: Annotated[int, Query(ge=0)] = 0,
) -> StreamingResponse:
    """Every event with ``seq > after``, then live ones; ends after the terminal event."""
    run = _known_run(registry, run_id)
    return _ndjson(run.follow(after, settings.runner_keepalive_s))


@router.post("/runs/{run_id}/interactions/{interaction_id}")
async def reply_to_interaction(
    run_id: str, interaction_id: str, body: InteractionReply, registry: Registry
) -> Ack:
    """Deliver the human's reply; a reply to a resolved interaction is a duplicate, not an error."""
    run = _known_run(registry, run_id)
    try:
        resolved = run.resolve_interaction(interaction_id, body)
    except UnknownInteractionError:
        raise RunnerError(
            404, "unknown_interaction", f"run {run_id} has no interaction {interaction_id}"
        ) from None
    return Ack(duplicate=not resolved)


@router.post("/runs/{run_id}/cancel")
async def cancel_hosted_run(
    run_id: str, registry: Registry, body: CancelRequest | None = None
) -> Ack:
    """Cancel the run; its stream ends with ``run.cancelled``. Cancelling an ended run is a
    duplicate."""
    run = _known_run(registry, run_id)
    cancelled = registry.cancel(run, body.reason if body else None)
    return Ack(duplicate=not cancelled)


@router.get("/runs/{run_id}")
async def probe_run(run_id: str, registry: Registry) -> RunProbe:
    """The run's status and last seq; 404 means this runner does not know it."""
    return _known_run(registry, run_id).probe(registry.replica_id)


@router.get("/agents")
async def list_agents(registry: Registry) -> AgentList:
    """The agents this runner can run."""
    agents = [
        AgentInfo(name=spec.name, kind=spec.kind, description=spec.description)
        for spec in registry.agents.values()
    ]
    return AgentList(replica_id=registry.replica_id, agents=agents)
