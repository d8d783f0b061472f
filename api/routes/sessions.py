"""Sessions: a long-lived agent context and its runs."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import DbDep, ProjectDep
from api.errors import not_found
from api.schemas import SessionView
from store import queries

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


@router.get("/{session_id}", response_model=SessionView)
async def get_session(session_id: str, db: DbDep, project_id: ProjectDep) -> SessionView:
    summary = await queries.get_session(db, project_id, session_id)
    if summary is None:
        raise not_found("session", session_id)
    return SessionView.model_validate(summary.model_dump())
