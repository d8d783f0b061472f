"""Bodies of ``/v1/runs`` and ``/v1/sessions/{id}/runs``: a run, its transcript, its history."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas.base import Body, Public
from api.schemas.interactions import QuestionPublic
from runner.protocol import EventType
from workflows.types import MultitaskStrategy, RunStatus


class RunCreate(Body):
    agent: str = Field(min_length=1, max_length=128)
    input: Any = None
    multitask: MultitaskStrategy = MultitaskStrategy.REJECT
    wait: Literal["accepted", "none"] = Field(
        "accepted",
        description="`accepted`: answer once a runner took the run (or after a short bound, "
        "with status `dispatching`); `none`: answer as soon as the run is durably recorded.",
    )
    idempotency_key: str | None = Field(None, max_length=256)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ResultPublic(Public):
    output: str | None = None
    stop_reason: str | None = None


class RunPublic(Public):
    """A run: what it runs, where it stands, and how it ended."""

    run_id: str
    session_id: str
    project_id: str
    agent: str
    status: RunStatus
    status_reason: str | None = None
    trigger_id: str | None = None
    idempotency_key: str | None = None
    input: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    started_at: datetime | None = None
    updated_at: datetime
    ended_at: datetime | None = None
    paused_at: datetime | None = None
    last_seq: int = Field(0, description="the newest transcript event the run row has seen")
    events: int = 0
    steps: int = Field(0, description="tool calls so far")
    usage: dict[str, Any] = Field(default_factory=dict)
    result: ResultPublic | None = None
    error: dict[str, Any] | None = None
    pending_interaction: QuestionPublic | None = Field(
        None, description="what the run waits for, while it is `waiting_for_input`"
    )
    replica_id: str | None = Field(None, description="the runner replica that runs it")
    duration_ms: int | None = None


class RunList(BaseModel):
    runs: list[RunPublic]
    next_cursor: str | None = None


class EventPublic(Public):
    """One transcript event: ``seq`` counts from 1 without gaps."""

    seq: int
    type: EventType
    ts: datetime
    data: dict[str, Any] = Field(default_factory=dict)


class EventList(BaseModel):
    run_id: str
    events: list[EventPublic]
    next_after: int | None = None


class TransitionPublic(Public):
    seq: int
    status: RunStatus
    reason: str | None = None
    at: datetime
    actor: str | None = Field(None, description="the API key (its name) that cancelled the run")


class HistoryPublic(BaseModel):
    run_id: str
    transitions: list[TransitionPublic]


class CancelCreate(Body):
    reason: str | None = Field(None, max_length=500)


class ActiveRunPublic(RunPublic):
    """The session's active run and where to pick up its stream."""

    cursor: int
    stream_url: str
    last_activity_at: datetime
