"""Triggers: create, list, read, update, pause/resume, delete, backfill, and their deliveries.

The API writes only the trigger's configuration row; schedule triggers also get their
Temporal Schedule created, changed or removed here. Deliveries are written by the firings.
Firing (webhooks and "fire now") is in ``api.routes.trigger_fire``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.agents_catalog import require_agent
from api.auth import ADMIN, VIEWER
from api.deps import (
    DbDep,
    DbFactoryDep,
    PageDep,
    ProjectDep,
    SecretBoxDep,
    SettingsDep,
    TemporalDep,
)
from api.errors import ApiError, not_found
from api.schemas.triggers import (
    BackfillAccepted,
    BackfillCreate,
    DeliveryList,
    DeliveryPublic,
    SecretRotated,
    SecretRotation,
    TriggerCreate,
    TriggerCreated,
    TriggerList,
    TriggerPublic,
    TriggerUpdate,
)
from api.signatures import new_secret
from clients import schedules
from store import triggers
from tether.ids import new_trigger_id, schedule_id
from tether.settings import Settings
from tether.templating import TemplateError, check_template, firing_context, render
from workflows.trigger_types import (
    DeliveryStatus,
    TriggerKind,
    TriggerRecord,
    WebhookConfig,
)

router = APIRouter(prefix="/v1/triggers", tags=["triggers"])


def trigger_view(trigger: TriggerRecord, settings: Settings) -> TriggerPublic:
    webhook = trigger.kind == TriggerKind.WEBHOOK
    return TriggerPublic.of(
        trigger,
        webhook_url=(
            f"{settings.public_api_url.rstrip('/')}/v1/triggers/{trigger.trigger_id}/fire"
            if webhook
            else None
        ),
        schedule_id=None if webhook else schedule_id(trigger.trigger_id),
    )


async def _trigger(db: DbDep, project_id: str, trigger_id: str) -> TriggerRecord:
    trigger = await triggers.get_trigger(db, project_id, trigger_id)
    if trigger is None:
        raise not_found("trigger", trigger_id)
    return trigger


def _check_input(kind: TriggerKind, template: object) -> None:
    """422 for a template that cannot render: malformed, or (schedules, which have no
    payload) naming a payload field that is not optional."""
    try:
        check_template(template)
        if kind == TriggerKind.SCHEDULE:
            sample = firing_context(
                payload=None,
                event_id="2000-01-01T00:00:00Z",
                event_time="2000-01-01T00:00:00+00:00",
                source="schedule",
                trigger_id="trg_check",
                trigger_name="check",
            )
            render(template, sample)
    except TemplateError as err:
        raise ApiError(422, "invalid_template", str(err), {"input": template}) from err


@router.post("", status_code=201, response_model=TriggerCreated, dependencies=[ADMIN])
async def create_trigger(
    body: TriggerCreate,
    db: DbDep,
    db_factory: DbFactoryDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    project_id: ProjectDep,
    secret_box: SecretBoxDep,
) -> TriggerCreated:
    """Create a trigger. A webhook's signing secret is in this answer only."""
    await require_agent(db, body.target.agent)
    _check_input(body.kind, body.target.input)
    now = datetime.now(UTC)
    webhook = body.kind == TriggerKind.WEBHOOK
    record = TriggerRecord(
        trigger_id=new_trigger_id(),
        project_id=project_id,
        name=body.name,
        kind=body.kind,
        target=body.target,
        schedule=body.schedule,
        webhook=WebhookConfig.model_validate(
            body.webhook.model_dump(exclude={"secret"}) if body.webhook else {}
        )
        if webhook
        else None,
        paused=body.paused,
        metadata=body.metadata,
        created_at=now,
        updated_at=now,
    )
    secret = ((body.webhook and body.webhook.secret) or new_secret()) if webhook else None
    # The row first: a schedule may fire at once, and its firing reads the trigger.
    async with db_factory.begin() as session:
        await triggers.insert_trigger(session, record, secret, secret_box)
    if not webhook:
        try:
            await schedules.create_schedule(temporal, record, settings)
        except Exception:
            async with db_factory.begin() as session:
                await triggers.drop_trigger(session, record.trigger_id)
            raise
    return TriggerCreated.of(trigger_view(record, settings), secret=secret)


