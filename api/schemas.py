"""Request and response bodies of the HTTP API (``…Create`` in, ``…View`` out)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner.protocol import RunEvent
from store.sessions import SessionSummary
from workflows.types import InteractionRecord, MultitaskStrategy, RunState, StatusTransition


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunCreate(_Body):
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


class RunView(RunState):
    """A run as stored: the workflow's state projection."""


class RunList(BaseModel):
    runs: list[RunView]
    next_cursor: str | None = None


class EventList(BaseModel):
    run_id: str
    events: list[RunEvent]
    next_after: int | None = None


class HistoryView(BaseModel):
    run_id: str
    transitions: list[StatusTransition]


class CancelCreate(_Body):
    reason: str | None = Field(None, max_length=500)


class InteractionView(InteractionRecord):
    pass


class InteractionList(BaseModel):
    interactions: list[InteractionView]


class ResponseCreate(_Body):
    response: dict[str, Any]
    responder: str | None = Field(None, max_length=256)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    run_id: str
    interaction_id: str | None = None


class SessionView(SessionSummary):
    pass


class AgentView(BaseModel):
    name: str
    kind: str
    description: str = ""
    available: bool = True


class AgentListView(BaseModel):
    agents: list[AgentView]


class SessionList(BaseModel):
    sessions: list[SessionView]
    next_cursor: str | None = None


class ActiveRunView(RunView):
    """The session's active run and where to pick up its stream."""

    cursor: int
    stream_url: str
    last_activity_at: datetime
