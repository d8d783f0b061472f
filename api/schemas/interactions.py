"""Bodies of ``/v1/interactions``: what a run asks a human, and the human's answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas.base import Body, Public

InteractionStatus = Literal["pending", "resolved", "expired", "cancelled"]


class OptionPublic(Public):
    option_id: str
    name: str
    kind: str | None = Field(None, description="ACP: allow_once, allow_always, reject_once, …")


class QuestionPublic(Public):
    """What the run asks: shown on the run while it waits, and on the interaction."""

    interaction_id: str
    kind: Literal["permission", "input"]
    prompt: str
    options: list[OptionPublic] = Field(default_factory=list)
    tool_call: dict[str, Any] | None = None
    response_schema: dict[str, Any] | None = None
    requested_at: datetime
    expires_at: datetime | None = None


class InteractionPublic(QuestionPublic):
    """The question with its run, and what became of it."""

    run_id: str
    session_id: str
    project_id: str
    status: InteractionStatus
    response: dict[str, Any] | None = None
    responder: str | None = None
    resolved_at: datetime | None = None
    ignored_responses: list[dict[str, Any]] = Field(
        default_factory=list, description="answers that came after the first one, kept"
    )


class InteractionList(BaseModel):
    interactions: list[InteractionPublic]


class ResponseCreate(Body):
    response: dict[str, Any]
    responder: str | None = Field(
        None,
        max_length=256,
        description="ignored with an API key (the key's name is recorded); used only when "
        "auth is off",
    )


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    run_id: str
    interaction_id: str | None = None
