"""Sessions: a long-lived agent context and its runs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.auth import VIEWER
from api.deps import DbDep, PageDep, ProjectDep
from api.errors import ApiError, not_found
from api.schemas.runs import ActiveRunPublic
from api.schemas.sessions import SessionList, SessionPublic, SessionStatus
from store import runs, sessions, transcript

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


@router.get("", response_model=SessionList, dependencies=[VIEWER])
async def list_sessions(
    db: DbDep,
    project_id: ProjectDep,
    page: PageDep,
    status: Annotated[list[SessionStatus] | None, Query()] = None,
    agent: str | None = None,
    order_by: Literal["last_activity_at", "created_at"] = "last_activity_at",
    direction: Literal["asc", "desc"] = "desc",
) -> SessionList:
    found, next_cursor = await sessions.list_sessions(
        db,
        project_id,
        statuses=status,
        agent=agent,
        order_by=order_by,
        direction=direction,
        limit=page.limit,
        cursor=page.cursor,
    )
    return SessionList(
        sessions=[SessionPublic.of(s) for s in found],
        next_cursor=next_cursor,
    )


@router.get("/{session_id}", response_model=SessionPublic, dependencies=[VIEWER])
async def get_session(session_id: str, db: DbDep, project_id: ProjectDep) -> SessionPublic:
    summary = await sessions.get_session(db, project_id, session_id)
    if summary is None:
        raise not_found("session", session_id)
    return SessionPublic.of(summary)


@router.get("/{session_id}/active-run", response_model=ActiveRunPublic, dependencies=[VIEWER])
async def get_active_run(session_id: str, db: DbDep, project_id: ProjectDep) -> ActiveRunPublic:
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
    return ActiveRunPublic.of(
        run,
        cursor=cursor,
        stream_url=f"/v1/runs/{run.run_id}/stream?after={cursor}",
        last_activity_at=run.updated_at,
    )
