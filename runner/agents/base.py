"""Python agents: the context an agent runs with, and the registry of agents by name.

An agent is ``async def agent(ctx: AgentContext) -> AgentResult``. It reports progress with
``ctx.emit``, asks the human with ``await ctx.ask(...)`` and returns its final output. Raising fails
the run; cancellation arrives as ``asyncio.CancelledError`` at the agent's next ``await`` (and
``ctx.cancelled`` turns true), so agents clean up with ``try``/``finally``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic_core import to_jsonable_python

from runner.protocol import (
    DispatchRequest,
    EventType,
    InteractionOption,
    InteractionReply,
    InteractionRequested,
    RunEvent,
)

if TYPE_CHECKING:
    from runner.runs import HostedRun

# The run's lifecycle and interactions are the runner's to report; an agent emitting them
# directly would give followers a transcript the runner cannot stand behind.
RESERVED_EVENTS = frozenset(
    {
        EventType.RUN_STARTED,
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
        EventType.RUN_CANCELLED,
        EventType.INTERACTION_REQUESTED,
        EventType.INTERACTION_RESOLVED,
    }
)


@dataclass(frozen=True)
class AgentResult:
    """What an agent returns: becomes the ``run.completed`` event's data."""

    output: str
    stop_reason: str = "end_turn"


class AgentError(Exception):
    """Raise to fail the run; ``run.failed`` carries the class name as ``type``.

    ``details`` (JSON values) are added to the ``error`` object, e.g. a process's exit code.
    """

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = dict(details or {})


AgentFn = Callable[["AgentContext"], Awaitable[AgentResult]]


@dataclass(frozen=True)
class AgentSpec:
    """One agent this runner can run."""

    name: str
    description: str
    run: AgentFn
    kind: Literal["python", "acp"] = "python"
    # False: a cancel raises CancelledError in the agent at once. True: the agent watches
    # ``ctx.wait_cancelled()`` and winds down itself (an ACP agent must be told with
    # session/cancel and given time to answer); past the grace the runner cancels it anyway.
    cooperative_cancel: bool = False


AGENTS: dict[str, AgentSpec] = {}
"""The default registry: every agent module in ``runner.agents`` registers here on import."""


def agent(
    name: str, description: str, registry: dict[str, AgentSpec] | None = None
) -> Callable[[AgentFn], AgentFn]:
    """Register the decorated function as agent ``name`` (in ``AGENTS`` unless told otherwise)."""
    target = AGENTS if registry is None else registry

    def register(fn: AgentFn) -> AgentFn:
        if name in target:
            raise ValueError(f"agent {name!r} is already registered")
        target[name] = AgentSpec(name=name, description=description, run=fn)
        return fn

    return register


class AgentContext:
    """What an agent sees of its run: the dispatch, and ways to emit events and ask the human."""

    def __init__(self, run: HostedRun, request: DispatchRequest) -> None:
        self._run = run
        self.run_id = request.run_id
        self.session_id = request.session_id
        self.project_id = request.project_id
        self.input: Any = request.input
        self.attempt = request.attempt
        self.metadata = request.metadata
        # The agent's own session left by the previous run of this session, if any.
        self.previous_agent_session_id = request.agent_session_id

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested; long loops without awaits should check it."""
        return self._run.cancel_requested

    @property
    def ended(self) -> bool:
        """True once the run has its terminal event: nothing can be emitted any more."""
        return self._run.finished

    async def wait_cancelled(self) -> None:
        """Return once cancellation is requested (for agents with ``cooperative_cancel``)."""
        await self._run.cancel_event.wait()

    def set_agent_session_id(self, agent_session_id: str | None) -> None:
        """Record the agent's own session ID: the terminal event will carry it."""
        self._run.agent_session_id = agent_session_id

    def emit(self, type: EventType | str, data: Mapping[str, Any] | None = None) -> RunEvent:
        """Append an event to the run's transcript and wake its followers.

        Raises ``ValueError`` for an unknown or reserved type, or data that is not JSON.
        """
        event_type = EventType(type)
        if event_type in RESERVED_EVENTS:
            raise ValueError(f"{event_type.value!r} is emitted by the runner, not by agents")
        # Converting here makes bad data fail the agent that sent it, not every follower later.
        payload = to_jsonable_python(dict(data or {}))
        return self._run.append(event_type, payload)

    async def ask(
        self,
        kind: Literal["permission", "input"],
        prompt: str,
        options: Iterable[InteractionOption | Mapping[str, Any]] = (),
        tool_call: Mapping[str, Any] | None = None,
        expires_in: float | None = None,
        response_schema: Mapping[str, Any] | None = None,
    ) -> InteractionReply:
        """Ask the human and wait for the answer.

        Emits ``interaction.requested``; when the orchestrator delivers a reply (answered,
        expired or cancelled) the runner emits ``interaction.resolved`` and this returns it.
        The runner does not time the interaction out itself: expiry is the orchestrator's
        durable timer, delivered here as outcome ``expired``.
        """
        return await self.request_interaction(
            kind, prompt, options, tool_call, expires_in, response_schema
        )

    def request_interaction(
        self,
        kind: Literal["permission", "input"],
        prompt: str,
        options: Iterable[InteractionOption | Mapping[str, Any]] = (),
        tool_call: Mapping[str, Any] | None = None,
        expires_in: float | None = None,
        response_schema: Mapping[str, Any] | None = None,
    ) -> asyncio.Future[InteractionReply]:
        """``ask`` without the wait: ``interaction.requested`` is appended before this returns,
        so a caller that must keep its events in order can ask without awaiting first."""
        request = InteractionRequested(
            interaction_id=f"int_{uuid.uuid4().hex}",
            kind=kind,
            prompt=prompt,
            options=[InteractionOption.model_validate(option) for option in options],
            tool_call=to_jsonable_python(dict(tool_call)) if tool_call is not None else None,
            expires_in=expires_in,
            response_schema=dict(response_schema) if response_schema is not None else None,
        )
        return self._run.open_interaction(request)
