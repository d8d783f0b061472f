"""Types that cross the workflow boundary: workflow input, update/signal/query payloads and
activity inputs/outputs. Pydantic models, converted by the shared pydantic data converter.

New fields always get defaults so histories recorded before them still decode.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from runner.protocol import InteractionQuestion, InteractionReply, RunAssignment


class RunStatus(StrEnum):
    QUEUED = "queued"
    DISPATCHING = "dispatching"
    RUNNING = "running"
    WAITING_FOR_INPUT = "waiting_for_input"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}
)


class FailureReason(StrEnum):
    """``status_reason`` values a user can read when a run did not complete."""

    RUNNER_LOST = "runner_lost"
    DISPATCH_TIMEOUT = "dispatch_timeout"
    AGENT_ERROR = "agent_error"
    UNKNOWN_AGENT = "unknown_agent"
    CANCELLED_BY_USER = "cancelled_by_user"
    INTERRUPTED = "interrupted"  # a newer run of the session took over
    INTERNAL_ERROR = "internal_error"


class MultitaskStrategy(StrEnum):
    """What a new run does when its session is busy."""

    REJECT = "reject"  # 409 with the active run's ID
    ENQUEUE = "enqueue"  # wait as ``queued``; start when the runs before it ended
    INTERRUPT = "interrupt"  # cancel the active run (reason ``interrupted``), then start


class RunPolicy(BaseModel):
    """Timeouts of one run, fixed when it is submitted (workflows read no settings)."""

    accept_wait_s: float = 5.0
    dispatch_deadline_s: float = 120.0
    runner_lost_timeout_s: float = 30.0
    heartbeat_timeout_s: float = 15.0
    interaction_expiry_s: float = 24 * 3600.0
    cancel_grace_s: float = 10.0
    # How often a waiting run checks that its runner still holds it.
    waiting_probe_s: float = 60.0
    # Continue-as-new once the history is this long (0: only when Temporal suggests it).
    history_events_limit: int = 0


class RunSpec(BaseModel):
    """What the API submits: one run in a session."""

    run_id: str
    session_id: str
    project_id: str
    agent: str
    input: Any = None
    multitask: MultitaskStrategy = MultitaskStrategy.REJECT
    idempotency_key: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    trigger_id: str | None = None
    created_at: datetime
    policy: RunPolicy = Field(default_factory=RunPolicy)
    # Fingerprint of the request that made the run: the same idempotency key with another
    # request is a conflict, not a duplicate.
    request_hash: str | None = None
    # The API's public base URL, for links in the Temporal UI (memo, details).
    api_url: str | None = None
    # A workflow to signal ``run_finished`` (``RunFinished``) when the run ends: the trigger
    # firing that submitted it, so its delivery ends with the run's outcome.
    notify_workflow_id: str | None = None


class PendingInteraction(InteractionQuestion):
    """A question the run waits on: when it was asked and when it expires."""

    requested_at: datetime
    expires_at: datetime | None = None

    @classmethod
    def asked(
        cls, question: InteractionQuestion, requested_at: datetime, expires_at: datetime | None
    ) -> PendingInteraction:
        return cls.model_validate(
            {**dict(question), "requested_at": requested_at, "expires_at": expires_at}
        )


class RunResult(BaseModel):
    output: str | None = None
    stop_reason: str | None = None


class RunState(BaseModel):
    """The run as users see it: the ``state`` query, the store row and the API view."""

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
    last_seq: int = 0
    events: int = 0
    steps: int = 0
    usage: dict[str, Any] = Field(default_factory=dict)
    result: RunResult | None = None
    error: dict[str, Any] | None = None
    pending_interaction: PendingInteraction | None = None
    replica_id: str | None = None
    # The agent's own session (e.g. an ACP session ID), resumed by the session's next run.
    agent_session_id: str | None = None
    attempts: dict[str, int] = Field(default_factory=dict)
    # Projection version: bumped on each state change so stale writes lose.
    version: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None:
            return None
        end = self.ended_at or self.updated_at
        return max(0, int((end - self.started_at).total_seconds() * 1000))


# Signals.


class RespondSignal(BaseModel):
    run_id: str
    interaction_id: str
    response: dict[str, Any]
    responder: str | None = None


class CancelSignal(BaseModel):
    run_id: str
    reason: str | None = None
    # Who asked: the API key's name (``None`` with auth off, or from a trigger).
    actor: str | None = None


# Sent by the run's workflow to ``RunSpec.notify_workflow_id`` when the run ends.
RUN_FINISHED_SIGNAL = "run_finished"


class RunFinished(BaseModel):
    """A run's final outcome, as signalled to the workflow that asked to be told."""

    run_id: str
    status: RunStatus
    status_reason: str | None = None
    error: dict[str, Any] | None = None


