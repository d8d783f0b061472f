"""Sessions: a long-lived agent context and its runs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import DbDep, ProjectDep
from api.errors import ApiError, not_found
from api.schemas import ActiveRunView, SessionList, SessionView
from store import runs, sessions, transcript

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

SessionStatus = Literal["idle", "active", "waiting_for_input"]


@router.get("", response_model=SessionList)
async def list_sessions(
    db: DbDep,
    project_id: ProjectDep,
    status: Annotated[list[SessionStatus] | None, Query()] = None,
    agent: str | None = None,
    order_by: Literal["last_activity_at", "created_at"] = "last_activity_at",
    direction: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> SessionList:
    page, next_cursor = await sessions.list_sessions(
        db,
        project_id,
        statuses=status,
        agent=agent,
        order_by=order_by,
        direction=direction,
        limit=limit,
        cursor=cursor,
    )
    return SessionList(
        sessions=[SessionView.model_validate(s.model_dump()) for s in page],
        next_cursor=next_cursor,
    )


@router.get("/{session_id}", response_model=SessionView)
async def get_session(session_id: str, db: DbDep, project_id: ProjectDep) -> SessionView:
    summary = await sessions.get_session(db, project_id, session_id)
    if summary is None:
        raise not_found("session", session_id)
    return SessionView.model_validate(summary.model_dump())


@router.get("/{session_id}/active-run", response_model=ActiveRunView)
async def get_active_run(session_id: str, db: DbDep, project_id: ProjectDep) -> ActiveRunView:
    """The run the session is busy with, with its stream cursor; 404 when it is idle."""
    run = await runs.get_active_run(db, project_id, session_id)
    if run is None:
        raise ApiError(
            404,
            "no_active_run",
            f"session {session_id!r} has no active run",
            {"session_id": session_id},
        )
    # The transcript runs ahead of the run row (rows are written as events stream in).
    cursor = max(run.last_seq, await transcript.last_event_seq(db, project_id, run.run_id))
    return ActiveRunView(
        **run.model_dump(exclude={"duration_ms"}),
        cursor=cursor,
        stream_url=f"/v1/runs/{run.run_id}/stream?after={cursor}",
        last_activity_at=run.updated_at,
    )