@router.get("", response_model=TriggerList, dependencies=[VIEWER])
async def list_project_triggers(
    db: DbDep,
    settings: SettingsDep,
    project_id: ProjectDep,
    page: PageDep,
    kind: TriggerKind | None = None,
) -> TriggerList:
    """The project's triggers, newest first; page with ``cursor`` = ``next_cursor``."""
    found, next_cursor = await triggers.list_triggers(
        db, project_id, kind=kind, limit=page.limit, cursor=page.cursor
    )
    return TriggerList(triggers=[trigger_view(t, settings) for t in found], next_cursor=next_cursor)


@router.get("/{trigger_id}", response_model=TriggerPublic, dependencies=[VIEWER])
async def read_trigger(
    trigger_id: str, db: DbDep, settings: SettingsDep, project_id: ProjectDep
) -> TriggerPublic:
    return trigger_view(await _trigger(db, project_id, trigger_id), settings)


@router.patch("/{trigger_id}", response_model=TriggerPublic, dependencies=[ADMIN])
async def update_trigger(
    trigger_id: str,
    body: TriggerUpdate,
    db: DbDep,
    db_factory: DbFactoryDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    project_id: ProjectDep,
) -> TriggerPublic:
    """Change a trigger; each object given (``target``, ``schedule``, ...) replaces the
    stored one. Firings already started keep the configuration they started with."""
    trigger = await _trigger(db, project_id, trigger_id)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    changes = {name: value for name, value in changes.items() if value is not None}
    if "schedule" in changes and trigger.kind != TriggerKind.SCHEDULE:
        raise ApiError(422, "invalid_request", "`schedule` is for `schedule` triggers")
    if "webhook" in changes and trigger.kind != TriggerKind.WEBHOOK:
        raise ApiError(422, "invalid_request", "`webhook` is for `webhook` triggers")
    if "target" in changes:
        await require_agent(db, changes["target"].agent)
        _check_input(trigger.kind, changes["target"].input)
    updated = trigger.model_copy(update={**changes, "updated_at": datetime.now(UTC)})
    if trigger.kind == TriggerKind.SCHEDULE:  # Temporal checks the spec before it is stored
        await schedules.update_schedule(temporal, updated, settings)
    async with db_factory.begin() as session:
        await triggers.save_trigger(session, updated)
    return trigger_view(updated, settings)


@router.post("/{trigger_id}/rotate-secret", response_model=SecretRotated, dependencies=[ADMIN])
async def rotate_trigger_secret(
    trigger_id: str,
    db: DbDep,
    db_factory: DbFactoryDep,
    settings: SettingsDep,
    project_id: ProjectDep,
    secret_box: SecretBoxDep,
    body: SecretRotation | None = None,
) -> SecretRotated:
    """Give a webhook a new signing secret, shown once in this answer. The current one stays
    valid until the overlap ends, so senders can switch without a refused event; a secret
    left from an earlier rotation stops being valid now."""
    trigger = await _trigger(db, project_id, trigger_id)
    if trigger.kind != TriggerKind.WEBHOOK:
        raise ApiError(409, "not_a_webhook", "only webhook triggers have a signing secret")
    body = body or SecretRotation()
    now = datetime.now(UTC)
    overlap_s = settings.webhook_secret_overlap_s if body.overlap_s is None else body.overlap_s
    valid_until = body.valid_until or now + timedelta(seconds=overlap_s)
    secret = new_secret()
    async with db_factory.begin() as session:
        await triggers.rotate_webhook_secret(
            session, trigger_id, secret, valid_until, now, secret_box
        )
    return SecretRotated(
        trigger_id=trigger_id,
        secret=secret,
        previous_valid_until=valid_until if valid_until > now else None,
    )


class Pauser:
    """Pause or resume a trigger: its schedule in Temporal first, then its row."""

    def __init__(
        self,
        db: DbDep,
        db_factory: DbFactoryDep,
        temporal: TemporalDep,
        settings: SettingsDep,
        project_id: ProjectDep,
    ) -> None:
        self.db, self.db_factory, self.temporal = db, db_factory, temporal
        self.settings, self.project_id = settings, project_id

    async def set_paused(self, trigger_id: str, paused: bool) -> TriggerPublic:
        trigger = await _trigger(self.db, self.project_id, trigger_id)
        if trigger.kind == TriggerKind.SCHEDULE:
            note = "paused through the Tether API" if paused else "resumed through the Tether API"
            await schedules.set_paused(self.temporal, trigger_id, paused, note)
        updated = trigger.model_copy(update={"paused": paused, "updated_at": datetime.now(UTC)})
        async with self.db_factory.begin() as session:
            await triggers.save_trigger(session, updated)
        return trigger_view(updated, self.settings)


PauserDep = Annotated[Pauser, Depends()]


@router.post("/{trigger_id}/pause", response_model=TriggerPublic, dependencies=[ADMIN])
async def pause_trigger(trigger_id: str, pauser: PauserDep) -> TriggerPublic:
    """Stop firing: the schedule is paused; a webhook answers ``409 trigger_paused``."""
    return await pauser.set_paused(trigger_id, True)


@router.post("/{trigger_id}/resume", response_model=TriggerPublic, dependencies=[ADMIN])
async def resume_trigger(trigger_id: str, pauser: PauserDep) -> TriggerPublic:
    return await pauser.set_paused(trigger_id, False)


@router.delete("/{trigger_id}", status_code=204, response_class=Response, dependencies=[ADMIN])
async def delete_trigger(
    trigger_id: str,
    db: DbDep,
    db_factory: DbFactoryDep,
    temporal: TemporalDep,
    project_id: ProjectDep,
) -> Response:
    """Delete the trigger (and its schedule). Firings under way still finish their runs."""
    trigger = await _trigger(db, project_id, trigger_id)
    if trigger.kind == TriggerKind.SCHEDULE:
        await schedules.delete_schedule(temporal, trigger_id)
    async with db_factory.begin() as session:
        await triggers.mark_trigger_deleted(session, trigger_id, datetime.now(UTC))
    return Response(status_code=204)


@router.post(
    "/{trigger_id}/backfill", status_code=202, response_model=BackfillAccepted, dependencies=[ADMIN]
)
async def backfill_trigger(
    trigger_id: str,
    body: BackfillCreate,
    db: DbDep,
    temporal: TemporalDep,
    project_id: ProjectDep,
) -> BackfillAccepted:
    """Fire the schedule for the times it would have fired in ``[start_at, end_at)``."""
    trigger = await _trigger(db, project_id, trigger_id)
    if trigger.kind != TriggerKind.SCHEDULE:
        raise ApiError(409, "not_a_schedule", "only schedule triggers can be backfilled")
    if trigger.paused:
        raise ApiError(409, "trigger_paused", f"trigger {trigger_id} is paused")
    await schedules.backfill(temporal, trigger_id, body.start_at, body.end_at, body.overlap)
    return BackfillAccepted(
        trigger_id=trigger_id, start_at=body.start_at, end_at=body.end_at, overlap=body.overlap
    )


@router.get("/{trigger_id}/deliveries", response_model=DeliveryList, dependencies=[VIEWER])
async def list_trigger_deliveries(
    trigger_id: str,
    db: DbDep,
    project_id: ProjectDep,
    page: PageDep,
    status: Annotated[list[DeliveryStatus] | None, Query()] = None,
) -> DeliveryList:
    """The trigger's firings, newest first: each one's event, run and outcome."""
    await _trigger(db, project_id, trigger_id)
    deliveries, next_cursor = await triggers.list_deliveries(
        db, project_id, trigger_id, statuses=status, limit=page.limit, cursor=page.cursor
    )
    return DeliveryList(
        deliveries=[DeliveryPublic.of(d) for d in deliveries],
        next_cursor=next_cursor,
    )


@router.get(
    "/{trigger_id}/deliveries/{delivery_id}", response_model=DeliveryPublic, dependencies=[VIEWER]
)
async def read_trigger_delivery(
    trigger_id: str, delivery_id: str, db: DbDep, project_id: ProjectDep
) -> DeliveryPublic:
    await _trigger(db, project_id, trigger_id)
    delivery = await triggers.get_delivery(db, project_id, delivery_id)
    if delivery is None or delivery.trigger_id != trigger_id:
        raise not_found("delivery", delivery_id)
    return DeliveryPublic.of(delivery)
