"""The runner wire protocol: the only contract between the orchestrator and a runner.

HTTP + NDJSON. Every call carries ``Authorization: Bearer <runner token>``.

| call                                                  | body / answer                          |
|-------------------------------------------------------|----------------------------------------|
| ``POST /v1/runs``                                     | ``DispatchRequest`` -> NDJSON stream,   |
|                                                       | first record ``run.started``            |
| ``GET /v1/runs/{run_id}/events?after=N``              | NDJSON ``RunEvent`` / ``KeepAlive``     |
| ``POST /v1/runs/{run_id}/interactions/{id}``          | ``InteractionReply`` -> ``Ack``         |
| ``POST /v1/runs/{run_id}/cancel``                     | ``CancelRequest`` -> ``Ack``            |
| ``GET /v1/runs/{run_id}``                             | ``RunProbe`` (404: unknown run)         |
| ``GET /v1/agents``                                    | ``AgentList``                           |

Golden fixtures for every record live in ``runner/fixtures``; both sides test against them.

Agent sessions: an agent with a session of its own (an ACP agent's ``sessionId``) reports it as
``agent_session_id`` in the data of its terminal event (``run.completed``, ``run.failed`` or
``run.cancelled``). The orchestrator keeps it on the Tether session and sends it back as
``DispatchRequest.agent_session_id`` on the session's next run, so the agent resumes its own
history (ACP ``session/load``) where it can. An ACP run also reports the agent's ``initialize``
answer in a ``log`` event (``message`` ``"acp agent initialized"``, see
``runner/fixtures/event_log_acp_initialized.json``); ``run.started`` is sent before the agent
process starts, so it cannot carry it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class EventType(StrEnum):
    RUN_STARTED = "run.started"
    MESSAGE_DELTA = "message.delta"
    MESSAGE = "message"
    THOUGHT = "thought"
    TOOL_CALL = "tool_call"
    TOOL_CALL_UPDATE = "tool_call.update"
    PLAN = "plan"
    USAGE = "usage"
    INTERACTION_REQUESTED = "interaction.requested"
    INTERACTION_RESOLVED = "interaction.resolved"
    LOG = "log"
    RUN_COMPLETED = "run.completed"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"


TERMINAL_EVENTS = frozenset(
    {EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED}
)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RunEvent(_Wire):
    """One transcript event. ``seq`` starts at 1 and has no gaps within a run."""

    seq: int = Field(ge=1)
    type: EventType
    ts: datetime
    data: dict[str, Any] = Field(default_factory=dict)


class KeepAlive(_Wire):
    """Sent on an idle stream so the reader can tell a quiet run from a dead runner."""

    type: Literal["keepalive"] = "keepalive"
    ts: datetime


StreamRecord = RunEvent | KeepAlive
_record_adapter: TypeAdapter[StreamRecord] = TypeAdapter(StreamRecord)


def parse_record(line: str | bytes) -> StreamRecord:
    """Parse one NDJSON line of a runner stream."""
    return _record_adapter.validate_json(line)


NDJSON_MEDIA_TYPE = "application/x-ndjson"


def encode_record(record: StreamRecord) -> bytes:
    """Encode one record as an NDJSON line."""
    return record.model_dump_json().encode() + b"\n"


def auth_headers(token: str) -> dict[str, str]:
    """The header every runner call carries: the shared runner token."""
    return {"Authorization": f"Bearer {token}"}


class RunAssignment(_Wire):
    """Which run to start where: the part of a dispatch the workflow knows."""

    run_id: str
    session_id: str
    project_id: str
    agent: str
    input: Any = None
    attempt: int = 1
    metadata: dict[str, Any] = Field(default_factory=dict)


class DispatchRequest(RunAssignment):
    """Body of ``POST /v1/runs`` on a runner."""

    # The agent's own session from the previous run of this session (the ``agent_session_id``
    # of that run's terminal event); None for a first run or an agent without sessions.
    agent_session_id: str | None = None


AGENT_SESSION_ID = "agent_session_id"
"""Key of the agent's own session ID in the data of terminal events."""


def agent_session_id_of(event: RunEvent) -> str | None:
    """The agent's own session ID carried by a terminal event, if any."""
    if event.type not in TERMINAL_EVENTS:
        return None
    value = event.data.get(AGENT_SESSION_ID)
    return value if isinstance(value, str) and value else None


class RunStartedData(_Wire):
    """``data`` of the ``run.started`` event."""

    replica_id: str
    agent: str
    attempt: int = 1


class InteractionOption(_Wire):
    option_id: str
    name: str
    kind: str | None = None  # ACP: allow_once, allow_always, reject_once, reject_always


class InteractionQuestion(_Wire):
    """What an agent asks a human. Every shape of an interaction extends this one: the wire
    event below, the workflow's pending interaction, its record, and the API's view."""

    interaction_id: str
    kind: Literal["permission", "input"]
    prompt: str
    options: list[InteractionOption] = Field(default_factory=list)
    tool_call: dict[str, Any] | None = None
    response_schema: dict[str, Any] | None = None  # for "input": JSON schema of the answer


class InteractionRequested(InteractionQuestion):
    """``data`` of the ``interaction.requested`` event."""

    expires_in: float | None = None  # seconds; None: the orchestrator's default


class InteractionReply(_Wire):
    """Body of ``POST /v1/runs/{run_id}/interactions/{interaction_id}``.

    ``answered`` carries the human's ``response`` (``{"option_id": ...}`` for a permission,
    ``{"text": ...}`` or JSON for input); ``expired`` and ``cancelled`` carry none.
    """

    outcome: Literal["answered", "expired", "cancelled"]
    response: dict[str, Any] | None = None
    responder: str | None = None


class CancelRequest(_Wire):
    reason: str | None = None


class Ack(_Wire):
    ok: bool = True
    duplicate: bool = False


RunnerRunStatus = Literal["running", "waiting_for_input", "completed", "failed", "cancelled"]


class RunProbe(_Wire):
    run_id: str
    status: RunnerRunStatus
    last_seq: int
    replica_id: str


class AgentInfo(_Wire):
    name: str
    kind: Literal["python", "acp"]
    description: str = ""


class AgentList(_Wire):
    replica_id: str
    agents: list[AgentInfo]


class ErrorInfo(_Wire):
    """``code`` is stable and machine-readable: ``unauthorized``, ``unknown_run``,
    ``unknown_agent``, ``unknown_interaction``, ``run_conflict``, ``invalid_request``,
    ``not_found``, ``http_error``."""

    code: str
    message: str


class ErrorResponse(_Wire):
    """Body of every error answer: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorInfo
