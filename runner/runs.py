"""In-memory run state on a runner: each run's event buffer, status, interactions and task.

Everything here runs on the event loop and the state-changing methods never await, so an event's
``seq`` is fixed the moment it is appended and concurrent emitters cannot reorder the transcript.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from runner.agents.base import AgentContext, AgentSpec
from runner.execute import execute_agent
from runner.protocol import (
    AGENT_SESSION_ID,
    TERMINAL_EVENTS,
    DispatchRequest,
    EventType,
    InteractionReply,
    InteractionRequested,
    KeepAlive,
    RunEvent,
    RunnerRunStatus,
    RunProbe,
    RunStartedData,
    StreamRecord,
)

log = logging.getLogger(__name__)

_FINAL_STATUS: dict[EventType, RunnerRunStatus] = {
    EventType.RUN_COMPLETED: "completed",
    EventType.RUN_FAILED: "failed",
    EventType.RUN_CANCELLED: "cancelled",
}


class RunFinishedError(RuntimeError):
    """An event was emitted after the run's terminal event."""


class UnknownInteractionError(KeyError):
    """The run never asked this interaction."""


class HostedRun:
    """One run as this runner hosts it: an append-only transcript (``seq`` from 1, no gaps)
    plus its live state."""

    def __init__(
        self, run_id: str, agent: str, session_id: str, cooperative_cancel: bool = False
    ) -> None:
        self.run_id = run_id
        self.agent = agent
        self.session_id = session_id
        self.events: list[RunEvent] = []
        self.status: RunnerRunStatus = "running"
        self.task: asyncio.Task[None] | None = None
        self.cancel_requested = False
        self.cancel_reason: str | None = None
        self.cancel_event = asyncio.Event()
        self.cooperative_cancel = cooperative_cancel
        self.agent_session_id: str | None = None  # the agent's own session, if it has one
        self.finished_at: float | None = None  # time.monotonic(), for retention
        self._pending: dict[str, asyncio.Future[InteractionReply]] = {}
        self._resolved: set[str] = set()
        # Replaced on every append: followers wait on the one they saw, so none misses a wake-up.
        self._changed = asyncio.Event()

    @property
    def last_seq(self) -> int:
        return len(self.events)

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def append(self, type: EventType, data: dict[str, Any]) -> RunEvent:
        """Append one event (seq assigned here, synchronously) and wake the followers."""
        if self.finished:
            raise RunFinishedError(f"run {self.run_id} already ended")
        event = RunEvent(seq=len(self.events) + 1, type=type, ts=datetime.now(UTC), data=data)
        self.events.append(event)
        self._changed.set()
        self._changed = asyncio.Event()
        return event

    def open_interaction(self, request: InteractionRequested) -> asyncio.Future[InteractionReply]:
        """Emit ``interaction.requested`` and return the future its reply will resolve."""
        future: asyncio.Future[InteractionReply] = asyncio.get_running_loop().create_future()
        self.append(EventType.INTERACTION_REQUESTED, request.model_dump(mode="json"))
        self._pending[request.interaction_id] = future
        self.status = "waiting_for_input"
        return future

    def resolve_interaction(self, interaction_id: str, reply: InteractionReply) -> bool:
        """Deliver a reply. False if the interaction was already resolved (a duplicate).

        ``interaction.resolved`` is emitted here rather than by the asking agent, so the
        transcript records the answer even if the agent is cancelled before it resumes.
        """
        if interaction_id in self._resolved:
            return False
        future = self._pending.pop(interaction_id, None)
        if future is None:
            raise UnknownInteractionError(interaction_id)
        self._resolved.add(interaction_id)
        self.append(
            EventType.INTERACTION_RESOLVED,
            {"interaction_id": interaction_id, **reply.model_dump(mode="json")},
        )
        if not future.done():
            future.set_result(reply)
        if not self._pending:
            self.status = "running"
        return True

    def finish(self, type: EventType, data: dict[str, Any]) -> bool:
        """Append the terminal event, unless the run already has one (then False)."""
        if type not in TERMINAL_EVENTS:
            raise ValueError(f"{type.value!r} is not a terminal event")
        if self.finished:
            return False
        # Questions nobody will wait for any more are closed, so none stays pending forever.
        for interaction_id in list(self._pending):
            self.resolve_interaction(interaction_id, InteractionReply(outcome="cancelled"))
        if self.agent_session_id is not None:
            data = {**data, AGENT_SESSION_ID: self.agent_session_id}
        self.append(type, data)
        self.status = _FINAL_STATUS[type]
        self.finished_at = time.monotonic()
        return True

    def request_cancel(self, reason: str | None, grace_s: float) -> bool:
        """Cancel the agent. False if the run already ended or a cancel is under way.

        Pending interactions resolve as cancelled, the agent task gets ``CancelledError`` and
        the run ends with ``run.cancelled``; an agent that ignores it past ``grace_s`` is ended
        for it, so the stream still ends. A cooperative agent is not interrupted: it sees
        ``cancel_event`` and winds down itself, and is interrupted only past ``grace_s``.
        """
        if self.finished or self.cancel_requested:
            return False
        self.cancel_requested = True
        self.cancel_reason = reason
        # Set before the interactions resolve, so a cooperative agent learns of the cancel
        # before it sees its questions answered "cancelled".
        self.cancel_event.set()
        for interaction_id in list(self._pending):
            self.resolve_interaction(interaction_id, InteractionReply(outcome="cancelled"))
        loop = asyncio.get_running_loop()
        if self.cooperative_cancel:
            loop.call_later(grace_s, self._force_cancel)
        else:
            if self.task is not None:
                self.task.cancel()
            loop.call_later(grace_s, self.finish_cancelled)
        return True

    def finish_cancelled(self) -> None:
        self.finish(EventType.RUN_CANCELLED, {"reason": self.cancel_reason})

    def _force_cancel(self) -> None:
        """A cooperative agent did not wind down within the grace: end the run and interrupt it."""
        self.finish_cancelled()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def follow(self, after: int, keepalive_s: float) -> AsyncIterator[StreamRecord]:
        """Every event with ``seq > after``, then live ones; a keepalive after each idle
        ``keepalive_s``; ends after the terminal event."""
        cursor = max(after, 0)
        while True:
            changed = self._changed  # taken before reading, so an append while we yield counts
            while cursor < len(self.events):
                cursor += 1
                yield self.events[cursor - 1]
            if self.finished:
                return
            try:
                async with asyncio.timeout(keepalive_s):
                    await changed.wait()
            except TimeoutError:
                yield KeepAlive(ts=datetime.now(UTC))

    def probe(self, replica_id: str) -> RunProbe:
        return RunProbe(
            run_id=self.run_id, status=self.status, last_seq=self.last_seq, replica_id=replica_id
        )


class UnknownAgentError(LookupError):
    """The dispatch names an agent this runner does not have."""


class RunConflictError(ValueError):
    """The run ID is known here with a different agent or session."""


class RunRegistry:
    """Every run this runner knows, by run ID; finished runs are kept for ``retention_s``."""

    def __init__(
        self,
        agents: Mapping[str, AgentSpec],
        replica_id: str,
        retention_s: float,
        cancel_grace_s: float = 5.0,
    ) -> None:
        self.agents = agents
        self.replica_id = replica_id
        self.retention_s = retention_s
        self.cancel_grace_s = cancel_grace_s
        self._runs: dict[str, HostedRun] = {}

    def get(self, run_id: str) -> HostedRun | None:
        return self._runs.get(run_id)

    def dispatch(self, request: DispatchRequest) -> HostedRun:
        """Start the run, or return it if this run ID is already known (idempotent).

        ``run.started`` is seq 1 and is appended before this returns, so the answer's first
        record is always it.
        """
        run = self._runs.get(request.run_id)
        if run is not None:
            if (run.agent, run.session_id) != (request.agent, request.session_id):
                raise RunConflictError(
                    f"run {request.run_id} is already running agent {run.agent!r} "
                    f"for session {run.session_id!r}"
                )
            return run
        spec = self.agents.get(request.agent)
        if spec is None:
            raise UnknownAgentError(request.agent)
        run = HostedRun(request.run_id, request.agent, request.session_id, spec.cooperative_cancel)
        started = RunStartedData(
            replica_id=self.replica_id, agent=request.agent, attempt=request.attempt
        )
        run.append(EventType.RUN_STARTED, started.model_dump(mode="json"))
        run.task = asyncio.create_task(
            execute_agent(run, spec, AgentContext(run, request)), name=f"run:{request.run_id}"
        )
        self._runs[request.run_id] = run
        return run

    def cancel(self, run: HostedRun, reason: str | None) -> bool:
        """Cancel ``run``; False if it already ended or was already cancelled."""
        return run.request_cancel(reason, self.cancel_grace_s)

    def sweep(self) -> int:
        """Drop runs that finished more than ``retention_s`` ago; return how many."""
        horizon = time.monotonic() - self.retention_s
        expired = [
            run_id
            for run_id, run in self._runs.items()
            if run.finished_at is not None and run.finished_at <= horizon
        ]
        for run_id in expired:
            del self._runs[run_id]
        return len(expired)

    async def sweep_forever(self) -> None:
        """Sweep periodically; a retention of an hour needs no second-level precision."""
        interval = min(max(self.retention_s / 4, 0.05), 60.0)
        while True:
            await asyncio.sleep(interval)
            self.sweep()

    async def aclose(self) -> None:
        """Stop every agent (the runner is shutting down): its runs end as failed.

        Waits at most ``cancel_grace_s`` for the agents to unwind; one that ignores
        cancellation must not hold the shutdown forever.
        """
        tasks = []
        for run in self._runs.values():
            run.finish(
                EventType.RUN_FAILED,
                {"error": {"type": "RunnerShutdown", "message": "the runner stopped"}},
            )
            if run.task is not None and not run.task.done():
                run.task.cancel()
                tasks.append(run.task)
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=self.cancel_grace_s)
            for task in stuck:
                log.warning("agent task %s ignored cancellation at shutdown", task.get_name())
