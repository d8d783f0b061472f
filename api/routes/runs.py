"""Runs: start, read, list, transcript, live stream, history, cancel."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.responses import StreamingResponse

from api.agents_catalog import require_agent
from api.auth import OPERATOR, VIEWER, OperatorDep
from api.deps import DbDep, DbFactoryDep, PageDep, ProjectDep, SettingsDep, TemporalDep
from api.errors import ApiError, not_found
from api.schemas.runs import (
    CancelCreate,
    EventList,
    EventPublic,
    HistoryPublic,
    RunCreate,
    RunList,
    RunPublic,
    TransitionPublic,
)
from api.sse import run_event_stream
from clients import sessions
from store import runs, transcript
from tether.ids import SESSION_ID_PATTERN, new_run_id, new_session_id, session_for_key
from tether.instants import Instant
from workflows.types import CancelSignal, RunSpec, RunStatus

router = APIRouter(prefix="/v1", tags=["runs"])

SessionIdPath = Annotated[str, Path(pattern=SESSION_ID_PATTERN)]

# Transcript positions are 64-bit signed in the store: anything larger cannot name an event.
MAX_SEQ = 2**63 - 1
_SEQ = re.compile(r"[0-9]{1,19}")


# The fields that make two requests "the same request" for idempotency.
FINGERPRINTED = {"agent", "input", "multitask", "metadata"}


class RunStarter:
    """What starting a run needs, resolved once for both start routes."""

    def __init__(
        self,
        db: DbDep,
        db_factory: DbFactoryDep,
        temporal: TemporalDep,
        settings: SettingsDep,
        project_id: ProjectDep,
        response: Response,
        idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
    ) -> None:
        self.db, self.db_factory, self.temporal = db, db_factory, temporal
        self.settings, self.project_id, self.response = settings, project_id, response
        self.header_key = idempotency_key

    def key(self, body: RunCreate) -> str | None:
        return body.idempotency_key or self.header_key

    async def start(self, session_id: str, body: RunCreate) -> RunPublic:
        await require_agent(self.db, body.agent)
        settings = self.settings
        spec = RunSpec(
            run_id=new_run_id(),
            session_id=session_id,
            project_id=self.project_id,
            agent=body.agent,
            input=body.input,
            multitask=body.multitask,
            idempotency_key=self.key(body),
            metadata=body.metadata,
            created_at=datetime.now(UTC),
            policy=sessions.run_policy(
                settings, accept_wait_s=settings.accept_wait_s if body.wait == "accepted" else 0.0
            ),
            request_hash=sessions.request_hash(body.model_dump(include=FINGERPRINTED, mode="json")),
            api_url=settings.public_api_url,
        )
        result = await sessions.submit_run(
            self.temporal, self.db_factory, spec, settings.task_queue
        )
        if result.duplicate:
            self.response.status_code = 200  # the run this key already made
        return RunPublic.of(result.state)


StarterDep = Annotated[RunStarter, Depends()]
_STARTED = {
    "status_code": 202,
    "response_model": RunPublic,
    "responses": {200: {"model": RunPublic, "description": "the run this idempotency key made"}},
}


@router.post("/sessions/{session_id}/runs", **_STARTED, dependencies=[OPERATOR])  # type: ignore[arg-type]
async def start_session_run(
    session_id: SessionIdPath, body: RunCreate, starter: StarterDep
) -> RunPublic:
    """Start a run in this session (created on first use); ``multitask`` says what happens
    if the session is busy."""
    return await starter.start(session_id, body)


@router.post("/runs", **_STARTED, dependencies=[OPERATOR])  # type: ignore[arg-type]
async def start_run(body: RunCreate, starter: StarterDep) -> RunPublic:
    """Start a run in a new session. With an idempotency key the session is derived from the
    key, so a retry finds the run it made."""
    key = starter.key(body)
    session_id = session_for_key(starter.project_id, key) if key else new_session_id()
    return await starter.start(session_id, body)


@router.get("/runs", response_model=RunList, dependencies=[VIEWER])
async def list_runs(
    db: DbDep,
    project_id: ProjectDep,
    page: PageDep,
    session_id: str | None = None,
    status: Annotated[list[RunStatus] | None, Query()] = None,
    agent: str | None = None,
    trigger_id: str | None = None,
    created_after: Instant | None = None,
    created_before: Instant | None = None,
    order_by: Literal["created_at", "updated_at", "ended_at", "status"] = "created_at",
    direction: Literal["asc", "desc"] = "desc",
) -> RunList:
    """Runs, filtered and ordered; page with ``cursor`` = the previous ``next_cursor``."""
    found, next_cursor = await runs.list_runs(
        db,
        project_id,
        session_id=session_id,
        statuses=[s.value for s in status] if status else None,
        agent=agent,
        trigger_id=trigger_id,
        created_after=created_after,
        created_before=created_before,
        order_by=order_by,
        direction=direction,
        limit=page.limit,
        cursor=page.cursor,
    )
    return RunList(runs=[RunPublic.of(r) for r in found], next_cursor=next_cursor)


async def _get_run(db: DbDep, project_id: str, run_id: str) -> RunPublic:
    run = await runs.get_run(db, project_id, run_id)
    if run is None:
        raise not_found("run", run_id)
    return RunPublic.of(run)


@router.get("/runs/{run_id}", response_model=RunPublic, dependencies=[VIEWER])
async def get_run(run_id: str, db: DbDep, project_id: ProjectDep) -> RunPublic:
    return await _get_run(db, project_id, run_id)


@router.get("/runs/{run_id}/events", response_model=EventList, dependencies=[VIEWER])
async def list_run_events(
    run_id: str,
    db: DbDep,
    project_id: ProjectDep,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> EventList:
    """A page of the transcript: events with ``seq > after``, in order."""
    await _get_run(db, project_id, run_id)
    events = await transcript.list_events(db, project_id, run_id, after=after, limit=limit)
    next_after = events[-1].seq if len(events) == limit else None
    return EventList(
        run_id=run_id, events=[EventPublic.of(e) for e in events], next_after=next_after
    )


@router.get("/runs/{run_id}/stream", dependencies=[VIEWER])
async def stream_run(
    run_id: str,
    db: DbDep,
    db_factory: DbFactoryDep,
    project_id: ProjectDep,
    settings: SettingsDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: ``id`` = seq, ``event`` = type; ends with an ``end`` event, or with
    ``reconnect`` when the stream cannot go on (resume with ``Last-Event-ID``)."""
    await _get_run(db, project_id, run_id)
    # Hand the connection back now: the request's session would otherwise hold it for as long
    # as the stream stays open (hours), and the stream reads with sessions of its own.
    await db.close()
    cursor = after or 0
    if last_event_id is not None:
        cursor = _last_event_id(last_event_id)
    return StreamingResponse(
        run_event_stream(db_factory, project_id, run_id, cursor, settings.api_stream_poll_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _last_event_id(value: str) -> int:
    """A seq, as this API sent it: ASCII digits, at most ``MAX_SEQ`` (``str.isdigit`` would
    also take ``²`` and other Unicode digits, which ``int`` refuses)."""
    if not _SEQ.fullmatch(value) or int(value) > MAX_SEQ:
        raise ApiError(
            422,
            "invalid_last_event_id",
            f"Last-Event-ID must be a seq number from 0 to {MAX_SEQ}",
            {"last_event_id": value[:40]},
        )
    return int(value)


@router.get("/runs/{run_id}/history", response_model=HistoryPublic, dependencies=[VIEWER])
async def run_history(run_id: str, db: DbDep, project_id: ProjectDep) -> HistoryPublic:
    await _get_run(db, project_id, run_id)
    transitions = await runs.run_history(db, project_id, run_id)
    return HistoryPublic(run_id=run_id, transitions=[TransitionPublic.of(t) for t in transitions])


@router.post("/runs/{run_id}/cancel", status_code=202, response_model=RunPublic)
async def request_cancel(
    run_id: str,
    db: DbDep,
    temporal: TemporalDep,
    project_id: ProjectDep,
    principal: OperatorDep,
    body: CancelCreate | None = None,
) -> RunPublic:
    """Ask the run to stop; it is recorded ``cancelled`` once the runner stopped it."""
    run = await _get_run(db, project_id, run_id)
    if run.status.is_terminal:
        raise ApiError(
            409,
            "run_finished",
            f"run {run_id} already ended ({run.status.value})",
            {"status": run.status.value},
        )
    await sessions.signal_cancel(
        temporal,
        run.project_id,
        run.session_id,
        CancelSignal(run_id=run_id, reason=body.reason if body else None, actor=principal.actor),
    )
    return run
