"""Bodies of ``/v1/triggers``: triggers, their firings (deliveries), backfills."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from api.schemas.base import Body, Public
from tether.instants import Instant
from workflows.trigger_types import (
    DeliveryStatus,
    OverlapPolicy,
    ScheduleConfig,
    TriggerKind,
    TriggerTarget,
    WebhookConfig,
)


class WebhookCreate(WebhookConfig):
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        description="The HMAC key senders sign with; generated when omitted.",
    )


class TriggerCreate(Body):
    name: str = Field(min_length=1, max_length=256)
    kind: TriggerKind
    target: TriggerTarget
    schedule: ScheduleConfig | None = Field(default=None, description="required for `schedule`")
    webhook: WebhookCreate | None = Field(default=None, description="options of a `webhook`")
    paused: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fits_kind(self) -> TriggerCreate:
        if self.kind == TriggerKind.SCHEDULE:
            if self.schedule is None:
                raise ValueError("a `schedule` trigger needs `schedule`")
            if self.webhook is not None:
                raise ValueError("`webhook` is for `webhook` triggers")
        elif self.schedule is not None:
            raise ValueError("`schedule` is for `schedule` triggers")
        return self


class TriggerUpdate(Body):
    """Fields to change; each given object replaces the stored one whole."""

    name: str | None = Field(default=None, min_length=1, max_length=256)
    target: TriggerTarget | None = None
    schedule: ScheduleConfig | None = None
    webhook: WebhookConfig | None = None
    metadata: dict[str, Any] | None = None


class TriggerPublic(Public):
    """A trigger's configuration (never its webhook secret) and where it fires from."""

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
    webhook_url: str | None = Field(
        default=None, description="where senders POST signed events (webhook triggers)"
    )
    schedule_id: str | None = Field(
        default=None, description="the Temporal Schedule (schedule triggers)"
    )


class TriggerCreated(TriggerPublic):
    secret: str | None = Field(
        default=None, description="The webhook's signing secret. Shown once, here; store it now."
    )


class TriggerList(BaseModel):
    triggers: list[TriggerPublic]
    next_cursor: str | None = None


class DeliveryPublic(Public):
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


class DeliveryList(BaseModel):
    deliveries: list[DeliveryPublic]
    next_cursor: str | None = None


# The longest a rotated secret may stay valid beside the new one.
MAX_SECRET_OVERLAP_S = 30 * 24 * 3600.0


class SecretRotation(Body):
    """When the current secret stops being accepted: after ``overlap_s`` seconds, or at
    ``valid_until``; neither: after ``TETHER_WEBHOOK_SECRET_OVERLAP_S`` (a day)."""

    overlap_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_SECRET_OVERLAP_S,
        description="seconds the old secret stays valid; 0 retires it at once",
    )
    valid_until: datetime | None = Field(
        default=None, description="when the old secret stops being valid (with an offset)"
    )

    @model_validator(mode="after")
    def _one_bound(self) -> SecretRotation:
        if self.overlap_s is not None and self.valid_until is not None:
            raise ValueError("give `overlap_s` or `valid_until`, not both")
        if self.valid_until is not None and self.valid_until.tzinfo is None:
            raise ValueError("`valid_until` needs a time zone offset")
        return self


class SecretRotated(BaseModel):
    trigger_id: str
    secret: str = Field(description="The new signing secret. Shown once, here; store it now.")
    previous_valid_until: datetime | None = Field(
        description="until when the previous secret is still accepted (none: no longer)"
    )


class BackfillCreate(Body):
    start_at: Instant
    end_at: Instant
    overlap: OverlapPolicy = Field(
        default=OverlapPolicy.ALLOW_ALL,
        description="Backfilled firings come all at once: `allow_all` runs each of them.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> BackfillCreate:
        if self.start_at.tzinfo is None or self.end_at.tzinfo is None:
            raise ValueError("`start_at` and `end_at` need a time zone offset")
        if self.start_at >= self.end_at:
            raise ValueError("`start_at` must be before `end_at`")
        return self


class BackfillAccepted(BaseModel):
    trigger_id: str
    start_at: datetime
    end_at: datetime
    overlap: OverlapPolicy


class FireAccepted(BaseModel):
    """A firing that started (or had started: ``duplicate``). A schedule fired by hand
    (``status`` ``fired``) shows up in the deliveries once Temporal started it."""

    trigger_id: str
    status: Literal["started", "fired"]
    duplicate: bool = False
    delivery_id: str | None = None
    event_id: str | None = None
    run_id: str | None = Field(
        default=None, description="the run this firing starts (unless rejected)"
    )
    session_id: str | None = None
    firing_workflow_id: str | None = None
    delivery: DeliveryPublic | None = Field(
        default=None, description="the delivery, if already recorded"
    )
