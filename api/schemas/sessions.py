"""Bodies of ``/v1/sessions``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.base import Public

SessionStatus = Literal["idle", "active", "waiting_for_input"]


class SessionPublic(Public):
    """A session: what it is doing now and where its stream is."""

    session_id: str
    project_id: str
    agent: str | None
    status: SessionStatus
    active_run_id: str | None = Field(description="the run under way, else the next queued one")
    last_run_id: str | None
    run_count: int
    created_at: datetime
    last_activity_at: datetime
    cursor: int = Field(description="where a client resumes the stream of the shown run")
    queued_run_ids: list[str] = Field(
        default_factory=list, description="runs waiting behind the active one, in order"
    )


class SessionList(BaseModel):
    sessions: list[SessionPublic]
    next_cursor: str | None = None