# Activities.


class DispatchInput(RunAssignment):
    """Input of ``dispatch_run``; the activity adds what only it can know."""


class DispatchResult(BaseModel):
    replica_id: str
    started_at: datetime


class FollowInput(BaseModel):
    run_id: str
    project_id: str
    after_seq: int = 0
    runner_lost_timeout_s: float = 30.0
    # With both, a question is recorded pending in the transaction that stores its
    # ``interaction.requested`` event, so whoever sees the event can answer it at once.
    session_id: str | None = None
    interaction_expiry_s: float | None = None  # the run's default, for questions without one


class FollowOutcome(BaseModel):
    """Why ``follow_run`` returned: the run asks for input, or it ended."""

    kind: Literal["interaction", "ended"]
    last_seq: int
    steps: int = 0  # tool calls seen by this call
    usage: dict[str, Any] = Field(default_factory=dict)
    interaction: PendingInteraction | None = None
    ended_status: RunStatus | None = None
    result: RunResult | None = None
    error: dict[str, Any] | None = None
    agent_session_id: str | None = None  # the agent's own session, to resume next run


class DeliverInput(BaseModel):
    run_id: str
    interaction_id: str
    reply: InteractionReply


class ProbeInput(BaseModel):
    run_id: str


class CancelRunInput(BaseModel):
    run_id: str
    reason: str | None = None


class StatusTransition(BaseModel):
    seq: int
    status: RunStatus
    reason: str | None = None
    at: datetime
    # Who caused it, when a person did: the key that cancelled the run.
    actor: str | None = None


class RecordRunInput(BaseModel):
    """Project the run's state (and the transition that led to it) to the store."""

    state: RunState
    transition: StatusTransition | None = None
    request_hash: str | None = None


class InteractionRecord(PendingInteraction):
    """An interaction of a run and what became of it: the store's record of it."""

    run_id: str
    session_id: str
    project_id: str
    status: Literal["pending", "resolved", "expired", "cancelled"]
    response: dict[str, Any] | None = None
    responder: str | None = None
    resolved_at: datetime | None = None
    ignored_responses: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def pending(
        cls, question: PendingInteraction, *, run_id: str, session_id: str, project_id: str
    ) -> InteractionRecord:
        """The record of ``question`` as just asked by run ``run_id``."""
        fields = {"run_id": run_id, "session_id": session_id, "project_id": project_id}
        return cls.model_validate({**dict(question), **fields, "status": "pending"})


class CarriedRun(BaseModel):
    """One run as the workflow holds it; carried across continue-as-new."""

    spec: RunSpec
    state: RunState
    transitions: int = 0  # status transitions recorded so far
    interactions: list[InteractionRecord] = Field(default_factory=list)
    # Signals received but not acted on yet: an answer or a cancel must survive the hand-over.
    answer: RespondSignal | None = None
    cancel: CancelSignal | None = None
    early_answers: list[RespondSignal] = Field(default_factory=list)  # for questions not yet seen


class SessionInput(BaseModel):
    """Input of ``SessionRunWorkflow``.

    A fresh session gets its first run by the ``submit`` update. A continued execution gets
    the run it was in the middle of (``active``) and the runs waiting behind it (``queue``).
    """

    session_id: str
    project_id: str
    active: CarriedRun | None = None
    queue: list[CarriedRun] = Field(default_factory=list)


class SubmitResult(BaseModel):
    """What ``submit`` answers: the run, and whether it already existed (idempotent retry)."""

    state: RunState
    duplicate: bool = False


class CatalogInput(BaseModel):
    interval_s: float = 30.0
