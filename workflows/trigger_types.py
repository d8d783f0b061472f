"""Trigger types: the configuration of a trigger (what it starts, when) and the types that
cross the boundary of ``TriggerFiringWorkflow`` (its input, activity inputs and outputs).

Pydantic models, converted by the shared pydantic data converter; new fields get defaults so
recorded histories still decode. The store and the API use the same models.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tether.ids import SESSION_ID_PATTERN
from tether.instants import Instant
from workflows.types import MultitaskStrategy, RunStatus


class TriggerKind(StrEnum):
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"


class OverlapPolicy(StrEnum):
    """What a schedule does when a firing comes while the previous one's run is still going.

    A firing lasts until its run ends, so these are Temporal's schedule overlap policies
    applied to runs. (``terminate_other`` is left out: a terminated firing could not record
    its run's outcome.)
    """

    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    BUFFER_ALL = "buffer_all"
    CANCEL_OTHER = "cancel_other"  # cancels the previous firing's run
    ALLOW_ALL = "allow_all"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # the firing started; no run submitted yet
    SUBMITTED = "submitted"  # the run is accepted (or queued) in its session
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    REJECTED = "rejected"  # no run: the session was busy, the trigger is gone, ...

    @property
    def rank(self) -> int:
        """Deliveries only move forward: pending < submitted < a final status."""
        return {DeliveryStatus.PENDING: 0, DeliveryStatus.SUBMITTED: 1}.get(self, 2)

    @classmethod
    def of_run(cls, status: RunStatus) -> DeliveryStatus:
        return cls(status.value) if status.is_terminal else cls.SUBMITTED


class RejectReason(StrEnum):
    SESSION_BUSY = "session_busy"
    TRIGGER_DELETED = "trigger_deleted"
    TEMPLATE_ERROR = "template_error"


class TriggerTarget(BaseModel):
    """What a firing starts: a run of ``agent`` whose input is ``input`` rendered with the
    firing (see ``tether.templating``), in a new session per firing or in ``session_id``."""

    model_config = ConfigDict(extra="forbid")

    agent: str = Field(min_length=1, max_length=128)
    input: Any = None
    session_id: str | None = Field(
        default=None,
        pattern=SESSION_ID_PATTERN,
        description="Run every firing in this session; null: a new session per firing.",
    )
    multitask: MultitaskStrategy = Field(
        default=MultitaskStrategy.REJECT,
        description="What a firing does while the fixed session is busy: `reject` records the "
        "delivery `rejected` (session_busy), `enqueue` queues the run, `interrupt` cancels "
        "the active run.",
    )


# The longest duration a schedule takes (10 years): Temporal's durations are bounded, and a
# larger number would overflow converting it rather than be refused.
MAX_DURATION_S = 10 * 365 * 24 * 3600.0


class ScheduleConfig(BaseModel):
    """When a schedule trigger fires: cron expressions and/or intervals, Temporal semantics.

    Cron expressions are checked by Temporal when the schedule is created (a bad one is a
    422); the rest is checked here.
    """

    model_config = ConfigDict(extra="forbid")

    cron: list[str] = Field(default_factory=list, description="e.g. `*/5 * * * *`")
    interval_s: float | None = Field(
        default=None, ge=1, le=MAX_DURATION_S, description="fire every N seconds"
    )
    interval_offset_s: float | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    time_zone: str | None = Field(
        default=None, description="IANA name for cron, e.g. `Europe/Paris`"
    )
    start_at: Instant | None = None
    end_at: Instant | None = None
    jitter_s: float | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    overlap: OverlapPolicy = OverlapPolicy.SKIP
    catchup_window_s: float | None = Field(
        default=None,
        ge=10,
        le=MAX_DURATION_S,
        description="how late a missed firing may still run (default: 1 year)",
    )

    @model_validator(mode="after")
    def _coherent(self) -> ScheduleConfig:
        if not self.cron and self.interval_s is None:
            raise ValueError("a schedule needs `cron` expressions or an `interval_s`")
        if self.interval_offset_s is not None and (
            self.interval_s is None or self.interval_offset_s >= self.interval_s
        ):
            raise ValueError("`interval_offset_s` must be less than `interval_s`")
        if self.start_at and self.end_at and self.start_at >= self.end_at:
            raise ValueError("`start_at` must be before `end_at`")
        if self.time_zone is not None:
            try:
                ZoneInfo(self.time_zone)
            except (ZoneInfoNotFoundError, ValueError) as err:
                raise ValueError(f"unknown time zone {self.time_zone!r}") from err
        return self


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id_field: str | None = Field(
        default="event_id",
        description="Dotted path of the body field holding the event ID (it is covered by "
        "the signature, unlike the `X-Tether-Event-Id` header).",
    )


class TriggerRecord(BaseModel):
    """A trigger as stored (without its webhook secret)."""

    trigger_id: str
    project_id: str
    name: str
    kind: TriggerKind
    target: TriggerTarget
    schedule: ScheduleConfig | None = None
    webhook: WebhookConfig | None = None
    paused: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class DeliveryRecord(BaseModel):
    """One firing of a trigger and what became of it."""

    delivery_id: str
    trigger_id: str
    project_id: str
    event_id: str
    source: Literal["schedule", "webhook"]
    status: DeliveryStatus
    status_reason: str | None = None
    details: dict[str, Any] | None = None
    run_id: str | None = None
    session_id: str | None = None
    firing_workflow_id: str
    payload: Any = None
    created_at: datetime
    updated_at: datetime


# TriggerFiringWorkflow and its activities.


class FiringInput(BaseModel):
    """Input of ``TriggerFiringWorkflow``. A schedule's firings carry no event ID: it is the
    scheduled time, read from the execution (``TemporalScheduledStartTime``)."""

    trigger_id: str
    project_id: str
    source: Literal["schedule", "webhook"] = "schedule"
    event_id: str | None = None
    payload: Any = None


class StartDeliveryInput(BaseModel):
    trigger_id: str
    project_id: str
    source: Literal["schedule", "webhook"]
    event_id: str
    payload: Any = None
    firing_workflow_id: str
    fired_at: datetime


class FiringPlan(BaseModel):
    """What the firing will submit, from the trigger as it is now; or why it will not."""

    delivery_id: str
    run_id: str
    session_id: str
    agent: str = ""
    input: Any = None
    multitask: MultitaskStrategy = MultitaskStrategy.REJECT
    trigger_name: str = ""
    rejected: RejectReason | None = None
    message: str | None = None


class SubmitFiringInput(BaseModel):
    plan: FiringPlan
    trigger_id: str
    project_id: str
    event_id: str
    notify_workflow_id: str
    created_at: datetime


class SubmitFiringResult(BaseModel):
    """The run's status right after the submit; or ``busy`` with the session's active run."""

    status: RunStatus | None = None
    status_reason: str | None = None
    error: dict[str, Any] | None = None
    busy: bool = False
    active_run_id: str | None = None


class DeliveryUpdate(BaseModel):
    """Move a delivery forward (never back: a retried write of an older status is ignored)."""

    delivery_id: str
    project_id: str
    status: DeliveryStatus
    status_reason: str | None = None
    details: dict[str, Any] | None = None
    run_id: str | None = None
    session_id: str | None = None
    at: datetime


class RunOutcomeInput(BaseModel):
    project_id: str
    run_id: str


class CancelTargetInput(BaseModel):
    session_id: str
    run_id: str
    reason: str
    # None in histories recorded before workflow IDs carried the project.
    project_id: str | None = None


class DeliveryOutcome(BaseModel):
    """The firing workflow's result: the delivery as it ended."""

    delivery_id: str
    status: DeliveryStatus
    run_id: str | None = None
    status_reason: str | None = None
